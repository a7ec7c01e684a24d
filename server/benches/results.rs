//! Large results: one query of `WAVELAKE_RESULT_ROWS` rows (default
//! 2,000,000; three columns) fetched as JSON, CSV and Arrow IPC from a
//! fresh server each, for time to the first and the last byte and the
//! server's peak RSS. With `WAVELAKE_BASELINE_BIN` (another build of
//! `wavelake`, e.g. of an earlier commit) both binaries are measured in the
//! same run and the ratios printed.
//!
//! `cargo bench -p wavelake-server --bench results` (`scripts/bench.sh results`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::Read;
use std::process::Child;
use std::time::{Duration, Instant};

mod common;
use common::ADMIN;

struct Measured {
    first_byte: Duration,
    last_byte: Duration,
    bytes: usize,
    peak_rss_mb: f64,
}

fn start(binary: &str, dir: &std::path::Path) -> (Child, String) {
    let config = dir.join("wavelake.toml");
    std::fs::write(
        &config,
        format!(
            "root = {:?}\n[limits]\nmax_result_rows = 100000000\nquery_timeout_secs = 3600\n",
            dir.join("lake").to_str().unwrap()
        ),
    )
    .unwrap();
    common::start_server(binary, &["--config".as_ref(), config.as_os_str()], "error")
}

fn measure(binary: &str, accept: &str, rows: u64) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = start(binary, dir.path());
    let sql = format!(
        "SELECT value AS id, 'row ' || value AS label, value * 0.5 AS x FROM range(0, {rows})"
    );
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(3600))
        .build()
        .unwrap();
    let started = Instant::now();
    let mut response = client
        .post(format!("{url}/api/v1/sql"))
        .bearer_auth(ADMIN)
        .header("accept", accept)
        .json(&serde_json::json!({ "sql": sql }))
        .send()
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let mut buffer = vec![0u8; 1 << 16];
    let mut first_byte = None;
    let mut bytes = 0;
    loop {
        let n = response.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        first_byte.get_or_insert_with(|| started.elapsed());
        bytes += n;
    }
    let last_byte = started.elapsed();
    let peak = common::peak_rss_mb(child.id());
    child.kill().ok();
    child.wait().ok();
    Measured {
        first_byte: first_byte.unwrap_or(last_byte),
        last_byte,
        bytes,
        peak_rss_mb: peak,
    }
}

fn main() {
    let rows: u64 = std::env::var("WAVELAKE_RESULT_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let current = env!("CARGO_BIN_EXE_wavelake").to_owned();
    let baseline = std::env::var("WAVELAKE_BASELINE_BIN").ok();
    println!("## Large results: {rows} rows, 3 columns, one query a fresh server");
    println!();
    println!("| format | binary | first byte | last byte | body | server peak RSS |");
    println!("|---|---|---|---|---|---|");
    for (name, accept) in [
        ("JSON", "application/json"),
        ("CSV", "text/csv"),
        ("Arrow IPC", "application/vnd.apache.arrow.stream"),
    ] {
        let now = measure(&current, accept, rows);
        let row = |label: &str, m: &Measured| {
            println!(
                "| {name} | {label} | {:.0} ms | {:.0} ms | {:.0} MB | {:.0} MB |",
                m.first_byte.as_secs_f64() * 1e3,
                m.last_byte.as_secs_f64() * 1e3,
                m.bytes as f64 / 1e6,
                m.peak_rss_mb
            );
        };
        row("this build", &now);
        if let Some(baseline) = &baseline {
            let before = measure(baseline, accept, rows);
            row("baseline", &before);
            println!(
                "| {name} | ratio | {:.2}x | {:.2}x | | {:.2}x |",
                now.first_byte.as_secs_f64() / before.first_byte.as_secs_f64(),
                now.last_byte.as_secs_f64() / before.last_byte.as_secs_f64(),
                now.peak_rss_mb / before.peak_rss_mb
            );
        }
    }
}
