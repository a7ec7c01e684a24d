//! Crash safety: a `wavelake` writer killed (SIGKILL) at any moment of an
//! INSERT leaves the table readable at its last committed version, with
//! exactly the rows of the commits that made it; a server killed at random
//! moments of mixed writes, again and again, restarts with every
//! acknowledged change and nothing half-done.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use wavelake_tests::markers::{Change, Marker, check, env_or, rows_by_marker};

use crate::common::{ADMIN, Server, local_config};

const ROWS_PER_INSERT: u64 = 200_000;

fn wavelake(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wavelake"))
        .args(args)
        .output()
        .expect("runs")
}

fn insert_sql() -> String {
    format!(
        "INSERT INTO t SELECT value AS id, 'row ' || value AS name FROM range(0, {ROWS_PER_INSERT})"
    )
}

/// Rows in the table and its number of commits, as Wavelake reads them.
fn table_state(root: &str) -> (u64, u64) {
    let out = wavelake(&[
        "sql",
        "SELECT (SELECT count(*) FROM t) AS n, (SELECT count(*) FROM delta_history('t')) AS v",
        "--root",
        root,
        "-f",
        "csv",
    ]);
    assert!(
        out.status.success(),
        "the table must stay readable: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1).expect("a row");
    let (rows, commits) = line.split_once(',').expect("two columns");
    (rows.parse().unwrap(), commits.parse().unwrap())
}

#[test]
fn a_writer_killed_mid_commit_loses_nothing_committed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap().to_owned();
    let created = wavelake(&[
        "sql",
        "CREATE TABLE t (id BIGINT NOT NULL, name STRING)",
        "--root",
        &root,
    ]);
    assert!(created.status.success());
    let started = Instant::now();
    let full = wavelake(&["sql", &insert_sql(), "--root", &root]);
    assert!(full.status.success());
    let full_run = started.elapsed();
    let mut killed_before_commit = 0;
    for step in 0..12u32 {
        let (rows_before, commits_before) = table_state(&root);
        assert_eq!(rows_before, ROWS_PER_INSERT * (commits_before - 1));
        // Kill points spread over the whole run, from start-up to commit.
        let delay = full_run.mul_f64(f64::from(step) / 10.0);
        let mut child = Command::new(env!("CARGO_BIN_EXE_wavelake"))
            .args(["sql", &insert_sql(), "--root", &root])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawns");
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().expect("exits");
        let (rows, commits) = table_state(&root);
        assert_eq!(
            rows,
            ROWS_PER_INSERT * (commits - 1),
            "rows are exactly those of the commits (step {step})"
        );
        assert!(
            commits == commits_before || commits == commits_before + 1,
            "at most the one commit in flight"
        );
        if commits == commits_before {
            killed_before_commit += 1;
        }
        eprintln!("step {step}: killed after {delay:?} ({status}); {commits} commits, {rows} rows");
    }
    assert!(
        killed_before_commit > 0,
        "some kills landed before the commit"
    );
    let (_, commits) = table_state(&root);
    let log = dir.path().join("t/_delta_log");
    let json_commits = std::fs::read_dir(&log)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.len() == 25 && name.ends_with(".json")
        })
        .count() as u64;
    assert_eq!(json_commits, commits, "versions are contiguous from 0");
}

/// One client's statements against the server until it stops answering:
/// INSERTs of new markers, DELETEs and UPDATEs of its own earlier ones.
fn client(url: String, client: i64, seed: u64, model: Arc<Mutex<BTreeMap<i64, Marker>>>) {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut mine: Vec<i64> = Vec::new();
    for i in 0.. {
        let marker = seed as i64 * 1_000_000 + client * 10_000 + i;
        let change = match rng.random_range(0..10) {
            0..6 => Change::Insert(marker),
            6..8 if !mine.is_empty() => Change::Delete(mine[rng.random_range(0..mine.len())]),
            8..10 if !mine.is_empty() => Change::Update(mine[rng.random_range(0..mine.len())]),
            _ => Change::Insert(marker),
        };
        if let Change::Insert(marker) = change {
            mine.push(marker);
            model.lock().unwrap().entry(marker).or_default();
        }
        let sent = http
            .post(format!("{url}/api/v1/sql"))
            .bearer_auth(ADMIN)
            .json(&serde_json::json!({"sql": change.sql("acme.events")}))
            .send();
        let acknowledged = match sent {
            Ok(response) if response.status() == StatusCode::OK => true,
            Ok(response) if response.status() == StatusCode::CONFLICT => false,
            Ok(response) => panic!(
                "{change:?}: {} {}",
                response.status(),
                response.text().unwrap_or_default()
            ),
            // The server was killed: the outcome is unknown.
            Err(_) => {
                change.record(&mut model.lock().unwrap(), false);
                return;
            }
        };
        change.record(&mut model.lock().unwrap(), acknowledged);
    }
}

/// The table under `root` as a fresh reader sees it.
async fn events(root: &std::path::Path) -> BTreeMap<i64, Vec<i64>> {
    let engine = wavelake_tests::engine_at(&root.join("acme")).await;
    rows_by_marker(&engine, "events").await
}

#[test]
fn a_server_killed_again_and_again_keeps_every_acknowledged_change() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let rounds = env_or("WAVELAKE_CRASH_ROUNDS", 4);
    let seed = env_or("WAVELAKE_CRASH_SEED", 20261202);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let model: Arc<Mutex<BTreeMap<i64, Marker>>> = Arc::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut statements = 0;
    for round in 0..rounds {
        let mut server = Server::start(dir.path(), &local_config(&root));
        if round == 0 {
            let (status, body) = server.sql(
                ADMIN,
                "CREATE TABLE acme.events (marker BIGINT NOT NULL, part BIGINT NOT NULL)",
            );
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let clients: Vec<_> = (0..3)
            .map(|c| {
                let (url, model) = (server.url.clone(), model.clone());
                let seed = round * 100 + c as u64 + seed;
                std::thread::spawn(move || client(url, c, seed, model))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.random_range(300..1500)));
        server.kill();
        for c in clients {
            c.join().unwrap();
        }
        let rows = runtime.block_on(events(&root));
        let model = model.lock().unwrap();
        check(&model, &rows, &format!("kill -9 number {}", round + 1));
        statements = model.len();
    }
    let model = model.lock().unwrap();
    let acknowledged = model.values().filter(|m| m.inserted).count();
    eprintln!(
        "kill -9 (seed {seed}): {rounds} kills during mixed writes by 3 clients, {statements} \
         markers written, {acknowledged} inserts acknowledged, every one kept"
    );
    assert!(acknowledged > 0);
    runtime.block_on(wavelake_tests::assert_oracles_agree(
        "a_server_killed_again_and_again_keeps_every_acknowledged_change",
        &[root.join("acme/events")],
    ));
}
