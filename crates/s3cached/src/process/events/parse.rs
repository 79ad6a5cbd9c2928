//! Parsing S3 event notifications: the `Records[]` format S3, MinIO and Ceph send, the same
//! inside an SNS notification, and EventBridge's `Object Created` / `Object Deleted` events.

use serde::Deserialize;

use crate::model::form_decode::decode_component;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `ObjectCreated:*` (Put, Post, Copy, CompleteMultipartUpload, …).
    Created,
    /// `ObjectRemoved:*` (Delete, DeleteMarkerCreated, lifecycle expiry, …).
    Removed,
}

/// One object-level event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Created or removed.
    pub kind: EventKind,
    /// Bucket.
    pub bucket: String,
    /// Object key, decoded.
    pub key: String,
    /// Object size, when reported.
    pub size: Option<u64>,
    /// ETag, when reported (without quotes).
    pub etag: Option<String>,
    /// Version id, when reported.
    pub version_id: Option<String>,
    /// S3's per-key ordering token, when reported.
    pub sequencer: Option<String>,
}

/// A message that is not an S3 event notification.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not JSON, or not shaped like any known notification.
    #[error("not an S3 event notification: {0}")]
    Format(String),
}

#[derive(Deserialize)]
struct Records {
    #[serde(rename = "Records")]
    records: Vec<Record>,
}

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "eventName")]
    event_name: String,
    s3: RecordS3,
}

#[derive(Deserialize)]
struct RecordS3 {
    bucket: NamedBucket,
    object: RecordObject,
}

#[derive(Deserialize)]
struct NamedBucket {
    name: String,
}

#[derive(Deserialize)]
struct RecordObject {
    key: String,
    size: Option<u64>,
    #[serde(rename = "eTag")]
    etag: Option<String>,
    #[serde(rename = "versionId")]
    version_id: Option<String>,
    sequencer: Option<String>,
}

#[derive(Deserialize)]
struct Sns {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Message")]
    message: String,
}

#[derive(Deserialize)]
struct EventBridge {
    #[serde(rename = "detail-type")]
    detail_type: String,
    source: String,
    detail: BridgeDetail,
}

#[derive(Deserialize)]
struct BridgeDetail {
    bucket: NamedBucket,
    object: BridgeObject,
}

#[derive(Deserialize)]
struct BridgeObject {
    key: String,
    size: Option<u64>,
    etag: Option<String>,
    #[serde(rename = "version-id")]
    version_id: Option<String>,
    sequencer: Option<String>,
}

fn kind_of(event_name: &str) -> Option<EventKind> {
    let name = event_name.strip_prefix("s3:").unwrap_or(event_name);
    if name.starts_with("ObjectCreated:") {
        Some(EventKind::Created)
    } else if name.starts_with("ObjectRemoved:") || name.starts_with("LifecycleExpiration:") {
        Some(EventKind::Removed)
    } else {
        None
    }
}

/// Record keys are URL-encoded with `+` for spaces.
fn decode_key(raw: &str) -> Result<String, ParseError> {
    decode_component(raw)
        .map(std::borrow::Cow::into_owned)
        .ok_or_else(|| ParseError::Format(format!("key {raw:?} is not UTF-8 once decoded")))
}

fn unquote(etag: Option<String>) -> Option<String> {
    etag.map(|e| e.trim_matches('"').to_owned()).filter(|e| !e.is_empty())
}

/// Parses one message body into its object events. A test event (`s3:TestEvent`) or an event
/// for something other than an object (bucket-level, replication …) yields no events.
///
/// # Errors
/// [`ParseError`] when the body is not a notification in any known shape.
pub fn parse(body: &str) -> Result<Vec<Event>, ParseError> {
    let value: serde_json::Value = serde_json::from_str(body).map_err(|e| ParseError::Format(e.to_string()))?;
    if let Some(kind @ ("SubscriptionConfirmation" | "UnsubscribeConfirmation")) =
        value.get("Type").and_then(serde_json::Value::as_str)
    {
        // Subscriptions are confirmed by whoever set up the topic; nothing to apply.
        tracing::info!(kind, "ignoring an SNS subscription message");
        return Ok(Vec::new());
    }
    if value.get("Type").and_then(serde_json::Value::as_str) == Some("Notification") {
        let sns: Sns = serde_json::from_value(value).map_err(|e| ParseError::Format(e.to_string()))?;
        return if sns.kind == "Notification" {
            parse(&sns.message)
        } else {
            Ok(Vec::new())
        };
    }
    if value.get("Event").and_then(serde_json::Value::as_str) == Some("s3:TestEvent") {
        return Ok(Vec::new());
    }
    if value.get("Records").is_some() {
        let records: Records = serde_json::from_value(value).map_err(|e| ParseError::Format(e.to_string()))?;
        let mut events = Vec::new();
        for r in records.records {
            let Some(kind) = kind_of(&r.event_name) else { continue };
            events.push(Event {
                kind,
                bucket: r.s3.bucket.name,
                key: decode_key(&r.s3.object.key)?,
                size: r.s3.object.size,
                etag: unquote(r.s3.object.etag),
                version_id: r.s3.object.version_id.filter(|v| !v.is_empty()),
                sequencer: r.s3.object.sequencer,
            });
        }
        return Ok(events);
    }
    if value.get("detail-type").is_some() {
        let eb: EventBridge = serde_json::from_value(value).map_err(|e| ParseError::Format(e.to_string()))?;
        let kind = match (eb.source.as_str(), eb.detail_type.as_str()) {
            ("aws.s3", "Object Created") => EventKind::Created,
            ("aws.s3", "Object Deleted") => EventKind::Removed,
            _ => return Ok(Vec::new()),
        };
        // EventBridge keys are not URL-encoded.
        return Ok(vec![Event {
            kind,
            bucket: eb.detail.bucket.name,
            key: eb.detail.object.key,
            size: eb.detail.object.size,
            etag: unquote(eb.detail.object.etag),
            version_id: eb.detail.object.version_id.filter(|v| !v.is_empty()),
            sequencer: eb.detail.object.sequencer,
        }]);
    }
    Err(ParseError::Format(
        "no Records, SNS Message or EventBridge detail".to_owned(),
    ))
}

