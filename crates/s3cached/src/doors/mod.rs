//! How requests come in: every entrance to the S3 listener, and the one authentication and
//! authorization decision they all take before any cache lookup (DESIGN.md §4 rule 6).
//!
//! - [`hot_path`] answers plain GET and HEAD hits straight from the connection, verifying
//!   SigV4 itself ([`sigv4`]);
//! - [`front`] is the s3s service for the requests s3s parses (GetObject, HeadObject), and
//!   [`pass_through`] the route that forwards everything else;
//! - [`auth`] and [`origin_grants`] decide who may do what; [`host`] reads the bucket of
//!   virtual-hosted requests; [`tls`] serves HTTPS.

pub mod auth;
pub mod front;
pub mod host;
pub mod hot_path;
pub mod origin_grants;
pub mod pass_through;
pub mod sigv4;
pub mod tls;
