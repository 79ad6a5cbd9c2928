//! Body handling for the cache: reading an origin body into one buffer (bounded), and
//! copying an upload's bytes aside while they stream to the origin.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use s3s::StdError;
use s3s::dto::StreamingBlob;
use s3s::stream::{ByteStream, RemainingLength};

/// A body that did not have the announced length, or failed while streaming.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// More or fewer bytes than Content-Length announced.
    #[error("body length mismatch: expected {expected} bytes, got {got}")]
    Length {
        /// Announced length.
        expected: u64,
        /// Bytes seen (may stop early at expected + 1).
        got: u64,
    },
    /// The stream failed.
    #[error("body stream failed: {0}")]
    Stream(StdError),
}

/// Reads a whole body of exactly `expected` bytes into one buffer.
///
/// # Errors
/// [`BodyError`] when the stream fails or its length differs from `expected`.
pub async fn collect(body: Option<StreamingBlob>, expected: u64) -> Result<Bytes, BodyError> {
    let Some(mut body) = body else {
        return if expected == 0 {
            Ok(Bytes::new())
        } else {
            Err(BodyError::Length { expected, got: 0 })
        };
    };
    let mut buf = BytesMut::with_capacity(usize::try_from(expected).unwrap_or(0));
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(BodyError::Stream)?;
        buf.extend_from_slice(&chunk);
        if buf.len() as u64 > expected {
            return Err(BodyError::Length {
                expected,
                got: buf.len() as u64,
            });
        }
    }
    if buf.len() as u64 == expected {
        Ok(buf.freeze())
    } else {
        Err(BodyError::Length {
            expected,
            got: buf.len() as u64,
        })
    }
}

/// The bytes an upload streamed, collected on the side.
#[derive(Clone)]
pub struct Capture {
    buf: Arc<Mutex<CaptureState>>,
}

struct CaptureState {
    bytes: BytesMut,
    limit: usize,
    overflowed: bool,
    failed: bool,
}

impl Capture {
    /// A capture that gives up (keeps nothing) past `limit` bytes.
    #[must_use]
    pub fn new(limit: usize) -> Self {
        Self {
            buf: Arc::new(Mutex::new(CaptureState {
                bytes: BytesMut::with_capacity(limit),
                limit,
                overflowed: false,
                failed: false,
            })),
        }
    }

    /// Wraps `body` so every chunk read from it is also copied into this capture.
    #[must_use]
    pub fn tee(&self, body: StreamingBlob) -> StreamingBlob {
        StreamingBlob::new(Tee {
            inner: body,
            capture: self.clone(),
        })
    }

    /// The captured bytes, if the stream completed without error within the limit.
    #[must_use]
    pub fn take(&self) -> Option<Bytes> {
        let mut state = self.buf.lock().unwrap_or_else(PoisonError::into_inner);
        if state.overflowed || state.failed {
            return None;
        }
        Some(std::mem::take(&mut state.bytes).freeze())
    }

    fn record(&self, item: &Result<Bytes, StdError>) {
        let mut state = self.buf.lock().unwrap_or_else(PoisonError::into_inner);
        match item {
            Ok(chunk) if !state.overflowed => {
                if state.bytes.len() + chunk.len() > state.limit {
                    state.overflowed = true;
                    state.bytes = BytesMut::new();
                } else {
                    state.bytes.extend_from_slice(chunk);
                }
            }
            Ok(_) => {}
            Err(_) => state.failed = true,
        }
    }
}

struct Tee {
    inner: StreamingBlob,
    capture: Capture,
}

impl Stream for Tee {
    type Item = Result<Bytes, StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(item)) = &polled {
            self.capture.record(item);
        }
        polled
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ByteStream for Tee {
    fn remaining_length(&self) -> RemainingLength {
        self.inner.remaining_length()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(chunks: &[&'static [u8]]) -> StreamingBlob {
        let items: Vec<Result<Bytes, std::io::Error>> = chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        StreamingBlob::wrap(futures::stream::iter(items))
    }

    #[tokio::test]
    async fn collect_exact_length() {
        let got = collect(Some(blob(&[b"ab", b"cd"])), 4).await.unwrap();
        assert_eq!(&got[..], b"abcd");
        assert!(collect(Some(blob(&[b"ab"])), 3).await.is_err());
        assert!(collect(Some(blob(&[b"abcd"])), 3).await.is_err());
        assert_eq!(collect(None, 0).await.unwrap().len(), 0);
    }

    #[tokio::test]
    async fn tee_copies_what_flows_through() {
        let cap = Capture::new(10);
        let mut teed = cap.tee(blob(&[b"hello ", b"you"]));
        let mut seen = Vec::new();
        while let Some(c) = teed.next().await {
            seen.extend_from_slice(&c.unwrap());
        }
        assert_eq!(seen, b"hello you");
        assert_eq!(cap.take().as_deref(), Some(&b"hello you"[..]));
    }

    #[tokio::test]
    async fn tee_gives_up_past_the_limit() {
        let cap = Capture::new(4);
        let mut teed = cap.tee(blob(&[b"hello ", b"you"]));
        while teed.next().await.is_some() {}
        assert!(cap.take().is_none());
    }
}
