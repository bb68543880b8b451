//! Black-box tests: each test starts the real `tarn` binary on a free port with its
//! own data directory (see `helpers::spawn_app`).

// helpers.rs is shared with the S3 suite and copied verbatim from main.
#[allow(clippy::collapsible_if, clippy::while_let_loop)]
mod helpers;

mod catalog;
