//! The connection loop against hyper: what it answers must be the bytes hyper writes for the
//! same request (but the date), and what it does not answer must reach hyper byte for byte.

use std::time::Duration;

use aws_sigv4::http_request::SignatureLocation;
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};
use tokio::sync::watch;

use super::answer_hits;
use crate::doors::hot_path::service::HotPathService;
use crate::doors::hot_path::tests::{hello, put, rich_meta, setup};
use crate::doors::sigv4::tests::{SECRET_KEY, signed};
use crate::model::entry::Entry;

/// The S3 service with the hot path in front, holding `bucket/hello.txt` (5 bytes) and
/// `bucket/big.bin` (1 MiB), both with rich metadata.
async fn service() -> HotPathService {
    let s = setup(true);
    put(&s, "bucket", "hello.txt", hello()).await;
    let big = Bytes::from((0..1 << 20).map(|i: u32| (i % 251) as u8).collect::<Vec<u8>>());
    put(&s, "bucket", "big.bin", Entry::new(rich_meta(1 << 20), big)).await;
    HotPathService::new(Some(s.hot), s.full)
}

/// Reads one answer (head and `content-length` bytes of body, none for HEAD).
async fn read_answer(client: &mut DuplexStream, head_request: bool) -> Vec<u8> {
    let mut carry = Vec::new();
    let answer = read_next_answer(client, &mut carry, head_request).await;
    assert!(carry.is_empty(), "more bytes than one answer");
    answer
}

/// Reads the next answer, starting with the bytes in `carry` and leaving there what follows.
async fn read_next_answer(client: &mut DuplexStream, carry: &mut Vec<u8>, head_request: bool) -> Vec<u8> {
    let mut got = std::mem::take(carry);
    let mut chunk = [0u8; 64 * 1024];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            let want = end + 4 + if head_request { 0 } else { len };
            if got.len() >= want {
                *carry = got.split_off(want);
                return got;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut chunk))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(n > 0, "connection closed after {} bytes", got.len());
        got.extend_from_slice(&chunk[..n]);
    }
}

