//! s3cached: a caching layer in front of Amazon S3.
//!
//! The library holds everything but the command line, one folder per layer, lowest first; a
//! module imports only from its own folder and the layers below it (checked by
//! `tests/layering.rs`, which reads the layers from these folders):
//!
//! 1. [`model`]: plain data and codecs (keys, entries, blocks, ranges, conditions, read
//!    requests, operations, configuration, identities); [`metrics`]: the counters every layer
//!    records into.
//! 2. [`tier`]: where entries are kept (memory, Redis, the two together, the coherence bus);
//!    [`origin`]: the S3 origin client and the raw re-signing forwarder.
//! 3. [`engine`]: the read and write paths over one tier and one origin.
//! 4. [`doors`]: how requests come in and are authorized (the hot path, the s3s front end, the
//!    pass-through route, SigV4, TLS).
//! 5. [`process`]: the server that wires it together, the admin listener, events and warm-up.
//!
//! The `s3cached` binary builds a [`config::ServeConfig`] from flags and runs a
//! [`server::Server`]; both are re-exported here under the paths library users write.

pub mod doors;
pub mod engine;
pub mod metrics;
pub mod model;
pub mod origin;
pub mod process;
pub mod tier;

pub use model::config;
pub use process::server;
