//! Crash safety: a `wavelake` writer killed (SIGKILL) at any moment of an
//! INSERT leaves the table readable at its last committed version, with
//! exactly the rows of the commits that made it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::{Command, Stdio};
use std::time::Instant;

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
