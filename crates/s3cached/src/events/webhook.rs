//! The HTTP webhook for event notifications (what MinIO, Ceph RGW and others POST): served at
//! `POST /events` on the admin listener, only when a bearer token is configured.

use http::StatusCode;

use super::apply::Applier;
use super::parse::parse;

/// Largest request body accepted.
pub const MAX_BODY: usize = 8 << 20;

/// Checks `Authorization: Bearer <token>` in constant time.
#[must_use]
pub fn authorized(header: Option<&str>, token: &str) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    let (a, b) = (given.as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Applies the events in one webhook body; returns the HTTP status and a JSON summary.
pub async fn handle(applier: &Applier, body: &[u8]) -> (StatusCode, String) {
    let Ok(text) = std::str::from_utf8(body) else {
        return (StatusCode::BAD_REQUEST, r#"{"error":"body is not UTF-8"}"#.to_owned());
    };
    let events = match parse(text) {
        Ok(events) => events,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                serde_json::json!({ "error": e.to_string() }).to_string(),
            );
        }
    };
    let (mut applied, mut failed) = (0usize, 0usize);
    for event in &events {
        match applier.apply(event, "webhook").await {
            Ok(_) => applied += 1,
            Err(_) => failed += 1,
        }
    }
    // 5xx on failures: the sender retries, and applying an event twice is harmless.
    let status = if failed == 0 {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    (
        status,
        serde_json::json!({ "applied": applied, "failed": failed }).to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        assert!(authorized(Some("Bearer s3cr3t"), "s3cr3t"));
        for bad in [
            None,
            Some("s3cr3t"),
            Some("Bearer s3cr3"),
            Some("Bearer s3cr3tt"),
            Some("bearer s3cr3t"),
        ] {
            assert!(!authorized(bad, "s3cr3t"), "{bad:?}");
        }
    }
}
