//! OPTIMIZE (bin-packing and Z-order), VACUUM, checkpoints and RESTORE
//! through SQL: the rows stay the same, the files change as they should,
//! and PyPI `deltalake` and DuckDB read the results identically.

use std::path::{Path, PathBuf};

use arrow::array::AsArray;
use arrow::datatypes::UInt64Type;
use arrow::util::pretty::pretty_format_batches;
use wavelake_engine::SqlSession;
use wavelake_tests::{assert_oracles_agree, engine_at, files_under};

async fn text(engine: &SqlSession, sql: &str) -> String {
    let batches = engine
        .query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    pretty_format_batches(&batches).unwrap().to_string()
}

async fn figure(engine: &SqlSession, sql: &str, column: &str) -> u64 {
    let batches = engine
        .query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let batch = &batches[0];
    let index = batch.schema().index_of(column).unwrap();
    batch.column(index).as_primitive::<UInt64Type>().value(0)
}

fn data_files(table: &Path) -> Vec<PathBuf> {
    files_under(table)
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("_delta_log"))
        .collect()
}

#[tokio::test]
async fn optimize_compacts_files_and_drops_deleted_rows() {
    let root = tempfile::tempdir().unwrap();
    let engine = engine_at(root.path()).await;
    text(
        &engine,
        "CREATE TABLE events (id BIGINT, kind STRING, day DATE) PARTITIONED BY (day) \
         TBLPROPERTIES ('delta.checkpointInterval' = '5')",
    )
    .await;
    for i in 0..8 {
        text(
            &engine,
            &format!(
                "INSERT INTO events SELECT value + {start}, 'k' || (value % 3), \
                 DATE '2024-01-01' + CAST(value % 2 AS INT) FROM range(0, 50)",
                start = i * 50
            ),
        )
        .await;
    }
    text(&engine, "DELETE FROM events WHERE id % 10 = 0").await;
    let table = root.path().join("events");
    assert!(
        table
            .join("_delta_log/00000000000000000005.checkpoint.parquet")
            .is_file(),
        "a checkpoint every 5 commits"
    );
    let last: serde_json::Value =
        serde_json::from_slice(&std::fs::read(table.join("_delta_log/_last_checkpoint")).unwrap())
            .unwrap();
    assert_eq!(last["version"], 5);
    let before = text(&engine, "SELECT count(*), sum(id) FROM events").await;
    let files_before = figure(
        &engine,
        "SELECT CAST(count(*) AS BIGINT UNSIGNED) AS n FROM delta_files('events')",
        "n",
    )
    .await;
    assert_eq!(files_before, 16, "8 inserts into 2 partitions");

    let outcome = engine
        .query("OPTIMIZE events WHERE day = DATE '2024-01-01'")
        .await
        .unwrap();
    let removed = outcome[0].column(1).as_primitive::<UInt64Type>().value(0);
    assert_eq!(removed, 8, "one partition's files");
    text(&engine, "OPTIMIZE events").await;
    assert_eq!(
        text(&engine, "SELECT count(*), sum(id) FROM events").await,
        before
    );
    assert_eq!(
        text(
            &engine,
            "SELECT count(*) AS files, count(deleted_rows) AS with_dv \
             FROM delta_files('events')"
        )
        .await,
        "+-------+---------+\n| files | with_dv |\n+-------+---------+\n| 2     | 0       |\n+-------+---------+"
    );
    // Nothing left to compact: no new version.
    let again = engine.query("OPTIMIZE events").await.unwrap();
    assert!(again[0].column(0).is_null(0));
    assert_oracles_agree("optimize_compacts_files_and_drops_deleted_rows", &[table]).await;
}