/// The answer with the date's value blanked.
fn without_date(answer: &[u8]) -> Vec<u8> {
    let text = answer.to_vec();
    let Some(start) = text.windows(8).position(|w| w == b"\r\ndate: ") else {
        return text;
    };
    let value = start + 8;
    let end = value
        + text[value..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("date line end");
    [&text[..value], &b"<date>"[..], &text[end..]].concat()
}

/// Hyper's answer to `request` (the hot path behind it, as the server has it).
async fn hyper_answer(service: &HotPathService, request: &[u8], head_request: bool) -> Vec<u8> {
    let (mut client, server) = duplex(4 << 20);
    let conn = ConnBuilder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(TokioIo::new(server), service.clone())
        .into_owned();
    let task = tokio::spawn(conn);
    client.write_all(request).await.expect("write");
    let answer = read_answer(&mut client, head_request).await;
    drop(client);
    let _ = task.await;
    answer
}

/// The loop's answers to `requests` written at once; the loop must answer them all itself.
async fn loop_answers(service: &HotPathService, requests: &[u8], heads: &[bool]) -> Vec<Vec<u8>> {
    let (mut client, server) = duplex(4 << 20);
    let hot = std::sync::Arc::clone(service.hot().expect("hot path"));
    let (_stop_tx, mut stop) = watch::channel(false);
    let task = tokio::spawn(async move { answer_hits(server, &hot, &mut stop).await.is_none() });
    client.write_all(requests).await.expect("write");
    let mut answers = Vec::new();
    let mut carry = Vec::new();
    for &head in heads {
        answers.push(read_next_answer(&mut client, &mut carry, head).await);
    }
    assert!(carry.is_empty(), "more bytes than the answers");
    drop(client);
    assert!(task.await.expect("loop"), "the loop handed the connection to hyper");
    answers
}

/// What the loop hands to hyper after `requests`: the bytes it passes on, and the answers
/// it wrote first.
async fn handed_off(service: &HotPathService, requests: &[u8], answered: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let (mut client, server) = duplex(4 << 20);
    let hot = std::sync::Arc::clone(service.hot().expect("hot path"));
    let (_stop_tx, mut stop) = watch::channel(false);
    let task = tokio::spawn(async move { answer_hits(server, &hot, &mut stop).await });
    client.write_all(requests).await.expect("write");
    let mut answers = Vec::new();
    for _ in 0..answered {
        answers.push(read_answer(&mut client, false).await);
    }
    let mut rest = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("handed off in time")
        .expect("loop")
        .expect("handed off");
    // The bytes put back, then what the client sends next.
    client.write_all(b"NEXT").await.expect("write");
    let mut passed = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while !passed.ends_with(b"NEXT") {
        let n = tokio::time::timeout(Duration::from_secs(5), rest.read(&mut chunk))
            .await
            .expect("bytes in time")
            .expect("read");
        assert!(n > 0);
        passed.extend_from_slice(&chunk[..n]);
    }
    passed.truncate(passed.len() - 4);
    (passed, answers)
}

fn get(target: &str, extra: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nhost: 127.0.0.1:9000\r\n{extra}\r\n").into_bytes()
}

#[tokio::test]
async fn answers_hits_with_the_bytes_hyper_writes() {
    let service = service().await;
    let presigned = signed(
        "GET",
        "/bucket/hello.txt",
        SignatureLocation::QueryParams,
        SECRET_KEY,
        std::time::SystemTime::now(),
    );
    let presigned_target = presigned.uri().path_and_query().expect("target").as_str().to_owned();
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("anonymous GET", get("/bucket/hello.txt", ""), false),
        ("1 MiB GET", get("/bucket/big.bin", ""), false),
        (
            "HEAD",
            b"HEAD /bucket/hello.txt HTTP/1.1\r\nhost: 127.0.0.1:9000\r\n\r\n".to_vec(),
            true,
        ),
        (
            "checksums",
            get("/bucket/hello.txt", "x-amz-checksum-mode: ENABLED\r\n"),
            false,
        ),
        ("presigned", get(&presigned_target, "user-agent: test\r\n"), false),
        // Asked again: recalled by its bytes, the same answer.
        ("presigned again", get(&presigned_target, "user-agent: test\r\n"), false),
    ];
    for (name, request, head) in cases {
        let expected = hyper_answer(&service, &request, head).await;
        assert!(
            expected.starts_with(b"HTTP/1.1 200 OK\r\n"),
            "{name}: hyper answered {:?}",
            String::from_utf8_lossy(&expected[..60])
        );
        let got = loop_answers(&service, &request, &[head]).await.remove(0);
        assert_eq!(
            String::from_utf8_lossy(&without_date(&got)),
            String::from_utf8_lossy(&without_date(&expected)),
            "{name}"
        );
        assert!(got.windows(8).any(|w| w == b"\r\ndate: "), "{name}: no date");
    }
}

#[tokio::test]
async fn answers_pipelined_and_split_requests_in_order() {
    let service = service().await;
    let pipelined = [
        get("/bucket/hello.txt", ""),
        get("/bucket/big.bin", ""),
        get("/bucket/hello.txt", ""),
    ]
    .concat();
    let answers = loop_answers(&service, &pipelined, &[false, false, false]).await;
    assert!(answers[0].ends_with(b"hello"));
    assert_eq!(
        answers[1].len() - answers[1].windows(4).position(|w| w == b"\r\n\r\n").expect("head") - 4,
        1 << 20
    );
    assert!(answers[2].ends_with(b"hello"));

    // A head arriving in pieces is answered once whole.
    let (mut client, server) = duplex(1 << 20);
    let hot = std::sync::Arc::clone(service.hot().expect("hot path"));
    let (_stop_tx, mut stop) = watch::channel(false);
    let task = tokio::spawn(async move { answer_hits(server, &hot, &mut stop).await.is_none() });
    let request = get("/bucket/hello.txt", "");
    for piece in request.chunks(7) {
        client.write_all(piece).await.expect("write");
        tokio::task::yield_now().await;
    }
    assert!(read_answer(&mut client, false).await.ends_with(b"hello"));
    drop(client);
    assert!(task.await.expect("loop"));
}

