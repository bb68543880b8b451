//! Black-box tests: each test starts the real `tarn` binary on a free port with its
//! own data directory (see `helpers::spawn_app`).

mod helpers;

mod catalog;
