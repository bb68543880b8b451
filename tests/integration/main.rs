//! Black-box tests of the S3 API and of the benchmark tool: each test starts the real
//! `tarn` binary on a free port with its own data directory (see `helpers::spawn_app`).

mod helpers;
mod keys_prop;

mod auth;
mod authz;
mod bench;
mod buckets;
mod catalog;
mod checkout;
mod chunked;
mod copy;
mod edge;
mod listing;
mod memory;
mod multipart;
mod objects;
mod ops;
mod post;
mod probes;
mod reads;
mod robustness;
mod tagging;
