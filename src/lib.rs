//! Tarn: a self-hosted data lake server.
//!
//! Module map:
//! - [`admin`]: `tarn admin` user/key/grant commands on the data directory.
//! - [`app`]: builds the server (state, router, listener) and runs it.
//! - [`config`]: settings from defaults, a TOML file and the environment.
//! - [`credentials`]: the root access key (the bootstrap admin's).
//! - [`iam`]: users, groups, access keys (secrets sealed at rest), tokens, grants.
//! - [`authz`]: the one authorization function and the resolution it needs.
//! - [`audit`]: one record per request, batched into the metadata database.
//! - [`s3`]: the S3 protocol: authentication, routing, handlers, XML, errors.
//! - [`meta`]: buckets, objects and uploads in SQLite (one writer, group commit).
//! - [`storage`]: object bytes as immutable blob files, written durably.
//! - [`api`]: the JSON REST API under `/api/v1/`.
//! - [`server`]: the accept loop (TLS, timeouts, graceful shutdown).
//! - [`metrics`]: Prometheus counters and gauges.
//! - [`catalog`]: datasets, governance, crawled schemas and search over the metadata DB.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod admin;
pub mod api;
pub mod app;
pub mod audit;
pub mod authz;
pub mod catalog;
pub mod checkout;
pub mod config;
pub mod credentials;
pub mod iam;
pub mod md5;
pub mod memory;
pub mod meta;
pub mod metrics;
pub mod s3;
pub mod sched;
pub mod scratch;
pub mod server;
pub mod storage;
