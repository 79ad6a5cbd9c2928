//! Requests no S3 operation may take are refused the way S3 refuses them, whichever door they
//! would reach (the hot path or s3s): a header section over 8 KiB gets 400
//! `RequestHeaderSectionTooLarge`, an unknown method 405 `MethodNotAllowed`, each with an S3
//! XML error body. Sent as raw HTTP/1.1, so nothing in between tidies the request up.

mod support;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::proxy_s3::{origin, proxy};

struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Sends `request_line` and `headers` (plus `Host` and `Connection: close`) on a fresh
/// connection and reads the whole answer.
async fn raw(endpoint: &str, request_line: &str, headers: &[(&str, String)]) -> Answer {
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.expect("connect to s3cached");
    let mut request = format!("{request_line}\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.expect("send request");
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.expect("read answer");
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Answer {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

fn assert_s3_error(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "{}\n{}", answer.head, answer.body);
    assert!(
        answer.body.contains(&format!("<Error><Code>{code}</Code>")),
        "S3 XML error {code} expected: {}",
        answer.body
    );
    assert!(answer.head.contains("content-type: application/xml"), "{}", answer.head);
}

#[tokio::test]
async fn an_oversized_header_section_is_refused_by_both_doors() {
    let p = proxy(&["--allow-anonymous"]);
    let bucket = origin().new_bucket("bad-headers").await;
    origin().put_object(&bucket, "public.txt", b"hello").await;
    let get = format!("GET /{bucket}/public.txt HTTP/1.1");

    // Cached: the next plain GET is the hot path's to answer.
    let warm = raw(&p.endpoint(), &get, &[]).await;
    assert_eq!((warm.status, warm.body.as_str()), (200, "hello"));
    let near = raw(&p.endpoint(), &get, &[("x-padding", "a".repeat(7 * 1024))]).await;
    assert_eq!((near.status, near.body.as_str()), (200, "hello"), "under 8 KiB is fine");

    let one_big = raw(&p.endpoint(), &get, &[("x-padding", "a".repeat(64 * 1024))]).await;
    assert_s3_error(&one_big, 400, "RequestHeaderSectionTooLarge");

    // Many small headers add up; on a PUT, which only s3s serves.
    let many: Vec<(&str, String)> = (0..60).map(|_| ("x-amz-meta-pad", "b".repeat(150))).collect();
    let put = raw(&p.endpoint(), &format!("PUT /{bucket}/new.txt HTTP/1.1"), &many).await;
    assert_s3_error(&put, 400, "RequestHeaderSectionTooLarge");
    assert!(
        put.body.contains("<MaxSizeAllowed>8192</MaxSizeAllowed>"),
        "{}",
        put.body
    );
}

#[tokio::test]
async fn an_unknown_method_is_not_allowed() {
    let p = proxy(&["--allow-anonymous"]);
    let bucket = origin().new_bucket("bad-method").await;
    origin().put_object(&bucket, "k", b"v").await;
    for target in [format!("/{bucket}/k"), format!("/{bucket}"), "/".to_owned()] {
        let answer = raw(&p.endpoint(), &format!("BREW {target} HTTP/1.1"), &[]).await;
        assert_s3_error(&answer, 405, "MethodNotAllowed");
        assert!(answer.body.contains("<Method>BREW</Method>"), "{}", answer.body);
        assert!(
            answer.head.contains("allow: get, head, put, post, delete"),
            "{}",
            answer.head
        );
    }
    // The object is untouched and known methods still work.
    let get = raw(&p.endpoint(), &format!("GET /{bucket}/k HTTP/1.1"), &[]).await;
    assert_eq!((get.status, get.body.as_str()), (200, "v"));
}
