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
    write_ids(dir.path());
    let engine = session_with_range_cache();
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

#[tokio::test]
async fn a_query_reading_the_same_pages_twice_fetches_them_once() {
    let dir = tempfile::tempdir().unwrap();
    write_ids(dir.path());
    let storage = ObjectStoreStorage::open(dir.path().to_str().unwrap()).unwrap();
    // Two scans of `t` with different filters (not one shared subplan).
    let query = "SELECT count(*) FROM t a \
                 JOIN (SELECT id FROM t WHERE id % 3 = 0) b ON a.id = b.id";
    let uncached = wavelake_write::session();
    uncached
        .register("t", Arc::new(storage.clone()))
        .await
        .unwrap();
    let both = uncached.profile(query).await.unwrap();
    assert_eq!(single_value(&both), 16_667);
    let both = both.total();
    let cached = session_with_range_cache();
    cached.register("t", Arc::new(storage)).await.unwrap();
    let once = cached.profile(query).await.unwrap();
    assert_eq!(single_value(&once), 16_667);
    let once = once.total();
    // Without a cache each scan fetches the pages; with one, the second
    // scan finds them in memory.
    assert!(
        once.bytes_fetched * 10 < both.bytes_fetched * 6,
        "{once:?} against {both:?}"
    );
    assert!(
        once.bytes_from_cache * 10 > both.bytes_fetched * 4,
        "{once:?} against {both:?}"
    );
}

/// A one-file table of ids 0..50,000, row groups of 10,000 rows.
fn write_ids(dir: &std::path::Path) {
    let ids: Vec<i64> = (0..50_000).collect();
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids))]).unwrap();
    write_one_file_table(dir, &batch, 10_000, 1_000);
}

/// A session with a 16 MiB range cache.
fn session_with_range_cache() -> wavelake_engine::SqlSession {
    wavelake_write::session_with(wavelake_engine::SqlSessionOptions {
        range_cache: Some(Arc::new(wavelake_engine::storage::RangeCache::new(
            16 << 20,
        ))),
        ..Default::default()
    })
}

/// A one-file table of `(k, v)` rows, row groups of 10,000 rows.
fn write_pairs(dir: &std::path::Path, keys: Vec<i64>, values: Vec<i64>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("v", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(keys)),
            Arc::new(Int64Array::from(values)),
        ],
    )
    .unwrap();
    write_one_file_table(dir, &batch, 10_000, 1_000);
}

/// The one number a query answers.
fn single_value(profile: &wavelake_engine::QueryProfile) -> i64 {
    profile.batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0)
}

#[tokio::test]
async fn rows_a_selective_join_rejects_leave_at_the_scan() {
    rows_rejected_at_the_scan(wavelake_engine::SqlSessionOptions::default(), 1).await;
}

#[tokio::test]
async fn rows_a_selective_join_rejects_leave_hot_data_at_the_scan() {
    // The second run of each query reads decoded chunks from memory.
    let hot = Arc::new(wavelake_engine::hot_data::HotData::new(1 << 30));
    let options = wavelake_engine::SqlSessionOptions {
        hot_data: Some(hot),
        ..Default::default()
    };
    rows_rejected_at_the_scan(options, 2).await;
}

/// Runs each query `runs` times in a session with `options` and checks the
/// last run's profile.
async fn rows_rejected_at_the_scan(options: wavelake_engine::SqlSessionOptions, runs: usize) {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // 400,000 rows whose keys 0..10,000 are in every row group (no group
    // can be pruned), three keys, and half of the keys.
    let ids: Vec<i64> = (0..400_000).collect();
    write_pairs(
        dirs[0].path(),
        ids.iter().map(|id| id % 10_000).collect(),
        ids,
    );
    write_pairs(dirs[1].path(), vec![1, 2, 3], vec![0, 0, 0]);
    let half: Vec<i64> = (0..5_000).map(|key| key * 2).collect();
    write_pairs(dirs[2].path(), half.clone(), half);
    let engine = wavelake_write::session_with(options);
    for (name, dir) in ["big", "few", "half"].iter().zip(&dirs) {
        let storage = ObjectStoreStorage::open(dir.path().to_str().unwrap()).unwrap();
        engine.register(name, Arc::new(storage)).await.unwrap();
    }
    let profile = |sql: &'static str| {
        let engine = &engine;
        async move {
            let mut last = None;
            for _ in 0..runs {
                last = Some(engine.profile(sql).await.unwrap());
            }
            last.unwrap()
        }
    };
    let big_scan = |profile: &wavelake_engine::QueryProfile| {
        profile
            .scans
            .iter()
            .find(|scan| scan.files_total == 1 && scan.output_rows == 400_000)
            .copied()
            .unwrap_or_else(|| panic!("no scan of big:\n{}", profile.plan))
    };

    // Three keys keep 120 of 400,000 rows: the others leave as they are
    // read rather than at the join.
    let few = profile("SELECT count(*) FROM few f JOIN big b ON f.k = b.k").await;
    assert_eq!(single_value(&few), 120);
    assert_eq!(
        big_scan(&few).dynamic_filter_rows_removed,
        400_000 - 120,
        "{}",
        few.plan
    );

    // Half of the keys: the scan tests its first rows, finds the filter
    // keeps too many and leaves the rest to the join.
    let half = profile("SELECT count(*) FROM half h JOIN big b ON h.k = b.k").await;
    assert_eq!(single_value(&half), 200_000);
    let removed = big_scan(&half).dynamic_filter_rows_removed;
    assert!(
        removed > 0 && removed < 150_000,
        "removed {removed} of the 200,000 rows the join rejects:\n{}",
        half.plan
    );

    // A scan the query filters itself leaves the keys to the join.
    let filtered =
        profile("SELECT count(*) FROM few f JOIN big b ON f.k = b.k WHERE b.v % 2 = 0").await;
    assert_eq!(single_value(&filtered), 40);
    assert_eq!(
        big_scan(&filtered).dynamic_filter_rows_removed,
        0,
        "{}",
        filtered.plan
    );
}
