//! Warm-up: list a prefix at the origin and load every cacheable object into the cache, with
//! bounded concurrency. Used by `s3cached warm` and by `serve --warm`.

use std::sync::Arc;

use futures::StreamExt;
use s3s::dto::ListObjectsV2Input;
use s3s::{S3Error, S3ErrorCode, S3Result};

use crate::engine::Engine;
use crate::engine::fill::Hydrated;
use crate::model::config::HydrationRule;
use crate::origin;

/// What a warm-up did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WarmSummary {
    /// Objects listed.
    pub listed: u64,
    /// Objects loaded into the cache.
    pub loaded: u64,
    /// Bytes loaded.
    pub bytes: u64,
    /// Objects skipped: larger than the cacheable size.
    pub skipped: u64,
    /// Objects that failed to load.
    pub failed: u64,
}

/// Lists `rule`'s prefix and hydrates every object, `concurrency` at a time, calling
/// `progress` after each object.
///
/// # Errors
/// The origin's error when listing fails (failures of single objects are counted instead).
pub async fn warm(
    engine: &Arc<Engine>,
    rule: &HydrationRule,
    concurrency: usize,
    mut progress: impl FnMut(&WarmSummary),
) -> S3Result<WarmSummary> {
    let mut summary = WarmSummary::default();
    let mut token: Option<String> = None;
    let max = engine.max_object_size();
    loop {
        let input = ListObjectsV2Input::builder()
            .bucket(rule.bucket.clone())
            .prefix((!rule.prefix.is_empty()).then(|| rule.prefix.clone()))
            .continuation_token(token.take())
            .build()
            .map_err(|e| S3Error::with_message(S3ErrorCode::InternalError, e.to_string()))?;
        let page = engine
            .origin()
            .call_read(
                "ListObjectsV2",
                engine.origin().s3().list_objects_v2(origin::request(input)),
            )
            .await?
            .output;
        let objects: Vec<(String, u64)> = page
            .contents
            .unwrap_or_default()
            .into_iter()
            .filter_map(|o| Some((o.key?, o.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))))
            .collect();
        summary.listed += objects.len() as u64;
        let mut loads = futures::stream::iter(objects.into_iter().map(|(key, size)| {
            let engine = Arc::clone(engine);
            let bucket = rule.bucket.clone();
            async move {
                if size > max {
                    return (Ok(Hydrated::TooLarge), size);
                }
                (engine.hydrate(&bucket, &key, false).await, size)
            }
        }))
        .buffer_unordered(concurrency.max(1));
        while let Some((result, size)) = loads.next().await {
            match result {
                Ok(Hydrated::Stored(bytes)) => {
                    summary.loaded += 1;
                    summary.bytes += bytes;
                }
                Ok(Hydrated::TooLarge) => summary.skipped += 1,
                Ok(Hydrated::Gone) | Err(_) => {
                    let _ = size;
                    summary.failed += 1;
                }
            }
            progress(&summary);
        }
        match page.next_continuation_token {
            Some(t) if page.is_truncated == Some(true) => token = Some(t),
            _ => return Ok(summary),
        }
    }
}