#[tokio::test]
async fn answers_reach_the_client_through_a_stream_that_buffers_writes() {
    // TLS keeps what is written in its records until flushed; every answer must be flushed.
    let service = service().await;
    let (mut client, server) = duplex(1 << 20);
    let hot = std::sync::Arc::clone(service.hot().expect("hot path"));
    let (_stop_tx, mut stop) = watch::channel(false);
    let buffered = tokio::io::BufWriter::with_capacity(64 * 1024, server);
    let task = tokio::spawn(async move { answer_hits(buffered, &hot, &mut stop).await.is_none() });
    for _ in 0..2 {
        client.write_all(&get("/bucket/hello.txt", "")).await.expect("write");
        assert!(read_answer(&mut client, false).await.ends_with(b"hello"));
    }
    drop(client);
    assert!(task.await.expect("loop"));
}

#[tokio::test]
async fn hands_hyper_every_other_request_with_the_bytes_read() {
    let service = service().await;
    let big_header = format!("x-pad: {}\r\n", "a".repeat(9000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a miss", get("/bucket/absent", "")),
        (
            "a PUT",
            b"PUT /bucket/hello.txt HTTP/1.1\r\nhost: h\r\ncontent-length: 2\r\n\r\nhi".to_vec(),
        ),
        ("a range", get("/bucket/hello.txt", "range: bytes=0-1\r\n")),
        ("HTTP/1.0", b"GET /bucket/hello.txt HTTP/1.0\r\n\r\n".to_vec()),
        ("connection: close", get("/bucket/hello.txt", "connection: close\r\n")),
        ("a body", get("/bucket/hello.txt", "content-length: 0\r\n")),
        ("expect", get("/bucket/hello.txt", "expect: 100-continue\r\n")),
        ("upgrade", get("/bucket/hello.txt", "upgrade: websocket\r\n")),
        ("an odd target", get("/bucket/hello.txt?a=\"b\"", "")),
        ("absolute form", get("http://h/bucket/hello.txt", "")),
        ("an unknown method", b"BREW /bucket/hello.txt HTTP/1.1\r\n\r\n".to_vec()),
        ("an HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()),
        (
            "a malformed head",
            b"GET /bucket/hello.txt HTTP/1.1\r\nbad header\r\n\r\n".to_vec(),
        ),
        ("an oversized head", get("/bucket/hello.txt", &big_header)),
        ("a wrong signature", get("/bucket/hello.txt?X-Amz-Signature=00", "")),
    ];
    for (name, request) in cases {
        let (passed, _) = handed_off(&service, &request, 0).await;
        assert_eq!(
            String::from_utf8_lossy(&passed),
            String::from_utf8_lossy(&request),
            "{name}"
        );
    }
    // After answering what it could: only the rest is passed on.
    let miss = get("/bucket/absent", "");
    let (passed, answers) = handed_off(&service, &[get("/bucket/hello.txt", ""), miss.clone()].concat(), 1).await;
    assert!(answers[0].ends_with(b"hello"));
    assert_eq!(passed, miss);
}

#[tokio::test]
async fn ends_at_shutdown_and_at_the_clients_close() {
    let service = service().await;
    let hot = std::sync::Arc::clone(service.hot().expect("hot path"));
    let (stop_tx, mut stop) = watch::channel(false);
    let (_client, server) = duplex(1 << 16);
    let task = tokio::spawn(async move { answer_hits(server, &hot, &mut stop).await.is_none() });
    tokio::task::yield_now().await;
    stop_tx.send(true).expect("send");
    assert!(
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("ends")
            .expect("loop")
    );

    // A head cut short by the client's close: nothing is answered, nothing handed on.
    let hot = std::sync::Arc::clone(service.hot().expect("hot path"));
    let (_stop_tx, mut stop) = watch::channel(false);
    let (mut client, server) = duplex(1 << 16);
    let task = tokio::spawn(async move { answer_hits(server, &hot, &mut stop).await.is_none() });
    client.write_all(b"GET /bucket/hel").await.expect("write");
    drop(client);
    assert!(task.await.expect("loop"));
}
