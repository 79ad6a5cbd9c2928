//! The hot path's own HTTP/1.1 connection loop: it reads requests off a connection (plain
//! TCP, or TLS after the handshake), answers memory hits with the entry's pre-serialized head,
//! the answer's two headers and the body in one vectored write (flushed, for TLS), and hands
//! the connection to hyper (with the bytes it has read) at the first request it does not
//! answer. After each answer the thread's turn on its CPU core is counted ([`cpu_turn`]).
//!
//! It answers only what cannot differ from hyper's answer: a complete HTTP/1.1 `GET` or `HEAD`
//! head with an origin-form target of plain URI characters, no header that frames a body or
//! changes the connection (`content-length`, `transfer-encoding`, `connection`, `upgrade`,
//! `expect`, `te`, …), at most 64 headers in at most [`super::MAX_HEADER_SECTION`] bytes, that
//! the hot path answers from memory ([`HotPath::decide`]). Anything else (a shared-tier lookup,
//! a miss, an error, another protocol, a malformed head) goes to hyper unchanged, and the
//! connection stays with hyper from then on, so this loop never answers with an error.

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Version, header};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;

use super::{HotPath, MAX_HEADER_SECTION, RequestHead, Verdict, cpu_turn};
use crate::engine::CACHE_STATUS_HEADER;

/// The most headers a request answered here may have (more: hyper's).
const MAX_HEADERS: usize = 64;

/// Serves requests on `io` while the hot path answers them from memory. Returns the
/// connection, with the bytes read and not answered in front, when a request is for hyper;
/// `None` when the connection is done (closed by the client, failed, or `stop` was set).
pub async fn answer_hits<S>(mut io: S, hot: &HotPath, stop: &mut watch::Receiver<bool>) -> Option<Rewound<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut tail = Vec::with_capacity(128);
    if *stop.borrow() {
        return None;
    }
    // One wait for the shutdown for the whole connection: registered once, not per read.
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        while !buf.is_empty() {
            match next_request(&buf, hot) {
                Next::Partial => break,
                Next::Answer { head_len, hit } => {
                    buf.advance(head_len);
                    tail.clear();
                    tail.extend_from_slice(CACHE_STATUS_HEADER.as_bytes());
                    tail.extend_from_slice(b": ");
                    tail.extend_from_slice(hit.cache_status().as_bytes());
                    tail.extend_from_slice(b"\r\ndate: ");
                    push_http_date(&mut tail);
                    tail.extend_from_slice(b"\r\n\r\n");
                    let body = hit.body();
                    if write_all(&mut io, [hit.wire_head(), &tail, &body]).await.is_err() {
                        return None;
                    }
                    cpu_turn::answered(hot.yield_after);
                }
                Next::Hyper => return Some(Rewound::new(buf.freeze(), io)),
            }
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(8 * 1024);
        }
        tokio::select! {
            biased;
            _ = &mut stopped => return None,
            read = io.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            },
        }
    }
}

/// What to do with the bytes at the front of the buffer.
enum Next {
    /// An incomplete head that may still be answered here: read more.
    Partial,
    /// A request answered from memory: its head's length and the hit.
    Answer { head_len: usize, hit: super::Hit },
    /// Hyper's, from here on.
    Hyper,
}

/// The length of the request head at the front of `buf` when this loop answers that request
/// itself (the answer is counted as one); `None` when it waits for more bytes or hands the
/// connection to hyper.
#[must_use]
pub fn answers_here(buf: &[u8], hot: &HotPath) -> Option<usize> {
    match next_request(buf, hot) {
        Next::Answer { head_len, .. } => Some(head_len),
        Next::Partial | Next::Hyper => None,
    }
}

fn next_request(buf: &[u8], hot: &HotPath) -> Next {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        // The head could still become one answered here; past the size limit it is hyper's
        // (and the refusal's) anyway.
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEADER_SECTION => return Next::Partial,
        Ok(httparse::Status::Partial) | Err(_) => return Next::Hyper,
    };
    if head_len > MAX_HEADER_SECTION || req.version != Some(1) {
        return Next::Hyper;
    }
    let method = match req.method {
        Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        _ => return Next::Hyper,
    };
    let Some(target) = req.path.filter(|t| t.starts_with('/') && t.bytes().all(plain_uri_byte)) else {
        return Next::Hyper;
    };
    let Some(headers) = header_map(req.headers) else {
        return Next::Hyper;
    };
    let head = RequestHead {
        method: &method,
        version: Version::HTTP_11,
        target,
        headers: &headers,
        no_body: true,
    };
    match hot.decide(&head) {
        Verdict::Answered(hit) => Next::Answer { head_len, hit },
        // A shared-tier lookup is hyper's too: its miss travels on to the full path there.
        Verdict::Shared(_) | Verdict::Declined => Next::Hyper,
    }
}

/// Bytes of a request target hyper takes as they are: unreserved and reserved characters and
/// `%`. Anything else (which hyper may refuse) goes to hyper.
fn plain_uri_byte(b: u8) -> bool {
    PLAIN_URI_BYTES[usize::from(b)]
}

static PLAIN_URI_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let others = b"-._~!$&'()*+,;=:@/?%";
    let mut i = 0;
    while i < others.len() {
        table[others[i] as usize] = true;
        i += 1;
    }
    table
};

/// The headers as a map, or `None` when one frames a body, changes the connection, or is not
/// a valid header.
fn header_map(parsed: &[httparse::Header<'_>]) -> Option<HeaderMap> {
    let mut map = HeaderMap::with_capacity(parsed.len());
    for h in parsed {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        if connection_header(&name) {
            return None;
        }
        map.append(name, HeaderValue::from_bytes(h.value).ok()?);
    }
    Some(map)
}

fn connection_header(name: &HeaderName) -> bool {
    [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::CONNECTION,
        header::UPGRADE,
        header::EXPECT,
        header::TE,
        header::TRAILER,
    ]
    .contains(name)
        || matches!(name.as_str(), "keep-alive" | "proxy-connection" | "http2-settings")
}

/// Writes `parts` whole, in as few `writev` calls as the socket takes.
async fn write_all<W: AsyncWrite + Unpin>(io: &mut W, parts: [&[u8]; 3]) -> io::Result<()> {
    let mut parts = parts;
    loop {
        let slices = parts.map(IoSlice::new);
        let written = io.write_vectored(&slices).await?;
        if written == 0 {
            return if parts.iter().all(|p| p.is_empty()) {
                Ok(())
            } else {
                Err(io::ErrorKind::WriteZero.into())
            };
        }
        let mut left = written;
        for part in &mut parts {
            let n = left.min(part.len());
            *part = &part[n..];
            left -= n;
        }
        if parts.iter().all(|p| p.is_empty()) {
            return io.flush().await;
        }
    }
}

thread_local! {
    /// The `date` value of the current second, made once per second per thread.
    static DATE: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
}

/// Appends the current time as an HTTP date (`Mon, 30 Nov 2026 19:58:00 GMT`), as hyper's
/// `date` header has it.
fn push_http_date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(second, text)| {
        if *second != secs {
            *second = secs;
            *text = httpdate::fmt_http_date(now).into_bytes();
        }
        out.extend_from_slice(text);
    });
}

/// A connection with bytes already read from it put back in front.
pub struct Rewound<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Rewound<S> {
    /// `inner`, to be read from `prefix` on.
    pub fn new(prefix: Bytes, inner: S) -> Self {
        Self { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewound<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewound<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
