//! Prometheus metrics: request counts, latencies and bytes by operation, in-flight
//! requests, plus gauges read at scrape time (objects per bucket, free disk).
//!
//! Hand-rolled rather than a metrics crate: a handful of counters behind one mutex,
//! rendered in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct OpStats {
    by_status: BTreeMap<u16, u64>,
    latency_buckets: [u64; BUCKETS.len()],
    latency_sum: f64,
    latency_count: u64,
    bytes_in: u64,
    bytes_out: u64,
}

/// The process-wide metrics registry.
#[derive(Default)]
pub struct Metrics {
    ops: Mutex<BTreeMap<&'static str, OpStats>>,
    in_flight: AtomicI64,
}

/// Decrements the in-flight gauge when a request ends (however it ends).
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Per-bucket figures gathered at scrape time.
pub struct BucketGauge {
    pub bucket: String,
    pub zone: String,
    pub objects: u64,
    pub bytes: u64,
}

impl Metrics {
    /// Marks a request as started.
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// Records a finished request.
    pub fn record(
        &self,
        op: &'static str,
        status: u16,
        elapsed: Duration,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        let Ok(mut ops) = self.ops.lock() else {
            return;
        };
        let s = ops.entry(op).or_default();
        *s.by_status.entry(status).or_default() += 1;
        let secs = elapsed.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                s.latency_buckets[i] += 1;
            }
        }
        s.latency_sum += secs;
        s.latency_count += 1;
        s.bytes_in += bytes_in;
        s.bytes_out += bytes_out;
    }

    /// Requests finished so far (all operations).
    pub fn requests_total(&self) -> u64 {
        match self.ops.lock() {
            Ok(ops) => ops.values().map(|s| s.latency_count).sum(),
            Err(p) => p.into_inner().values().map(|s| s.latency_count).sum(),
        }
    }

    /// Renders everything in the Prometheus text format.
    pub fn render(
        &self,
        buckets: &[BucketGauge],
        free_disk: Option<u64>,
        audit_queue: usize,
    ) -> String {
        let mut out = String::with_capacity(4096);
        let ops = match self.ops.lock() {
            Ok(o) => o,
            Err(p) => p.into_inner(),
        };
        let _ = writeln!(
            out,
            "# HELP tarn_requests_total Requests by operation and status."
        );
        let _ = writeln!(out, "# TYPE tarn_requests_total counter");
        for (op, s) in ops.iter() {
            for (status, n) in &s.by_status {
                let _ = writeln!(
                    out,
                    "tarn_requests_total{{op=\"{op}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP tarn_request_duration_seconds Request latency by operation."
        );
        let _ = writeln!(out, "# TYPE tarn_request_duration_seconds histogram");
        for (op, s) in ops.iter() {
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "tarn_request_duration_seconds_bucket{{op=\"{op}\",le=\"{le}\"}} {}",
                    s.latency_buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "tarn_request_duration_seconds_bucket{{op=\"{op}\",le=\"+Inf\"}} {}",
                s.latency_count
            );
            let _ = writeln!(
                out,
                "tarn_request_duration_seconds_sum{{op=\"{op}\"}} {}",
                s.latency_sum
            );
            let _ = writeln!(
                out,
                "tarn_request_duration_seconds_count{{op=\"{op}\"}} {}",
                s.latency_count
            );
        }
        let _ = writeln!(
            out,
            "# HELP tarn_bytes_in_total Request body bytes received, by operation."
        );
        let _ = writeln!(out, "# TYPE tarn_bytes_in_total counter");
        for (op, s) in ops.iter() {
            let _ = writeln!(out, "tarn_bytes_in_total{{op=\"{op}\"}} {}", s.bytes_in);
        }
        let _ = writeln!(
            out,
            "# HELP tarn_bytes_out_total Response body bytes sent, by operation."
        );
        let _ = writeln!(out, "# TYPE tarn_bytes_out_total counter");
        for (op, s) in ops.iter() {
            let _ = writeln!(out, "tarn_bytes_out_total{{op=\"{op}\"}} {}", s.bytes_out);
        }
        drop(ops);
        let _ = writeln!(out, "# HELP tarn_requests_in_flight Requests being served.");
        let _ = writeln!(out, "# TYPE tarn_requests_in_flight gauge");
        let _ = writeln!(
            out,
            "tarn_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# HELP tarn_bucket_objects Objects per bucket.");
        let _ = writeln!(out, "# TYPE tarn_bucket_objects gauge");
        for b in buckets {
            let _ = writeln!(
                out,
                "tarn_bucket_objects{{bucket=\"{}\"}} {}",
                b.bucket, b.objects
            );
        }
        let _ = writeln!(out, "# HELP tarn_bucket_bytes Bytes stored per bucket.");
        let _ = writeln!(out, "# TYPE tarn_bucket_bytes gauge");
        for b in buckets {
            let _ = writeln!(
                out,
                "tarn_bucket_bytes{{bucket=\"{}\"}} {}",
                b.bucket, b.bytes
            );
        }
        let mut zones: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for b in buckets {
            let z = zones.entry(b.zone.as_str()).or_default();
            z.0 += b.objects;
            z.1 += b.bytes;
        }
        let _ = writeln!(out, "# HELP tarn_zone_objects Objects per zone.");
        let _ = writeln!(out, "# TYPE tarn_zone_objects gauge");
        for (zone, (objects, _)) in &zones {
            let _ = writeln!(out, "tarn_zone_objects{{zone=\"{zone}\"}} {objects}");
        }
        let _ = writeln!(out, "# HELP tarn_zone_bytes Bytes stored per zone.");
        let _ = writeln!(out, "# TYPE tarn_zone_bytes gauge");
        for (zone, (_, bytes)) in &zones {
            let _ = writeln!(out, "tarn_zone_bytes{{zone=\"{zone}\"}} {bytes}");
        }
        let _ = writeln!(
            out,
            "# HELP tarn_audit_queue_depth Audit records waiting to be written."
        );
        let _ = writeln!(out, "# TYPE tarn_audit_queue_depth gauge");
        let _ = writeln!(out, "tarn_audit_queue_depth {audit_queue}");
        if let Some(free) = free_disk {
            let _ = writeln!(
                out,
                "# HELP tarn_disk_free_bytes Free space in the data directory's filesystem."
            );
            let _ = writeln!(out, "# TYPE tarn_disk_free_bytes gauge");
            let _ = writeln!(out, "tarn_disk_free_bytes {free}");
        }
        out
    }
}

