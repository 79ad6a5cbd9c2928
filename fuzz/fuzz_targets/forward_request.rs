//! What the pass-through reads from a client's request: the operation it names
//! (`operation::classify` over method, path, query and an `x-amz-copy-source` header), the keys
//! of a DeleteObjects body (`operation::delete_keys`), the query without presigned-URL
//! parameters, and the payload declaration `Outgoing::from_client` reads from the headers. Any
//! input is classified or refused without panicking; stripping the signature parameters never
//! leaves one behind.

#![no_main]

use libfuzzer_sys::fuzz_target;
use s3cached::model::operation::{classify, delete_keys, query_pairs};
use s3cached::origin::outgoing::{Outgoing, strip_presign_params};

fuzz_target!(|data: &[u8]| {
    let _ = delete_keys(data);
    let f = s3cached_fuzz::fields(data, 6);
    let field = |i: usize| f.get(i).map_or_else(String::new, |s| s.clone().into_owned());
    let method = match field(0).bytes().next().unwrap_or(b'G') % 5 {
        0 => http::Method::GET,
        1 => http::Method::PUT,
        2 => http::Method::POST,
        3 => http::Method::DELETE,
        _ => http::Method::HEAD,
    };
    let path = format!("/{}", field(1));
    let query = field(2);
    let mut headers = http::HeaderMap::new();
    for (name, i) in [
        ("x-amz-copy-source", 3),
        ("x-amz-content-sha256", 4),
        ("x-amz-trailer", 5),
    ] {
        if let Ok(v) = http::HeaderValue::from_str(&field(i)) {
            headers.insert(name, v);
        }
    }
    if let Ok(v) = http::HeaderValue::from_str(&field(5)) {
        headers.insert("x-amz-decoded-content-length", v.clone());
        headers.insert(http::header::CONTENT_ENCODING, v);
    }
    if let Ok(s3_path) = s3s::path::parse_path_style(&path) {
        let pairs = query_pairs(Some(&query));
        let _ = classify(&method, &s3_path, &pairs, &headers);
    }
    if let Some(stripped) = strip_presign_params(&query) {
        assert!(!stripped.split('&').any(|p| p.split('=').next() == Some("X-Amz-Signature")));
    }
    if let Ok(uri) = format!("{path}?{query}").parse::<http::Uri>() {
        let _ = Outgoing::from_client(method, &uri, headers, s3s::Body::empty(), None, None, None);
    }
});
