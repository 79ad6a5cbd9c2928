//! S3 event notifications: keeping the cache fresh when writers go to the origin directly.
//!
//! [`parse`] reads the standard notification format (and its SNS and EventBridge wrappings);
//! [`apply`] turns events into hydration or invalidation, in order and at most once per
//! change; [`webhook`] accepts events over HTTP (MinIO, Ceph RGW …); [`sqs`] polls the queue
//! AWS S3 delivers to.

pub mod apply;
pub mod parse;
pub mod sqs;
pub mod webhook;
