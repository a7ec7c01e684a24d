//! Interop with the reference writer: PyPI `deltalake` writes random tables
//! (random schemas and types, partitions, appends, overwrites, deletes,
//! updates, schema evolution, compaction, checkpoints), records the rows it
//! reads at every version, and Wavelake must read the same rows there.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use wavelake_engine::SqlSession;
use wavelake_engine::storage::ObjectStoreStorage;
use wavelake_tests::{
    canonical_rows, column_names, read_parquet_file, run_python, scratch_dir, venv_python_with,
};

#[derive(Debug, Deserialize)]
struct WrittenTable {
    name: String,
    operations: Vec<String>,
    versions: Vec<i64>,
}

/// Tables and seeds: enough histories to hit every operation many times.
const TABLES: &str = "40";
const SEED: &str = "20261121";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_written_by_deltalake_read_the_same_at_every_version() {
    let test = "tables_written_by_deltalake_read_the_same_at_every_version";
    let Some(python) = venv_python_with(test, "deltalake") else {
        return;
    };
    let out = scratch_dir().join("interop-deltalake");
    let summary = run_python(
        &python,
        "deltalake_tables.py",
        &[out.to_str().unwrap(), SEED, TABLES],
    );
    eprintln!("{}", summary.trim());
    let manifest: Vec<WrittenTable> =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for table in &manifest {
        let root = out.join(&table.name);
        let engine = wavelake_write::session();
        let storage = ObjectStoreStorage::open(root.join("delta").to_str().unwrap()).unwrap();
        if let Err(e) = engine.register("t", Arc::new(storage)).await {
            failures.push(format!("{}: register: {e}", table.name));
            continue;
        }
        for version in &table.versions {
            checked += 1;
            if let Err(why) = check_version(&engine, &root, *version).await {
                failures.push(format!(
                    "{} v{version} ({:?}): {why}",
                    table.name, table.operations
                ));
            }
        }
    }
    for failure in &failures {
        eprintln!("FAILED {failure}");
    }
    eprintln!(
        "deltalake interop: {checked} versions of {} tables",
        manifest.len()
    );
    assert!(checked >= 150, "expected many versions, got {checked}");
    assert!(failures.is_empty(), "{} versions differ", failures.len());
}

async fn check_version(engine: &SqlSession, root: &Path, version: i64) -> Result<(), String> {
    let expected = read_parquet_file(&root.join(format!("expected/v{version}.parquet")));
    let mut columns = column_names(&expected);
    let actual = engine
        .query(&format!("SELECT * FROM t VERSION AS OF {version}"))
        .await
        .map_err(|e| e.to_string())?;
    let mut actual_columns = column_names(&actual);
    if actual.is_empty() {
        actual_columns = engine
            .sql(&format!("SELECT * FROM t VERSION AS OF {version}"))
            .await
            .map_err(|e| e.to_string())?
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
    }
    columns.sort();
    actual_columns.sort();
    if columns != actual_columns {
        return Err(format!("columns {actual_columns:?}, expected {columns:?}"));
    }
    let want = canonical_rows(&expected, &columns)?;
    let got = canonical_rows(&actual, &columns)?;
    if want != got {
        let first_diff = want
            .iter()
            .zip(&got)
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("expected {a}\n got {b}"));
        return Err(format!(
            "{} rows, expected {}; {}",
            got.len(),
            want.len(),
            first_diff.unwrap_or_default()
        ));
    }
    Ok(())
}

/// CHECK constraints mean the same to both writers: Wavelake refuses rows
/// that break a constraint deltalake added, and deltalake refuses rows
/// that break one Wavelake added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_constraints_hold_across_writers() {
    let test = "check_constraints_hold_across_writers";
    let Some(python) = venv_python_with(test, "deltalake") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("theirs");
    run_python(
        &python,
        "constraints.py",
        &["make", theirs.to_str().unwrap()],
    );
    let engine = wavelake_write::session();
    let storage = ObjectStoreStorage::open(theirs.to_str().unwrap()).unwrap();
    engine.register("theirs", Arc::new(storage)).await.unwrap();
    let err = engine
        .query("INSERT INTO theirs VALUES (2, -1.0)")
        .await
        .expect_err("deltalake's constraint holds");
    assert_eq!(err.code(), "CONSTRAINT_VIOLATION", "{err}");
    assert!(err.to_string().contains("positive"), "{err}");
    engine
        .query("INSERT INTO theirs VALUES (3, 2.0)")
        .await
        .unwrap();

    // Ours, read by deltalake's writer.
    let lake = dir.path().join("lake");
    std::fs::create_dir_all(&lake).unwrap();
    let engine = wavelake_write::session().with_storage_opener(Arc::new(|location: &str| {
        Ok(Arc::new(ObjectStoreStorage::open(location)?) as _)
    }));
    engine.register_root(lake.to_str().unwrap()).await.unwrap();
    engine
        .query("CREATE TABLE ours (id BIGINT, value DOUBLE)")
        .await
        .unwrap();
    let ours = lake.join("ours");
    engine
        .query("INSERT INTO ours VALUES (1, 1.0)")
        .await
        .unwrap();
    engine
        .query("ALTER TABLE ours ADD CONSTRAINT small CHECK (value < 3)")
        .await
        .unwrap();
    let write = |table: &std::path::Path, value: &str| {
        run_python(
            &python,
            "constraints.py",
            &["write", table.to_str().unwrap(), value],
        )
        .trim()
        .to_owned()
    };
    let refused = write(&ours, "5.0");
    assert!(
        refused.starts_with("refused"),
        "deltalake keeps our constraint: {refused}"
    );
    assert_eq!(write(&ours, "2.0"), "written");
    assert!(write(&theirs, "-5.0").starts_with("refused"));
    assert_eq!(write(&theirs, "5.0"), "written");
}
