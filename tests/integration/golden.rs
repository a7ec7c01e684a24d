//! Conformance: every table in `../shared/golden/kernel-golden` read at its
//! latest version equals its expected rows; the invalid ones are refused.

use std::path::Path;
use std::sync::Arc;

use wavelake_engine::log::LogSegment;
use wavelake_engine::storage::ObjectStoreStorage;
use wavelake_engine::{Engine, Error};
use wavelake_tests::{canonical_rows, column_names, golden_or_skip, read_parquet_dir, unpack};

/// Tables that must be refused, with the error each must give.
type ErrorCheck = fn(&Error) -> bool;

const INVALID: &[(&str, ErrorCheck)] = &[
    ("deltalog-invalid-protocol-version", |e| {
        matches!(e, Error::UnsupportedFeature { .. })
    }),
    (
        "deltalog-state-reconstruction-from-checkpoint-missing-metadata",
        |e| matches!(e, Error::InvalidTable { reason } if reason.contains("metaData")),
    ),
    (
        "deltalog-state-reconstruction-from-checkpoint-missing-protocol",
        |e| matches!(e, Error::InvalidTable { reason } if reason.contains("protocol")),
    ),
    (
        "deltalog-state-reconstruction-without-metadata",
        |e| matches!(e, Error::InvalidTable { reason } if reason.contains("metaData")),
    ),
    (
        "deltalog-state-reconstruction-without-protocol",
        |e| matches!(e, Error::InvalidTable { reason } if reason.contains("protocol")),
    ),
    ("no-delta-log-folder", |e| {
        matches!(e, Error::TableNotFound { .. })
    }),
    (
        "versions-not-contiguous",
        |e| matches!(e, Error::InvalidTable { reason } if reason.contains("contiguous")),
    ),
];

async fn read_all(table_dir: &Path) -> Result<Vec<arrow::array::RecordBatch>, Error> {
    let engine = Engine::new();
    let storage = ObjectStoreStorage::open(table_dir.to_str().expect("utf-8 path"))?;
    engine.register("t", Arc::new(storage)).await?;
    engine.query("SELECT * FROM t").await
}

/// Checks one golden table; `Err` says what went wrong.
async fn check(name: &str, archive: &Path) -> Result<(), String> {
    let unpacked = unpack(archive);
    let table = unpacked.join("delta");
    let result = read_all(&table).await;
    if let Some((_, expected_error)) = INVALID.iter().find(|(n, _)| *n == name) {
        return match result {
            Err(e) if expected_error(&e) => Ok(()),
            Err(e) => Err(format!("refused with the wrong error: {e:?}")),
            Ok(_) => Err("read an invalid table without error".into()),
        };
    }
    let expected_dir = unpacked.join("expected");
    if !expected_dir.is_dir() {
        return check_log_only(name, &table).await;
    }
    let actual = result.map_err(|e| format!("read failed: {e}"))?;
    let expected = read_parquet_dir(&expected_dir);
    let mut columns = column_names(&expected);
    if name == "data-reader-partition-values" {
        // Spark wrote the timestamp partition value `2021-09-08 11:11:11` in
        // an America/Los_Angeles session, and its expected rows carry that
        // zone. The Delta protocol gives such values no zone, so they are
        // read as UTC (as delta-kernel does): check that, then compare the
        // other columns with Spark's rows.
        columns.retain(|c| c != "as_timestamp");
        let stamps = canonical_rows(&actual, &["as_timestamp".to_owned()])?;
        let utc = "2021-09-08T11:11:11Z".to_owned();
        if stamps != [utc.clone(), utc, "NULL".to_owned()] {
            return Err(format!("timestamp partition values read as {stamps:?}"));
        }
    }
    let expected_rows = canonical_rows(&expected, &columns)?;
    let actual_rows = canonical_rows(&actual, &columns)?;
    if expected_rows != actual_rows {
        let show = |rows: &[String]| {
            rows.iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n    ")
        };
        return Err(format!(
            "rows differ: expected {} rows, got {}\n  expected:\n    {}\n  got:\n    {}",
            expected_rows.len(),
            actual_rows.len(),
            show(&expected_rows),
            show(&actual_rows)
        ));
    }
    Ok(())
}

