//! Shared harness for the integration tests of the `s3cached` binary.
//!
//! Every test binary that needs it says `mod support;` and imports from the module that owns
//! what it needs:
//!
//! - [`seaweed`]: SeaweedFS, the real S3 origin (one [`seaweed::shared`] instance per binary).
//! - [`proxy`]: the binary under test, `s3cached serve`, on free ports.
//! - [`moto`]: moto's S3 + SQS server, for S3 event notifications; its SQS queues.
//! - [`redis`]: Redis and Valkey servers, standalone or as a cluster.
//! - [`clients`]: the AWS SDK for Rust and plain HTTP requests from the test process.
//! - [`cli_tools`]: the aws cli and Python (boto3/botocore) from the test virtualenv.
//! - [`metrics`]: reading s3cached's `/metrics`.
//! - [`events`]: S3 notification records and webhook posts for the `events_*` tests.
//! - [`proxy_s3`]: s3cached over SeaweedFS and origin-vs-cache comparisons for `proxy_s3*`.
//! - [`tls`]: test certificates (a CA and the leaf certificates it signs), made with rcgen.
//! - [`process`]: child processes, their logs, waiting for a server to answer.
//! - [`util`]: free ports, tool lookup, unique names, temporary directories, sync-to-async.
//!
//! The TCP relay that slows an origin down is `s3cached_bench::relay`, the one the bench uses.
//!
//! Tools are found through `$S3CACHED_TEST_VENV/bin`, then `PATH` ([`util::venv_bin`]);
//! `scripts/test.sh` sets both. Everything started here is stopped when its handle drops;
//! child processes cannot outlive the test process (see [`process`] and [`seaweed`]).
#![allow(dead_code)]

pub mod cli_tools;
pub mod clients;
pub mod events;
pub mod metrics;
pub mod moto;
pub mod process;
pub mod proxy;
pub mod proxy_s3;
pub mod redis;
pub mod seaweed;
pub mod tls;
pub mod util;

/// Region every test client signs for.
pub const REGION: &str = "us-east-1";
