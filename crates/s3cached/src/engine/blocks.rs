//! The read path over blocks: GETs of objects cached as fixed-size aligned blocks
//! ([`crate::model::block`]), whole or ranged.
//!
//! Blocks are looked up a window at a time, each for the part of it the answer needs (so a
//! shared tier sends only that part). An answer whose blocks are all at hand is sent at once;
//! otherwise a task of its own walks the blocks in order and feeds the response body through
//! a small channel, so a 1 GiB object is never buffered whole. Contiguous missing blocks are
//! read ([`fetch`]) from the origin in one ranged GET (`If-Match` the cached ETag) of up to
//! [`BlockPolicy::coalesce`] bytes, in a task of its own: a client that hangs up does not
//! cancel a fetch other readers wait on, and each block is fetched once however many readers
//! want it (single flight per block).
//!
//! A 412 from the origin means the object changed: before the first byte is sent the
//! metadata is dropped and the request is asked again; later, the body is cut short, so an
//! answer never mixes two versions. Block fetches take their bytes from the engine's in-flight
//! budget ([`super::budget`]); a read that finds it spent streams from the origin uncached. Sequential readers
//! (the next request starts where the last one ended) get read-ahead with a window that
//! doubles up to a cap, from a budget of its own, so it never delays demand reads.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt};
use http::HeaderValue;
use moka::notification::RemovalCause;
use s3s::dto::{ETag, GetObjectInput, GetObjectOutput, StreamingBlob};
use s3s::{S3Error, S3ErrorCode, S3Response, S3Result};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::budget::Budget;
use super::outcome::OriginFailure;
use super::{CACHE_STATUS_HEADER, Engine};
use crate::model::block::{BlockKey, Layout};
use crate::model::config::BlockPolicy;
use crate::model::entry::Entry;
use crate::model::key::CacheKey;
use crate::origin;

mod fetch;
mod head_start;
mod keep;

/// Why a block could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BlockError {
    /// The origin's object is no longer the cached version (412 to `If-Match`).
    #[error("the object changed at the origin")]
    Changed,
    /// The origin failed.
    #[error("origin read failed: {0:?}")]
    Origin(OriginFailure),
    /// The origin's answer did not carry the bytes asked for.
    #[error("origin answer unusable: {0}")]
    Body(String),
}

type BlockResult = Result<(Bytes, &'static str), BlockError>;
type BlockFlight = Shared<BoxFuture<'static, BlockResult>>;

/// A block of an answer: its part of the answer at hand, or the whole block on its way
/// from the origin.
enum Planned {
    Ready(Bytes, &'static str),
    Flight(BlockFlight),
}

/// What an answer from blocks came to.
pub(super) enum BlocksAnswer {
    /// The answer.
    Answer(Box<S3Response<GetObjectOutput>>),
    /// The object changed at the origin; the metadata was dropped, ask again.
    Changed,
    /// Too many bytes in flight: answer from the origin, uncached.
    Bypass,
}

/// One version of one object, as its blocks are read.
struct Version {
    key: CacheKey,
    /// Names the version in block keys: the ETag, and the version id when there is one.
    tag: String,
    e_tag: ETag,
    layout: Layout,
    /// How long its blocks are kept: the block TTL, never the metadata's (the key names the
    /// content, so the bytes cannot go stale).
    ttl: Option<Duration>,
}

impl Version {
    fn block_key(&self, index: u64) -> BlockKey {
        BlockKey::new(&self.key, &self.tag, self.layout.block_size, index)
    }
}

/// A sequential reader of one object version: where its next read is expected, and how far
/// ahead it is read.
#[derive(Clone, Copy)]
struct Reader {
    next: u64,
    window: u64,
}

/// The block machinery's state: flights, budgets and read-ahead bookkeeping.
pub struct Blocks {
    policy: BlockPolicy,
    flights: Mutex<HashMap<BlockKey, BlockFlight>>,
    prefetch_budget: Budget,
    readers: moka::sync::Cache<String, Reader>,
    prefetched: moka::sync::Cache<BlockKey, ()>,
    /// Blocks kept from streamed answers whose stores still run.
    stores: Arc<keep::PendingStores>,
}

impl Blocks {
    /// State for `policy`; wasted read-ahead is counted in `metrics`.
    #[must_use]
    pub fn new(policy: BlockPolicy, metrics: &Arc<crate::metrics::Metrics>) -> Self {
        let wasted = Arc::clone(metrics);
        Self {
            flights: Mutex::new(HashMap::new()),
            prefetch_budget: Budget::new(policy.prefetch_budget),
            readers: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_idle(Duration::from_secs(60))
                .build(),
            prefetched: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(300))
                .eviction_listener(move |_k, (), cause| {
                    if matches!(cause, RemovalCause::Expired | RemovalCause::Size) {
                        wasted.prefetch("wasted", 1);
                    }
                })
                .build(),
            stores: Arc::default(),
            policy,
        }
    }

    /// True when one read from blocks may keep several ranged origin GETs in flight.
    #[must_use]
    pub fn reads_in_parallel(&self) -> bool {
        self.policy.origin_parallelism > 1
    }

    /// True when an object of `size` bytes is cached as blocks.
    #[must_use]
    pub fn takes(&self, size: u64) -> bool {
        size > 0 && size <= self.policy.max_object_size
    }

    fn window_blocks(&self) -> u64 {
        (self.policy.coalesce / self.policy.block_size.max(1)).max(1)
    }
}

/// The response body: blocks as the producer task sends them.
struct ChannelBody {
    first: Option<Bytes>,
    rx: mpsc::Receiver<Result<Bytes, BlockError>>,
}

impl futures::Stream for ChannelBody {
    type Item = Result<Bytes, BlockError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        self.rx.poll_recv(cx)
    }
}

