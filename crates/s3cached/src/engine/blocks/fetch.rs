//! The origin side of blocks: missing blocks fetched in coalesced ranged GETs (`If-Match` the
//! cached ETag), each block once however many readers wait for it, in tasks of their own so a
//! reader that hangs up cancels nothing; and read-ahead for sequential readers.

use super::*;

impl Engine {
    /// Joins the fetches in flight for `missing` blocks and starts coalesced ones for the
    /// rest. Read-ahead (`ahead`) takes its own budget and gives up rather than wait.
    pub(super) async fn fetch(
        self: &Arc<Self>,
        version: &Arc<Version>,
        missing: Vec<(u64, BlockKey)>,
        ahead: bool,
    ) -> Vec<(u64, BlockFlight)> {
        let mut out = Vec::with_capacity(missing.len());
        let mut to_start: Vec<(u64, BlockKey)> = Vec::new();
        {
            let flights = self.blocks.flights.lock().unwrap_or_else(PoisonError::into_inner);
            for (index, key) in missing {
                match flights.get(&key) {
                    Some(f) => {
                        if !ahead {
                            self.count_read_ahead_used(&key);
                            out.push((index, f.clone()));
                        }
                    }
                    None => to_start.push((index, key)),
                }
            }
        }
        let per_run = self.blocks.window_blocks();
        let mut runs: Vec<Vec<(u64, BlockKey)>> = Vec::new();
        for (index, key) in to_start {
            match runs.last_mut() {
                Some(run) if run.last().is_some_and(|(i, _)| *i + 1 == index) && (run.len() as u64) < per_run => {
                    run.push((index, key));
                }
                _ => runs.push(vec![(index, key)]),
            }
        }
        for run in runs {
            let (Some(first), Some(last)) = (run.first().map(|r| r.0), run.last().map(|r| r.0)) else {
                continue;
            };
            let bytes = version.layout.bytes_of(first).start..version.layout.bytes_of(last).end;
            let need = bytes.end - bytes.start;
            let held = if ahead {
                self.blocks.prefetch_budget.try_take(need)
            } else {
                self.in_flight.take(need).await
            };
            let Some(held) = held else {
                return out;
            };
            let mut senders = Vec::with_capacity(run.len());
            {
                let mut flights = self.blocks.flights.lock().unwrap_or_else(PoisonError::into_inner);
                for (index, key) in &run {
                    // Another reader may have started this block since the check above.
                    if let Some(f) = flights.get(key) {
                        if !ahead {
                            out.push((*index, f.clone()));
                        }
                        senders.push(None);
                        continue;
                    }
                    let (tx, rx) = oneshot::channel::<BlockResult>();
                    let flight = rx
                        .map(|r| r.unwrap_or_else(|_| Err(BlockError::Body("block fetch ended".into()))))
                        .boxed()
                        .shared();
                    flights.insert(key.clone(), flight.clone());
                    if ahead {
                        self.blocks.prefetched.insert(key.clone(), ());
                    } else {
                        out.push((*index, flight));
                    }
                    senders.push(Some(tx));
                }
            }
            if senders.iter().all(Option::is_none) {
                // Other readers started every block of the run meanwhile.
                continue;
            }
            if ahead {
                self.metrics.prefetch("issued", senders.iter().flatten().count() as u64);
            }
            let engine = Arc::clone(self);
            let version = Arc::clone(version);
            tokio::spawn(async move {
                engine.fetch_run(&version, bytes, run, senders).await;
                drop(held);
            });
        }
        out
    }

    /// Reads the blocks of `run` (covering `bytes`) from the origin in one ranged GET, stores
    /// each as it completes and hands it to its waiters.
    async fn fetch_run(
        &self,
        version: &Version,
        bytes: Range<u64>,
        run: Vec<(u64, BlockKey)>,
        mut senders: Vec<Option<oneshot::Sender<BlockResult>>>,
    ) {
        self.metrics.block_origin_fetch(run.len() as u64);
        let result = self.read_range(version, bytes, &run, &mut senders).await;
        let mut flights = self.blocks.flights.lock().unwrap_or_else(PoisonError::into_inner);
        for ((_, key), sender) in run.iter().zip(senders) {
            if let Some(tx) = sender {
                let _ = tx.send(Err(result.clone().err().unwrap_or_else(|| {
                    BlockError::Body("the origin sent fewer bytes than asked for".into())
                })));
                flights.remove(key);
            }
        }
    }

