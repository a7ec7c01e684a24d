//! Racing writers on one table, on a local directory and on S3 (a moto
//! server the test starts): every acknowledged commit is in the log exactly
//! once, versions are contiguous, the rows add up, and conflicting changes
//! either win or fail with `CommitConflict`, never both or neither.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use wavelake_engine::storage::{ObjectStoreStorage, StorageRef};
use wavelake_engine::{Error, Table};
use wavelake_tests::MotoServer;
use wavelake_write::{NewTable, SaveMode, WriteOptions, create_table, write};

const WRITERS: i64 = 6;
const COMMITS_PER_WRITER: i64 = 8;

type Opener = Arc<dyn Fn() -> StorageRef + Send + Sync>;

fn local(dir: &std::path::Path) -> Opener {
    let location = dir.to_str().unwrap().to_owned();
    Arc::new(move || Arc::new(ObjectStoreStorage::open(&location).unwrap()) as StorageRef)
}

fn on_s3(server: &MotoServer, bucket: &str) -> Opener {
    let options = server.options();
    let location = format!("s3://{bucket}/table");
    Arc::new(move || {
        Arc::new(ObjectStoreStorage::open_with(&location, options.clone()).unwrap()) as StorageRef
    })
}

fn rows(writer: i64, seq: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("writer", DataType::Int64, false),
        Field::new("seq", DataType::Int64, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![writer; 10])),
            Arc::new(Int64Array::from(vec![seq; 10])),
        ],
    )
    .unwrap()
}

async fn create(open: &Opener, sql_columns: &str) {
    let engine = wavelake_write::session();
    let frame = engine
        .context()
        .sql(&format!("SELECT {sql_columns} WHERE false"))
        .await
        .unwrap();
    let schema = frame.schema().as_arrow().clone();
    let table = NewTable {
        schema: Some(wavelake_engine::schema::StructType::from_arrow(&schema).unwrap()),
        ..NewTable::default()
    };
    let none: Option<futures::stream::Empty<wavelake_engine::Result<RecordBatch>>> = None;
    create_table(open().as_ref(), &table, none).await.unwrap();
}

async fn racing_appends(open: Opener) {
    create(
        &open,
        "CAST(0 AS BIGINT) AS writer, CAST(0 AS BIGINT) AS seq",
    )
    .await;
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let open = open.clone();
        tasks.push(tokio::spawn(async move {
            let table = Table::new(open()).unwrap();
            let mut versions = Vec::new();
            let mut most_retries = 0;
            for seq in 0..COMMITS_PER_WRITER {
                let batch = rows(writer, seq);
                let outcome = write(
                    &table,
                    futures::stream::iter([Ok(batch)]),
                    &WriteOptions {
                        mode: SaveMode::Append,
                        app_transaction: None,
                    },
                )
                .await
                .expect("blind appends never conflict");
                versions.push(outcome.version.expect("a version"));
                most_retries = most_retries.max(outcome.retries);
            }
            (versions, most_retries)
        }));
    }
    let mut acknowledged = BTreeSet::new();
    let mut most_retries = 0;
    for task in tasks {
        let (versions, retries) = task.await.unwrap();
        most_retries = most_retries.max(retries);
        for version in versions {
            assert!(acknowledged.insert(version), "version {version} twice");
        }
    }
    eprintln!("racing appends: at most {most_retries} lost races before a commit");
    let commits = WRITERS * COMMITS_PER_WRITER;
    assert_eq!(
        acknowledged.into_iter().collect::<Vec<_>>(),
        (1..=commits).collect::<Vec<_>>(),
        "every acknowledged commit once, versions contiguous"
    );
    let table = Table::new(open()).unwrap();
    let history = table.history().await.unwrap();
    assert_eq!(history.len() as i64, commits + 1);
    let engine = wavelake_write::session();
    engine.register("t", open()).await.unwrap();
    let batches = engine
        .query("SELECT count(*), count(DISTINCT writer * 1000 + seq) FROM t")
        .await
        .unwrap();
    assert_eq!(
        batches[0].column(0).as_primitive::<Int64Type>().value(0),
        commits * 10
    );
    assert_eq!(
        batches[0].column(1).as_primitive::<Int64Type>().value(0),
        commits
    );
}

/// Concurrent read-modify-write increments of one row: each either commits
/// (and counts) or fails with a conflict; the final value is the number of
/// successes, so no increment is lost or applied twice.
async fn racing_updates(open: Opener) {
    create(&open, "CAST(1 AS BIGINT) AS id, CAST(0 AS BIGINT) AS v").await;
    let engine = wavelake_write::session();
    engine.register("t", open()).await.unwrap();
    engine
        .query("INSERT INTO t VALUES (1, 0), (2, 0)")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let open = open.clone();
        tasks.push(tokio::spawn(async move {
            let engine = wavelake_write::session();
            engine.register("t", open()).await.unwrap();
            let (mut won, mut lost) = (0i64, 0i64);
            for _ in 0..5 {
                match engine.query("UPDATE t SET v = v + 1 WHERE id = 1").await {
                    Ok(_) => won += 1,
                    Err(Error::CommitConflict { version, reason }) => {
                        assert!(version > 0 && !reason.is_empty());
                        lost += 1;
                    }
                    Err(other) => panic!("neither a commit nor a conflict: {other}"),
                }
            }
            (won, lost)
        }));
    }
    let mut won = 0;
    let mut lost = 0;
    for task in tasks {
        let (w, l) = task.await.unwrap();
        won += w;
        lost += l;
    }
    eprintln!("racing updates: {won} committed, {lost} conflicts");
    assert!(won >= 1);
    engine.refresh("t").await.unwrap();
    let batches = engine.query("SELECT v FROM t ORDER BY id").await.unwrap();
    let values = batches[0].column(0).as_primitive::<Int64Type>();
    assert_eq!(
        values.value(0),
        won,
        "one increment per acknowledged UPDATE"
    );
    assert_eq!(values.value(1), 0);
}

