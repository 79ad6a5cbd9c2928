//! `Range` headers as s3s parses them (`s3s::dto::Range::parse`) and as the cache applies
//! them to an object (`range::resolve`, `range::content_range`) and to its blocks
//! (`block::Layout`: the parts of the blocks a span touches add up to exactly the span), and
//! an origin's `Content-Range` as the cache reads it (`range::parse_content_range`: any text
//! parses or is refused, and what it parsed reads back the same once written).
//! Input: the object size (8 bytes, little-endian, small sizes made likely), the block size
//! (2 bytes) and the header value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use s3cached::model::block::Layout;
use s3cached::model::range::{content_range, parse_content_range, resolve};
use s3s::dto::Range;

fuzz_target!(|data: &[u8]| {
    let Some((size, header)) = data.split_first_chunk::<8>() else {
        return;
    };
    let size = u64::from_le_bytes(*size);
    // Mostly small objects, where ranges meet their ends; sometimes huge ones.
    let size = if size >> 63 == 0 { size % 4096 } else { size };
    let Some((block_size, header)) = header.split_first_chunk::<2>() else {
        return;
    };
    let block_size = u64::from(u16::from_le_bytes(*block_size)) + 1;
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    if let Some((first, last, total)) = parse_content_range(header) {
        if let Some(end) = last.checked_add(1) {
            let written = content_range(&(first..end), total);
            assert_eq!(parse_content_range(&written), Some((first, last, total)), "{header:?}");
        }
    }
    let Ok(range) = Range::parse(header) else {
        return;
    };
    match resolve(&range, size) {
        Ok(span) => {
            assert!(
                span.start < span.end && span.end <= size,
                "{header:?} of {size}: {span:?}"
            );
            let written = content_range(&span, size);
            assert_eq!(
                parse_content_range(&written),
                Some((span.start, span.end - 1, size)),
                "{written}"
            );
            let layout = Layout::new(size, block_size);
            let blocks = layout.blocks_of(&span);
            assert!(blocks.end <= layout.count(), "{span:?} in {layout:?}");
            // Huge objects: check the ends only, not every block between them.
            let mut covered = 0u64;
            let ends = [blocks.start, blocks.end - 1];
            let indexes: Vec<u64> = if blocks.end - blocks.start <= 4096 {
                blocks.clone().collect()
            } else {
                ends.to_vec()
            };
            for index in &indexes {
                let part = layout.part_in(*index, &span);
                let block = layout.bytes_of(*index);
                assert!(!part.is_empty(), "block {index} of {span:?} in {layout:?}");
                assert!(part.end as u64 <= block.end - block.start);
                covered += (part.end - part.start) as u64;
            }
            if indexes.len() as u64 == blocks.end - blocks.start {
                assert_eq!(covered, span.end - span.start, "{span:?} in {layout:?}");
            }
        }
        Err(e) => assert_eq!(e.size, size),
    }
});
