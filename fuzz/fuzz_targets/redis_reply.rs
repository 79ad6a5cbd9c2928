//! Replies read from Redis by the tier's reading connections (`tier::resp_reply`): any bytes
//! parse or are refused without panicking, and how the bytes are split into reads changes
//! nothing: the replies (and whether the stream ends in an error) are the same fed at once
//! and fed in pieces of a size taken from the first byte.

#![no_main]

use libfuzzer_sys::fuzz_target;
use s3cached::tier::resp_reply::{Reply, ReplyReader};

/// The replies parsed from `chunks` fed in turn, and whether parsing stopped at an error.
fn parse<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> (Vec<Reply>, bool) {
    let mut reader = ReplyReader::new();
    let mut replies = Vec::new();
    for chunk in chunks {
        reader.feed(chunk);
        loop {
            match reader.next_reply() {
                Ok(Some(reply)) => replies.push(reply),
                Ok(None) => break,
                Err(_) => return (replies, true),
            }
        }
    }
    (replies, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, input)) = data.split_first() else {
        return;
    };
    let whole = parse(std::iter::once(input));
    let pieces = parse(input.chunks(usize::from(step).max(1)));
    assert_eq!(whole, pieces, "split into reads of {step} bytes");
});
