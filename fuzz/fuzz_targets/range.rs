//! `Range` headers as s3s parses them (`s3s::dto::Range::parse`) and as the cache applies
//! them to an object (`range::resolve`, `range::content_range`). Input: the object size
//! (8 bytes, little-endian, small sizes made likely) and the header value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use s3cached::range::{content_range, resolve};
use s3s::dto::Range;

fuzz_target!(|data: &[u8]| {
    let Some((size, header)) = data.split_first_chunk::<8>() else {
        return;
    };
    let size = u64::from_le_bytes(*size);
    // Mostly small objects, where ranges meet their ends; sometimes huge ones.
    let size = if size >> 63 == 0 { size % 4096 } else { size };
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    let Ok(range) = Range::parse(header) else {
        return;
    };
    match resolve(&range, size) {
        Ok(span) => {
            assert!(
                span.start < span.end && span.end <= size,
                "{header:?} of {size}: {span:?}"
            );
            let _ = content_range(&span, size);
        }
        Err(e) => assert_eq!(e.size, size),
    }
});
