//! Warm-up: list a prefix at the origin and load every cacheable object into the cache, with
//! bounded concurrency: objects up to the cacheable size whole, larger ones (a data lake's
//! Parquet files) as blocks, up to the block limit. Used by `s3cached warm` and by
//! `serve --warm`.

use std::sync::Arc;

use futures::StreamExt;
use s3s::dto::ListObjectsV2Input;
use s3s::{S3Error, S3ErrorCode, S3Result};
use tracing::debug;

use crate::engine::Engine;
use crate::engine::fill::Hydrated;
use crate::model::config::HydrationRule;
use crate::origin;

/// What a warm-up did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WarmSummary {
    /// Objects listed.
    pub listed: u64,
    /// Bytes of the objects listed.
    pub listed_bytes: u64,
    /// Objects loaded into the cache (whole or as blocks).
    pub loaded: u64,
    /// Of those, objects loaded as blocks.
    pub as_blocks: u64,
    /// Bytes loaded.
    pub bytes: u64,
    /// Objects skipped: larger than the largest object cached as blocks.
    pub skipped: u64,
    /// Objects that failed to load.
    pub failed: u64,
}

/// What loading one object came to.
enum Load {
    Whole(u64),
    Blocks(u64),
    Skipped,
    Failed,
}

/// Lists `rule`'s prefix and hydrates every object, `concurrency` at a time, calling
/// `progress` after each page is listed and after each object.
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
        summary.listed_bytes += objects.iter().map(|(_, size)| size).sum::<u64>();
        progress(&summary);
        let mut loads = futures::stream::iter(objects.into_iter().map(|(key, size)| {
            let engine = Arc::clone(engine);
            let bucket = rule.bucket.clone();
            async move {
                if size <= max {
                    let loaded = match engine.hydrate(&bucket, &key, false).await {
                        Ok(Hydrated::Stored(bytes)) => Load::Whole(bytes),
                        // Grown past the cacheable size since the listing.
                        Ok(Hydrated::TooLarge) => Load::Skipped,
                        Ok(Hydrated::Gone) | Err(_) => Load::Failed,
                    };
                    return loaded;
                }
                if !engine.takes_as_blocks(size) {
                    return Load::Skipped;
                }
                match engine.load_as_blocks(&bucket, &key).await {
                    Ok(bytes) => Load::Blocks(bytes),
                    Err(e) => {
                        debug!(%bucket, %key, error = %e, "warm-up could not load the object as blocks");
                        Load::Failed
                    }
                }
            }
        }))
        .buffer_unordered(concurrency.max(1));
        while let Some(load) = loads.next().await {
            match load {
                Load::Whole(bytes) => {
                    summary.loaded += 1;
                    summary.bytes += bytes;
                }
                Load::Blocks(bytes) => {
                    summary.loaded += 1;
                    summary.as_blocks += 1;
                    summary.bytes += bytes;
                }
                Load::Skipped => summary.skipped += 1,
                Load::Failed => summary.failed += 1,
            }
            progress(&summary);
        }
        match page.next_continuation_token {
            Some(t) if page.is_truncated == Some(true) => token = Some(t),
            _ => return Ok(summary),
        }
    }
}
