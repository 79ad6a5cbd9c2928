//! s3cached: a caching layer in front of Amazon S3.
//!
//! The library holds everything but the command line: the S3 front end ([`front`]), the hot path
//! that answers plain memory hits before it ([`hot_path`], with [`sigv4`]), the read and
//! write paths ([`engine`]), the cache tiers ([`tier`]), the origin client ([`origin`]), metrics
//! ([`metrics`]) and the HTTP server that ties them together ([`server`], with [`tls`] for
//! HTTPS). The `s3cached` binary
//! builds a [`config::ServeConfig`] from flags and runs a [`server::Server`].

pub mod admin;
pub mod auth;
pub mod block;
pub mod conditional;
pub mod config;
pub mod engine;
pub mod entry;
pub mod events;
pub mod form_decode;
pub mod front;
pub mod hit_headers;
pub mod host;
pub mod hot_path;
pub mod identities;
pub mod key;
pub mod metrics;
pub mod operation;
pub mod origin;
pub mod origin_grants;
pub mod pass_through;
pub mod range;
pub mod read_request;
pub mod server;
pub mod sigv4;
pub mod size;
pub mod tier;
pub mod tls;
pub mod warm;
pub mod write_guard;
