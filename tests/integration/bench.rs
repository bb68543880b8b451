//! The benchmark tool (`tarn-bench`) end to end, on tiny sizes: it starts `tarn`, runs
//! every workload group (each checks what it reads back and fails on a wrong status,
//! ETag or body) and writes one JSON line per round plus a summary per workload.

use std::collections::BTreeSet;
use std::process::Command;

#[test]
fn every_workload_runs_and_reports() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("bench.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_tarn-bench"))
        .args(["--tarn-bin", env!("CARGO_BIN_EXE_tarn"), "--no-peer"])
        .args(["--rounds", "2", "--secs", "0.05", "--conc", "1,4"])
        .args([
            "--small-keys",
            "40",
            "--head-keys",
            "40",
            "--list-keys",
            "150",
        ])
        .args(["--list-walks", "1", "--large-mib", "10", "--part-mib", "5"])
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run tarn-bench");
    assert!(
        out.status.success(),
        "tarn-bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&json).expect("JSON lines");
    let mut rounds = BTreeSet::new();
    let mut summaries = BTreeSet::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let workload = v["workload"].as_str().expect("workload").to_string();
        if v["summary"] == true {
            summaries.insert(workload);
        } else {
            assert!(v["value"].as_f64().is_some_and(|x| x > 0.0), "{line}");
            rounds.insert((workload, v["round"].as_u64().expect("round")));
        }
    }
    for w in [
        "put_small_c1",
        "put_small_c4",
        "get_small_c1",
        "get_small_c4",
        "http_minimal_c4",
        "head_40_c16",
        "delete_objects_40",
        "list_v2_1000_per_page",
        "list_v2_delimiter_walk",
        "put_large",
        "get_large",
        "multipart_put",
        "disk_write_fsync",
        "md5_one_core",
        "small_file_fsync_t16",
    ] {
        for r in 0..2 {
            assert!(
                rounds.contains(&(w.to_string(), r)),
                "{w} round {r}: {rounds:?}"
            );
        }
        assert!(summaries.contains(w), "no summary of {w}: {summaries:?}");
    }
}
