//! Re-framing a decoded upload as `aws-chunked` with unsigned trailers
//! (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`), so a checksum the client sent as a trailer reaches
//! the origin as a trailer again.
//!
//! The client's chunk signatures are made with the client's secret and cannot be forwarded;
//! s3s verifies and strips them. The bytes are then framed again in fixed-size chunks, which
//! makes the encoded length known before the first byte is sent (S3 wants a Content-Length).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::Stream;
use http::HeaderMap;
use s3s::StdError;

/// Where the trailers come from once the body has ended (s3s's decoder hands them over).
pub type TrailerSource = Box<dyn FnOnce() -> Option<HeaderMap> + Send + Sync>;

/// Size of the chunks the origin receives (as the AWS SDKs frame them).
pub const CHUNK_SIZE: usize = 64 * 1024;

/// Why a re-framed upload cannot be sent.
#[derive(Debug, thiserror::Error)]
pub enum ChunkedError {
    /// The client's body ended before its declared length, or went past it.
    #[error("upload body length differs from x-amz-decoded-content-length ({expected} bytes)")]
    Length {
        /// The declared decoded length.
        expected: u64,
    },
    /// A trailer named in `x-amz-trailer` did not arrive.
    #[error("trailer {0} missing at the end of the upload")]
    MissingTrailer(String),
    /// A trailer value has a length other than its algorithm's.
    #[error("trailer {0} has an unexpected length")]
    TrailerLength(String),
}

/// Base64 length of each checksum a trailer may carry; the encoded length depends on it.
#[must_use]
pub fn trailer_value_len(name: &str) -> Option<usize> {
    match name {
        "x-amz-checksum-crc32" | "x-amz-checksum-crc32c" => Some(8),
        "x-amz-checksum-crc64nvme" => Some(12),
        "x-amz-checksum-sha1" => Some(28),
        "x-amz-checksum-sha256" => Some(44),
        _ => None,
    }
}

fn hex_len(n: usize) -> usize {
    format!("{n:x}").len()
}

/// The encoded length of `decoded` bytes followed by `trailers` (name and value lengths).
#[must_use]
pub fn encoded_len(decoded: u64, trailers: &[(&str, usize)]) -> u64 {
    let chunk = CHUNK_SIZE as u64;
    let full = decoded / chunk;
    let rest = decoded % chunk;
    let mut total = full * (hex_len(CHUNK_SIZE) as u64 + 2 + chunk + 2);
    if rest > 0 {
        // `rest` < CHUNK_SIZE, so it fits in usize.
        total += hex_len(usize::try_from(rest).unwrap_or(CHUNK_SIZE)) as u64 + 2 + rest + 2;
    }
    total += 3; // "0\r\n"
    for (name, value_len) in trailers {
        total += (name.len() + 1 + value_len + 2) as u64;
    }
    total + 2
}

/// The decoded body, framed again as `aws-chunked` with the client's trailers at the end.
pub struct Reframed<S> {
    inner: S,
    buf: BytesMut,
    remaining: u64,
    declared: u64,
    names: Vec<String>,
    trailers: Option<TrailerSource>,
    done: bool,
}

impl<S> Reframed<S> {
    /// Frames `inner` (`declared` bytes) and appends the trailers `names` (lower case) read
    /// from `trailers` once `inner` has ended.
    pub fn new(inner: S, declared: u64, names: Vec<String>, trailers: TrailerSource) -> Self {
        Self {
            inner,
            buf: BytesMut::new(),
            remaining: declared,
            declared,
            names,
            trailers: Some(trailers),
            done: false,
        }
    }

    fn frame(data: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(data.len() + 12);
        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        out.freeze()
    }

    fn finish(&mut self) -> Result<Bytes, ChunkedError> {
        let mut out = BytesMut::new();
        if !self.buf.is_empty() {
            out.extend_from_slice(&Self::frame(&self.buf.split()));
        }
        out.extend_from_slice(b"0\r\n");
        let values = self.trailers.take().and_then(|source| source()).unwrap_or_default();
        for name in &self.names {
            let value = values
                .get(name.as_str())
                .ok_or_else(|| ChunkedError::MissingTrailer(name.clone()))?;
            if Some(value.len()) != trailer_value_len(name) {
                return Err(ChunkedError::TrailerLength(name.clone()));
            }
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b":");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        Ok(out.freeze())
    }
}

