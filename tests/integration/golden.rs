//! Conformance: every table in `../shared/golden/kernel-golden` read at its
//! latest version equals its expected rows; the invalid ones are refused.

use std::path::Path;
use std::sync::Arc;

use wavelake_engine::storage::ObjectStoreStorage;
use wavelake_engine::{Engine, Error};
use wavelake_tests::{canonical_rows, column_names, golden_or_skip, read_parquet_dir, unpack};

/// Tables that must be refused, with the error each must give.
const INVALID: &[(&str, fn(&Error) -> bool)] = &[
    ("deltalog-invalid-protocol-version", |e| matches!(e, Error::UnsupportedFeature { .. })),
    ("deltalog-state-reconstruction-from-checkpoint-missing-metadata", |e| {
        matches!(e, Error::InvalidTable { reason } if reason.contains("metaData"))
    }),
    ("deltalog-state-reconstruction-from-checkpoint-missing-protocol", |e| {
        matches!(e, Error::InvalidTable { reason } if reason.contains("protocol"))
    }),
    ("deltalog-state-reconstruction-without-metadata", |e| {
        matches!(e, Error::InvalidTable { reason } if reason.contains("metaData"))
    }),
    ("deltalog-state-reconstruction-without-protocol", |e| {
        matches!(e, Error::InvalidTable { reason } if reason.contains("protocol"))
    }),
    ("no-delta-log-folder", |e| matches!(e, Error::TableNotFound { .. })),
    ("versions-not-contiguous", |e| {
        matches!(e, Error::InvalidTable { reason } if reason.contains("contiguous"))
    }),
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
    let actual = result.map_err(|e| format!("read failed: {e}"))?;
    let expected_dir = unpacked.join("expected");
    let expected = read_parquet_dir(&expected_dir);
    let columns = column_names(&expected);
    let expected_rows = canonical_rows(&expected, &columns)?;
    let actual_rows = canonical_rows(&actual, &columns)?;
    if expected_rows != actual_rows {
        let show = |rows: &[String]| rows.iter().take(5).cloned().collect::<Vec<_>>().join("\n    ");
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
    assert!(archives.len() >= 80, "expected the full golden suite, found {}", archives.len());
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
    eprintln!("golden tables: {} checked, {} failed", checked, failures.len());
    assert!(failures.is_empty(), "golden tables failed: {failures:?}");
}
