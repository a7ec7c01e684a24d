//! The `wavelake sql` command end to end: output formats and errors.

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
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error [SQL_ERROR]: "), "{stderr}");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());

    let out = wavelake(&["sql", "SELECT 1", "--table", "missing-equals"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAME=LOCATION"));
}

fn ok(args: &[&str]) -> String {
    let out = wavelake(args);
    assert!(
        out.status.success(),
        "wavelake {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_table_lives_its_whole_life_through_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let root = root.to_str().unwrap();
    let table = format!("{root}/t");
    ok(&[
        "sql",
        "CREATE TABLE t (id BIGINT NOT NULL, name STRING, day DATE) PARTITIONED BY (day)",
        "--root",
        root,
    ]);
    for i in 0..3 {
        ok(&[
            "sql",
            &format!("INSERT INTO t VALUES ({i}, 'n{i}', DATE '2024-01-01')"),
            "--root",
            root,
        ]);
    }
    ok(&[
        "sql",
        "UPDATE t SET name = 'x' WHERE id = 1",
        "--table",
        &format!("t={table}"),
    ]);
    let optimized = ok(&["optimize", &table]);
    assert!(optimized.contains("rewritten into 1 files"), "{optimized}");
    let checkpoint = ok(&["checkpoint", &table]);
    assert!(
        checkpoint.contains("checkpoint of version 5"),
        "{checkpoint}"
    );
    let refused = wavelake(&["vacuum", &table, "--retain-hours", "0"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("retention"));
    let dry = ok(&[
        "vacuum",
        &table,
        "--retain-hours",
        "0",
        "--force",
        "--dry-run",
    ]);
    assert!(dry.contains("would delete 4 files"), "{dry}");
    let restored = ok(&["restore", &table, "--version", "2"]);
    assert!(restored.contains("restored version 2"), "{restored}");
    assert_eq!(
        ok(&[
            "sql",
            "SELECT id, name FROM t ORDER BY id",
            "--root",
            root,
            "-f",
            "csv"
        ]),
        "id,name\n0,n0\n1,n1\n"
    );
    let bad = wavelake(&["sql", "DELETE FROM t WHERE nope = 1", "--root", root]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nope"));
}
