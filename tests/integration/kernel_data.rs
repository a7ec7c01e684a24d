//! The `kernel-data` tables (deletion vectors, inline DVs, v2 checkpoints
//! with and without sidecars, column mapping, parsed statistics, type
//! widening, change data feed tables, ...) checked against an independent
//! reader: DuckDB 1.5.5 with its delta extension (delta-kernel-rs).

use std::path::{Path, PathBuf};

use wavelake_tests::{
    Oracle, compare_rows, golden_or_skip, read_latest_rows, read_with_oracle, scratch_dir,
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
    let duckdb = read_with_oracle(
        &python,
        Oracle::Duckdb,
        &scratch_dir().join("duckdb-kernel-data"),
        &tables,
    );

    let mut failures = Vec::new();
    let mut compared = Vec::new();
    for table in &tables {
        let name = table.file_name().unwrap().to_string_lossy().into_owned();
        let ours = read_latest_rows(table).await;
        match (duckdb.get(&name), ours) {
            (Some(Ok(expected)), Ok(batches)) => match compare_rows(expected, &batches, "DuckDB") {
                Ok(rows) => {
                    eprintln!("same    {name} ({rows} rows)");
                    compared.push(name);
                }
                Err(why) => failures.push(format!("{name}: {why}")),
            },
            (Some(Ok(_)), Err(e)) => {
                failures.push(format!("{name}: DuckDB reads it, we fail: {e}"))
            }
            (duckdb_error, ours) => eprintln!(
                "skipped {name}: DuckDB cannot read it ({}); Wavelake: {}",
                match duckdb_error {
                    Some(Err(e)) => e.as_str(),
                    _ => "not run",
                },
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
    let actual = read_latest_rows(&table).await.expect("variant table reads");
    let rows = compare_rows(&expected, &actual, "data files").expect("same rows as the data files");
    assert!(rows >= 100, "{rows} rows");
}