    /// The origin read of [`Self::fetch_run`]; blocks it delivers have their sender taken.
    async fn read_range(
        &self,
        version: &Version,
        bytes: Range<u64>,
        run: &[(u64, BlockKey)],
        senders: &mut [Option<oneshot::Sender<BlockResult>>],
    ) -> Result<(), BlockError> {
        let input = GetObjectInput::builder()
            .bucket(version.key.bucket().to_owned())
            .key(version.key.key().to_owned())
            .version_id(version.key.version().map(str::to_owned))
            .range(Some(s3s::dto::Range::Int {
                first: bytes.start,
                last: Some(bytes.end - 1),
            }))
            .if_match(Some(s3s::dto::ETagCondition::ETag(version.e_tag.clone())))
            .build()
            .map_err(|e| BlockError::Body(e.to_string()))?;
        let resp = self
            .origin
            .call_read_hedged("GetObject", || {
                self.origin.s3().get_object(origin::request(input.clone()))
            })
            .await
            .map_err(|e| {
                // Not the cached version any more: changed (412) or gone.
                if *e.code() == S3ErrorCode::PreconditionFailed
                    || *e.code() == S3ErrorCode::NoSuchKey
                    || e.status_code() == Some(http::StatusCode::PRECONDITION_FAILED)
                {
                    BlockError::Changed
                } else {
                    BlockError::Origin(OriginFailure::of(&e))
                }
            })?;
        let expected_range = crate::model::range::content_range(&bytes, version.layout.size);
        if resp.output.content_range.as_deref() != Some(expected_range.as_str())
            || resp.output.e_tag.as_ref() != Some(&version.e_tag)
        {
            return Err(BlockError::Changed);
        }
        let Some(mut body) = resp.output.body else {
            return Err(BlockError::Body("no body".into()));
        };
        // Each block gets an allocation of exactly its size: a block cut from a shared,
        // larger buffer would keep all of it alive for as long as the block is cached.
        let block_len = |index: u64| version.layout.len_of(index);
        let mut slot = 0usize;
        let mut block = BytesMut::with_capacity(run.first().map_or(0, |(i, _)| block_len(*i)));
        let mut chunk = Bytes::new();
        while slot < run.len() {
            let (index, key) = &run[slot];
            let want = block_len(*index);
            if block.len() == want {
                let done = std::mem::replace(
                    &mut block,
                    BytesMut::with_capacity(run.get(slot + 1).map_or(0, |(i, _)| block_len(*i))),
                )
                .freeze();
                self.store_block(version, key, done.clone()).await;
                if let Some(tx) = senders[slot].take() {
                    let _ = tx.send(Ok((done, "origin")));
                    self.blocks
                        .flights
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(key);
                }
                slot += 1;
                continue;
            }
            if chunk.is_empty() {
                chunk = match body.next().await {
                    Some(Ok(chunk)) => chunk,
                    Some(Err(e)) => return Err(BlockError::Body(e.to_string())),
                    None => return Err(BlockError::Body("the origin's body ended early".into())),
                };
            }
            let take = (want - block.len()).min(chunk.len());
            block.extend_from_slice(&chunk.split_to(take));
        }
        Ok(())
    }

    /// Starts read-ahead after `blocks` when this read continues the last one of its object.
    pub(super) fn read_ahead(self: &Arc<Self>, version: &Arc<Version>, blocks: &Range<u64>) {
        let policy = &self.blocks.policy;
        if policy.prefetch_budget == 0 {
            return;
        }
        let reader_key = format!("{}\n{}", version.key, version.tag);
        let initial = self.blocks.window_blocks();
        let max = (policy.prefetch_max_window / policy.block_size.max(1)).max(1);
        let previous = self.blocks.readers.get(&reader_key);
        let sequential = previous.is_some_and(|r| blocks.start + 1 >= r.next && blocks.start <= r.next + r.window);
        let window = match previous {
            Some(r) if sequential => (r.window * 2).min(max),
            _ => initial.min(max),
        };
        self.blocks.readers.insert(
            reader_key,
            Reader {
                next: blocks.end,
                window,
            },
        );
        let end = (blocks.end + window).min(version.layout.count());
        if !sequential || blocks.end >= end {
            return;
        }
        let engine = Arc::clone(self);
        let version = Arc::clone(version);
        let ahead = blocks.end..end;
        tokio::spawn(async move {
            let _ = engine.plan(&version, ahead, None).await;
        });
    }
}
