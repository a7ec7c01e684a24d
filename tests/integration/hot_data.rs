//! Hot data: a repeated query is answered from decoded column chunks in
//! memory (no byte fetched, no page decoded), says so in its profile and
//! `EXPLAIN ANALYZE`, and still sees every change: new files, new deletion
//! vectors, a budget smaller than the data.

use std::sync::Arc;

use arrow::array::{AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use arrow::util::pretty::pretty_format_batches;
use datafusion::physical_plan::metrics::MetricValue;
use wavelake_engine::hot_data::HotData;
use wavelake_engine::scan::HotScanExec;
use wavelake_engine::storage::ObjectStoreStorage;
use wavelake_engine::{SqlSession, SqlSessionOptions};

/// A session with hot data of `budget` bytes over a new table root holding
/// `events` (see [`create_events`]).
async fn sessions(root: &std::path::Path, budget: u64) -> (SqlSession, Arc<HotData>) {
    let hot = Arc::new(HotData::new(budget));
    let with_hot = wavelake_tests::engine_at_with(
        root,
        SqlSessionOptions {
            hot_data: Some(hot.clone()),
            ..Default::default()
        },
    )
    .await;
    create_events(&with_hot).await;
    (with_hot, hot)
}

/// `query`'s answer from a new session without hot data.
async fn plain(root: &std::path::Path, query: &str) -> String {
    text(
        &wavelake_tests::engine_at(root)
            .await
            .query(query)
            .await
            .unwrap(),
    )
}

/// A partitioned table `events` of three commits (six data files), with
/// deletion vectors on.
async fn create_events(engine: &SqlSession) {
    engine
        .query(
            "CREATE TABLE events (id BIGINT NOT NULL, name STRING, part STRING) \
             PARTITIONED BY (part) TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')",
        )
        .await
        .unwrap();
    for commit in 0..3 {
        let start = commit * 10_000;
        engine
            .query(&format!(
                "INSERT INTO events SELECT value AS id, concat('name-', CAST(value AS STRING)) AS name, \
                 CASE WHEN value % 2 = 0 THEN 'even' ELSE 'odd' END AS part \
                 FROM generate_series({start}, {}) ",
                start + 9_999
            ))
            .await
            .unwrap();
    }
}

/// Asserts `engine` answers each of `queries` as a session without hot
/// data does.
async fn answers_as_without_hot_data(
    engine: &SqlSession,
    root: &std::path::Path,
    queries: &[&str],
) {
    for query in queries {
        assert_eq!(
            text(&engine.query(query).await.unwrap()),
            plain(root, query).await,
            "{query}"
        );
    }
}

fn text(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).unwrap().to_string()
}

const QUERY: &str = "SELECT part, count(*) AS n, sum(id) AS total, max(name) AS last \
                     FROM events WHERE id >= 100 GROUP BY part ORDER BY part";

#[tokio::test]
async fn a_repeated_query_reads_no_parquet_and_says_so() {
    let root = tempfile::tempdir().unwrap();
    let (engine, hot) = sessions(root.path(), 256 << 20).await;

    let cold = engine.profile(QUERY).await.unwrap();
    let cold_total = cold.total();
    // Two partitions of three commits: six files of one row group, three
    // columns each (`part` comes from the log, not from a chunk).
    assert_eq!(cold_total.hot_chunks_missed, 12, "{cold_total:?}");
    assert_eq!(cold_total.hot_chunks_hit, 0, "{cold_total:?}");
    assert!(cold_total.bytes_fetched > 0, "{cold_total:?}");

    let warm = engine.profile(QUERY).await.unwrap();
    let warm_total = warm.total();
    assert_eq!(warm_total.hot_chunks_hit, 12, "{warm_total:?}");
    assert_eq!(warm_total.hot_chunks_missed, 0, "{warm_total:?}");
    assert_eq!(warm_total.bytes_fetched, 0, "{warm_total:?}");
    assert!(warm_total.hot_bytes_saved > 0, "{warm_total:?}");
    assert_eq!(text(&warm.batches), text(&cold.batches));
    assert_eq!(text(&warm.batches), plain(root.path(), QUERY).await);
    assert!(warm.plan.contains("HotScanExec"), "{}", warm.plan);
    assert!(warm.plan.contains("hot_chunks_hit=12"), "{}", warm.plan);

    let explained = engine
        .query(&format!("EXPLAIN ANALYZE {QUERY}"))
        .await
        .unwrap();
    let explained = text(&explained);
    assert!(explained.contains("hot_chunks_hit=12"), "{explained}");
    assert!(explained.contains("hot_bytes_saved="), "{explained}");

    let figures = hot.figures();
    assert_eq!(figures.misses, 12, "{figures:?}");
    assert_eq!(figures.hits, 24, "{figures:?}");
    // The twelve chunks and the six files' footers.
    assert_eq!(figures.entries_held, 18, "{figures:?}");
}

