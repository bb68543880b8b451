//! What this machine can do at all, measured by the same tool: a minimal hyper handler
//! over loopback (the HTTP ceiling), sequential write + fsync, page-cache reads,
//! small-file create + fsync, and MD5 on one core.

use std::convert::Infallible;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;

use crate::client::Result;

/// Runs the minimal server in this process (the hidden `--minimal-server` mode): a hyper
/// handler that answers every request with `size` bytes (the small-object size), on tokio's default multi-thread runtime
/// like Tarn. Prints its address on stdout.
pub fn minimal_server(size: usize) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?);
        let body = Bytes::from(vec![b'x'; size]);
        loop {
            let (tcp, _) = listener.accept().await?;
            tcp.set_nodelay(true)?;
            let body = body.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let b = body.clone();
                    async move { Ok::<_, Infallible>(hyper::Response::new(Full::new(b))) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    })
}

/// The minimal server as a child process (killed on drop).
pub struct MinimalServer {
    pub url: String,
    child: Child,
}

impl MinimalServer {
    pub fn start(size: usize) -> Result<MinimalServer> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--minimal-server", "--small-size", &size.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut out = child.stdout.take().ok_or("no stdout")?;
        let mut buf = [0u8; 64];
        let n = out.read(&mut buf)?;
        let addr = std::str::from_utf8(&buf[..n])?.trim().to_string();
        Ok(MinimalServer {
            url: format!("http://{addr}"),
            child,
        })
    }
}

impl Drop for MinimalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `mib` MiB sequentially in 1 MiB writes, then fsyncs: MiB/s including the fsync.
/// Then reads the file back from the page cache: MiB/s. The file is removed.
pub fn disk_write_read(dir: &Path, mib: usize) -> Result<(f64, f64)> {
    let path = dir.join("limit-seq.bin");
    let chunk = vec![0xA5u8; 1 << 20];
    let start = Instant::now();
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    for _ in 0..mib {
        f.write_all(&chunk)?;
    }
    f.sync_all()?;
    let write = mib as f64 / start.elapsed().as_secs_f64();
    drop(f);
    let mut buf = vec![0u8; 256 << 10];
    let start = Instant::now();
    let mut f = File::open(&path)?;
    let mut total = 0usize;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n;
    }
    let read = total as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64();
    fs::remove_file(&path)?;
    Ok((write, read))
}

/// Like the write half of [`disk_write_read`], but starting the writeback of every 8 MiB
/// as soon as it is written (`sync_file_range`) and waiting for the window before, so
/// the disk works while the writer does: the ceiling for a server that streams a body
/// to disk and fsyncs it. A plain write-then-fsync lets dirty pages pile up until the
/// kernel throttles the writer, which on some machines is several times slower.
pub fn disk_write_behind(dir: &Path, mib: usize) -> Result<f64> {
    use std::os::fd::AsRawFd;
    const WINDOW: u64 = 8 << 20;
    let path = dir.join("limit-seq-wb.bin");
    let chunk = vec![0x5Au8; 1 << 20];
    let start = Instant::now();
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let (mut written, mut started, mut waited) = (0u64, 0u64, 0u64);
    let sync = |f: &File, off: u64, len: u64, flags: u32| -> std::io::Result<()> {
        // SAFETY: plain syscall on a descriptor borrowed for the call.
        let rc = unsafe { libc::sync_file_range(f.as_raw_fd(), off as i64, len as i64, flags) };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    for _ in 0..mib {
        f.write_all(&chunk)?;
        written += chunk.len() as u64;
        if written - started >= WINDOW {
            sync(&f, started, written - started, libc::SYNC_FILE_RANGE_WRITE)?;
            if started > waited {
                let all = libc::SYNC_FILE_RANGE_WAIT_BEFORE
                    | libc::SYNC_FILE_RANGE_WRITE
                    | libc::SYNC_FILE_RANGE_WAIT_AFTER;
                sync(&f, waited, started - waited, all)?;
            }
            waited = started;
            started = written;
        }
    }
    f.sync_all()?;
    let rate = mib as f64 / start.elapsed().as_secs_f64();
    drop(f);
    fs::remove_file(&path)?;
    Ok(rate)
}

/// MD5 over `mib` MiB in memory on one thread (MiB/s), with Tarn's implementation. A
/// single PUT's ETag is the MD5 of its bytes, which cannot be split across cores, so
/// this is the ceiling of one large upload (its other work runs on other threads).
pub fn md5_one_core(mib: usize) -> f64 {
    let block: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let start = Instant::now();
    let mut h = tarn::md5::Md5::new();
    for _ in 0..mib {
        h.update(&block);
    }
    std::hint::black_box(h.finalize());
    mib as f64 / start.elapsed().as_secs_f64()
}

/// Creates `count` 4 KiB files, each written and fsynced (file, then its directory, as a
/// durable store must), from `threads` threads at once: files/s.
pub fn small_files(dir: &Path, count: usize, threads: usize, size: usize) -> Result<f64> {
    let d = dir.join(format!("limit-small-{threads}"));
    fs::create_dir_all(&d)?;
    let data = vec![7u8; size];
    let next = std::sync::atomic::AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let mut handles = Vec::new();
        for _ in 0..threads {
            handles.push(s.spawn(|| -> std::io::Result<()> {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= count {
                        return Ok(());
                    }
                    let mut f = File::create(d.join(format!("f{i}")))?;
                    f.write_all(&data)?;
                    f.sync_all()?;
                    File::open(&d)?.sync_all()?;
                }
            }));
        }
        for h in handles {
            h.join().map_err(|_| "thread panicked")??;
        }
        Ok(())
    })?;
    let rate = count as f64 / start.elapsed().as_secs_f64();
    fs::remove_dir_all(&d)?;
    Ok(rate)
}