/// Racing MERGE upserts of the same new keys: each MERGE either commits
/// or fails with a conflict, and no key ever has two rows (before the
/// conflict check saw added files, every racer inserted every key).
async fn racing_merges(open: Opener) {
    const KEYS: i64 = 8;
    const RACERS: i64 = 4;
    create(&open, "CAST(0 AS BIGINT) AS k, CAST(0 AS BIGINT) AS v").await;
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS as usize));
    let mut tasks = Vec::new();
    for racer in 0..RACERS {
        let open = open.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let (mut won, mut lost) = (0, 0);
            for key in 0..KEYS {
                let engine = wavelake_write::session();
                engine.register("t", open()).await.unwrap();
                barrier.wait().await;
                let merge = format!(
                    "MERGE INTO t USING (SELECT CAST({key} AS BIGINT) AS k, \
                     CAST({racer} AS BIGINT) AS v) s ON t.k = s.k \
                     WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT *"
                );
                match engine.query(&merge).await {
                    Ok(_) => won += 1,
                    Err(Error::CommitConflict { .. }) => lost += 1,
                    Err(other) => panic!("neither a commit nor a conflict: {other}"),
                }
            }
            (won, lost)
        }));
    }
    let (mut won, mut lost) = (0, 0);
    for task in tasks {
        let (w, l) = task.await.unwrap();
        won += w;
        lost += l;
    }
    eprintln!("racing merges: {won} committed, {lost} conflicts");
    assert!(won >= KEYS, "at least one MERGE per key commits");
    let engine = wavelake_write::session();
    engine.register("t", open()).await.unwrap();
    let batches = engine
        .query("SELECT k, count(*) AS n FROM t GROUP BY k ORDER BY k")
        .await
        .unwrap();
    let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let keys = batch.column(0).as_primitive::<Int64Type>();
    let counts = batch.column(1).as_primitive::<Int64Type>();
    assert_eq!(keys.values().to_vec(), (0..KEYS).collect::<Vec<_>>());
    assert!(
        counts.values().iter().all(|&n| n == 1),
        "every key has one row: {:?}",
        counts.values()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_merges_on_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    racing_merges(local(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_appends_on_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    racing_appends(local(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_updates_on_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    racing_updates(local(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_on_s3() {
    let Some(server) = MotoServer::start("racing_writers_on_s3") else {
        return;
    };
    server.create_bucket("appends");
    server.create_bucket("updates");
    server.create_bucket("merges");
    racing_appends(on_s3(&server, "appends")).await;
    racing_updates(on_s3(&server, "updates")).await;
    racing_merges(on_s3(&server, "merges")).await;
}

/// A write tagged with an application transaction lands once: a retry
/// after success is a no-op, and of two racing writers with the same
/// (app id, version) exactly one commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn application_transactions_are_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let open = local(dir.path());
    create(
        &open,
        "CAST(0 AS BIGINT) AS writer, CAST(0 AS BIGINT) AS seq",
    )
    .await;
    let tagged = |version: i64| WriteOptions {
        mode: SaveMode::Append,
        app_transaction: Some(("ingest-job".into(), version)),
    };
    let table = Table::new(open()).unwrap();
    let first = write(&table, futures::stream::iter([Ok(rows(0, 0))]), &tagged(1))
        .await
        .unwrap();
    assert_eq!(first.version, Some(1));
    let retry = write(&table, futures::stream::iter([Ok(rows(0, 0))]), &tagged(1))
        .await
        .unwrap();
    assert_eq!(retry.version, None, "already applied");
    let mut tasks = Vec::new();
    for writer in 0..4 {
        let open = open.clone();
        tasks.push(tokio::spawn(async move {
            let table = Table::new(open()).unwrap();
            write(
                &table,
                futures::stream::iter([Ok(rows(writer, 2))]),
                &WriteOptions {
                    mode: SaveMode::Append,
                    app_transaction: Some(("ingest-job".into(), 2)),
                },
            )
            .await
        }));
    }
    let mut committed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(outcome) if outcome.version.is_some() => committed += 1,
            Ok(_) => {}
            Err(Error::CommitConflict { reason, .. }) => {
                assert!(reason.contains("ingest-job"), "{reason}")
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(committed, 1, "version 2 of the job committed once");
    let engine = wavelake_write::session();
    engine.register("t", open()).await.unwrap();
    let batches = engine.query("SELECT count(*) FROM t").await.unwrap();
    assert_eq!(
        batches[0].column(0).as_primitive::<Int64Type>().value(0),
        20
    );
}