/// The response: `out` with `body`, the rendered `headers` and the cache status.
fn answer(
    mut out: GetObjectOutput,
    body: StreamingBlob,
    headers: http::HeaderMap,
    cache_status: HeaderValue,
) -> Box<S3Response<GetObjectOutput>> {
    out.body = Some(body);
    let mut resp = S3Response::new(out);
    resp.headers = headers;
    resp.headers.insert(CACHE_STATUS_HEADER, cache_status);
    Box::new(resp)
}

impl Engine {
    /// The version of the object `entry` describes, when it can be read as blocks.
    fn version_of(&self, key: &CacheKey, entry: &Entry) -> Option<Arc<Version>> {
        let e_tag = entry.meta.e_tag.clone()?;
        let mut tag = match &e_tag {
            ETag::Strong(v) | ETag::Weak(v) => v.clone(),
        };
        if let Some(v) = &entry.meta.version_id {
            tag.push('|');
            tag.push_str(v);
        }
        Some(Arc::new(Version {
            key: key.clone(),
            tag,
            e_tag,
            layout: Layout::new(entry.meta.size, self.blocks.policy.block_size),
            ttl: self.blocks.policy.ttl,
        }))
    }

    /// Answers a GET of `span` (already checked against the object) of the object `entry`
    /// describes from its blocks, with `headers` as rendered for the hit.
    pub(super) async fn answer_from_blocks(
        self: &Arc<Self>,
        key: &CacheKey,
        entry: &Entry,
        span: Range<u64>,
        out: GetObjectOutput,
        headers: http::HeaderMap,
        cache_status: HeaderValue,
    ) -> S3Result<BlocksAnswer> {
        let Some(version) = self.version_of(key, entry) else {
            return Ok(BlocksAnswer::Bypass);
        };
        let needed = span.end - span.start;
        if !self.in_flight.has(needed.min(self.blocks.policy.coalesce)) {
            self.metrics.block_bypass("in_flight_limit");
            return Ok(BlocksAnswer::Bypass);
        }
        let blocks = version.layout.blocks_of(&span);
        self.read_ahead(&version, &blocks);
        let first_window = blocks.start..(blocks.start + self.blocks.window_blocks()).min(blocks.end);
        let planned = self.plan(&version, first_window.clone(), Some(&span)).await;
        if first_window.end == blocks.end && planned.iter().all(|(_, p)| matches!(p, Planned::Ready(..))) {
            // Every block is at hand: no task, no channel.
            let mut pieces = Vec::with_capacity(planned.len());
            for (_, p) in planned {
                let Planned::Ready(piece, source) = p else { continue };
                self.count_served(source, &piece);
                pieces.push(Ok::<_, BlockError>(piece));
            }
            let body = StreamingBlob::wrap(futures::stream::iter(pieces));
            return Ok(BlocksAnswer::Answer(answer(out, body, headers, cache_status)));
        }
        let (tx, mut rx) = mpsc::channel(2);
        let engine = Arc::clone(self);
        let planned: VecDeque<_> = planned.into();
        tokio::spawn(async move {
            engine
                .produce(version, span, blocks, planned, first_window.end, tx)
                .await
        });
        let first = match rx.recv().await {
            Some(Ok(first)) => Some(first),
            Some(Err(BlockError::Changed)) => {
                self.object_changed(key).await;
                return Ok(BlocksAnswer::Changed);
            }
            Some(Err(BlockError::Origin(failure))) => return Err(failure.to_error()),
            Some(Err(e)) => {
                return Err(S3Error::with_message(S3ErrorCode::InternalError, e.to_string()));
            }
            None => None,
        };
        let body = StreamingBlob::wrap(ChannelBody { first, rx });
        Ok(BlocksAnswer::Answer(answer(out, body, headers, cache_status)))
    }

    /// Stores block `key` of `version` for the block TTL; a tier that refuses it is counted
    /// (the block is read from the origin again when next wanted). True when stored.
    async fn store_block(&self, version: &Version, key: &BlockKey, bytes: Bytes) -> bool {
        let stored = self.tier.put_block(key, bytes, version.ttl).await.is_ok();
        if !stored {
            self.metrics.tier_error(self.tier.name());
        }
        stored
    }