/// Free bytes available to this process in the filesystem holding `path`.
pub fn free_bytes(path: &std::path::Path) -> Option<u64> {
    let st = rustix::fs::statvfs(path).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        {
            let _g = m.start();
            m.record("GetObject", 200, Duration::from_millis(3), 0, 10);
            m.record("GetObject", 404, Duration::from_millis(30), 0, 0);
        }
        let text = m.render(
            &[BucketGauge {
                bucket: "landing".into(),
                zone: "raw".into(),
                objects: 2,
                bytes: 5,
            }],
            Some(1),
            3,
        );
        assert!(text.contains("tarn_requests_total{op=\"GetObject\",status=\"200\"} 1"));
        assert!(
            text.contains("tarn_request_duration_seconds_bucket{op=\"GetObject\",le=\"0.005\"} 1")
        );
        assert!(text.contains("tarn_request_duration_seconds_count{op=\"GetObject\"} 2"));
        assert!(text.contains("tarn_bytes_out_total{op=\"GetObject\"} 10"));
        assert!(text.contains("tarn_requests_in_flight 0"));
        assert!(text.contains("tarn_bucket_objects{bucket=\"landing\"} 2"));
        assert!(text.contains("tarn_zone_bytes{zone=\"raw\"} 5"));
        assert!(text.contains("tarn_disk_free_bytes 1"));
        assert!(text.contains("tarn_audit_queue_depth 3"));
    }
}
