//! Distributed queries: the 22 TPC-H queries at `WAVELAKE_TPCH_SF` (1 by
//! default; tables written by PyPI `deltalake` from `tpchgen-cli`'s data,
//! once, into the scratch dir) through `wavelake serve` on its own, and
//! through the same server sending every query to a Ballista cluster of 1
//! and then 2 executors on this machine, in one run. Answers are checked
//! equal to the single node's; per query the median of
//! `WAVELAKE_BENCH_RUNS` (3) warm runs, the cluster's overhead as a ratio,
//! the geometric means, and the scheduler's and executors' peak RSS.
//!
//! Then the size of the scan stage sent to executors, per data file, for
//! tables of 1,000 to 100,000 files (`-- plan` measures only that).
//!
//! `cargo bench --profile release -p wavelake-server --bench distributed`
//! (`scripts/bench.sh distributed`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

const BINARY: &str = env!("CARGO_BIN_EXE_wavelake");

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_ready(args: &[&str]) -> Child {
    let mut child = Command::new(BINARY)
        .args(args)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("wavelake "),
        "unexpected first line {line:?}"
    );
    child
}

/// The single node, or the same server sending queries to a cluster.
struct Server(common::SqlServer);

impl Server {
    fn start(dir: &Path, root: &Path, cluster: Option<&str>) -> Self {
        let config = dir.join(format!(
            "wavelake-{}.toml",
            cluster.map_or("single", |_| "cluster")
        ));
        let mut text = format!(
            "root = {:?}\n[limits]\nquery_timeout_secs = 3600\nquery_memory_bytes = 8589934592\n\
             server_memory_bytes = 8589934592\n",
            root.to_str().unwrap()
        );
        if let Some(address) = cluster {
            text.push_str(&format!(
                "[cluster]\nscheduler = {address:?}\nmin_scan_bytes = 0\n"
            ));
        }
        Self(common::SqlServer::start(BINARY, &config, &text))
    }

    /// The query's rows (sorted) and how long it took.
    fn run(&self, sql: &str) -> (Vec<String>, Duration) {
        let started = Instant::now();
        let rows = self.0.rows(sql, "delta");
        let took = started.elapsed();
        let mut rows: Vec<String> = rows.iter().map(Value::to_string).collect();
        rows.sort();
        (rows, took)
    }
}

/// A scheduler and `executors` executors on loopback serving `root`.
struct Cluster {
    processes: Vec<Child>,
    address: String,
}

impl Cluster {
    fn start(root: &Path, executors: usize) -> Self {
        let root = root.to_str().unwrap();
        let address = format!("127.0.0.1:{}", free_port());
        let mut processes = vec![spawn_ready(&[
            "scheduler",
            "--listen",
            &address,
            "--root",
            root,
        ])];
        for _ in 0..executors {
            let listen = format!("127.0.0.1:{}", free_port());
            let control = free_port().to_string();
            processes.push(spawn_ready(&[
                "executor",
                "--scheduler",
                &address,
                "--listen",
                &listen,
                "--control-port",
                &control,
                "--root",
                root,
            ]));
        }
        Self { processes, address }
    }

