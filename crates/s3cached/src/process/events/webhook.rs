//! The HTTP webhook for event notifications (what MinIO, Ceph RGW and others POST): served at
//! `POST /events` on the admin listener, only when an event sender is configured. Who sent the
//! body and which of its events it may apply is decided by [`crate::doors::auth::Authorizer`].

use http::StatusCode;

use super::apply::Applier;
use super::parse::{Event, parse};

/// Largest request body accepted.
pub const MAX_BODY: usize = 8 << 20;

/// Applies the events in one webhook body that `may_apply` lets through; returns the HTTP
/// status and a JSON summary. Refused events are not applied and make the answer a 403; the
/// others are applied all the same.
pub async fn handle(applier: &Applier, body: &[u8], may_apply: impl Fn(&Event) -> bool) -> (StatusCode, String) {
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
    let (mut applied, mut failed, mut denied) = (0usize, 0usize, 0usize);
    for event in &events {
        if !may_apply(event) {
            denied += 1;
            continue;
        }
        match applier.apply(event, "webhook").await {
            Ok(_) => applied += 1,
            Err(_) => failed += 1,
        }
    }
    // 5xx on failures: the sender retries, and applying an event twice is harmless.
    let status = if failed > 0 {
        StatusCode::BAD_GATEWAY
    } else if denied > 0 {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::OK
    };
    (
        status,
        serde_json::json!({ "applied": applied, "failed": failed, "denied": denied }).to_string(),
    )
}