#[tokio::test]
async fn changes_are_read_through_hot_data() {
    let root = tempfile::tempdir().unwrap();
    let (engine, _hot) = sessions(root.path(), 256 << 20).await;
    engine.query(QUERY).await.unwrap();

    // A deletion vector on every file: none of the held chunks is theirs.
    engine
        .query("DELETE FROM events WHERE id % 7 = 0")
        .await
        .unwrap();
    let after_delete = engine.profile(QUERY).await.unwrap();
    assert_eq!(
        after_delete.total().hot_chunks_hit,
        0,
        "{:?}",
        after_delete.total()
    );
    assert_eq!(text(&after_delete.batches), plain(root.path(), QUERY).await);

    // A new file: its chunks are decoded, the others come from memory.
    engine
        .query("INSERT INTO events VALUES (1000000, 'late', 'odd')")
        .await
        .unwrap();
    let after_insert = engine.profile(QUERY).await.unwrap();
    let total = after_insert.total();
    assert_eq!(
        (total.hot_chunks_hit, total.hot_chunks_missed),
        (12, 2),
        "{total:?}"
    );
    assert_eq!(text(&after_insert.batches), plain(root.path(), QUERY).await);
    // An older version reads the chunks without the deletion vectors.
    let old = "SELECT count(*) FROM events VERSION AS OF 3";
    assert_eq!(
        text(&engine.query(old).await.unwrap()),
        plain(root.path(), old).await
    );
}

#[tokio::test]
async fn a_budget_smaller_than_the_data_answers_the_same() {
    let root = tempfile::tempdir().unwrap();
    // About one chunk of the table's twelve.
    let (engine, hot) = sessions(root.path(), 200 << 10).await;
    for _ in 0..3 {
        assert_eq!(
            text(&engine.query(QUERY).await.unwrap()),
            plain(root.path(), QUERY).await
        );
    }
    let figures = hot.figures();
    assert!(figures.bytes_held <= 200 << 10, "{figures:?}");
    assert!(figures.misses > 12, "{figures:?}");
}

/// With more partitions than row groups, each held row group is shared:
/// every partition returns a share of its rows, from the same chunks.
#[tokio::test]
async fn row_groups_are_shared_when_partitions_outnumber_them() {
    let root = tempfile::tempdir().unwrap();
    let (engine, _hot) = sessions(root.path(), 256 << 20).await;
    // Six files of one row group over sixteen partitions: three shares each.
    engine
        .query("SET datafusion.execution.target_partitions = 16")
        .await
        .unwrap();
    engine.query(QUERY).await.unwrap();
    let warm = engine.profile(QUERY).await.unwrap();
    let total = warm.total();
    assert_eq!(total.hot_chunks_hit, 36, "{total:?}");
    assert_eq!(total.hot_chunks_missed, 0, "{total:?}");
    assert_eq!(text(&warm.batches), plain(root.path(), QUERY).await);
    answers_as_without_hot_data(
        &engine,
        root.path(),
        &[
            "SELECT count(*), sum(id), count(DISTINCT name) FROM events WHERE id % 3 = 1",
            "SELECT id FROM events ORDER BY id DESC LIMIT 3",
        ],
    )
    .await;
}

