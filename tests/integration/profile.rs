//! What a query cost, from `SqlSession::profile` and `EXPLAIN ANALYZE`: files,
//! row groups and pages pruned, rows removed by deletion vectors, bytes
//! fetched.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use wavelake_engine::storage::ObjectStoreStorage;
use wavelake_tests::{golden_engine, write_one_file_table};

#[tokio::test]
async fn row_groups_and_pages_are_pruned_and_bytes_counted() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<i64> = (0..100_000).collect();
    let names: Vec<String> = ids.iter().map(|i| format!("name-{i:06}")).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(names)),
        ],
    )
    .unwrap();
    write_one_file_table(dir.path(), &batch, 20_000, 1_000);
    let file_size = std::fs::metadata(dir.path().join("part-00000.parquet"))
        .unwrap()
        .len();

    let engine = wavelake_write::session();
    let storage = ObjectStoreStorage::open(dir.path().to_str().unwrap()).unwrap();
    engine.register("t", Arc::new(storage)).await.unwrap();
    let profile = engine
        .profile("SELECT name FROM t WHERE id = 45678")
        .await
        .unwrap();
    let rows: usize = profile.batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, 1);
    let total = profile.total();
    assert_eq!(profile.scans.len(), 1);
    assert_eq!(total.row_groups_total, 5);
    assert_eq!(total.row_groups_pruned, 4, "{total:?}");
    assert!(
        total.pages_pruned >= 15,
        "pages of the kept row group skipped: {total:?}"
    );
    assert!(total.bytes_fetched > 0);
    assert!(
        total.bytes_fetched < file_size / 2,
        "fetched {} of {} bytes",
        total.bytes_fetched,
        file_size
    );
    assert!(profile.plan.contains("bytes_fetched="), "{}", profile.plan);

    let explained = engine
        .query("EXPLAIN ANALYZE SELECT name FROM t WHERE id = 45678")
        .await
        .unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&explained)
        .unwrap()
        .to_string();
    for metric in [
        "files_pruned=",
        "dv_rows_removed=",
        "bytes_fetched=",
        "page_index_pages_pruned=",
    ] {
        assert!(
            text.contains(metric),
            "{metric} missing from EXPLAIN ANALYZE:\n{text}"
        );
    }
}

#[tokio::test]
async fn deletion_vector_rows_and_pruned_files_are_reported() {
    let Some(engine) = golden_engine("profile dv", "dv-partitioned-with-checkpoint").await else {
        return;
    };
    let profile = engine
        .profile("SELECT count(*) FROM t WHERE part = 0")
        .await
        .unwrap();
    let total = profile.total();
    assert!(
        total.files_pruned > 0,
        "other partitions skipped: {total:?}"
    );
    assert!(total.files_scanned > 0);
    let all = engine.profile("SELECT * FROM t").await.unwrap().total();
    assert!(all.deletion_vector_rows_removed > 0, "{all:?}");
    assert_eq!(all.files_pruned, 0);
    let rows: u64 = engine
        .profile("SELECT * FROM t")
        .await
        .unwrap()
        .batches
        .iter()
        .map(|b| b.num_rows() as u64)
        .sum();
    assert_eq!(
        all.output_rows, rows,
        "the scan's rows are the rows after DVs"
    );
}

#[tokio::test]
async fn a_snapshot_parses_statistics_once_per_column_set() {
    let Some(engine) = golden_engine("stats cache", "dv-partitioned-with-checkpoint").await else {
        return;
    };
    let snapshot = engine.table("t").unwrap().snapshot().await.unwrap();
    let columns = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
    let first = snapshot.files_statistics(&columns(&["col1"])).unwrap();
    let again = snapshot.files_statistics(&columns(&["col1"])).unwrap();
    let other = snapshot
        .files_statistics(&columns(&["col1", "part"]))
        .unwrap();
    assert!(Arc::ptr_eq(&first, &again), "same columns: cached");
    assert!(!Arc::ptr_eq(&first, &other), "other columns: built anew");
    let values = snapshot.all_partition_values().unwrap();
    assert_eq!(values.len(), snapshot.files().len());
    assert!(Arc::ptr_eq(
        &values,
        &snapshot.all_partition_values().unwrap()
    ));
    // Queries still prune with the cached statistics.
    let pruned = engine
        .profile("SELECT * FROM t WHERE part = 1")
        .await
        .unwrap()
        .total();
    assert!(pruned.files_pruned > 0, "{pruned:?}");
}

#[tokio::test]
async fn a_session_range_cache_serves_repeated_queries() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<i64> = (0..50_000).collect();
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids))]).unwrap();
    write_one_file_table(dir.path(), &batch, 10_000, 1_000);
    let engine = wavelake_write::session_with(wavelake_engine::SqlSessionOptions {
        range_cache: Some(Arc::new(wavelake_engine::storage::RangeCache::new(
            16 << 20,
        ))),
        ..Default::default()
    });
    let storage = ObjectStoreStorage::open(dir.path().to_str().unwrap()).unwrap();
    engine.register("t", Arc::new(storage)).await.unwrap();
    let query = "SELECT sum(id) FROM t WHERE id > 100";
    let cold = engine.profile(query).await.unwrap().total();
    assert!(
        cold.bytes_fetched > 0 && cold.bytes_from_cache == 0,
        "{cold:?}"
    );
    let warm = engine.profile(query).await.unwrap();
    let warm_total = warm.total();
    assert_eq!(warm_total.bytes_fetched, 0, "{warm_total:?}");
    // Everything again but the footer, which DataFusion's metadata cache
    // keeps on its own.
    assert!(
        warm_total.bytes_from_cache <= cold.bytes_fetched
            && warm_total.bytes_from_cache + 4096 > cold.bytes_fetched,
        "{warm_total:?} after {cold:?}"
    );
    assert_eq!(
        arrow::util::pretty::pretty_format_batches(&warm.batches)
            .unwrap()
            .to_string(),
        arrow::util::pretty::pretty_format_batches(&engine.query(query).await.unwrap())
            .unwrap()
            .to_string()
    );
}
