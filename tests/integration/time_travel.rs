//! Time travel in SQL: `VERSION AS OF` and `TIMESTAMP AS OF` really return
//! the rows of the older version.

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use wavelake_engine::storage::ObjectStoreStorage;
use wavelake_engine::{Error, SqlSession};
use wavelake_tests::{golden_or_skip, unpack};

fn first_row(batches: &[RecordBatch]) -> Vec<i64> {
    let batch = &batches[0];
    (0..batch.num_columns())
        .map(|c| batch.column(c).as_primitive::<Int64Type>().value(0))
        .collect()
}

async fn engine_over(table: &str) -> Option<SqlSession> {
    let root = golden_or_skip("time travel")?;
    let dir = unpack(&root.join(format!("kernel-golden/{table}.tar.zst"))).join("delta");
    let engine = wavelake_write::session();
    let storage = ObjectStoreStorage::open(dir.to_str().expect("utf-8")).expect("storage");
    engine
        .register("t", Arc::new(storage))
        .await
        .expect("register");
    Some(engine)
}

#[tokio::test]
async fn version_as_of_returns_the_rows_of_each_version() {
    // Spark appended ids 0..10, 10..20 and 20..30 in three commits.
    let Some(engine) = engine_over("time-travel-start-start20-start40").await else {
        return;
    };
    let at = |v: Option<i64>| {
        let clause = v.map(|v| format!(" VERSION AS OF {v}")).unwrap_or_default();
        format!("SELECT count(*), min(id), max(id) FROM t{clause}")
    };
    let v0 = first_row(&engine.query(&at(Some(0))).await.expect("v0"));
    let v1 = first_row(&engine.query(&at(Some(1))).await.expect("v1"));
    let v2 = first_row(&engine.query(&at(Some(2))).await.expect("v2"));
    let latest = first_row(&engine.query(&at(None)).await.expect("latest"));
    assert_eq!(v0, vec![10, 0, 9]);
    assert_eq!(v1, vec![20, 0, 19]);
    assert_eq!(v2, vec![30, 0, 29]);
    assert_eq!(latest, v2);

    // Both a time-travelled and a current reference in one statement.
    let diff = engine
        .query("SELECT count(*) FROM t WHERE id NOT IN (SELECT id FROM t VERSION AS OF 0)")
        .await
        .expect("mixed versions");
    assert_eq!(first_row(&diff), vec![20]);

    // The same aggregation over two versions of one table is two
    // computations, not one shared result.
    let sums = engine
        .query(
            "SELECT a.s, b.s FROM (SELECT sum(id) AS s FROM t VERSION AS OF 0) a, \
             (SELECT sum(id) AS s FROM t) b",
        )
        .await
        .expect("sums of two versions");
    assert_eq!(first_row(&sums), vec![45, 435]);

    let err = engine.query(&at(Some(7))).await.expect_err("no version 7");
    assert!(
        matches!(err, Error::VersionNotFound { version: 7, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn timestamp_as_of_picks_the_version_committed_by_then() {
    let Some(engine) = engine_over("time-travel-start-start20-start40").await else {
        return;
    };
    let far_future = engine
        .query("SELECT count(*) FROM t TIMESTAMP AS OF '2999-01-01 00:00:00'")
        .await
        .expect("future timestamp gives the latest version");
    assert_eq!(first_row(&far_future), vec![30]);
    let err = engine
        .query("SELECT count(*) FROM t TIMESTAMP AS OF '1990-01-01'")
        .await
        .expect_err("before the first commit");
    assert!(matches!(err, Error::TimestampOutOfRange { .. }), "{err:?}");
}