impl<S> Stream for Reframed<S>
where
    S: Stream<Item = Result<Bytes, StdError>> + Unpin,
{
    type Item = Result<Bytes, StdError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if this.buf.len() >= CHUNK_SIZE {
                let chunk = this.buf.split_to(CHUNK_SIZE);
                return Poll::Ready(Some(Ok(Self::frame(&chunk))));
            }
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(data))) => {
                    let len = data.len() as u64;
                    if len > this.remaining {
                        this.done = true;
                        let err = ChunkedError::Length {
                            expected: this.declared,
                        };
                        return Poll::Ready(Some(Err(Box::new(err))));
                    }
                    this.remaining -= len;
                    this.buf.extend_from_slice(&data);
                }
                Poll::Ready(None) => {
                    this.done = true;
                    if this.remaining != 0 {
                        let err = ChunkedError::Length {
                            expected: this.declared,
                        };
                        return Poll::Ready(Some(Err(Box::new(err))));
                    }
                    return Poll::Ready(Some(this.finish().map_err(|e| Box::new(e) as StdError)));
                }
            }
        }
    }
}

impl<S> s3s::stream::ByteStream for Reframed<S> where S: Stream<Item = Result<Bytes, StdError>> + Unpin {}

/// A body whose first bytes were already read: they come first again.
pub struct Prepended<S> {
    first: Option<Bytes>,
    rest: S,
}

impl<S> Prepended<S> {
    /// `first`, then the rest of `rest`.
    pub fn new(first: Bytes, rest: S) -> Self {
        Self {
            first: Some(first),
            rest,
        }
    }
}

impl<S> Stream for Prepended<S>
where
    S: Stream<Item = Result<Bytes, StdError>> + Unpin,
{
    type Item = Result<Bytes, StdError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        Pin::new(&mut this.rest).poll_next(cx)
    }
}

impl<S> s3s::stream::ByteStream for Prepended<S>
where
    S: s3s::stream::ByteStream<Item = Result<Bytes, StdError>> + Unpin,
{
    fn remaining_length(&self) -> s3s::stream::RemainingLength {
        let first = self.first.as_ref().map_or(0, Bytes::len);
        match self.rest.remaining_length().exact() {
            Some(rest) => s3s::stream::RemainingLength::new_exact(first + rest),
            None => s3s::stream::RemainingLength::unknown(),
        }
    }
}

/// A decoded aws-chunked body held to its declared length. s3s's decoder ends cleanly when the
/// client's connection ends at a chunk boundary, whatever `x-amz-decoded-content-length`
/// said; passed on like that, a cut upload would look complete. Short or long, it fails here.
pub struct ExactLength<S> {
    inner: S,
    remaining: u64,
    declared: u64,
    done: bool,
}

impl<S> ExactLength<S> {
    /// `inner`, which must yield exactly `declared` bytes.
    pub fn new(inner: S, declared: u64) -> Self {
        Self {
            inner,
            remaining: declared,
            declared,
            done: false,
        }
    }
}

impl<S> Stream for ExactLength<S>
where
    S: Stream<Item = Result<Bytes, StdError>> + Unpin,
{
    type Item = Result<Bytes, StdError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let length_error = |declared| {
            Poll::Ready(Some(Err(
                Box::new(ChunkedError::Length { expected: declared }) as StdError
            )))
        };
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(data))) => {
                let len = data.len() as u64;
                if len > this.remaining {
                    this.done = true;
                    return length_error(this.declared);
                }
                this.remaining -= len;
                Poll::Ready(Some(Ok(data)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.done = true;
                if this.remaining == 0 {
                    Poll::Ready(None)
                } else {
                    length_error(this.declared)
                }
            }
        }
    }
}

