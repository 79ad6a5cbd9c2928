//! The admin listener's endpoints: `GET /metrics` (Prometheus text), `GET /health` (200 with
//! the tier's state), and `POST /events` (the event-notification webhook, when an event sender
//! is configured). Kept off the S3 port so no bucket name can collide with them.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use crate::doors::auth::{Action, Authorizer, Caller, Target};
use crate::engine::Engine;
use crate::process::events::apply::Applier;
use crate::process::events::webhook;
use crate::tier::TierHealth;

/// State behind the admin endpoints.
pub struct Admin {
    engine: Arc<Engine>,
    applier: Arc<Applier>,
    authorizer: Arc<Authorizer>,
}

fn json_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

impl Admin {
    /// Endpoints over `engine`; the webhook serves the event senders of `authorizer`.
    #[must_use]
    pub fn new(engine: Arc<Engine>, applier: Arc<Applier>, authorizer: Arc<Authorizer>) -> Self {
        Self {
            engine,
            applier,
            authorizer,
        }
    }

    /// The event applier (shared with the SQS poller).
    #[must_use]
    pub fn applier(&self) -> Arc<Applier> {
        Arc::clone(&self.applier)
    }

    /// Answers one admin request.
    pub async fn respond(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (status, content_type, body) = match (req.method(), req.uri().path()) {
            (&Method::GET, "/metrics") => {
                self.engine.refresh_gauges();
                (
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    self.engine.metrics().encode(),
                )
            }
            // The service answers from the origin even when a tier is down: 200 with the tier's
            // state, so orchestrators do not restart a process that works.
            (&Method::GET, "/health") => {
                let tier = self.engine.tier().name();
                let body = match self.engine.tier().health() {
                    TierHealth::Healthy => format!(r#"{{"status":"ok","tier":"{tier}"}}"#),
                    TierHealth::Degraded(reason) => {
                        format!(
                            r#"{{"status":"degraded","tier":"{tier}","reason":"{}"}}"#,
                            json_escape(&reason)
                        )
                    }
                };
                (StatusCode::OK, "application/json", body)
            }
            (&Method::POST, "/events") => self.webhook(req).await,
            _ => (
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found: try /metrics, /health or POST /events\n".to_owned(),
            ),
        };
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        if let Ok(v) = http::HeaderValue::from_str(content_type) {
            resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
        }
        resp
    }

    async fn webhook(&self, req: Request<Incoming>) -> (StatusCode, &'static str, String) {
        if !self.authorizer.has_event_senders() {
            return (
                StatusCode::NOT_FOUND,
                "application/json",
                r#"{"error":"webhook disabled: set --webhook-token or an [[event-sender]] in the identities file"}"#
                    .to_owned(),
            );
        }
        let auth = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let Some(sender) = self.authorizer.event_sender(auth) else {
            return (
                StatusCode::UNAUTHORIZED,
                "application/json",
                r#"{"error":"missing or wrong bearer token"}"#.to_owned(),
            );
        };
        let body = match Limited::new(req.into_body(), webhook::MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "application/json",
                    r#"{"error":"body too large or broken"}"#.to_owned(),
                );
            }
        };
        let may_apply = |event: &crate::process::events::parse::Event| {
            let target = Target::Object(&event.bucket, &event.key);
            self.authorizer
                .authorize(Caller::EventSender(&sender), Action::Notify, target)
                .is_ok()
        };
        let (status, summary) = webhook::handle(&self.applier, &body, may_apply).await;
        (status, "application/json", summary)
    }
}