/// Orders two sequencers of one key: S3 says to compare them as hex strings after padding the
/// shorter with leading zeros.
#[must_use]
pub fn sequencer_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let width = a.len().max(b.len());
    format!("{a:0>width$}")
        .to_ascii_uppercase()
        .cmp(&format!("{b:0>width$}").to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S3_PUT: &str = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
      "eventTime":"2026-11-26T12:00:00.000Z","eventName":"ObjectCreated:Put",
      "s3":{"s3SchemaVersion":"1.0","configurationId":"c","bucket":{"name":"media","arn":"arn:aws:s3:::media"},
      "object":{"key":"photos/my+cat%3A%7B1%7D.jpg","size":1024,"eTag":"d41d8cd98f00b204e9800998ecf8427e",
      "versionId":"v1","sequencer":"0055AED6DCD90281E5"}}}]}"#;

    #[test]
    fn standard_records() {
        let events = parse(S3_PUT).unwrap();
        assert_eq!(
            events,
            vec![Event {
                kind: EventKind::Created,
                bucket: "media".into(),
                key: "photos/my cat:{1}.jpg".into(),
                size: Some(1024),
                etag: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
                version_id: Some("v1".into()),
                sequencer: Some("0055AED6DCD90281E5".into()),
            }]
        );
    }

    #[test]
    fn removed_and_minio_style_names() {
        let body = r#"{"EventName":"s3:ObjectRemoved:Delete","Key":"b/k","Records":[{"eventName":"s3:ObjectRemoved:Delete",
            "s3":{"bucket":{"name":"b"},"object":{"key":"k","sequencer":"17"}}}]}"#;
        let events = parse(body).unwrap();
        assert_eq!(events[0].kind, EventKind::Removed);
        assert_eq!(events[0].etag, None);
    }

    #[test]
    fn sns_wrapped() {
        let wrapped = serde_json::json!({"Type": "Notification", "MessageId": "m", "Message": S3_PUT}).to_string();
        assert_eq!(parse(&wrapped).unwrap().len(), 1);
    }

    #[test]
    fn sns_subscription_messages_are_ignored() {
        let body = r#"{"Type":"SubscriptionConfirmation","MessageId":"m","Token":"t","SubscribeURL":"https://x"}"#;
        assert!(parse(body).unwrap().is_empty());
    }

    #[test]
    fn eventbridge() {
        let body = r#"{"version":"0","detail-type":"Object Deleted","source":"aws.s3","detail":{
            "bucket":{"name":"media"},"object":{"key":"a b/c","sequencer":"0A"},"reason":"DeleteObject"}}"#;
        let events = parse(body).unwrap();
        assert_eq!((events[0].kind, events[0].key.as_str()), (EventKind::Removed, "a b/c"));
    }

    #[test]
    fn test_events_and_other_kinds_yield_nothing() {
        assert!(
            parse(r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}"#)
                .unwrap()
                .is_empty()
        );
        let other = r#"{"Records":[{"eventName":"ObjectRestore:Completed","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}"#;
        assert!(parse(other).unwrap().is_empty());
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in [
            "",
            "nope",
            "{}",
            r#"{"Records":[{"eventName":"ObjectCreated:Put"}]}"#,
            r#"{"Records":"x"}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sequencers_compare_after_padding() {
        use std::cmp::Ordering::*;
        assert_eq!(sequencer_cmp("0A", "A"), Equal);
        assert_eq!(sequencer_cmp("0055AED6DCD90281E5", "0055AED6DCD90281E6"), Less);
        assert_eq!(sequencer_cmp("FF", "100"), Less);
        assert_eq!(sequencer_cmp("b", "A"), Greater);
    }
}
