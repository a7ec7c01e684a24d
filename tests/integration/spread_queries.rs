//! Queries spread over a group of workers that share nothing but messages
//! (as Web Workers in a page do): each worker is its own session over the
//! same tables, planning for the group; rows cross between them only as
//! encoded exchange messages. The answers must equal one session's.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use wavelake_engine::exchange::{ExchangeHub, ExchangeLink, WorkerGroup};
use wavelake_engine::{Error, SqlSession, SqlSessionOptions};

/// Carries messages between the hubs of one process, as bytes.
#[derive(Debug)]
struct Wires {
    hubs: Vec<Arc<ExchangeHub>>,
    sent: std::sync::atomic::AtomicUsize,
}

impl ExchangeLink for Wires {
    fn send(&self, to: usize, message: Vec<u8>) -> wavelake_engine::Result<()> {
        self.sent
            .fetch_add(message.len(), std::sync::atomic::Ordering::Relaxed);
        self.hubs[to].deliver(&message)
    }
}

/// A group of `size` workers, each a session over the tables under `root`.
struct Group {
    sessions: Vec<SqlSession>,
    wires: Arc<Wires>,
    next_query: u64,
}

impl Group {
    async fn over(root: &std::path::Path, size: usize) -> Self {
        let mut sessions = Vec::new();
        let mut hubs = Vec::new();
        for index in 0..size {
            let options = SqlSessionOptions {
                worker_group: Some(size),
                ..Default::default()
            };
            sessions.push(wavelake_tests::engine_at_with(root, options).await);
            hubs.push(Arc::new(ExchangeHub::new(
                WorkerGroup::new(index, size).unwrap(),
            )));
        }
        let wires = Arc::new(Wires {
            hubs,
            sent: Default::default(),
        });
        Self {
            sessions,
            wires,
            next_query: 1,
        }
    }

    /// Runs `sqls[i]` on worker `i` (the same statement everywhere unless
    /// a test says otherwise) as one query; worker 0's answer.
    async fn run_each(&mut self, sqls: &[&str]) -> wavelake_engine::Result<Vec<RecordBatch>> {
        let query = self.next_query;
        self.next_query += 1;
        let mut runs = Vec::new();
        for (index, session) in self.sessions.iter().enumerate() {
            let planned = session.prepare(sqls[index]).await?;
            let link: Arc<dyn ExchangeLink> = self.wires.clone();
            let spread = planned.spread(query, Arc::clone(&self.wires.hubs[index]), link)?;
            runs.push(tokio::spawn(spread.run()));
        }
        let mut runs = runs.into_iter();
        let first = runs.next().unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(120), first)
            .await
            .expect("worker 0 answered in time")
            .unwrap();
        // Worker 0 is done: the host cancels the query everywhere else.
        for hub in &self.wires.hubs {
            hub.cancel(query, "worker 0 finished");
        }
        for run in runs {
            tokio::time::timeout(Duration::from_secs(60), run)
                .await
                .expect("a worker ended once cancelled")
                .unwrap()
                .ok();
        }
        for hub in &self.wires.hubs {
            assert_eq!(hub.open_queries(), 0, "a query left open on a worker");
        }
        Ok(answer?.expect("worker 0 returns the result"))
    }

    async fn run(&mut self, sql: &str) -> wavelake_engine::Result<Vec<RecordBatch>> {
        let sqls = vec![sql; self.sessions.len()];
        self.run_each(&sqls).await
    }
}

