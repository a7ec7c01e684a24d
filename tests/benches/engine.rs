//! SqlSession benchmarks against the peers, measured in the same run (this
//! machine is noisy: compare ratios, not seconds).
//!
//! `cargo bench -p wavelake-tests --bench engine -- [snapshot]`
//! (`scripts/bench.sh` sets up the peers and runs it):
//!
//! - `snapshot`: loading the latest snapshot (with its file list) of
//!   `kernel-data/300k-add-files-100-col-partitioned`, against PyPI
//!   `deltalake`; then over HTTP from localhost, natively and through the
//!   npm package (wasm) in Node.
//!
//! TPC-H (all 22 queries, against DuckDB, deltalake and datafusion) is
//! the server's `tpch` benchmark.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use wavelake_engine::Table;
use wavelake_engine::storage::{HttpStorage, ObjectStoreStorage, StorageRef};
use wavelake_tests::http_server::TestHttpServer;
use wavelake_tests::{golden_root, run_python, scratch_dir, unpack_into, venv_python_with};

const RUNS: usize = 5;

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Peak resident memory of this process so far (Linux), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn peers(python: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    run_python(python, "bench_peers.py", args)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn seconds_of(results: &[serde_json::Value], peer: &str, what: &str) -> f64 {
    results
        .iter()
        .find(|r| r["peer"] == peer && r["what"] == what)
        .and_then(|r| r["seconds"].as_f64())
        .unwrap_or(f64::NAN)
}

/// Loads the latest snapshot from a new storage of `open` once to warm up,
/// then RUNS times: the active files and the median seconds.
async fn median_load(open: impl Fn() -> StorageRef) -> (usize, f64) {
    let load = || async {
        let snapshot = Table::new(open()).unwrap().snapshot().await.unwrap();
        snapshot.files().len()
    };
    let files = load().await;
    let mut samples = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        assert_eq!(load().await, files);
        samples.push(start.elapsed().as_secs_f64());
    }
    (files, median(samples))
}

async fn snapshot_bench(python: &Path) {
    let Some(golden) = golden_root() else {
        println!("SKIPPED snapshot: ../shared/golden is not beside the project");
        return;
    };
    let table = unpack_into(
        &golden.join("kernel-data/300k-add-files-100-col-partitioned.tar.zst"),
        &scratch_dir().join("kernel-data"),
    );
    let location = table.to_str().unwrap().to_owned();
    let (files, ours) =
        median_load(|| Arc::new(ObjectStoreStorage::open(&location).unwrap()) as StorageRef).await;
    let peer = peers(python, &["snapshot", &location, &RUNS.to_string()]);
    let theirs = seconds_of(&peer, "deltalake", "snapshot");
    let their_files = peer[0]["files"].as_u64().unwrap_or(0);
    let their_rss = peer[0]["peak_rss_bytes"].as_u64().unwrap_or(0);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!("## Snapshot load: 300k-add-files-100-col-partitioned ({files} active files)");
    println!();
    println!("| reader | median of {RUNS} | peak RSS | ratio to deltalake |");
    println!("|---|---|---|---|");
    println!(
        "| Wavelake | {ours:.3} s | {:.0} MiB | {:.2}x |",
        mib(peak_rss().unwrap_or(0)),
        ours / theirs
    );
    println!(
        "| deltalake (PyPI) | {theirs:.3} s | {:.0} MiB | 1.00x |",
        mib(their_rss)
    );
    println!();
    assert_eq!(
        their_files as usize, files,
        "both readers must see the same active files"
    );
    http_snapshot_bench(&table, files).await;
}

/// The same snapshot load over HTTP from localhost (a static host: no
/// listing), natively and through the npm package (wasm) in Node.
async fn http_snapshot_bench(table: &Path, files: usize) {
    let server = TestHttpServer::start(table.parent().unwrap())
        .await
        .unwrap();
    let url = format!(
        "{}/{}",
        server.url,
        table.file_name().unwrap().to_str().unwrap()
    );
    let (http_files, native) =
        median_load(|| Arc::new(HttpStorage::new(&url).unwrap()) as StorageRef).await;
    assert_eq!(http_files, files);
    println!("### Over HTTP from localhost (no listing)");
    println!();
    println!("| reader | median of {RUNS} | ratio to native |");
    println!("|---|---|---|");
    println!("| Wavelake native | {native:.3} s | 1.00x |");
    let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pkg");
    if !package.join("dist/wavelake_bg.wasm").exists() {
        println!();
        println!("SKIPPED wasm in Node: pkg/dist is not built (scripts/build-pkg.sh)");
        return;
    }
    // The first run (module compilation, cold JIT) is left out, as the
    // native warm-up above is.
    let output = std::process::Command::new("node")
        .arg(package.join("bench/snapshot.mjs"))
        .arg(&url)
        .arg((RUNS + 1).to_string())
        .output()
        .expect("node runs");
    assert!(
        output.status.success(),
        "pkg/bench/snapshot.mjs failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let runs: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(runs.len(), RUNS + 1, "one line per run");
    for run in &runs {
        assert_eq!(
            run["files"].as_u64(),
            Some(files as u64),
            "wasm sees every file"
        );
    }
    let wasm = median(
        runs[1..]
            .iter()
            .filter_map(|r| r["seconds"].as_f64())
            .collect(),
    );
    println!(
        "| Wavelake wasm in Node (npm package) | {wasm:.3} s | {:.2}x |",
        wasm / native
    );
    println!();
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let all = args.is_empty();
    let Some(python) = venv_python_with("benchmarks", "deltalake") else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        if all || args.iter().any(|a| a == "snapshot") {
            snapshot_bench(&python).await;
        }
    });
}
