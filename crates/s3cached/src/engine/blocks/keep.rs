//! Blocks kept from the first whole GET of an object cached as blocks (DESIGN.md §4 rule 9),
//! so the second read is a hit instead of a second pass over the origin. With
//! `--origin-parallelism` above 1 the GET gives only the first block
//! ([`Engine::keep_first_block`]) and the answer is made from blocks, read several at once;
//! with 1, the whole answer streams through and keeps every block it passes:
//!
//! The origin's body goes to the client unchanged, chunk by chunk, as it arrives; a copy of
//! its bytes is cut into the object's aligned blocks, and each block is stored as soon as it is
//! complete. The bytes come from one answer of the origin, whose ETag names the blocks, so a
//! block can never mix two versions. The copy takes one block's worth of the in-flight budget
//! for as long as the body streams; without room, the body streams uncached. A body that fails
//! or ends early keeps the blocks it completed (each is whole and exact) and drops the rest.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use futures::Stream;
use s3s::StdError;
use s3s::dto::StreamingBlob;
use s3s::stream::{ByteStream, RemainingLength};

use super::Version;
use crate::engine::Engine;
use crate::engine::budget::Held;
use crate::model::entry::Entry;
use crate::model::key::CacheKey;

impl Engine {
    /// `body`, the origin's whole answer for the object `entry` describes, with its blocks
    /// kept as they stream past; `body` unchanged when the object has no blocks or the
    /// in-flight budget has no room for one.
    pub(in crate::engine) fn keep_blocks_of(
        self: &Arc<Self>,
        key: &CacheKey,
        entry: &Entry,
        body: StreamingBlob,
    ) -> StreamingBlob {
        let Some(version) = self.version_of(key, entry) else {
            return body;
        };
        if version.layout.count() == 0 {
            return body;
        }
        let Some(held) = self.in_flight.try_take(self.blocks.policy.block_size) else {
            self.metrics.block_bypass("in_flight_limit");
            return body;
        };
        let first = version.layout.len_of(0);
        StreamingBlob::new(KeepingBody {
            inner: body,
            keeper: Some(Keeper {
                engine: Arc::clone(self),
                version,
                index: 0,
                block: BytesMut::with_capacity(first),
                _held: held,
            }),
        })
    }
}

impl Engine {
    /// Reads the first block of the object `entry` describes from `body` (the origin's
    /// whole answer), stores it, and drops the rest of the answer. When the body fails or ends
    /// early, or the budget has no room, nothing is kept: the block is read when needed.
    pub(in crate::engine) async fn keep_first_block(&self, key: &CacheKey, entry: &Entry, mut body: StreamingBlob) {
        use futures::StreamExt as _;
        let Some(version) = self.version_of(key, entry) else {
            return;
        };
        if version.layout.count() == 0 {
            return;
        }
        let want = version.layout.len_of(0);
        let Some(_held) = self.in_flight.try_take(want as u64) else {
            return;
        };
        let mut block = BytesMut::with_capacity(want);
        while block.len() < want {
            match body.next().await {
                Some(Ok(chunk)) => {
                    let n = (want - block.len()).min(chunk.len());
                    block.extend_from_slice(&chunk[..n]);
                }
                Some(Err(_)) | None => return,
            }
        }
        if self.store_block(&version, &version.block_key(0), block.freeze()).await {
            self.metrics.block_kept_from_stream();
        }
    }

    /// Waits until every block kept from a streamed answer so far is stored (or failed to
    /// be): a process that exits after reading an object (warm-up) keeps all of it.
    pub async fn blocks_stored(&self) {
        self.blocks.stores.settled().await;
    }
}

/// Block stores still running, and a way to wait for none.
#[derive(Default)]
pub(super) struct PendingStores {
    running: std::sync::Mutex<usize>,
    settled: tokio::sync::Notify,
}

impl PendingStores {
    fn begin(self: &Arc<Self>) -> PendingStore {
        *self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        PendingStore(Arc::clone(self))
    }

    async fn settled(&self) {
        loop {
            let notified = self.settled.notified();
            if *self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// One running store; counted out when dropped.
struct PendingStore(Arc<PendingStores>);

impl Drop for PendingStore {
    fn drop(&mut self) {
        let mut running = self.0.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *running = running.saturating_sub(1);
        if *running == 0 {
            self.0.settled.notify_waiters();
        }
    }
}

/// The blocks of one streaming answer, as far as they have arrived.
struct Keeper {
    engine: Arc<Engine>,
    version: Arc<Version>,
    /// The block being filled.
    index: u64,
    block: BytesMut,
    _held: Held,
}

impl Keeper {
    /// Copies `chunk` into the blocks, storing each one it completes. False when the body
    /// holds more bytes than the object: then nothing more is kept.
    fn take(&mut self, mut chunk: &[u8]) -> bool {
        let layout = self.version.layout;
        while !chunk.is_empty() {
            if self.index >= layout.count() {
                return false;
            }
            let want = layout.len_of(self.index);
            let n = (want - self.block.len()).min(chunk.len());
            self.block.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
            if self.block.len() == want {
                // Each block gets an allocation of exactly its size, as a fetched block does.
                let next = if self.index + 1 < layout.count() {
                    layout.len_of(self.index + 1)
                } else {
                    0
                };
                let done = std::mem::replace(&mut self.block, BytesMut::with_capacity(next)).freeze();
                self.store(self.index, done);
                self.index += 1;
            }
        }
        true
    }

    fn store(&self, index: u64, bytes: Bytes) {
        let engine = Arc::clone(&self.engine);
        let version = Arc::clone(&self.version);
        let key = version.block_key(index);
        let pending = engine.blocks.stores.begin();
        // Stored in a task of its own: the client's next chunk does not wait for Redis.
        tokio::spawn(async move {
            if engine.store_block(&version, &key, bytes).await {
                engine.metrics.block_kept_from_stream();
            }
            drop(pending);
        });
    }
}

/// The origin's body, passed through while its blocks are kept.
struct KeepingBody {
    inner: StreamingBlob,
    /// `None` once keeping stopped (the body failed, ended or ran past the object).
    keeper: Option<Keeper>,
}

impl Stream for KeepingBody {
    type Item = Result<Bytes, StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = ready!(Pin::new(&mut this.inner).poll_next(cx));
        match &item {
            Some(Ok(chunk)) => {
                if let Some(keeper) = &mut this.keeper
                    && !keeper.take(chunk)
                {
                    this.keeper = None;
                }
            }
            // An incomplete block is dropped with the keeper; complete ones are stored.
            Some(Err(_)) | None => this.keeper = None,
        }
        Poll::Ready(item)
    }
}

impl ByteStream for KeepingBody {
    fn remaining_length(&self) -> RemainingLength {
        self.inner.remaining_length()
    }
}
