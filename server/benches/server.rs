//! Server benchmarks, each against a baseline measured in the same run
//! (this machine is noisy: compare the ratios):
//!
//! - Delta Sharing `query` responses per second on a 10,000-file table,
//!   against `/health` requests per second (the HTTP floor);
//! - 16 concurrent readers of signed file URLs (1 MiB ranges): throughput
//!   and p99 latency, against the same ranges read straight from disk;
//! - upload ingest: a Parquet file of `WAVELAKE_BENCH_ROWS` rows (default
//!   2 million) appended through the API, against PyPI `deltalake` writing
//!   the same file's rows.
//!
//! `cargo bench -p wavelake-server --bench server` (`scripts/bench.sh server`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{Value, json};

mod common;
use common::ADMIN;

fn start(root: &std::path::Path) -> (std::process::Child, String) {
    common::start_server(
        env!("CARGO_BIN_EXE_wavelake"),
        &["--root".as_ref(), root.as_os_str()],
        "warn",
    )
}

fn sql(client: &Client, url: &str, statement: &str) -> Value {
    let response = client
        .post(format!("{url}/api/v1/sql"))
        .bearer_auth(ADMIN)
        .json(&json!({"sql": statement}))
        .send()
        .unwrap();
    assert!(
        response.status().is_success(),
        "{statement}: {}",
        response.text().unwrap()
    );
    response.json().unwrap()
}

/// Requests per second of `request` over about `seconds`.
fn rate(seconds: f64, mut request: impl FnMut()) -> (f64, usize) {
    request();
    let start = Instant::now();
    let mut count = 0;
    while start.elapsed().as_secs_f64() < seconds {
        request();
        count += 1;
    }
    (count as f64 / start.elapsed().as_secs_f64(), count)
}

fn percentile(mut samples: Vec<f64>, p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)]
}

