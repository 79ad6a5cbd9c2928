//! The metadata record read back from Redis (`tier::record::decode`): any bytes decode or are
//! refused without panicking; what decodes encodes back to a record that decodes to the same
//! header, and renders as a hit's headers without panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use s3cached::model::hit_headers::{HitView, render};
use s3cached::tier::record::{decode, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(header) = decode(data) else {
        return;
    };
    let again = encode(&header);
    assert_eq!(decode(&again).as_ref(), Ok(&header), "round trip");
    // Re-encoding is canonical (metadata sorted, repeated names merged).
    assert_eq!(encode(&header), again);
    for (get, checksums) in [(true, false), (true, true), (false, false)] {
        let _ = render(&header.meta, &HitView::plain(get, checksums));
    }
});