    /// Peak RSS of the scheduler and of the largest executor, in MB.
    fn peak_rss(&self) -> (f64, f64) {
        let scheduler = common::peak_rss_mb(self.processes[0].id());
        let executor = self.processes[1..]
            .iter()
            .map(|p| common::peak_rss_mb(p.id()))
            .fold(0.0, f64::max);
        (scheduler, executor)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for process in &mut self.processes {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

/// A Delta log of `files` data files (partitioned by day, with
/// statistics, a fifth of them with a deletion vector) under `dir`: the
/// files themselves are never read, only planned.
fn synthetic_table(dir: &Path, files: usize) {
    let log = dir.join("_delta_log");
    std::fs::create_dir_all(&log).unwrap();
    let schema = r#"{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}},{"name":"name","type":"string","nullable":true,"metadata":{}},{"name":"day","type":"string","nullable":true,"metadata":{}}]}"#;
    let mut lines = vec![
        json!({"protocol": {"minReaderVersion": 3, "minWriterVersion": 7,
            "readerFeatures": ["deletionVectors"], "writerFeatures": ["deletionVectors"]}})
        .to_string(),
        json!({"metaData": {"id": "bench", "format": {"provider": "parquet", "options": {}},
            "schemaString": schema, "partitionColumns": ["day"],
            "configuration": {"delta.enableDeletionVectors": "true"}}})
        .to_string(),
    ];
    for i in 0..files {
        let day = format!("2026-{:02}-{:02}", 1 + i % 12, 1 + i % 28);
        let stats = json!({"numRecords": 100000, "minValues": {"id": i * 100000, "name": "a"},
            "maxValues": {"id": i * 100000 + 99999, "name": "z"}, "nullCount": {"id": 0, "name": 0}});
        let mut add = json!({"path": format!("day={day}/part-{i:06}-5f4f6a53-0d0a-4d6e-9c1f-0123456789ab.c000.snappy.parquet"),
            "partitionValues": {"day": day}, "size": 12_345_678, "modificationTime": 1_764_000_000_000u64,
            "dataChange": true, "stats": stats.to_string()});
        if i % 5 == 0 {
            add["deletionVector"] = json!({"storageType": "u", "pathOrInlineDv": "ab^-aqEH.-t@S}K{vb[*k^",
                "offset": 1, "sizeInBytes": 36, "cardinality": 10});
        }
        lines.push(json!({"add": add}).to_string());
    }
    std::fs::write(log.join("00000000000000000000.json"), lines.join("\n")).unwrap();
}

/// Bytes of the scan stage Ballista sends an executor, per data file, for a
/// table of `files` files: the physical plan of `SELECT * FROM t`, encoded
/// with Wavelake's codec around Ballista's.
fn plan_bytes_per_file(files: usize) -> (f64, Duration) {
    use std::sync::Arc;
    use wavelake_engine::distributed::DeltaPhysicalCodec;
    let dir = tempfile::tempdir().unwrap();
    synthetic_table(dir.path(), files);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let scheduler = wavelake_write::session();
        let storage = wavelake_engine::storage::open(dir.path().to_str().unwrap()).unwrap();
        let snapshot = wavelake_engine::Table::new(storage.clone())
            .unwrap()
            .snapshot()
            .await
            .unwrap();
        // As the scheduler plans it: deletion vectors left to the executors.
        let provider = wavelake_engine::scan::DeltaTableProvider::new(snapshot, storage)
            .unwrap()
            .with_deferred_deletion_vectors();
        scheduler
            .context()
            .register_table("t", Arc::new(provider))
            .unwrap();
        let plan = scheduler
            .context()
            .sql("SELECT * FROM t")
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let codec = DeltaPhysicalCodec::new(Arc::new(
            ballista_core::serde::BallistaPhysicalExtensionCodec::default(),
        ));
        let started = Instant::now();
        let bytes =
            datafusion_proto::bytes::physical_plan_to_bytes_with_extension_codec(plan, &codec)
                .unwrap();
        (bytes.len() as f64 / files as f64, started.elapsed())
    })
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn geomean(values: &[f64]) -> f64 {
    (values.iter().map(|v| v.ln()).sum::<f64>() / values.len() as f64).exp()
}

fn main() {
    // `-- plan`: only the plan sizes.
    if !std::env::args().skip(1).any(|a| a == "plan") {
        tpch();
    }
    plan_sizes();
}

fn tpch() {
    let scale = env_or("WAVELAKE_TPCH_SF", "1");
    let runs: usize = env_or("WAVELAKE_BENCH_RUNS", "3").parse().unwrap();
    let data = common::tpch_data(&scale);
    let dir = tempfile::tempdir().unwrap();
    let queries_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/benches/tpch");
    let queries: Vec<(String, String)> = (1..=22)
        .map(|n| {
            let sql = std::fs::read_to_string(queries_dir.join(format!("q{n}.sql"))).unwrap();
            (format!("Q{n}"), sql)
        })
        .collect();

    let timed = |server: &Server, expected: Option<&[Vec<String>]>| {
        let mut answers = Vec::new();
        let mut times = Vec::new();
        for (i, (name, sql)) in queries.iter().enumerate() {
            let (rows, _) = server.run(sql); // warm-up
            if let Some(expected) = expected {
                assert_eq!(rows, expected[i], "{name}: the cluster's answer differs");
            }
            times.push(median((0..runs).map(|_| server.run(sql).1).collect()));
            answers.push(rows);
        }
        (answers, times)
    };

    let single = Server::start(dir.path(), &data, None);
    let (answers, single_times) = timed(&single, None);
    drop(single);

    let mut clusters = Vec::new();
    for executors in [1, 2] {
        let cluster = Cluster::start(&data, executors);
        let server = Server::start(dir.path(), &data, Some(&cluster.address));
        let (_, times) = timed(&server, Some(&answers));
        clusters.push((executors, times, cluster.peak_rss()));
    }

    println!(
        "## Distributed: TPC-H SF{scale}, single node against a Ballista cluster on this machine \
         (median of {runs} warm runs, answers equal)\n"
    );
    println!("| query | single node | 1 executor | ratio | 2 executors | ratio |");
    println!("|---|---|---|---|---|---|");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut ratios = [Vec::new(), Vec::new()];
    for (i, (name, _)) in queries.iter().enumerate() {
        let base = ms(single_times[i]);
        let mut line = format!("| {name} | {base:.0} ms |");
        for (c, (_, times, _)) in clusters.iter().enumerate() {
            let t = ms(times[i]);
            ratios[c].push(t / base);
            line.push_str(&format!(" {t:.0} ms | {:.2}x |", t / base));
        }
        println!("{line}");
    }
    println!(
        "| geometric mean | | | {:.2}x | | {:.2}x |\n",
        geomean(&ratios[0]),
        geomean(&ratios[1])
    );
    for (executors, _, (scheduler, executor)) in &clusters {
        println!(
            "- {executors} executor(s): scheduler peak RSS {scheduler:.0} MB, largest executor {executor:.0} MB"
        );
    }
}

fn plan_sizes() {
    println!(
        "\n## The scan stage on the wire, by table size (gRPC messages are 16 MiB by default)\n"
    );
    println!("| data files | bytes per file | stage plan | encoded in |");
    println!("|---|---|---|---|");
    for files in [1_000, 10_000, 100_000] {
        let (per_file, took) = plan_bytes_per_file(files);
        println!(
            "| {files} | {per_file:.0} | {:.1} MB | {:.0} ms |",
            per_file * files as f64 / 1e6,
            took.as_secs_f64() * 1000.0
        );
    }
}