fn main() {
    let dir = wavelake_tests::scratch_dir().join("server-bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let root = dir.join("lake");
    let (mut server, url) = start(&root);
    let client = Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap();

    // A 10,000-file table: 1 kB target files.
    let started = Instant::now();
    sql(
        &client,
        &url,
        "CREATE TABLE bench.many TBLPROPERTIES ('delta.targetFileSize' = '1kb') AS \
         SELECT value AS id, value % 97 AS bucket FROM range(0, 640000)",
    );
    let described: Value = client
        .get(format!("{url}/api/v1/tables/bench/many"))
        .bearer_auth(ADMIN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let files = described["files"].as_u64().unwrap();
    eprintln!(
        "wrote {files} files in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for statement in [
        "CREATE SHARE bench",
        "ALTER SHARE bench ADD TABLE bench.many",
    ] {
        sql(&client, &url, statement);
    }
    let query_url = format!("{url}/delta-sharing/shares/bench/schemas/bench/tables/many/query");
    let mut response_bytes = 0;
    let (queries_per_second, queries) = rate(10.0, || {
        let body = client
            .post(&query_url)
            .bearer_auth(ADMIN)
            .json(&json!({}))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        response_bytes = body.len();
    });
    let (health_per_second, _) = rate(3.0, || {
        client.get(format!("{url}/health")).send().unwrap();
    });

    // Signed URL readers: the largest file of a 64 MB table, 1 MiB ranges.
    sql(
        &client,
        &url,
        "CREATE TABLE bench.big AS SELECT value AS id, sha256(CAST(value AS VARCHAR)) AS h FROM range(0, 800000)",
    );
    sql(&client, &url, "ALTER SHARE bench ADD TABLE bench.big");
    let answer = client
        .post(format!(
            "{url}/delta-sharing/shares/bench/schemas/bench/tables/big/query"
        ))
        .bearer_auth(ADMIN)
        .json(&json!({}))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let file: Value = serde_json::from_str(answer.lines().nth(2).unwrap()).unwrap();
    let file_url = file["file"]["url"].as_str().unwrap().to_owned();
    let size = file["file"]["size"].as_u64().unwrap();
    let local = wavelake_tests::files_under(&root.join("bench/big"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    const RANGE: u64 = 1 << 20;
    let readers = 16;
    let per_reader = 40;
    let run_readers = |read: &(dyn Fn(u64) -> usize + Sync)| -> (f64, f64) {
        let start = Instant::now();
        let latencies: Vec<f64> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..readers)
                .map(|reader| {
                    scope.spawn(move || {
                        (0..per_reader)
                            .map(|i| {
                                let offset = ((reader * per_reader + i) as u64 * RANGE * 7)
                                    % size.saturating_sub(RANGE).max(1);
                                let t = Instant::now();
                                assert_eq!(read(offset), RANGE.min(size) as usize);
                                t.elapsed().as_secs_f64()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        let bytes = (readers * per_reader) as f64 * RANGE.min(size) as f64;
        (
            bytes / start.elapsed().as_secs_f64() / 1e6,
            percentile(latencies, 0.99) * 1000.0,
        )
    };
    let http = Client::new();
    let (http_mb_s, http_p99) = run_readers(&|offset| {
        http.get(&file_url)
            .header(
                "range",
                format!("bytes={offset}-{}", offset + RANGE.min(size) - 1),
            )
            .send()
            .unwrap()
            .bytes()
            .unwrap()
            .len()
    });
    let (disk_mb_s, disk_p99) = run_readers(&|offset| {
        let mut f = std::fs::File::open(&local).unwrap();
        f.seek(SeekFrom::Start(offset)).unwrap();
        let mut buffer = vec![0u8; RANGE.min(size) as usize];
        f.read_exact(&mut buffer).unwrap();
        buffer.len()
    });

    // Upload ingest against deltalake writing the same rows.
    let rows: u64 = std::env::var("WAVELAKE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    sql(
        &client,
        &url,
        "CREATE TABLE bench.ingest (id BIGINT, name STRING, value DOUBLE)",
    );
    let parquet_path = dir.join("upload.parquet");
    let python = wavelake_tests::venv_python_with("server benchmarks", "deltalake");
    if let Some(python) = &python {
        wavelake_tests::run_python(
            python,
            "bench_peers.py",
            &[
                "upload-data",
                parquet_path.to_str().unwrap(),
                &rows.to_string(),
            ],
        );
    }
    let upload = std::fs::read(&parquet_path).ok();
    let mut upload_rows_per_second = f64::NAN;
    if let Some(upload) = upload {
        let started = Instant::now();
        let response = client
            .post(format!(
                "{url}/api/v1/tables/bench/ingest/upload?format=parquet"
            ))
            .bearer_auth(ADMIN)
            .body(upload)
            .send()
            .unwrap();
        assert!(
            response.status().is_success(),
            "{}",
            response.text().unwrap()
        );
        upload_rows_per_second = rows as f64 / started.elapsed().as_secs_f64();
    }
    let peer_rows_per_second = python
        .as_ref()
        .map(|python| {
            let out = wavelake_tests::run_python(
                python,
                "bench_peers.py",
                &[
                    "write-parquet",
                    parquet_path.to_str().unwrap(),
                    dir.join("peer").to_str().unwrap(),
                ],
            );
            let result: Value = out
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .next_back()
                .unwrap_or(Value::Null);
            rows as f64 / result["seconds"].as_f64().unwrap_or(f64::NAN)
        })
        .unwrap_or(f64::NAN);
    let _ = server.kill();
    let _ = server.wait();

    println!("## Server: same run, baselines measured alongside\n");
    println!("| measure | Wavelake server | baseline | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| Delta Sharing query of a {files}-file table ({response_bytes} bytes each) | {queries_per_second:.1} responses/s ({queries} in 10 s) | /health: {health_per_second:.0} req/s | {:.4} |",
        queries_per_second / health_per_second
    );
    println!(
        "| 16 readers of a signed file URL, 1 MiB ranges: throughput | {http_mb_s:.0} MB/s | local disk: {disk_mb_s:.0} MB/s | {:.2} |",
        http_mb_s / disk_mb_s
    );
    println!(
        "| same, p99 latency | {http_p99:.1} ms | local disk: {disk_p99:.1} ms | {:.2} |",
        http_p99 / disk_p99
    );
    println!(
        "| upload of a {rows}-row Parquet file: rows/s | {upload_rows_per_second:.0} | deltalake write_deltalake: {peer_rows_per_second:.0} | {:.2} |",
        upload_rows_per_second / peer_rows_per_second
    );
}