/// Tables without expected rows test the log, not the data: their files
/// are placeholders. The truth is derived from the protocol here.
async fn check_log_only(name: &str, table: &Path) -> Result<(), String> {
    if name == "hive" {
        // Several complete tables side by side: each must read.
        for entry in std::fs::read_dir(table).map_err(|e| e.to_string())? {
            let dir = entry.map_err(|e| e.to_string())?.path();
            if dir.join("_delta_log").is_dir() {
                read_all(&dir)
                    .await
                    .map_err(|e| format!("{}: {e}", dir.display()))?;
            }
        }
        return Ok(());
    }
    let storage = Arc::new(
        ObjectStoreStorage::open(table.to_str().expect("utf-8")).map_err(|e| e.to_string())?,
    );
    let history = wavelake_engine::Table::new(storage.clone())
        .map_err(|e| e.to_string())?
        .history()
        .await
        .map_err(|e| format!("history failed: {e}"))?;
    if history.is_empty() && name != "update-deleted-directory" {
        return Err("history is empty".into());
    }
    let root = url::Url::parse(&wavelake_engine::storage::Storage::location(
        storage.as_ref(),
    ))
    .map_err(|e| e.to_string())?;
    let segment = LogSegment::load(storage.as_ref(), None)
        .await
        .map_err(|e| e.to_string())?;
    let replayed = wavelake_engine::log::replay(storage.as_ref(), &root, &segment).await;
    if name == "data-reader-absolute-paths-escaped-chars" {
        // Its log has a protocol but no metaData action: per the protocol
        // this is not a readable table, and the reader must say why.
        return match replayed {
            Err(Error::InvalidTable { reason }) if reason.contains("metaData") => Ok(()),
            other => Err(format!("expected a missing-metaData error, got {other:?}")),
        };
    }
    let state = replayed.map_err(|e| format!("replay failed: {e}"))?;
    let mut files: Vec<String> = state.files.iter().map(|f| f.path.clone()).collect();
    files.sort();
    // Per the protocol: an add followed by a remove of the same canonical
    // path is gone; a remove followed by a later add is back.
    let expected: Option<&[&str]> = match name {
        n if n.starts_with("canonicalized-paths-") => Some(&[]),
        "delete-re-add-same-file-different-transactions" => Some(&["bar", "foo"]),
        _ => None,
    };
    if let Some(expected) = expected
        && files != expected
    {
        return Err(format!("active files {files:?}, expected {expected:?}"));
    }
    eprintln!(
        "        {name}: log only, version {}, {} active files",
        state.version,
        files.len()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_golden_tables_match_expected_rows() {
    let Some(root) = golden_or_skip("kernel_golden_tables_match_expected_rows") else {
        return;
    };
    let mut archives: Vec<_> = std::fs::read_dir(root.join("kernel-golden"))
        .expect("kernel-golden")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".tar.zst"))
        .collect();
    archives.sort();
    assert!(
        archives.len() >= 80,
        "expected the full golden suite, found {}",
        archives.len()
    );
    let only = std::env::var("GOLDEN_ONLY").ok();
    let mut failures = Vec::new();
    let mut checked = 0;
    for archive in &archives {
        let name = archive
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".tar.zst"))
            .expect("name")
            .to_owned();
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        checked += 1;
        match check(&name, archive).await {
            Ok(()) => eprintln!("ok      {name}"),
            Err(why) => {
                eprintln!("FAILED  {name}: {why}");
                failures.push(name);
            }
        }
    }
    eprintln!(
        "golden tables: {} checked, {} failed",
        checked,
        failures.len()
    );
    assert!(failures.is_empty(), "golden tables failed: {failures:?}");
}
