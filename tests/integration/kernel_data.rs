//! The `kernel-data` tables (deletion vectors, inline DVs, v2 checkpoints
//! with and without sidecars, column mapping, parsed statistics, type
//! widening, change data feed tables, ...) checked against an independent
//! reader: DuckDB 1.5.5 with its delta extension (delta-kernel-rs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wavelake_engine::Engine;
use wavelake_engine::storage::ObjectStoreStorage;
use wavelake_tests::{
    canonical_rows, column_names, golden_or_skip, read_parquet_file, run_python, scratch_dir,
    unpack_into, venv_python_with,
};

/// Tables DuckDB must read and Wavelake must read identically: the cases the
/// engine's merge-on-read, checkpoint and column-mapping paths exist for.
const REQUIRED: &[&str] = &[
    "table-with-dv-small",
    "with-short-dv",
    "table-without-dv-small",
    "cdf-table-with-dv",
    "cdf-table-with-cdc-and-dvs",
    "v2-checkpoints-json-with-last-checkpoint",
    "v2-checkpoints-json-with-sidecars",
    "v2-checkpoints-json-without-sidecars",
    "v2-checkpoints-parquet-with-last-checkpoint",
    "v2-checkpoints-parquet-with-sidecars",
    "v2-checkpoints-parquet-without-sidecars",
    "v2-classic-checkpoint-json",
    "v2-classic-checkpoint-parquet",
    "cdf-column-mapping-id-mode",
    "cdf-column-mapping-name-mode",
    "v1-multi-part-partitioned-struct-stats-only",
    "v2-parquet-sidecars-struct-stats-only",
    "type-widening",
    "data-reader-timestamp_ntz",
];

/// Too large for a conformance comparison (it has its own benchmark).
const SKIPPED: &[&str] = &["300k-add-files-100-col-partitioned"];

fn tables(golden: &Path) -> Vec<PathBuf> {
    let data = golden.join("kernel-data");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let stem = name.trim_end_matches(".tar.zst").to_owned();
        if SKIPPED.contains(&stem.as_str()) {
            continue;
        }
        if name.ends_with(".tar.zst") {
            out.push(unpack_into(&path, &scratch_dir().join("kernel-data")));
        } else if path.join("_delta_log").is_dir() {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_data_tables_match_duckdb_delta() {
    let test = "kernel_data_tables_match_duckdb_delta";
    let Some(golden) = golden_or_skip(test) else {
        return;
    };
    let Some(python) = venv_python_with(test, "duckdb_extension_delta") else {
        return;
    };
    let tables = tables(&golden);
    let out = scratch_dir().join("duckdb-kernel-data");
    let mut args = vec![out.to_str().unwrap().to_owned()];
    args.extend(tables.iter().map(|t| t.to_str().unwrap().to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    eprintln!("{}", run_python(&python, "duckdb_scan.py", &args).trim());
    let duckdb: BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();

    let mut failures = Vec::new();
    let mut compared = Vec::new();
    for table in &tables {
        let name = table.file_name().unwrap().to_string_lossy().into_owned();
        let ours = read_latest(table).await;
        match (duckdb.get(&name).map(String::as_str), ours) {
            (Some("ok"), Ok(batches)) => {
                let expected = read_parquet_file(&out.join(format!("{name}.parquet")));
                match compare(&expected, &batches) {
                    Ok(rows) => {
                        eprintln!("same    {name} ({rows} rows)");
                        compared.push(name);
                    }
                    Err(why) => failures.push(format!("{name}: {why}")),
                }
            }
            (Some("ok"), Err(e)) => failures.push(format!("{name}: DuckDB reads it, we fail: {e}")),
            (duckdb_error, ours) => eprintln!(
                "skipped {name}: DuckDB cannot read it ({}); Wavelake: {}",
                duckdb_error.unwrap_or("not run"),
                match ours {
                    Ok(b) => format!("{} rows", b.iter().map(|b| b.num_rows()).sum::<usize>()),
                    Err(e) => format!("error {}: {e}", e.code()),
                }
            ),
        }
    }
    for failure in &failures {
        eprintln!("FAILED  {failure}");
    }
    let missing: Vec<_> = REQUIRED
        .iter()
        .filter(|r| !compared.iter().any(|c| c == *r))
        .collect();
    eprintln!("kernel-data: {} tables equal to DuckDB", compared.len());
    assert!(failures.is_empty(), "{} tables differ", failures.len());
    assert!(
        missing.is_empty(),
        "required tables not compared: {missing:?}"
    );
}

async fn read_latest(table: &Path) -> wavelake_engine::Result<Vec<arrow::array::RecordBatch>> {
    let engine = Engine::new();
    let storage = ObjectStoreStorage::open(table.to_str().unwrap())?;
    engine.register("t", Arc::new(storage)).await?;
    engine.query("SELECT * FROM t").await
}

fn compare(
    expected: &[arrow::array::RecordBatch],
    actual: &[arrow::array::RecordBatch],
) -> Result<usize, String> {
    let columns = column_names(expected);
    let want = canonical_rows(expected, &columns)?;
    let got = if actual.is_empty() && want.is_empty() {
        Vec::new()
    } else {
        canonical_rows(actual, &columns)?
    };
    if want == got {
        return Ok(want.len());
    }
    let diff = want
        .iter()
        .zip(&got)
        .find(|(a, b)| a != b)
        .map(|(a, b)| format!("\n  DuckDB:   {a}\n  Wavelake: {b}"))
        .unwrap_or_default();
    Err(format!("{} rows, DuckDB {}{diff}", got.len(), want.len()))
}

#[tokio::test]
async fn unshredded_variants_read_as_their_binary_encoding() {
    // DuckDB cannot read this table, so the truth is the data files
    // themselves: every file is active (no removes in its log), and a
    // variant is stored unshredded as struct<value: binary, metadata: binary>.
    let Some(golden) = golden_or_skip("unshredded_variants_read_as_their_binary_encoding") else {
        return;
    };
    let table = unpack_into(
        &golden.join("kernel-data/unshredded-variant.tar.zst"),
        &scratch_dir().join("kernel-data"),
    );
    let expected = wavelake_tests::read_parquet_dir(&table);
    let actual = read_latest(&table).await.expect("variant table reads");
    let rows = compare(&expected, &actual).expect("same rows as the data files");
    assert!(rows >= 100, "{rows} rows");
}
