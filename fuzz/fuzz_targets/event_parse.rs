//! S3 event notifications as the webhook (`POST /events`) and the SQS poller read them
//! (`events::parse::parse`: standard records, SNS-wrapped, EventBridge), then what the applier
//! does with each event's names and sequencer.

#![no_main]

use std::cmp::Ordering;

use libfuzzer_sys::fuzz_target;
use s3cached::model::key::CacheKey;
use s3cached::process::events::parse::{parse, sequencer_cmp};

fuzz_target!(|data: &[u8]| {
    // The webhook refuses a body that is not UTF-8; an SQS body is a string.
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(events) = parse(body) else {
        return;
    };
    for event in &events {
        if let Ok(key) = CacheKey::new(&event.bucket, &event.key) {
            let _ = key.with_version(event.version_id.as_deref());
        }
        if let Some(etag) = &event.etag {
            assert!(
                !etag.is_empty() && !etag.starts_with('"') && !etag.ends_with('"'),
                "{etag:?}"
            );
        }
    }
    // Sequencers order events per key: the comparison must be a consistent order.
    let sequencers: Vec<&str> = events.iter().filter_map(|e| e.sequencer.as_deref()).collect();
    for a in &sequencers {
        assert_eq!(sequencer_cmp(a, a), Ordering::Equal, "{a:?}");
        for b in &sequencers {
            assert_eq!(sequencer_cmp(a, b), sequencer_cmp(b, a).reverse(), "{a:?} {b:?}");
        }
    }
});