/// The bytes each partition of `sql`'s hot-data scan decoded, after
/// running it with `partitions` partitions.
async fn decoded_per_partition(engine: &SqlSession, sql: &str, partitions: usize) -> Vec<usize> {
    engine
        .query(&format!(
            "SET datafusion.execution.target_partitions = {partitions}"
        ))
        .await
        .unwrap();
    let frame = engine.sql(sql).await.unwrap();
    let context = Arc::new(frame.task_ctx());
    let plan = frame.create_physical_plan().await.unwrap();
    datafusion::physical_plan::collect(plan.clone(), context)
        .await
        .unwrap();
    let scan = wavelake_tests::find_node::<HotScanExec>(&plan).expect("a hot-data scan");
    let mut decoded = vec![0; partitions];
    for metric in scan.metrics().unwrap().iter() {
        if let (MetricValue::Count { name, count }, Some(partition)) =
            (metric.value(), metric.partition())
            && name == "hot_bytes_decoded"
        {
            decoded[partition] += count.value();
        }
    }
    decoded
}

/// When partitions outnumber row groups, a first query decodes a shared
/// row group on every partition, each its own share of the rows, rather
/// than the whole row group on one (or on each).
#[tokio::test]
async fn each_partition_decodes_its_share_of_a_shared_row_group() {
    let root = tempfile::tempdir().unwrap();
    let (engine, hot) = sessions(root.path(), 256 << 20).await;
    engine
        .query("SET datafusion.execution.target_partitions = 1")
        .await
        .unwrap();
    // Fewer row groups than partitions (two files of one row group each),
    // with a deletion vector.
    for sql in [
        "CREATE TABLE single (id BIGINT NOT NULL, name STRING) \
         TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')",
        "INSERT INTO single SELECT value AS id, concat('name-', CAST(value AS STRING)) AS name \
         FROM generate_series(0, 59999)",
        "DELETE FROM single WHERE id % 7 = 3 OR id BETWEEN 2000 AND 4999",
    ] {
        engine.query(sql).await.unwrap();
    }
    let query = "SELECT count(*), sum(id), max(name), min(name) FROM single";
    let whole: usize = decoded_per_partition(&engine, query, 1).await.iter().sum();
    hot.clear();
    let shares = decoded_per_partition(&engine, query, 4).await;
    let total: usize = shares.iter().sum();
    assert!(
        shares.iter().all(|&share| share * 10 <= whole * 3) && total * 10 <= whole * 11,
        "each of four partitions decodes about a quarter of {whole} bytes: {shares:?}"
    );
    answers_as_without_hot_data(&engine, root.path(), &[query]).await;
}

/// A table of one file whose row groups are uneven (10,000 and 3,000 rows)
/// is cut into one range of rows per partition, not dealt out by row
/// group: each of two partitions decodes half of it.
#[tokio::test]
async fn partitions_decode_equal_shares_of_uneven_row_groups() {
    let root = tempfile::tempdir().unwrap();
    let (engine, _hot) = sessions(root.path(), 256 << 20).await;
    let dir = root.path().join("uneven");
    std::fs::create_dir_all(&dir).unwrap();
    let ids: Vec<i64> = (0..13_000).collect();
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids))]).unwrap();
    wavelake_tests::write_one_file_table(&dir, &batch, 10_000, 1_000);
    let storage = ObjectStoreStorage::open(dir.to_str().unwrap()).unwrap();
    engine.register("uneven", Arc::new(storage)).await.unwrap();

    let query = "SELECT count(*), sum(id), min(id), max(id) FROM uneven";
    let decoded = decoded_per_partition(&engine, query, 2).await;
    let total: usize = decoded.iter().sum();
    assert!(
        decoded.iter().all(|&share| share * 10 >= total * 4),
        "each of two partitions decodes about half of {total} bytes: {decoded:?}"
    );
    let warm = engine.profile(query).await.unwrap();
    assert_eq!(warm.total().hot_chunks_missed, 0, "{:?}", warm.total());
    let row = &warm.batches[0];
    let values: Vec<i64> = (0..4)
        .map(|column| row.column(column).as_primitive::<Int64Type>().value(0))
        .collect();
    assert_eq!(values, vec![13_000, 84_493_500, 0, 12_999]);
}