/// The rows as text, sorted (an answer's order beyond its ORDER BY is
/// free).
fn rows(batches: &[RecordBatch]) -> Vec<String> {
    wavelake_tests::canonical_rows(batches, &wavelake_tests::column_names(batches)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_spread_over_two_and_three_workers_answers_as_one_session() {
    let Some(data) = wavelake_tests::tpch_sf001(
        "tpch_spread_over_two_and_three_workers_answers_as_one_session",
        "tpch-spread-sf0.01",
    ) else {
        return;
    };
    let alone = wavelake_tests::engine_at(&data).await;
    for size in [2, 3] {
        let mut group = Group::over(&data, size).await;
        for (name, sql) in wavelake_tests::tpch_queries() {
            let expected = rows(&alone.query(&sql).await.unwrap());
            let spread = rows(&group.run(&sql).await.unwrap());
            assert_eq!(spread, expected, "{name} over {size} workers");
            assert!(!expected.is_empty(), "{name} has no rows at SF0.01");
        }
        let sent = group.wires.sent.load(std::sync::atomic::Ordering::Relaxed);
        assert!(sent > 0, "no rows crossed between {size} workers");
    }
}

async fn numbers(statements: &[&str]) -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, _) = wavelake_tests::engine_after(statements).await;
    let root = dir.path().to_path_buf();
    (dir, root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_groups_sorts_and_limits_cross_workers() {
    let (_dir, root) = numbers(&[
        "CREATE TABLE a (id BIGINT, k BIGINT, name STRING)",
        "INSERT INTO a SELECT value, value % 97, concat('n', CAST(value % 13 AS STRING)) FROM generate_series(1, 20000)",
        "INSERT INTO a SELECT value, value % 89, NULL FROM generate_series(20001, 40000)",
        "CREATE TABLE b (k BIGINT, label STRING)",
        "INSERT INTO b SELECT value, concat('label', CAST(value AS STRING)) FROM generate_series(0, 120)",
        "DELETE FROM a WHERE id % 10 = 3",
    ])
    .await;
    let alone = wavelake_tests::engine_at(&root).await;
    let mut group = Group::over(&root, 2).await;
    for sql in [
        "SELECT count(*), sum(id), min(name), max(name) FROM a",
        "SELECT k, count(*) AS n, sum(id) AS s FROM a GROUP BY k ORDER BY k",
        "SELECT b.label, count(*) FROM a JOIN b ON a.k = b.k WHERE a.id % 7 = 1 GROUP BY b.label ORDER BY 2 DESC, 1",
        "SELECT id, name FROM a ORDER BY id DESC LIMIT 25",
        "SELECT * FROM a WHERE id BETWEEN 100 AND 130 ORDER BY id",
        "SELECT name, count(DISTINCT k) FROM a GROUP BY name ORDER BY name NULLS FIRST",
        "SELECT k FROM a UNION SELECT k FROM b ORDER BY k",
        "SELECT k, sum(id) OVER (PARTITION BY k ORDER BY id) AS running FROM a WHERE id < 500 ORDER BY k, running",
        "SELECT b.k, count(a.id) FROM b LEFT JOIN a ON a.k = b.k AND a.id < 50 GROUP BY b.k ORDER BY b.k",
        "SELECT count(*) FROM a WHERE k IN (SELECT k FROM b WHERE label LIKE 'label1%')",
        "SELECT id FROM a WHERE id > 39990 LIMIT 3",
    ] {
        let expected = rows(&alone.query(sql).await.unwrap());
        let spread = rows(&group.run(sql).await.unwrap());
        assert_eq!(spread, expected, "{sql}");
    }
    // A LIMIT without order: any 3 rows matching.
    let limited = group
        .run("SELECT id FROM a WHERE id > 100 LIMIT 3")
        .await
        .unwrap();
    assert_eq!(limited.iter().map(RecordBatch::num_rows).sum::<usize>(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_worker_fails_the_query_on_worker_zero() {
    let (_dir, root) = numbers(&[
        "CREATE TABLE a (id BIGINT, text STRING)",
        "INSERT INTO a SELECT value, CAST(value AS STRING) AS text FROM generate_series(1, 5000)",
        "INSERT INTO a SELECT value, 'not a number' FROM generate_series(5001, 10000)",
    ])
    .await;
    let mut group = Group::over(&root, 2).await;
    let error = group
        .run("SELECT sum(CAST(text AS BIGINT)) FROM a")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("not a number"), "{error}");
    // The group still answers the next query.
    let batches = group.run("SELECT count(*) FROM a").await.unwrap();
    assert_eq!(rows(&batches), vec!["10000".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_that_planned_differently_fail_rather_than_mix_rows() {
    let (_dir, root) = numbers(&[
        "CREATE TABLE a (id BIGINT)",
        "INSERT INTO a SELECT value FROM generate_series(1, 10000)",
        "INSERT INTO a SELECT value FROM generate_series(10001, 20000)",
    ])
    .await;
    let mut group = Group::over(&root, 2).await;
    let error = group
        .run_each(&[
            "SELECT id % 10 AS k, count(*) FROM a GROUP BY id % 10",
            "SELECT id % 10 AS k, sum(id) FROM a GROUP BY id % 10",
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::WorkerGroup { reason } if reason.contains("planned the query differently")),
        "{error:?}"
    );
}

#[test]
fn malformed_messages_and_strangers_are_refused() {
    let hub = ExchangeHub::new(WorkerGroup::new(0, 2).unwrap());
    for bytes in [
        &b""[..],
        b"WLX1",
        b"not a message at all, but long enough to have a header",
    ] {
        assert!(matches!(hub.deliver(bytes), Err(Error::WorkerGroup { .. })));
    }
    let from_worker_five = wavelake_engine::exchange::Message {
        address: wavelake_engine::exchange::Address {
            query: 1,
            plan: 1,
            exchange: 0,
            partition: 0,
            from: 5,
        },
        payload: wavelake_engine::exchange::Payload::End,
    };
    let error = hub
        .deliver(&from_worker_five.encode().unwrap())
        .unwrap_err();
    assert!(error.to_string().contains("worker 5"), "{error}");
    assert_eq!(hub.open_queries(), 0);
    assert!(WorkerGroup::new(2, 2).is_err());
    assert!(WorkerGroup::new(0, 0).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_group_never_splits_a_row_group_between_partitions() {
    let (_dir, root) = numbers(&[
        "CREATE TABLE one (id BIGINT)",
        "INSERT INTO one SELECT value FROM generate_series(1, 200000)",
        "OPTIMIZE one",
    ])
    .await;
    let options = SqlSessionOptions {
        worker_group: Some(2),
        ..Default::default()
    };
    let session = wavelake_tests::engine_at_with(&root, options).await;
    let plan = wavelake_tests::physical_plan(&session, "SELECT sum(id) FROM one").await;
    let text = datafusion::physical_plan::displayable(plan.as_ref())
        .indent(true)
        .to_string();
    let scan = text
        .lines()
        .find(|line| line.contains("DataSourceExec"))
        .expect("a scan");
    // Each (file, byte range) a partition reads appears once: a file read
    // in two ranges of rows would be fetched and decoded by two workers.
    let reads: Vec<&str> = scan
        .split(['[', ']', ','])
        .map(str::trim)
        .filter(|part| part.contains(".parquet"))
        .collect();
    let mut distinct = reads.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), reads.len(), "{scan}");
    let mut group = Group::over(&root, 2).await;
    let batches = group.run("SELECT sum(id) FROM one").await.unwrap();
    assert_eq!(rows(&batches), vec!["20000100000".to_owned()]);
}
