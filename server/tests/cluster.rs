//! Queries on a DataFusion Ballista cluster: one `wavelake scheduler` and
//! two `wavelake executor` processes on loopback, reached by a `wavelake
//! serve --cluster` whose threshold sends every query there. Its answers
//! are compared row for row with those of a server without a cluster on
//! the same root: the 22 TPC-H queries and every readable golden table
//! (deletion vectors, column mapping, checkpoints, time travel).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{ADMIN, Server};
use reqwest::StatusCode;
use serde_json::Value;

/// A scheduler and its executors, killed when dropped.
struct TestCluster {
    scheduler: Child,
    executors: Vec<Child>,
    address: String,
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for child in self.executors.iter_mut().chain([&mut self.scheduler]) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a command of the `wavelake` binary and waits for its first line
/// on stdout, which must start with `ready`.
fn spawn_ready(args: &[&str], ready: &str) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wavelake"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the process starts");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(line.starts_with(ready), "unexpected first line {line:?}");
    child
}

impl TestCluster {
    /// A scheduler and `executors` executors serving `root`.
    fn start(root: &Path, executors: usize) -> Self {
        let root = root.to_str().unwrap();
        let address = format!("127.0.0.1:{}", free_port());
        let scheduler = spawn_ready(
            &[
                "scheduler",
                "--listen",
                &address,
                "--root",
                root,
                "--executor-timeout-secs",
                "6",
            ],
            "wavelake scheduler listening on",
        );
        let mut cluster = Self {
            scheduler,
            executors: Vec::new(),
            address,
        };
        for _ in 0..executors {
            cluster.add_executor(root);
        }
        cluster
    }

    fn add_executor(&mut self, root: &str) {
        let listen = format!("127.0.0.1:{}", free_port());
        let control = free_port().to_string();
        let executor = spawn_ready(
            &[
                "executor",
                "--scheduler",
                &self.address,
                "--listen",
                &listen,
                "--control-port",
                &control,
                "--slots",
                "2",
                "--heartbeat-secs",
                "1",
                "--root",
                root,
            ],
            "wavelake executor listening on",
        );
        self.executors.push(executor);
    }
}

/// `server`'s answer to `sql` in `namespace`, rows in a canonical order.
fn answer(server: &Server, sql: &str, namespace: &str) -> (StatusCode, Value, Vec<String>) {
    let (status, body) = server.sql_in(ADMIN, sql, Some(namespace));
    if status != StatusCode::OK {
        return (status, body, Vec::new());
    }
    let mut rows: Vec<String> = body["rows"]
        .as_array()
        .map(|rows| rows.iter().map(Value::to_string).collect())
        .unwrap_or_default();
    rows.sort();
    (status, body["columns"].clone(), rows)
}

/// Copies the golden tables (those the engine reads) under `root/golden`;
/// their names.
fn golden_tables(golden: &Path, root: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for (name, archive) in wavelake_tests::golden_cases::archives(golden) {
        if wavelake_tests::golden_cases::invalid(&name).is_some() {
            continue;
        }
        let table = wavelake_tests::unpack(&archive).join("delta");
        if !table.join("_delta_log").is_dir() {
            continue;
        }
        wavelake_tests::copy_dir(&table, &root.join("golden").join(&name));
        names.push(name);
    }
    names
}

/// The eight TPC-H tables at scale factor 0.01 (written by PyPI
/// `deltalake` from `tpchgen-cli`'s data, once) under `root/tpch`, or
/// `None` when the venv lacks them.
fn tpch_tables(root: &Path) -> Option<()> {
    let python = wavelake_tests::venv_python_with("cluster tpch", "deltalake")?;
    let generator = python.parent().unwrap().join("tpchgen-cli");
    if !generator.exists() {
        eprintln!("SKIPPED the TPC-H part of the cluster test: tpchgen-cli is not in the venv");
        return None;
    }
    let data = wavelake_tests::scratch_dir().join("tpch-cluster-sf0.01");
    let script = wavelake_tests::tests_dir().join("interop/bench_peers.py");
    wavelake_tests::run_python(
        &python,
        script.to_str().unwrap(),
        &["tpch-all", data.to_str().unwrap(), "0.01"],
    );
    wavelake_tests::copy_dir(&data.join("delta"), &root.join("tpch"));
    Some(())
}

