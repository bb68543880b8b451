//! Giving memory that malloc holds free back to the system once a burst of requests is over.
//!
//! glibc's malloc returns freed memory by itself only from the top of its heaps. After a
//! burst of small requests (object cache entries, SQLite pages, audit records, freed in no
//! particular order) most of what was freed lies between live allocations and stays
//! resident: 40 MiB of a 90 MiB server after the benchmark's small-object rounds, which
//! then counted against every later transfer (a 1 GiB PUT peaked at 108 MiB).
//! `malloc_trim(0)` releases those pages (90 -> 49 MiB). It is not free: it holds each
//! arena's lock while it walks the free lists (about 2 ms after a burst), and the pages it
//! released fault back in as soon as they are reused. Trimming every 2 s under load cost
//! 7-9% of small-request throughput on this VM, and so did trimming after every quiet
//! second (in the benchmark each server rests a second while the other is measured). The
//! server trims once the requests have stopped (or slowed to a trickle) for two seconds,
//! and under steady load at most once a minute.

use std::time::{Duration, Instant};

use crate::metrics::Metrics;

/// How often the request count is looked at.
const TICK: Duration = Duration::from_secs(1);
/// At most this many requests finished in a tick: the server is quiet.
const QUIET: u64 = 50;
/// Quiet ticks in a row after which the server trims: a pause of a second between
/// bursts does not count (it would fault the released pages straight back in).
const QUIET_TICKS: u32 = 2;
/// Under steady load, trim at most this often.
const UNDER_LOAD: Duration = Duration::from_secs(60);

/// When to trim, given what each tick saw.
#[derive(Debug)]
pub struct Policy {
    last_total: u64,
    /// A busy tick (more than [`QUIET`] requests) came since the last trim: before
    /// one, or with a trickle of requests, there is little to give back.
    busy: bool,
    /// Quiet ticks in a row.
    quiet: u32,
    last_trim: Instant,
}

impl Policy {
    /// A policy starting at `now` with `total` requests finished.
    pub fn new(total: u64, now: Instant) -> Policy {
        Policy {
            last_total: total,
            busy: false,
            quiet: 0,
            last_trim: now,
        }
    }

    /// Whether to trim now, `total` requests having finished so far.
    pub fn tick(&mut self, total: u64, now: Instant) -> bool {
        let finished = total.saturating_sub(self.last_total);
        self.last_total = total;
        self.busy |= finished > QUIET;
        self.quiet = if finished <= QUIET {
            self.quiet.saturating_add(1)
        } else {
            0
        };
        let due = self.busy
            && (self.quiet >= QUIET_TICKS || now.duration_since(self.last_trim) >= UNDER_LOAD);
        if due {
            self.busy = false;
            self.last_trim = now;
        }
        due
    }
}

/// Runs forever: trims malloc's free memory when [`Policy`] says so.
pub async fn return_free_memory(metrics: std::sync::Arc<Metrics>) {
    let mut policy = Policy::new(metrics.requests_total(), Instant::now());
    loop {
        tokio::time::sleep(TICK).await;
        if policy.tick(metrics.requests_total(), Instant::now()) {
            let started = Instant::now();
            let released = tokio::task::spawn_blocking(trim).await.unwrap_or(false);
            tracing::debug!(
                released,
                elapsed_us = started.elapsed().as_micros() as u64,
                "returned free memory to the system"
            );
        }
    }
}

/// Releases free heap pages; whether any were released.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() -> bool {
    // SAFETY: malloc_trim only gives free pages back; it takes malloc's own locks, so
    // it is safe to call while other threads allocate.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Other allocators and C libraries: nothing to do here.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_after_a_burst_and_rarely_under_load() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut p = Policy::new(0, t0);
        // Idle from the start: nothing was freed, nothing to do.
        assert!(!p.tick(0, at(1)));
        // A burst: no trim while it lasts.
        assert!(!p.tick(10_000, at(2)));
        assert!(!p.tick(20_000, at(3)));
        // A pause of one tick between bursts: no trim.
        assert!(!p.tick(20_000, at(4)));
        assert!(!p.tick(30_000, at(5)));
        // It stops: one trim after two quiet ticks, then none while idle.
        assert!(!p.tick(30_000, at(6)));
        assert!(p.tick(30_000, at(7)));
        assert!(!p.tick(30_000, at(8)));
        assert!(!p.tick(30_000, at(9)));
        // A trickle is no burst: no trim for it.
        assert!(!p.tick(30_010, at(10)));
        assert!(!p.tick(30_020, at(11)));
        // Steady load: a trim once a minute.
        let mut total = 30_020;
        let mut trims = 0;
        for s in 12..(12 + 150) {
            total += 5_000;
            trims += usize::from(p.tick(total, at(s)));
        }
        assert_eq!(trims, 2);
    }
}
