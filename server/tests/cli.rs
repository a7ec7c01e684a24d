//! The `wavelake sql` command end to end: output formats and errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::Command;

use wavelake_tests::{golden_or_skip, read_parquet_dir, unpack};

fn wavelake(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wavelake"))
        .args(args)
        .output()
        .expect("runs")
}

#[test]
fn counts_rows_of_a_table_with_deletion_vectors_as_csv_and_json() {
    let Some(root) = golden_or_skip("cli") else {
        return;
    };
    let unpacked = unpack(&root.join("kernel-golden/dv-partitioned-with-checkpoint.tar.zst"));
    let expected: usize = read_parquet_dir(&unpacked.join("expected"))
        .iter()
        .map(|b| b.num_rows())
        .sum();
    let table = format!("t={}", unpacked.join("delta").display());
    let out = wavelake(&[
        "sql",
        "SELECT count(*) AS n FROM t",
        "--table",
        &table,
        "--format",
        "csv",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("n\n{expected}\n")
    );

    let out = wavelake(&["sql", "SELECT * FROM t", "-t", &table, "-f", "json"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        expected
    );

    let out = wavelake(&["sql", "SELECT * FROM t", "-t", &table, "-f", "parquet"]);
    assert!(out.status.success());
    assert_eq!(&out.stdout[..4], b"PAR1");
}

#[test]
fn errors_go_to_stderr_with_a_failing_exit() {
    let dir = std::env::temp_dir().join("wavelake-cli-no-table");
    std::fs::create_dir_all(&dir).expect("dir");
    let table = format!("t={}", dir.display());
    let out = wavelake(&["sql", "SELECT 1", "--table", &table]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no Delta table"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = wavelake(&["sql", "SELEC nonsense"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error:"));
    assert!(out.stdout.is_empty());

    let out = wavelake(&["sql", "SELECT 1", "--table", "missing-equals"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAME=LOCATION"));
}
