//! A head start for a ranged miss of an uncached object: the HEAD that learns the object's
//! metadata and a GET of the aligned blocks the range starts in go to the origin at the same
//! time, so the first bytes wait for one round trip instead of two (DESIGN.md §4 rule 9).
//!
//! The GET cannot name the ETag yet (`If-Match`), so its answer is used only when its ETag
//! and the object's size are the HEAD's: then its whole blocks are stored under the object's
//! version before the waiting readers look for them, and a small object it read whole
//! becomes the entry without a second GET. Otherwise its bytes are dropped and the blocks are
//! read as usual. Its bytes come from the in-flight budget; without room, there is no head
//! start.

use std::sync::Arc;

use bytes::Bytes;
use s3s::dto::{ETag, GetObjectInput};
use tokio::task::JoinHandle;

use crate::engine::Engine;
use crate::engine::body;
use crate::engine::budget::Held;
use crate::model::entry::{Entry, ObjectMeta};
use crate::model::key::CacheKey;
use crate::model::range::parse_content_range;
use crate::origin;

/// What the head start's GET brought: `bytes` from `offset` of an object of `size` bytes.
pub(in crate::engine) struct HeadStart {
    e_tag: ETag,
    /// `x-amz-tagging-count`, which a GET reports and a HEAD does not.
    tag_count: Option<i32>,
    size: u64,
    offset: u64,
    bytes: Bytes,
    _held: Held,
}

impl HeadStart {
    /// Whether these bytes are of the object the HEAD described.
    pub(in crate::engine) fn is_of(&self, meta: &ObjectMeta) -> bool {
        meta.e_tag.as_ref() == Some(&self.e_tag) && meta.size == self.size
    }

    /// The object's tag count as the GET reported it.
    pub(in crate::engine) fn tag_count(&self) -> Option<i32> {
        self.tag_count
    }

    /// The whole object, when these bytes are all of it.
    pub(in crate::engine) fn whole(self, size: u64) -> Option<Bytes> {
        (self.offset == 0 && self.bytes.len() as u64 == size).then_some(self.bytes)
    }
}

impl Engine {
    /// Starts the GET of the aligned blocks a range `first..end` (`None`: open) starts in, at
    /// most one coalesced read's worth; `None` when blocks are off or the budget has no room.
    pub(in crate::engine) fn start_head_start(
        self: &Arc<Self>,
        key: &CacheKey,
        first: u64,
        end: Option<u64>,
    ) -> Option<JoinHandle<Option<HeadStart>>> {
        let policy = &self.blocks.policy;
        if policy.max_object_size == 0 || policy.block_size == 0 {
            return None;
        }
        let start = first - first % policy.block_size;
        let cap = start.saturating_add(policy.coalesce.max(policy.block_size));
        let stop = end
            .map_or(cap, |e| e.div_ceil(policy.block_size).saturating_mul(policy.block_size))
            .min(cap)
            .max(start + 1);
        let held = self.in_flight.try_take(stop - start)?;
        let engine = Arc::clone(self);
        let key = key.clone();
        Some(tokio::spawn(async move {
            engine.head_start_get(&key, start..stop, held).await
        }))
    }

    async fn head_start_get(&self, key: &CacheKey, span: std::ops::Range<u64>, held: Held) -> Option<HeadStart> {
        let input = GetObjectInput::builder()
            .bucket(key.bucket().to_owned())
            .key(key.key().to_owned())
            .version_id(key.version().map(str::to_owned))
            .range(Some(s3s::dto::Range::Int {
                first: span.start,
                last: Some(span.end - 1),
            }))
            .build()
            .ok()?;
        let resp = self
            .origin
            .call_read_hedged("GetObject", || {
                self.origin.s3().get_object(origin::request(input.clone()))
            })
            .await
            .ok()?;
        let mut output = resp.output;
        let (first, last, size) = parse_content_range(output.content_range.as_deref()?)?;
        let e_tag = output.e_tag.take()?;
        if first != span.start || last < first || last >= size {
            return None;
        }
        let len = last - first + 1;
        let bytes = body::collect(output.body.take(), len).await.ok()?;
        if bytes.len() as u64 != len {
            return None;
        }
        let blocks = len.div_ceil(self.blocks.policy.block_size.max(1));
        self.metrics.block_origin_fetch(blocks);
        Some(HeadStart {
            e_tag,
            tag_count: output.tag_count,
            size,
            offset: first,
            bytes,
            _held: held,
        })
    }

    /// Stores the whole blocks of `got` (already checked to be of the object `entry`
    /// describes) under the object's version.
    pub(in crate::engine) async fn keep_head_start(&self, key: &CacheKey, entry: &Entry, got: HeadStart) {
        let Some(version) = self.version_of(key, entry) else {
            return;
        };
        let layout = version.layout;
        let end = got.offset + got.bytes.len() as u64;
        for index in layout.blocks_of(&(got.offset..end)) {
            let span = layout.bytes_of(index);
            if span.start < got.offset || span.end > end {
                continue;
            }
            let at = usize::try_from(span.start - got.offset).unwrap_or(usize::MAX);
            let Some(part) = got.bytes.get(at..at + layout.len_of(index)) else {
                continue;
            };
            // A copy of exactly the block's size: a slice would keep the whole read alive.
            let block = Bytes::copy_from_slice(part);
            self.store_block(&version, &version.block_key(index), block).await;
        }
    }
}