impl<S> s3s::stream::ByteStream for ExactLength<S>
where
    S: Stream<Item = Result<Bytes, StdError>> + Unpin,
{
    fn remaining_length(&self) -> s3s::stream::RemainingLength {
        usize::try_from(self.remaining).map_or_else(
            |_| s3s::stream::RemainingLength::unknown(),
            s3s::stream::RemainingLength::new_exact,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn none() -> TrailerSource {
        Box::new(|| None)
    }

    fn crc32(value: &'static str) -> TrailerSource {
        Box::new(move || {
            let mut h = HeaderMap::new();
            h.insert("x-amz-checksum-crc32", http::HeaderValue::from_static(value));
            Some(h)
        })
    }

    async fn encode(
        data: Vec<Bytes>,
        declared: u64,
        names: Vec<String>,
        trailers: TrailerSource,
    ) -> Result<Vec<u8>, String> {
        let inner = futures::stream::iter(data.into_iter().map(Ok::<_, StdError>));
        let mut s = Reframed::new(inner, declared, names, trailers);
        let mut out = Vec::new();
        while let Some(part) = s.next().await {
            out.extend_from_slice(&part.map_err(|e| e.to_string())?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn frames_in_fixed_chunks_and_announces_its_length() {
        let data = vec![Bytes::from(vec![b'a'; 100_000]), Bytes::from(vec![b'b'; 40_000])];
        let out = encode(data, 140_000, vec![], none()).await.unwrap_or_default();
        assert_eq!(out.len() as u64, encoded_len(140_000, &[]));
        assert!(out.starts_with(b"10000\r\n"));
        assert!(out.ends_with(b"\r\n0\r\n\r\n"));
    }

    #[tokio::test]
    async fn a_short_or_long_body_fails() {
        assert!(
            encode(vec![Bytes::from_static(b"abc")], 4, vec![], none())
                .await
                .is_err()
        );
        assert!(
            encode(vec![Bytes::from_static(b"abcde")], 4, vec![], none())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_missing_trailer_fails() {
        let names = vec!["x-amz-checksum-crc32".to_owned()];
        let err = encode(vec![Bytes::from_static(b"abc")], 3, names, none()).await;
        assert!(err.is_err_and(|e| e.contains("missing")));
    }

    #[tokio::test]
    async fn trailers_follow_the_last_chunk() {
        let names = vec!["x-amz-checksum-crc32".to_owned()];
        let out = encode(vec![Bytes::from_static(b"abc")], 3, names.clone(), crc32("NSRBwg==")).await;
        let out = out.unwrap_or_default();
        assert_eq!(out, b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:NSRBwg==\r\n\r\n");
        assert_eq!(out.len() as u64, encoded_len(3, &[("x-amz-checksum-crc32", 8)]));
        let bad = encode(vec![Bytes::from_static(b"abc")], 3, names, crc32("short")).await;
        assert!(bad.is_err());
    }

    #[tokio::test]
    async fn a_decoded_body_must_have_its_declared_length() {
        async fn read(parts: Vec<&'static [u8]>, declared: u64) -> Result<Vec<u8>, String> {
            let inner = futures::stream::iter(parts.into_iter().map(|p| Ok::<_, StdError>(Bytes::from_static(p))));
            let mut s = ExactLength::new(inner, declared);
            let mut out = Vec::new();
            while let Some(part) = s.next().await {
                out.extend_from_slice(&part.map_err(|e| e.to_string())?);
            }
            Ok(out)
        }
        assert_eq!(read(vec![b"ab", b"c"], 3).await.ok(), Some(b"abc".to_vec()));
        // Cut at a chunk boundary: the decoder ended cleanly, but the upload is incomplete.
        assert!(read(vec![b"ab"], 3).await.is_err());
        assert!(read(vec![b"ab", b"cd"], 3).await.is_err());
        assert_eq!(read(vec![], 0).await.ok(), Some(Vec::new()));
    }

    #[tokio::test]
    async fn prepended_bytes_come_first() {
        let rest = futures::stream::iter([Ok::<_, StdError>(Bytes::from_static(b"cd"))]);
        let mut s = Prepended::new(Bytes::from_static(b"ab"), rest);
        let mut out = Vec::new();
        while let Some(Ok(part)) = s.next().await {
            out.extend_from_slice(&part);
        }
        assert_eq!(out, b"abcd");
    }

    #[test]
    fn empty_body_length() {
        assert_eq!(encoded_len(0, &[]), 5);
        assert_eq!(encoded_len(0, &[("x-amz-checksum-crc32", 8)]), 5 + 20 + 1 + 8 + 2);
    }
}
