//! The result cache: a repeated query over the same table versions is
//! answered from memory, a commit (or a table dropped and made again at
//! the same place) makes it run again, and a query whose answer could
//! change with nothing committed is never kept.

use std::sync::{Arc, Mutex};

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::pretty::pretty_format_batches;
use wavelake_engine::buffered::{BufferedBatches, BufferedRows};
use wavelake_engine::result_cache::{CacheableQuery, CachedResult, NotCacheable, ResultCache};
use wavelake_engine::{SqlSession, SqlSessionOptions};

const TOTALS: &str = "SELECT id % 3 AS k, sum(id) AS total FROM t GROUP BY id % 3 ORDER BY k";

/// A fresh session over `root` (as a server makes for each request).
async fn session(root: &std::path::Path) -> SqlSession {
    wavelake_tests::engine_at(root).await
}

/// `sql` planned in `engine`, as the cache sees it.
async fn cacheable(engine: &SqlSession, sql: &str) -> Result<CacheableQuery, NotCacheable> {
    let frame = engine.sql(sql).await.unwrap();
    CacheableQuery::of(sql, frame.logical_plan())
}

/// Runs `sql` in `engine` through `cache` as the server does: the kept
/// result when there is one, else the query's, kept. Returns the answer as
/// text and whether it came from the cache.
async fn answer(cache: &ResultCache, engine: &SqlSession, sql: &str) -> (String, bool) {
    let frame = engine.sql(sql).await.unwrap();
    let query = CacheableQuery::of(sql, frame.logical_plan()).unwrap();
    if let Some(kept) = cache.get(&query) {
        return (text(&kept.batches), true);
    }
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await.unwrap();
    let result = CachedResult {
        schema,
        batches: batches.clone(),
    };
    assert!(cache.insert(query, result), "{sql} was not kept");
    (text(&batches), false)
}

fn text(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).unwrap().to_string()
}

async fn create_t(engine: &SqlSession) {
    engine.query("CREATE TABLE t (id BIGINT)").await.unwrap();
    engine
        .query("INSERT INTO t SELECT value FROM generate_series(1, 100)")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_repeated_query_is_answered_from_the_cache_until_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    create_t(&session(dir.path()).await).await;
    let cache = ResultCache::new(64 << 20);

    let (first, hit) = answer(&cache, &session(dir.path()).await, TOTALS).await;
    assert!(!hit);
    let (again, hit) = answer(&cache, &session(dir.path()).await, TOTALS).await;
    assert!(hit, "the same query over the same version ran again");
    assert_eq!(again, first);
    let figures = cache.figures();
    assert_eq!((figures.hits, figures.misses), (1, 1), "{figures:?}");
    assert_eq!(figures.entries_held, 1);
    assert!(
        figures.bytes_served > 0 && figures.bytes_held > 0,
        "{figures:?}"
    );

    // Another writer commits: the next request sees a new version, runs
    // the query and answers with the new rows.
    session(dir.path())
        .await
        .query("INSERT INTO t VALUES (1000)")
        .await
        .unwrap();
    let (after_commit, hit) = answer(&cache, &session(dir.path()).await, TOTALS).await;
    assert!(!hit, "a commit must make the query run again");
    assert_ne!(after_commit, first);
    assert!(after_commit.contains("| 1 | 2717  |"), "{after_commit}");
    let (repeated, hit) = answer(&cache, &session(dir.path()).await, TOTALS).await;
    assert!(hit);
    assert_eq!(repeated, after_commit);

    // The old version, read by time travel, is its own result.
    let old = TOTALS.replace("FROM t", "FROM t VERSION AS OF 1");
    let (at_version_1, hit) = answer(&cache, &session(dir.path()).await, &old).await;
    assert!(!hit);
    assert_eq!(at_version_1, first);
}

#[tokio::test]
async fn a_table_made_again_at_the_same_place_is_not_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    create_t(&session(dir.path()).await).await;
    let cache = ResultCache::new(64 << 20);
    let (first, _) = answer(&cache, &session(dir.path()).await, TOTALS).await;

    // Dropped and created again: version 1 again, other rows.
    let engine = session(dir.path()).await;
    engine.query("DROP TABLE t").await.unwrap();
    engine.query("CREATE TABLE t (id BIGINT)").await.unwrap();
    engine
        .query("INSERT INTO t SELECT value FROM generate_series(1, 10)")
        .await
        .unwrap();
    let (made_again, hit) = answer(&cache, &session(dir.path()).await, TOTALS).await;
    assert!(
        !hit,
        "a new table at the same place and version hit the old result"
    );
    assert_ne!(made_again, first);
}

