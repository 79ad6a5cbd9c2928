//! Replies of a Redis server (RESP2), parsed so that a large value arrives in one buffer of
//! exactly its size and leaves as [`Bytes`] without being copied again.
//!
//! The general client copies every value out of its read buffer, after growing that buffer
//! to hold the whole reply: for a 1 MiB hit that is two copies of the value, about a fifth of
//! the CPU of the hit (BENCHMARKS.md §3). [`ReplyReader`] instead gives a value of at least
//! [`LARGE_VALUE`] bytes its own buffer as soon as the value's length is read, and the rest of
//! the value is read from the socket straight into it ([`ReplyReader::try_read_from`]).
//!
//! Smaller values are copied out of the read buffer: a value that kept a slice of the shared
//! buffer would keep the whole buffer alive in the memory tier, which counts only the value.
//!
//! Only the replies of the commands the reading connections send are understood: values,
//! arrays of values (`MGET`), statuses, errors and integers. Anything else, nested arrays
//! included, is a protocol error, after which the connection is not used again.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::net::TcpStream;

/// Values at least this long get a buffer of their own, filled straight from the socket.
pub const LARGE_VALUE: usize = 16 * 1024;

/// Bytes asked of the socket per read while no large value is in progress: room for a dozen
/// pipelined 4 KiB hits.
const READ_CHUNK: usize = 64 * 1024;

/// Longest value accepted: Redis's own default `proto-max-bulk-len`.
pub const MAX_VALUE: usize = 512 * 1024 * 1024;

/// Most items in an array reply; the reading connections ask for at most a few keys at once.
pub const MAX_ARRAY: usize = 1024;