#[tokio::test]
async fn zorder_makes_skipping_work_on_every_column() {
    let root = tempfile::tempdir().unwrap();
    let engine = engine_at(root.path()).await;
    text(
        &engine,
        "CREATE TABLE points (x BIGINT, y BIGINT, note STRING) \
         TBLPROPERTIES ('delta.targetFileSize' = '4kb')",
    )
    .await;
    // Rows in scrambled order, so that no column starts clustered.
    text(
        &engine,
        "INSERT INTO points SELECT (value * 37) % 100, (value * 91) % 97, 'p' || value \
         FROM range(0, 10000)",
    )
    .await;
    let files_scanned = |column: &'static str| {
        let engine = engine.clone();
        async move {
            let profile = engine
                .profile(&format!("SELECT count(*) FROM points WHERE {column} = 42"))
                .await
                .unwrap();
            let total = profile.total();
            (
                total.files_scanned,
                total.files_scanned + total.files_pruned,
            )
        }
    };
    let (x_before, files_before) = files_scanned("x").await;
    let (y_before, _) = files_scanned("y").await;
    text(&engine, "OPTIMIZE points ZORDER BY (x, y)").await;
    let (x_scanned, files) = files_scanned("x").await;
    let (y_scanned, _) = files_scanned("y").await;
    eprintln!(
        "x = 42 reads {x_before}/{files_before} files before Z-order, {x_scanned}/{files} after; \
         y = 42: {y_before} before, {y_scanned} after"
    );
    assert!(
        x_before * 4 >= files_before * 3 && y_before * 4 >= files_before * 3,
        "scrambled rows: little to skip before"
    );
    assert!(files >= 4, "several files to skip among: {files}");
    assert!(
        x_scanned * 2 <= files && y_scanned * 2 <= files,
        "x = 42 reads {x_scanned} of {files} files, y = 42 reads {y_scanned}"
    );
    assert_eq!(
        text(
            &engine,
            "SELECT count(*) AS n FROM points WHERE x = 42 OR y = 42"
        )
        .await,
        "+-----+\n| n   |\n+-----+\n| 202 |\n+-----+"
    );
    let history = text(
        &engine,
        "SELECT operation_parameters FROM delta_history('points') WHERE operation = 'OPTIMIZE'",
    )
    .await;
    assert!(history.contains("zOrderBy"), "{history}");
    assert_oracles_agree(
        "zorder_makes_skipping_work_on_every_column",
        &[root.path().join("points")],
    )
    .await;
}