#[tokio::test]
async fn answers_that_could_change_without_a_commit_are_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let engine = session(dir.path()).await;
    create_t(&engine).await;
    for (sql, function) in [
        ("SELECT count(*), now() FROM t", "now"),
        ("SELECT id FROM t WHERE random() < 0.5", "random"),
        (
            "SELECT count(*) FROM t WHERE id > 0 AND current_date() > DATE '2020-01-01'",
            "current_date",
        ),
        (
            "SELECT count(*) FROM t WHERE id IN (SELECT id FROM t WHERE random() < 0.5)",
            "random",
        ),
    ] {
        let refused = cacheable(&engine, sql).await.unwrap_err();
        assert_eq!(
            refused,
            NotCacheable::Unstable {
                function: function.into()
            },
            "{sql}"
        );
    }
    assert!(matches!(
        cacheable(&engine, "SELECT * FROM information_schema.tables").await,
        Err(NotCacheable::NotADeltaTable { .. })
    ));
    assert!(matches!(
        cacheable(
            &engine,
            "SELECT count(*) FROM (VALUES (1)) v(x) JOIN information_schema.tables ON true"
        )
        .await,
        Err(NotCacheable::NotADeltaTable { .. })
    ));
    assert_eq!(
        cacheable(&engine, "EXPLAIN SELECT count(*) FROM t")
            .await
            .unwrap_err(),
        NotCacheable::NotAQuery
    );
    // Immutable functions and constants are fine.
    assert!(
        cacheable(
            &engine,
            "SELECT abs(id - 50), upper('a') FROM t WHERE id < 10"
        )
        .await
        .is_ok()
    );
}

/// Buffered rows for every table, set by the test.
#[derive(Debug, Default)]
struct Pending(Mutex<Vec<RecordBatch>>);

impl BufferedRows for Pending {
    fn rows(&self, _location: &str) -> BufferedBatches {
        BufferedBatches {
            batches: self.0.lock().unwrap().clone(),
            flushed: None,
            sequences: None,
        }
    }
}

fn ids(values: Vec<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values))]).unwrap()
}

#[tokio::test]
async fn rows_buffered_before_or_while_a_query_runs_keep_its_result_out() {
    let dir = tempfile::tempdir().unwrap();
    create_t(&session(dir.path()).await).await;
    let pending = Arc::new(Pending::default());
    let engine = wavelake_tests::engine_at_with(
        dir.path(),
        SqlSessionOptions {
            buffered_rows: Some(pending.clone()),
            ..Default::default()
        },
    )
    .await;
    let cache = ResultCache::new(64 << 20);

    // Rows buffered while the query ran: its answer has them, so it is not
    // kept under the version that lacks them.
    let query = cacheable(&engine, TOTALS).await.unwrap();
    *pending.0.lock().unwrap() = vec![ids(vec![7])];
    let batches = engine.query(TOTALS).await.unwrap();
    let schema = batches[0].schema();
    assert!(!cache.insert(query, CachedResult { schema, batches }));
    assert_eq!(cache.figures().entries_held, 0);

    // Rows buffered before: not kept at all.
    assert_eq!(
        cacheable(&engine, TOTALS).await.unwrap_err(),
        NotCacheable::NotItsSnapshot { table: "t".into() }
    );
}

#[tokio::test]
async fn a_result_larger_than_a_quarter_of_the_budget_is_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let engine = session(dir.path()).await;
    create_t(&engine).await;
    let sql = "SELECT t.id, u.id AS other FROM t, t AS u";
    let batches = engine.query(sql).await.unwrap();
    let bytes: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
    let schema = batches[0].schema();
    let small = ResultCache::new(bytes as u64 * 3);
    let query = cacheable(&engine, sql).await.unwrap();
    let result = CachedResult {
        schema: schema.clone(),
        batches: batches.clone(),
    };
    assert!(!small.insert(query, result));
    let large = ResultCache::new(bytes as u64 * 5);
    let query = cacheable(&engine, sql).await.unwrap();
    assert!(large.insert(query, CachedResult { schema, batches }));
    let query = cacheable(&engine, sql).await.unwrap();
    assert!(large.get(&query).is_some());
}
