//! Conformance: every table in `../shared/golden/kernel-golden` read at its
//! latest version equals its expected rows; the invalid ones are refused.

use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use wavelake_engine::hot_data::HotData;
use wavelake_engine::log::LogSegment;
use wavelake_engine::storage::ObjectStoreStorage;
use wavelake_engine::{Error, SqlSessionOptions};

use wavelake_tests::golden_cases::{ZONED_PARTITION_TABLE, archives, invalid};
use wavelake_tests::{canonical_rows, column_names, golden_or_skip, read_parquet_dir, unpack};

async fn read_all(table_dir: &Path, hot: Option<Arc<HotData>>) -> Result<Vec<RecordBatch>, Error> {
    let engine = wavelake_write::session_with(SqlSessionOptions {
        hot_data: hot.clone(),
        ..Default::default()
    });
    let storage = ObjectStoreStorage::open(table_dir.to_str().expect("utf-8 path"))?;
    engine.register("t", Arc::new(storage)).await?;
    let cold = engine.query("SELECT * FROM t").await?;
    if hot.is_none() {
        return Ok(cold);
    }
    // Again, from hot data alone: the same rows, no chunk decoded.
    let warm = engine.profile("SELECT * FROM t").await?;
    let total = warm.total();
    let differ = |why: String| Err(Error::Sql(why));
    if total.hot_chunks_missed > 0 || total.bytes_fetched > 0 {
        return differ(format!(
            "the repeated read was not served from memory: {total:?}\n{}",
            warm.plan
        ));
    }
    let columns = column_names(&cold);
    if canonical_rows(&cold, &columns) != canonical_rows(&warm.batches, &columns) {
        return differ("the repeated read from hot data returned other rows".into());
    }
    Ok(warm.batches)
}

/// Checks one golden table; `Err` says what went wrong.
async fn check(name: &str, archive: &Path, hot: Option<Arc<HotData>>) -> Result<(), String> {
    let unpacked = unpack(archive);
    let table = unpacked.join("delta");
    let result = read_all(&table, hot).await;
    if let Some(invalid) = invalid(name) {
        return match result {
            Err(e)
                if e.code() == invalid.code && e.to_string().contains(invalid.message_contains) =>
            {
                Ok(())
            }
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
    if name == ZONED_PARTITION_TABLE {
        // See `ZONED_PARTITION_TABLE`: check the partition values read as
        // UTC, then compare the other columns with Spark's rows.
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
                read_all(&dir, None)
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
    check_all("kernel_golden_tables_match_expected_rows", false).await;
}

/// The same tables read twice through hot data: the second read comes
/// from decoded chunks in memory (deletion vectors, column mapping, type
/// widening, partition values, INT96 timestamps) and equals the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_golden_tables_match_expected_rows_from_hot_data() {
    check_all(
        "kernel_golden_tables_match_expected_rows_from_hot_data",
        true,
    )
    .await;
}

async fn check_all(test: &str, hot: bool) {
    let Some(root) = golden_or_skip(test) else {
        return;
    };
    let archives = archives(&root);
    assert!(
        archives.len() >= 80,
        "expected the full golden suite, found {}",
        archives.len()
    );
    let only = std::env::var("GOLDEN_ONLY").ok();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, archive) in &archives {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        checked += 1;
        let hot = hot.then(|| Arc::new(HotData::new(1 << 30)));
        match check(name, archive, hot).await {
            Ok(()) => eprintln!("ok      {name}"),
            Err(why) => {
                eprintln!("FAILED  {name}: {why}");
                failures.push(name.clone());
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