#[tokio::test]
async fn vacuum_keeps_what_retention_protects_and_restore_goes_back() {
    let root = tempfile::tempdir().unwrap();
    let engine = engine_at(root.path()).await;
    text(&engine, "CREATE TABLE t (id BIGINT, v STRING)").await;
    text(&engine, "INSERT INTO t VALUES (1, 'a'), (2, 'b')").await;
    text(&engine, "INSERT INTO t VALUES (3, 'c')").await;
    text(&engine, "UPDATE t SET v = 'B' WHERE id = 2").await;
    text(&engine, "DELETE FROM t WHERE id = 3").await;
    let table = root.path().join("t");

    // RESTORE to version 1: the two first rows, as first written.
    let restored = text(&engine, "RESTORE TABLE t TO VERSION AS OF 1").await;
    assert!(restored.contains("restored_version"), "{restored}");
    assert_eq!(
        text(&engine, "SELECT * FROM t ORDER BY id").await,
        "+----+---+\n| id | v |\n+----+---+\n| 1  | a |\n| 2  | b |\n+----+---+"
    );
    text(&engine, "INSERT INTO t VALUES (4, 'd')").await;
    text(&engine, "OPTIMIZE t").await;
    let files = data_files(&table).len();

    // Within the table's retention, nothing goes.
    let kept = engine.query("VACUUM t").await.unwrap();
    assert_eq!(kept.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    let err = engine
        .query("VACUUM t RETAIN 0 HOURS")
        .await
        .expect_err("shorter than the table's retention");
    assert!(err.to_string().contains("retentionDurationCheck"), "{err}");
    text(
        &engine,
        "SET spark.databricks.delta.retentionDurationCheck.enabled = false",
    )
    .await;
    // Below the safe minimum only an operator goes: files a writer has not
    // committed yet would go too.
    let err = engine
        .query("VACUUM t RETAIN 0 HOURS DRY RUN")
        .await
        .expect_err("shorter than the minimum");
    assert!(
        matches!(&err, wavelake_engine::Error::NotAllowed(m) if m.contains("minimum")),
        "{err}"
    );
    for property in ["'interval 0 hours'", "'interval -7 days'", "'soon'"] {
        let sql = format!(
            "ALTER TABLE t SET TBLPROPERTIES ('delta.deletedFileRetentionDuration' = {property})"
        );
        assert!(engine.query(&sql).await.is_err(), "{sql}");
    }
    let engine = operator_engine(root.path()).await;
    text(
        &engine,
        "SET spark.databricks.delta.retentionDurationCheck.enabled = false",
    )
    .await;
    let dry = engine
        .query("VACUUM t RETAIN 0 HOURS DRY RUN")
        .await
        .unwrap();
    let doomed: usize = dry.iter().map(|b| b.num_rows()).sum();
    assert_eq!(data_files(&table).len(), files, "a dry run deletes nothing");
    assert!(doomed >= 3, "files no longer referenced: {doomed}");
    text(&engine, "VACUUM t RETAIN 0 HOURS").await;
    assert_eq!(data_files(&table).len(), files - doomed);
    assert_eq!(
        text(&engine, "SELECT * FROM t ORDER BY id").await,
        "+----+---+\n| id | v |\n+----+---+\n| 1  | a |\n| 2  | b |\n| 4  | d |\n+----+---+"
    );
    let err = engine
        .query("RESTORE TABLE t TO VERSION AS OF 3")
        .await
        .expect_err("version 3's files are vacuumed");
    assert!(err.to_string().contains("VACUUM"), "{err}");
    assert_oracles_agree(
        "vacuum_keeps_what_retention_protects_and_restore_goes_back",
        &[table],
    )
    .await;
}

/// A session over the tables under `root` whose operator lowered the
/// minimum retention to nothing (`[limits] minimum_retention_secs = 0`).
async fn operator_engine(root: &Path) -> SqlSession {
    let engine = wavelake_write::session_with(wavelake_engine::SqlSessionOptions {
        minimum_retention_ms: Some(0),
        ..Default::default()
    })
    .with_storage_opener(std::sync::Arc::new(|location: &str| {
        Ok(
            std::sync::Arc::new(wavelake_engine::storage::ObjectStoreStorage::open(
                location,
            )?) as _,
        )
    }));
    engine.register_root(root.to_str().unwrap()).await.unwrap();
    engine
}

/// Change data files are no snapshot's: VACUUM deletes them once they are
/// older than the retention, and keeps them before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_deletes_change_data_files_past_the_retention() {
    let root = tempfile::tempdir().unwrap();
    let engine = operator_engine(root.path()).await;
    text(
        &engine,
        "CREATE TABLE feed (id BIGINT) TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true')",
    )
    .await;
    text(&engine, "INSERT INTO feed VALUES (1), (2)").await;
    text(&engine, "DELETE FROM feed WHERE id = 1").await;
    let change_files = || {
        std::fs::read_dir(root.path().join("feed/_change_data"))
            .map(|entries| entries.count())
            .unwrap_or(0)
    };
    assert_eq!(change_files(), 1, "the DELETE wrote its change data");
    text(&engine, "VACUUM feed").await;
    assert_eq!(change_files(), 1, "within the retention it stays");
    text(
        &engine,
        "SET spark.databricks.delta.retentionDurationCheck.enabled = false",
    )
    .await;
    let listed = text(&engine, "VACUUM feed RETAIN 0 HOURS DRY RUN").await;
    assert!(listed.contains("_change_data/cdc-"), "{listed}");
    text(&engine, "VACUUM feed RETAIN 0 HOURS").await;
    assert_eq!(change_files(), 0);
    assert_eq!(
        text(&engine, "SELECT count(*) AS n FROM feed")
            .await
            .matches('1')
            .count(),
        1
    );
}