    /// Counts a piece of an answer sent from a block that came from `source`.
    fn count_served(&self, source: &'static str, piece: &Bytes) {
        self.metrics.block_served(source, piece.len() as u64);
        let from = if source == "origin" { "origin" } else { "cache" };
        self.metrics.served(from, piece.len() as u64);
    }

    /// A client read the block `key`: if it was read ahead, the read-ahead was used.
    fn count_read_ahead_used(&self, key: &BlockKey) {
        if self.blocks.prefetched.contains_key(key) {
            self.blocks.prefetched.invalidate(key);
            self.metrics.prefetch("used", 1);
        }
    }

    /// The origin no longer has the cached version: drop the metadata, as a write would.
    async fn object_changed(&self, key: &CacheKey) {
        debug!(%key, "object changed at the origin while read as blocks; metadata dropped");
        let target = super::store::Target {
            key: key.clone(),
            version: None,
        };
        let _ = self.invalidate("GetObject", &target).await;
    }

    /// Sends the bytes of `span` (in `blocks`) to `tx`, block by block, fetching what is
    /// missing a window ahead of what is sent; `pending` holds the blocks planned before
    /// `next`.
    async fn produce(
        self: Arc<Self>,
        version: Arc<Version>,
        span: Range<u64>,
        blocks: Range<u64>,
        mut pending: VecDeque<(u64, Planned)>,
        mut next: u64,
        tx: mpsc::Sender<Result<Bytes, BlockError>>,
    ) {
        let window = self.blocks.window_blocks();
        // While blocks come from the origin, up to `origin_parallelism` windows are planned
        // ahead of what is sent, so their missing blocks are fetched by as many ranged GETs
        // at once; while they come from the cache, one window, as lookups need no head start.
        let parallel = window * self.blocks.policy.origin_parallelism.max(1);
        let mut fetching = pending.iter().any(|(_, p)| matches!(p, Planned::Flight(_)));
        let mut expected = blocks.start;
        loop {
            let ahead = if fetching { parallel } else { window };
            while (pending.len() as u64) + window <= ahead + window / 2 && next < blocks.end {
                let upto = (next + window).min(blocks.end);
                let planned = self.plan(&version, next..upto, Some(&span)).await;
                fetching = planned.iter().any(|(_, p)| matches!(p, Planned::Flight(_)));
                pending.extend(planned);
                next = upto;
                if !fetching {
                    break;
                }
            }
            let Some((index, planned)) = pending.pop_front() else {
                return;
            };
            if index != expected {
                let _ = tx
                    .send(Err(BlockError::Body(format!("block {expected} was not planned"))))
                    .await;
                return;
            }
            expected += 1;
            let got = match planned {
                Planned::Ready(piece, source) => Ok((piece, source)),
                Planned::Flight(flight) => flight.await.and_then(|(block, source)| {
                    let part = version.layout.part_in(index, &span);
                    (part.end <= block.len())
                        .then(|| (block.slice(part), source))
                        .ok_or_else(|| BlockError::Body("block shorter than its place".into()))
                }),
            };
            match got {
                Ok((piece, source)) => {
                    self.count_served(source, &piece);
                    if tx.send(Ok(piece)).await.is_err() {
                        // The client went away; fetches others wait on go on in their tasks.
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
    }

    /// Looks the blocks `indexes` up, for their parts in `span` (`None`: read-ahead, which
    /// only asks whether each block is held), and starts fetches for the missing ones; one
    /// entry per block, in order (none for read-ahead, which only warms the cache).
    async fn plan(
        self: &Arc<Self>,
        version: &Arc<Version>,
        indexes: Range<u64>,
        span: Option<&Range<u64>>,
    ) -> Vec<(u64, Planned)> {
        let ahead = span.is_none();
        let layout = version.layout;
        let keys: Vec<(u64, BlockKey, Range<usize>, usize)> = indexes
            .map(|i| {
                let part = span.map_or(0..1, |span| layout.part_in(i, span));
                (i, version.block_key(i), part, layout.len_of(i))
            })
            .collect();
        let found = futures::future::join_all(
            keys.iter()
                .map(|(_, key, part, len)| self.tier.get_block(key, part.clone(), *len)),
        )
        .await;
        let mut out = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for ((index, key, _, _), found) in keys.into_iter().zip(found) {
            match found {
                Ok(Some((bytes, tier))) => {
                    if !ahead {
                        self.metrics.block_hit(tier);
                        self.count_read_ahead_used(&key);
                        out.push((index, Planned::Ready(bytes, tier)));
                    }
                }
                Ok(None) | Err(_) => {
                    if !ahead {
                        self.metrics.block_miss(self.tier.name());
                    }
                    missing.push((index, key));
                }
            }
        }
        let flights = self.fetch(version, missing, ahead).await;
        out.extend(flights.into_iter().map(|(i, f)| (i, Planned::Flight(f))));
        out.sort_by_key(|(i, _)| *i);
        out
    }
}
