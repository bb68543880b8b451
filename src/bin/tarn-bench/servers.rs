//! Starting the servers under test (Tarn, s3s-fs) on temporary data directories, and
//! reading their memory use from /proc.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{Endpoint, Ep, Result};

pub const ACCESS_KEY: &str = "benchaccess";
pub const SECRET_KEY: &str = "benchsecret-not-a-secret";

/// A server under test.
pub struct Target {
    pub name: String,
    pub ep: Ep,
    /// Process id for RSS readings; `None` for an external endpoint.
    pub pid: Option<u32>,
    /// Does the server fsync acknowledged writes? (reported as-is).
    pub fsync: &'static str,
    /// Kept so the process is killed when the target is dropped.
    child: Option<Child>,
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `tarn serve` on a fresh data directory. Buckets default to the `transformed`
/// zone (plain S3 overwrite and delete semantics) instead of the write-once `raw` zone.
pub fn start_tarn(bin: &Path, data_dir: &Path) -> Result<Target> {
    std::fs::create_dir_all(data_dir)?;
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("TARN_ROOT_ACCESS_KEY", ACCESS_KEY)
        .env("TARN_ROOT_SECRET_KEY", SECRET_KEY)
        .env("TARN__ZONES__DEFAULT_ZONE", "transformed")
        .env("TARN_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix("tarn listening on ")
        .ok_or_else(|| format!("unexpected first line from tarn: {line:?}"))?
        .to_string();
    let pid = child.id();
    Ok(Target {
        name: "tarn".into(),
        ep: Arc::new(Endpoint::new(&url, ACCESS_KEY, SECRET_KEY, "us-east-1")?),
        pid: Some(pid),
        fsync: "yes (blob file + directory + SQLite WAL, before the reply)",
        child: Some(child),
    })
}

/// Starts `s3s-fs` on a fresh root directory and waits until it accepts connections.
pub fn start_s3s_fs(bin: &Path, root: &Path) -> Result<Target> {
    std::fs::create_dir_all(root)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .arg(root)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let pid = child.id();
    let target = Target {
        name: "s3s-fs".into(),
        ep: Arc::new(Endpoint::new(
            &format!("http://127.0.0.1:{port}"),
            ACCESS_KEY,
            SECRET_KEY,
            "us-east-1",
        )?),
        pid: Some(pid),
        fsync: "no (never calls fsync)",
        child: Some(child),
    };
    wait_listening(&target.ep, Duration::from_secs(20))?;
    Ok(target)
}

/// An already running S3 endpoint.
pub fn external(name: &str, url: &str, access: &str, secret: &str, region: &str) -> Result<Target> {
    Ok(Target {
        name: name.to_string(),
        ep: Arc::new(Endpoint::new(url, access, secret, region)?),
        pid: None,
        fsync: "unknown (external endpoint)",
        child: None,
    })
}

fn wait_listening(ep: &Endpoint, limit: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        if std::net::TcpStream::connect(ep.addr).is_ok() {
            return Ok(());
        }
        if start.elapsed() > limit {
            return Err(format!("nothing listens on {} after {limit:?}", ep.addr).into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Resets the kernel's peak-RSS counter of `pid` (VmHWM), so that the next reading is the
/// peak of what follows. Needs to own the process (we started it) and Linux >= 4.0.
pub fn reset_peak_rss(pid: Option<u32>) -> bool {
    match pid {
        Some(pid) => std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok(),
        None => false,
    }
}

/// Peak resident set size (VmHWM) of `pid`, in MiB.
pub fn peak_rss_mib(pid: Option<u32>) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Finds an executable by name on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}
