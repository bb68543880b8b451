//! CPU scheduling policy of the server's threads (Linux; elsewhere a no-op).
//!
//! With `server.scheduling = "batch"` (the default) the runtime's threads run under
//! `SCHED_BATCH`: they get the same share of the CPU as under the normal policy, but a
//! thread that wakes up does not preempt the one running on that CPU; it waits for that
//! thread's time slice to end or for it to block. A server thread wakes for every
//! network read and every finished disk write, so on a busy machine the normal policy
//! interrupts whatever runs many thousand times a second, including the serial MD5 of a
//! large upload and the clients on the same machine. The thread hashing MD5 for an
//! upload switches back to the normal policy while it does ([`hashing`]): it is the
//! slowest stage of a large PUT and should win the CPU when a batch of bytes arrives.
//!
//! Neither switch needs a privilege. The cost: when the CPUs are saturated, a waking
//! request thread can wait up to a time slice (a few milliseconds) longer for its CPU.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Deserialize;

/// `server.scheduling`: the CPU scheduling policy of the server's threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduling {
    /// `SCHED_BATCH`, but MD5 hashing of uploads at the normal policy (see the module
    /// documentation).
    #[default]
    Batch,
    /// The normal policy (`SCHED_OTHER`) everywhere.
    Normal,
}

/// Whether runtime threads run `SCHED_BATCH` (set once by [`configure`]).
static BATCH: AtomicBool = AtomicBool::new(false);

/// Whether a refusal to switch has been logged.
static WARNED: AtomicBool = AtomicBool::new(false);

/// Chooses the policy of the runtime threads started from now on (see
/// [`on_thread_start`]). Other threads keep the one they inherit (normally
/// `SCHED_OTHER`): the main thread, and the metadata writer, which every write waits for.
pub fn configure(policy: Scheduling) {
    BATCH.store(policy == Scheduling::Batch, Ordering::Relaxed);
}

/// Applies the configured policy to the calling thread: for the runtime's
/// `on_thread_start`. A refusal (a seccomp filter, say) is logged once; the thread then
/// stays at the normal policy.
pub fn on_thread_start() {
    if !BATCH.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = set_current(true)
        && !WARNED.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(error = %e, "cannot switch threads to SCHED_BATCH; they stay at the normal policy");
    }
}

/// Runs `f` (hashing a large upload) at the normal policy, then returns the calling
/// thread to `SCHED_BATCH` if it ran that.
pub fn hashing<T>(f: impl FnOnce() -> T) -> T {
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = set_current(true);
        }
    }
    if !is_batch() || set_current(false).is_err() {
        return f();
    }
    let _restore = Restore;
    f()
}

#[cfg(target_os = "linux")]
fn set_current(batch: bool) -> io::Result<()> {
    let policy = if batch {
        libc::SCHED_BATCH
    } else {
        libc::SCHED_OTHER
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid `sched_param` that outlives the call; pid 0 is the
    // calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, policy, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(target_os = "linux")]
fn is_batch() -> bool {
    // SAFETY: no arguments besides pid 0, the calling thread.
    unsafe { libc::sched_getscheduler(0) == libc::SCHED_BATCH }
}

#[cfg(not(target_os = "linux"))]
fn set_current(_batch: bool) -> io::Result<()> {
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn is_batch() -> bool {
    false
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn current() -> i32 {
        // SAFETY: no arguments besides the calling thread's pid 0.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn hashing_runs_normal_and_returns_to_batch() {
        configure(Scheduling::Batch);
        std::thread::spawn(|| {
            // Whatever the test process inherited, start from the normal policy.
            set_current(false).expect("SCHED_OTHER");
            on_thread_start();
            assert_eq!(
                current(),
                libc::SCHED_BATCH,
                "SCHED_BATCH needs no privilege"
            );
            assert_eq!(hashing(current), libc::SCHED_OTHER);
            assert_eq!(current(), libc::SCHED_BATCH);
        })
        .join()
        .expect("thread");
        // A thread at the normal policy stays there.
        std::thread::spawn(|| {
            set_current(false).expect("SCHED_OTHER");
            assert_eq!(hashing(current), libc::SCHED_OTHER);
            assert_eq!(current(), libc::SCHED_OTHER);
        })
        .join()
        .expect("thread");
    }
}
