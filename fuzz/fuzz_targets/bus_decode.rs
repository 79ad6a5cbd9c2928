//! Messages read from the invalidation bus's Redis channel (`tier::bus::Message::decode`): any
//! bytes decode or are refused without panicking, and what decodes encodes back to a message
//! that decodes to the same value. The same bytes, read as lines, also make a message (kind,
//! sender, id, bucket, key, version) that must survive `encode` and `decode` unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use s3cached::tier::bus::{Message, Named};

fuzz_target!(|data: &[u8]| {
    if let Some(msg) = Message::decode(data) {
        let wire = msg.encode();
        assert_eq!(Message::decode(&wire), Some(msg), "round trip of {wire:?}");
    }
    let f = s3cached_fuzz::fields(data, 6);
    let field = |i: usize| f.get(i).map_or_else(String::new, |s| s.clone().into_owned());
    let id = f.get(2).map_or(0, |s| s.parse().unwrap_or(s.len() as u64));
    let msg = match f.first().and_then(|k| k.bytes().next()) {
        Some(b'H') => Message::Heartbeat { from: field(1) },
        Some(b'I') => Message::Invalidate {
            from: field(1),
            id,
            objects: vec![Named {
                bucket: field(3),
                key: field(4),
                version: f.get(5).map(|v| v.clone().into_owned()),
            }],
        },
        Some(b'A') => Message::Ack {
            to: field(1),
            id,
            from: field(3),
        },
        _ => return,
    };
    assert_eq!(Message::decode(&msg.encode()), Some(msg));
});
