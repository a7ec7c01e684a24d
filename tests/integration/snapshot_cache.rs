//! The shared snapshot cache: after every kind of commit (appends, DELETE
//! and UPDATE with deletion vectors, MERGE, OPTIMIZE, schema changes,
//! checkpoints, RESTORE, DROP and re-CREATE), the snapshot a session gets
//! through the cache is the one a full replay of the log gives.

use std::collections::BTreeSet;
use std::sync::Arc;

use wavelake_engine::storage::ObjectStoreStorage;
use wavelake_engine::{Snapshot, SnapshotCache, SqlSession, SqlSessionOptions, Table};

fn session(cache: &Arc<SnapshotCache>) -> SqlSession {
    wavelake_write::session_with(SqlSessionOptions {
        snapshot_cache: Some(cache.clone()),
        ..SqlSessionOptions::default()
    })
    .with_storage_opener(Arc::new(|location: &str| {
        Ok(Arc::new(ObjectStoreStorage::open(location)?) as _)
    }))
}

/// What a snapshot is made of, comparable across two loads.
fn essence(snapshot: &Snapshot) -> (i64, String, BTreeSet<String>, Vec<(String, i64)>) {
    let files = snapshot
        .files()
        .iter()
        .map(|f| {
            format!(
                "{} {:?}",
                f.path,
                f.deletion_vector.as_ref().map(|d| d.unique_id())
            )
        })
        .collect();
    let mut txns: Vec<(String, i64)> = snapshot
        .txns()
        .values()
        .map(|t| (t.app_id.clone(), t.version))
        .collect();
    txns.sort();
    (
        snapshot.version(),
        snapshot.metadata().schema_string.clone(),
        files,
        txns,
    )
}

#[tokio::test]
async fn cached_snapshots_equal_full_replays_after_every_kind_of_commit() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let cache = Arc::new(SnapshotCache::new(4));
    let location = root.join("t");
    let table = || {
        Table::new(Arc::new(
            ObjectStoreStorage::open(location.to_str().unwrap()).unwrap(),
        ))
        .unwrap()
    };
    let statements = [
        "CREATE TABLE t (id BIGINT, kind STRING) TBLPROPERTIES ('delta.checkpointInterval' = '4')",
        "INSERT INTO t SELECT value, 'k' || (value % 3) FROM range(0, 100)",
        "INSERT INTO t VALUES (1000, 'x')",
        "DELETE FROM t WHERE id % 10 = 0",
        "UPDATE t SET kind = 'u' WHERE id < 30",
        "MERGE INTO t USING (SELECT 5 AS id, 'm' AS kind) s ON t.id = s.id \
         WHEN MATCHED THEN UPDATE SET kind = s.kind",
        "ALTER TABLE t ADD COLUMNS (extra INT)",
        "OPTIMIZE t",
        "RESTORE TABLE t TO VERSION AS OF 2",
        "INSERT INTO t VALUES (2000, 'y')",
        "DROP TABLE t",
        "CREATE TABLE t (id BIGINT)",
        "INSERT INTO t VALUES (1)",
    ];
    for sql in statements {
        let engine = session(&cache);
        engine.register_root(root.to_str().unwrap()).await.unwrap();
        engine
            .query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        if sql.starts_with("DROP") {
            continue;
        }
        let cached = table()
            .with_cache(Some(cache.clone()))
            .snapshot()
            .await
            .unwrap();
        let replayed = table().load_latest().await.unwrap();
        assert_eq!(essence(&cached), essence(&replayed), "after {sql}");
        // And what a new session reads through the cache.
        let engine = session(&cache);
        engine.register_root(root.to_str().unwrap()).await.unwrap();
        let counted = engine.query("SELECT count(*) FROM t").await.unwrap();
        let direct = wavelake_write::session();
        direct
            .register(
                "t",
                Arc::new(ObjectStoreStorage::open(location.to_str().unwrap()).unwrap()),
            )
            .await
            .unwrap();
        assert_eq!(
            counted,
            direct.query("SELECT count(*) FROM t").await.unwrap(),
            "after {sql}"
        );
    }
    assert!((1..=4).contains(&cache.len()));
}

#[tokio::test]
async fn a_table_replaced_behind_the_cache_is_loaded_again() {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("t");
    let cache = Arc::new(SnapshotCache::default());
    let engine = session(&cache);
    engine
        .register_root(dir.path().to_str().unwrap())
        .await
        .unwrap();
    for sql in [
        "CREATE TABLE t (id BIGINT)",
        "INSERT INTO t VALUES (1)",
        "INSERT INTO t VALUES (2)",
    ] {
        engine.query(sql).await.unwrap();
    }
    let open = || {
        Table::new(Arc::new(
            ObjectStoreStorage::open(location.to_str().unwrap()).unwrap(),
        ))
        .unwrap()
        .with_cache(Some(cache.clone()))
    };
    assert_eq!(open().snapshot().await.unwrap().version(), 2);
    // Another process deletes the table and writes a new one in its place.
    std::fs::remove_dir_all(&location).unwrap();
    let other = wavelake_write::session().with_storage_opener(Arc::new(|location: &str| {
        Ok(Arc::new(ObjectStoreStorage::open(location)?) as _)
    }));
    other
        .query(&format!(
            "CREATE TABLE t (name STRING) LOCATION '{}'",
            location.to_str().unwrap()
        ))
        .await
        .unwrap();
    let snapshot = open().snapshot().await.unwrap();
    assert_eq!(snapshot.version(), 0);
    assert!(snapshot.metadata().schema_string.contains("name"));
}