fn tpch_queries() -> Vec<(String, String)> {
    let dir: PathBuf = wavelake_tests::tests_dir().join("benches/tpch");
    (1..=22)
        .map(|n| {
            let sql = std::fs::read_to_string(dir.join(format!("q{n}.sql"))).unwrap();
            (format!("q{n}"), sql)
        })
        .collect()
}

#[test]
fn cluster_answers_equal_single_node_answers() {
    let Some(golden) = wavelake_tests::golden_or_skip("cluster_answers_equal_single_node_answers")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    std::fs::create_dir_all(&root).unwrap();
    let names = golden_tables(&golden, &root);
    let tpch = tpch_tables(&root).is_some();

    let cluster = TestCluster::start(&root, 2);
    let single_dir = dir.path().join("single");
    let cluster_dir = dir.path().join("clustered");
    std::fs::create_dir_all(&single_dir).unwrap();
    std::fs::create_dir_all(&cluster_dir).unwrap();
    let config = format!("root = {:?}\n", root.to_str().unwrap());
    let single = Server::start(&single_dir, &config);
    let clustered = Server::start(
        &cluster_dir,
        &format!(
            "{config}[cluster]\nscheduler = {:?}\nmin_scan_bytes = 0\n",
            cluster.address
        ),
    );

    // A table with deletion vectors written by Wavelake itself.
    for sql in [
        "CREATE TABLE golden.written (id BIGINT, name STRING) \
         TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')",
        "INSERT INTO golden.written SELECT value AS id, CAST(value AS STRING) AS name FROM range(1000)",
        "INSERT INTO golden.written SELECT value AS id, 'again' AS name FROM range(500)",
        "DELETE FROM golden.written WHERE id % 7 = 3",
    ] {
        let (status, body) = single.sql(ADMIN, sql);
        assert_eq!(status, StatusCode::OK, "{sql}: {body}");
    }

    let mut queries: Vec<(String, String, &str)> = names
        .iter()
        .map(|name| (name.clone(), format!("SELECT * FROM \"{name}\""), "golden"))
        .collect();
    queries.push((
        "written, deletion vectors".into(),
        "SELECT name, count(*) AS n, sum(id) AS s FROM written GROUP BY name".into(),
        "golden",
    ));
    queries.push((
        "time travel".into(),
        "SELECT * FROM \"time-travel-start-start20-start40\" VERSION AS OF 1".into(),
        "golden",
    ));
    queries.push((
        "a join of two tables".into(),
        "SELECT a.id, b.name FROM written a JOIN written b ON a.id = b.id + 1 WHERE a.id < 100"
            .into(),
        "golden",
    ));
    if tpch {
        for (name, sql) in tpch_queries() {
            queries.push((format!("TPC-H {name}"), sql, "tpch"));
        }
    }

    let mut compared = 0;
    let mut rows_compared = 0;
    for (name, sql, namespace) in &queries {
        let (status, columns, rows) = answer(&single, sql, namespace);
        if status != StatusCode::OK {
            eprintln!("{name}: not compared, the single node answered {status}");
            continue;
        }
        let (cluster_status, cluster_columns, cluster_rows) = answer(&clustered, sql, namespace);
        assert_eq!(
            cluster_status,
            StatusCode::OK,
            "{name}: the cluster failed: {cluster_columns}"
        );
        assert_eq!(cluster_columns, columns, "{name}: columns differ");
        assert_eq!(cluster_rows.len(), rows.len(), "{name}: row counts differ");
        assert_eq!(cluster_rows, rows, "{name}: rows differ");
        compared += 1;
        rows_compared += rows.len();
    }
    eprintln!(
        "cluster: {compared} of {} queries compared, {rows_compared} rows equal",
        queries.len()
    );
    assert!(
        compared >= names.len() * 3 / 4,
        "only {compared} queries compared"
    );
    let metrics = clustered
        .client
        .get(format!("{}/metrics", clustered.url))
        .bearer_auth(ADMIN)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let on_cluster: f64 = metrics
        .lines()
        .find(|l| l.starts_with("wavelake_queries_total{placement=\"cluster\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_default();
    assert!(
        on_cluster >= compared as f64,
        "{on_cluster} queries ran on the cluster"
    );
}