/// Longest header or status line (type byte and text, without the CRLF).
const MAX_LINE: usize = 4096;

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+...`: a status such as `OK`.
    Status(Bytes),
    /// `-...`: the server refused the command.
    Error(String),
    /// `:...`: an integer.
    Integer(i64),
    /// `$...`: a value, `None` for a missing key.
    Value(Option<Bytes>),
    /// `*...`: values (`MGET`), `None` for a null array.
    Array(Option<Vec<Option<Bytes>>>),
}

/// Bytes that are not a reply this reader understands. The stream cannot be resynchronised
/// after one: the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The first byte of a line is no RESP2 type this reader accepts.
    #[error("unexpected reply type byte 0x{0:02x}")]
    UnknownType(u8),
    /// A line with no type byte.
    #[error("empty reply line")]
    EmptyLine,
    /// A header or status line runs past its limit without a CRLF.
    #[error("reply line longer than {MAX_LINE} bytes")]
    LineTooLong,
    /// A length or integer that is not a decimal number in range.
    #[error("bad number in reply: {0:?}")]
    BadNumber(String),
    /// A value longer than [`MAX_VALUE`].
    #[error("value of {0} bytes is longer than the {MAX_VALUE}-byte limit")]
    ValueTooLong(usize),
    /// An array with more than [`MAX_ARRAY`] items.
    #[error("array of {0} items is longer than the {MAX_ARRAY}-item limit")]
    ArrayTooLong(usize),
    /// An array item that is not a value.
    #[error("array item of type 0x{0:02x}; only values are expected")]
    NotAValue(u8),
    /// A value not followed by CRLF.
    #[error("value not terminated by CRLF")]
    Unterminated,
}

/// Why no reply could be read from a stream.
#[derive(Debug, thiserror::Error)]
pub enum ReadFailure {
    /// The stream failed.
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
    /// The stream ended.
    #[error("connection closed")]
    Closed,
    /// Its bytes are no reply.
    #[error(transparent)]
    Reply(#[from] ReplyError),
}

/// Parses the replies of one connection, in order, from the bytes read off it.
#[derive(Debug, Default)]
pub struct ReplyReader {
    /// Read but not yet parsed. Empty while a large value is being filled.
    buf: BytesMut,
    /// The array being read: its length and the items so far.
    array: Option<(usize, Vec<Option<Bytes>>)>,
    /// The large value being read; its capacity is its length.
    large: Option<BytesMut>,
}

impl ReplyReader {
    /// A reader at the start of a stream.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes the large value in progress still lacks, if one is in progress.
    fn large_missing(&self) -> Option<usize> {
        self.large.as_ref().map(|v| v.capacity() - v.len()).filter(|&n| n > 0)
    }

    /// Takes bytes read by other means (tests, fuzzing): the same path as
    /// [`ReplyReader::try_read_from`] without the socket.
    pub fn feed(&mut self, mut data: &[u8]) {
        if let (Some(missing), Some(value)) = (self.large_missing(), self.large.as_mut()) {
            let n = missing.min(data.len());
            value.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        self.buf.extend_from_slice(data);
    }

    /// Reads what `stream` holds now, without waiting, into the large value in progress
    /// (never past its end) or into the buffer. Returns the bytes read; 0 is the end of the
    /// stream.
    ///
    /// # Errors
    /// The stream's; `WouldBlock` when it holds nothing yet (wait for `readable`).
    pub fn try_read_from(&mut self, stream: &TcpStream) -> std::io::Result<usize> {
        if let (Some(missing), Some(value)) = (self.large_missing(), self.large.as_mut()) {
            let mut limited = value.limit(missing);
            return stream.try_read_buf(&mut limited);
        }
        self.buf.reserve(READ_CHUNK);
        stream.try_read_buf(&mut self.buf)
    }

    /// Waits for the next complete reply on `stream`.
    ///
    /// # Errors
    /// [`ReadFailure`] when the stream fails or ends, or its bytes are no reply.
    pub async fn next_from(&mut self, stream: &TcpStream) -> Result<Reply, ReadFailure> {
        loop {
            if let Some(reply) = self.next_reply()? {
                return Ok(reply);
            }
            loop {
                stream.readable().await?;
                match self.try_read_from(stream) {
                    Ok(0) => return Err(ReadFailure::Closed),
                    Ok(_) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }

    /// The next complete reply, or `None` until more bytes are read.
    ///
    /// # Errors
    /// [`ReplyError`] when the bytes are not a reply this reader understands.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ReplyError> {
        loop {
            if self.large.is_some() {
                if self.large_missing().is_some() || self.buf.len() < 2 {
                    return Ok(None);
                }
                if &self.buf[..2] != b"\r\n" {
                    return Err(ReplyError::Unterminated);
                }
                self.buf.advance(2);
                let value = self.large.take().map(BytesMut::freeze);
                match self.item(value) {
                    Some(reply) => return Ok(Some(reply)),
                    None => continue,
                }
            }
            let Some(eol) = self.buf.windows(2).take(MAX_LINE + 1).position(|w| w == b"\r\n") else {
                // The line may lack only its '\n'.
                if self.buf.len() > MAX_LINE + 1 {
                    return Err(ReplyError::LineTooLong);
                }
                return Ok(None);
            };
            if eol == 0 {
                return Err(ReplyError::EmptyLine);
            }
            let kind = self.buf[0];
            let line = &self.buf[1..eol];
            match kind {
                b'$' => {
                    let Some(len) = parse_length(line)? else {
                        self.buf.advance(eol + 2);
                        match self.item(None) {
                            Some(reply) => return Ok(Some(reply)),
                            None => continue,
                        }
                    };
                    if len > MAX_VALUE {
                        return Err(ReplyError::ValueTooLong(len));
                    }
                    let start = eol + 2;
                    if len >= LARGE_VALUE {
                        self.buf.advance(start);
                        let mut value = BytesMut::with_capacity(len);
                        let have = len.min(self.buf.len());
                        value.extend_from_slice(&self.buf[..have]);
                        self.buf.advance(have);
                        self.large = Some(value);
                        continue;
                    }
                    if self.buf.len() < start + len + 2 {
                        self.buf.reserve(start + len + 2 - self.buf.len());
                        return Ok(None);
                    }
                    if &self.buf[start + len..start + len + 2] != b"\r\n" {
                        return Err(ReplyError::Unterminated);
                    }
                    let value = Bytes::copy_from_slice(&self.buf[start..start + len]);
                    self.buf.advance(start + len + 2);
                    if let Some(reply) = self.item(Some(value)) {
                        return Ok(Some(reply));
                    }
                }
                b'*' => {
                    if self.array.is_some() {
                        return Err(ReplyError::NotAValue(kind));
                    }
                    let len = parse_length(line)?;
                    self.buf.advance(eol + 2);
                    match len {
                        None => return Ok(Some(Reply::Array(None))),
                        Some(0) => return Ok(Some(Reply::Array(Some(Vec::new())))),
                        Some(n) if n > MAX_ARRAY => return Err(ReplyError::ArrayTooLong(n)),
                        Some(n) => self.array = Some((n, Vec::with_capacity(n))),
                    }
                }
                b'+' | b'-' | b':' => {
                    if self.array.is_some() {
                        return Err(ReplyError::NotAValue(kind));
                    }
                    let reply = match kind {
                        b'+' => Reply::Status(Bytes::copy_from_slice(line)),
                        b'-' => Reply::Error(String::from_utf8_lossy(line).into_owned()),
                        _ => Reply::Integer(parse_integer(line)?),
                    };
                    self.buf.advance(eol + 2);
                    return Ok(Some(reply));
                }
                other => return Err(ReplyError::UnknownType(other)),
            }
        }
    }

    /// Adds a value to the array in progress, or makes it the reply when there is none.
    fn item(&mut self, value: Option<Bytes>) -> Option<Reply> {
        let Some((len, items)) = self.array.as_mut() else {
            return Some(Reply::Value(value));
        };
        items.push(value);
        if items.len() < *len {
            return None;
        }
        self.array.take().map(|(_, items)| Reply::Array(Some(items)))
    }
}

fn parse_integer(line: &[u8]) -> Result<i64, ReplyError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| ReplyError::BadNumber(String::from_utf8_lossy(line).into_owned()))
}

/// A length: `None` for `-1` (null), an error for any other negative number.
fn parse_length(line: &[u8]) -> Result<Option<usize>, ReplyError> {
    let n = parse_integer(line)?;
    if n == -1 {
        return Ok(None);
    }
    usize::try_from(n)
        .map(Some)
        .map_err(|_| ReplyError::BadNumber(n.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every reply in `input`, fed `step` bytes at a time.
    fn replies(input: &[u8], step: usize) -> Result<Vec<Reply>, ReplyError> {
        let mut reader = ReplyReader::new();
        let mut out = Vec::new();
        for chunk in input.chunks(step.max(1)) {
            reader.feed(chunk);
            while let Some(reply) = reader.next_reply()? {
                out.push(reply);
            }
        }
        Ok(out)
    }

    fn value(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    fn bulk(v: &[u8]) -> Vec<u8> {
        let mut out = format!("${}\r\n", v.len()).into_bytes();
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
        out
    }

    #[test]
    fn every_reply_kind_parses_whatever_the_read_sizes() {
        let big = value(LARGE_VALUE * 3 + 7);
        let edge = value(LARGE_VALUE);
        let small = value(LARGE_VALUE - 1);
        let mut input = b"+OK\r\n-ERR wrong\r\n:42\r\n$-1\r\n*-1\r\n*0\r\n$0\r\n\r\n".to_vec();
        input.extend_from_slice(b"*3\r\n");
        input.extend_from_slice(&bulk(&big));
        input.extend_from_slice(b"$-1\r\n");
        input.extend_from_slice(&bulk(b"meta"));
        input.extend_from_slice(&bulk(&edge));
        input.extend_from_slice(&bulk(&small));
        let expected = vec![
            Reply::Status(Bytes::from_static(b"OK")),
            Reply::Error("ERR wrong".to_owned()),
            Reply::Integer(42),
            Reply::Value(None),
            Reply::Array(None),
            Reply::Array(Some(Vec::new())),
            Reply::Value(Some(Bytes::new())),
            Reply::Array(Some(vec![
                Some(Bytes::from(big)),
                None,
                Some(Bytes::from_static(b"meta")),
            ])),
            Reply::Value(Some(Bytes::from(edge))),
            Reply::Value(Some(Bytes::from(small))),
        ];
        for step in [1, 2, 3, 7, 1000, LARGE_VALUE, input.len()] {
            assert_eq!(
                replies(&input, step).as_ref(),
                Ok(&expected),
                "read {step} bytes at a time"
            );
        }
    }

    #[test]
    fn a_large_value_is_read_into_a_buffer_of_its_own_size() {
        let big = value(1 << 20);
        let mut reader = ReplyReader::new();
        let input = bulk(&big);
        // The first read holds the header and part of the value, as a socket read would.
        reader.feed(&input[..READ_CHUNK]);
        assert_eq!(reader.next_reply(), Ok(None));
        let header = format!("${}\r\n", big.len()).len();
        assert_eq!(reader.large_missing(), Some(big.len() - (READ_CHUNK - header)));
        assert!(reader.buf.is_empty(), "the value's first bytes moved to its own buffer");
        reader.feed(&input[READ_CHUNK..]);
        let Ok(Some(Reply::Value(Some(got)))) = reader.next_reply() else {
            panic!("no value");
        };
        assert_eq!(got, big);
    }

    #[tokio::test]
    async fn reads_from_a_socket_never_put_the_next_reply_into_a_large_value() {
        let big = value(200_000);
        let mut input = bulk(&big);
        input.extend_from_slice(b":7\r\n");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let writer = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await?;
            // Small writes, so the value arrives over many reads.
            for chunk in input.chunks(7_000) {
                tokio::io::AsyncWriteExt::write_all(&mut socket, chunk).await?;
            }
            Ok::<_, std::io::Error>(())
        });
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut reader = ReplyReader::new();
        let first = reader.next_from(&stream).await.expect("value");
        let second = reader.next_from(&stream).await.expect("integer");
        assert!(matches!(writer.await, Ok(Ok(()))));
        assert_eq!(first, Reply::Value(Some(Bytes::from(big))));
        assert_eq!(second, Reply::Integer(7));
        assert!(matches!(reader.next_from(&stream).await, Err(ReadFailure::Closed)));
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic() {
        let long_line = [b"+".as_slice(), &[b'a'; MAX_LINE + 10]].concat();
        let cases: Vec<(Vec<u8>, ReplyError)> = vec![
            (b"!oops\r\n".to_vec(), ReplyError::UnknownType(b'!')),
            (b"\r\n$-1\r\n".to_vec(), ReplyError::EmptyLine),
            (b"*2\r\n\r\n".to_vec(), ReplyError::EmptyLine),
            (b"%2\r\n".to_vec(), ReplyError::UnknownType(b'%')),
            (b"$abc\r\n".to_vec(), ReplyError::BadNumber("abc".to_owned())),
            (b"$-2\r\n".to_vec(), ReplyError::BadNumber("-2".to_owned())),
            (b"$\r\n".to_vec(), ReplyError::BadNumber(String::new())),
            (
                b":99999999999999999999\r\n".to_vec(),
                ReplyError::BadNumber("99999999999999999999".to_owned()),
            ),
            (b"$3\r\nabcXY".to_vec(), ReplyError::Unterminated),
            (
                format!("${}\r\n", MAX_VALUE + 1).into_bytes(),
                ReplyError::ValueTooLong(MAX_VALUE + 1),
            ),
            (
                format!("*{}\r\n", MAX_ARRAY + 1).into_bytes(),
                ReplyError::ArrayTooLong(MAX_ARRAY + 1),
            ),
            (b"*2\r\n*1\r\n".to_vec(), ReplyError::NotAValue(b'*')),
            (b"*2\r\n:1\r\n".to_vec(), ReplyError::NotAValue(b':')),
            (b"*1\r\n+OK\r\n".to_vec(), ReplyError::NotAValue(b'+')),
            (long_line, ReplyError::LineTooLong),
        ];
        for (input, expected) in cases {
            assert_eq!(
                replies(&input, 3),
                Err(expected.clone()),
                "{:?}",
                String::from_utf8_lossy(&input)
            );
        }
        let mut unterminated_large = bulk(&value(LARGE_VALUE));
        let end = unterminated_large.len();
        unterminated_large[end - 2..].copy_from_slice(b"XX");
        assert_eq!(replies(&unterminated_large, 100), Err(ReplyError::Unterminated));
    }

    #[test]
    fn an_unfinished_reply_waits_for_more_bytes() {
        for input in [&b"$5\r\nab"[..], b"*2\r\n$1\r\na\r\n", b"+O", b"$20000\r\nabc"] {
            assert_eq!(replies(input, 1), Ok(Vec::new()), "{input:?}");
        }
    }
}