/// A scan with a limit stops at the row group that reaches it.
#[tokio::test]
async fn a_limit_decodes_no_row_group_past_it() {
    let root = tempfile::tempdir().unwrap();
    let (engine, _hot) = sessions(root.path(), 256 << 20).await;
    engine
        .query("SET datafusion.execution.target_partitions = 1")
        .await
        .unwrap();
    let limited = engine
        .profile("SELECT id FROM events LIMIT 5")
        .await
        .unwrap();
    assert_eq!(
        limited
            .batches
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>(),
        5
    );
    let total = limited.total();
    assert_eq!(total.hot_chunks_missed, 1, "{total:?}\n{}", limited.plan);
}

#[tokio::test]
async fn limits_and_filters_hold_from_hot_data() {
    let root = tempfile::tempdir().unwrap();
    let (engine, _hot) = sessions(root.path(), 256 << 20).await;
    for _ in 0..2 {
        let limited = engine.query("SELECT id FROM events LIMIT 5").await.unwrap();
        assert_eq!(limited.iter().map(RecordBatch::num_rows).sum::<usize>(), 5);
        answers_as_without_hot_data(
            &engine,
            root.path(),
            &[
                "SELECT count(*) FROM events WHERE id BETWEEN 12345 AND 23456",
                "SELECT id, name FROM events WHERE name = 'name-29999'",
                "SELECT count(*) FROM events WHERE part = 'odd' AND id < 5000",
                "SELECT count(*) FROM events",
            ],
        )
        .await;
    }
}

/// A change feed reads one data file several times, each with another
/// deletion vector (the rows a commit deleted from it, the file as it was
/// added): each read is its own in hot data. The golden
/// `cdf-table-with-dv` (Spark's) records its deletes as deletion vectors.
#[tokio::test]
async fn a_change_feed_reads_each_file_with_its_own_deletion_vector() {
    let test = "a_change_feed_reads_each_file_with_its_own_deletion_vector";
    let Some(golden) = wavelake_tests::golden_or_skip(test) else {
        return;
    };
    let table = wavelake_tests::unpack_into(
        &golden.join("kernel-data/cdf-table-with-dv.tar.zst"),
        &wavelake_tests::scratch_dir().join("hot-data-cdf"),
    );
    let storage = || -> wavelake_engine::storage::StorageRef {
        Arc::new(
            wavelake_engine::storage::ObjectStoreStorage::open(table.to_str().unwrap()).unwrap(),
        )
    };
    let hot = wavelake_write::session_with(SqlSessionOptions {
        hot_data: Some(Arc::new(HotData::new(256 << 20))),
        ..Default::default()
    });
    hot.register("t", storage()).await.unwrap();
    let plain = wavelake_write::session();
    plain.register("t", storage()).await.unwrap();
    let query = "SELECT * FROM table_changes('t', 0)";
    // Rows of one commit and kind come in no set order.
    let lines = |batches: &[RecordBatch]| {
        let mut lines: Vec<String> = text(batches).lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    let expected = lines(&plain.query(query).await.unwrap());
    assert!(
        expected.iter().any(|l| l.contains("delete")),
        "{expected:?}"
    );
    for _ in 0..3 {
        assert_eq!(lines(&hot.query(query).await.unwrap()), expected);
    }
}
