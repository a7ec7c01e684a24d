//! Fault injection: a seeded campaign of INSERTs, DELETEs, UPDATEs and
//! OPTIMIZEs, each followed by a query, all through a storage that fails,
//! delays and loses the answers of reads and writes. Every failure must be
//! the injected fault (never a panic, never a corrupt-table error), no
//! acknowledged change may be lost, no change may be partly visible, and
//! the table must stay readable by `deltalake` and DuckDB with the rows
//! the model says. `WAVELAKE_FAULT_OPS` and `WAVELAKE_FAULT_SEED` make the
//! campaign longer or different (scripts/bench.sh runs thousands).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wavelake_engine::Error;
use wavelake_engine::storage::{ObjectStoreStorage, StorageRef};
use wavelake_tests::faults::{FaultRates, FaultyStorage};
use wavelake_tests::markers::{Change, Marker, check, env_or, rows_by_marker};

/// Asserts that a failed statement failed because of an injected fault.
fn assert_injected(err: &Error, statement: &str) {
    let text = err.to_string();
    assert!(
        text.contains("injected fault"),
        "{statement}: failed for another reason than the injected fault: {err:?}"
    );
}

/// The next statement of a campaign: mostly INSERTs of `new_marker`, else
/// a DELETE or UPDATE of a marker the model has, or an OPTIMIZE.
fn next_change(rng: &mut StdRng, model: &BTreeMap<i64, Marker>, new_marker: i64) -> Change {
    let live: Vec<i64> = model
        .iter()
        .filter(|(_, m)| m.inserted && !m.deleted && !m.maybe_deleted)
        .map(|(k, _)| *k)
        .collect();
    let choice = rng.random_range(0..100);
    let mut pick = || live[rng.random_range(0..live.len())];
    if choice < 60 || live.is_empty() {
        Change::Insert(new_marker)
    } else if choice < 75 {
        Change::Delete(pick())
    } else if choice < 92 {
        Change::Update(pick())
    } else {
        Change::Optimize
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_never_lose_or_tear_a_commit() {
    let ops = env_or("WAVELAKE_FAULT_OPS", 300);
    let seed = env_or("WAVELAKE_FAULT_SEED", 20261202);
    let dir = tempfile::tempdir().unwrap();
    let clean = wavelake_tests::engine_at(dir.path()).await;
    clean
        .query("CREATE TABLE t (marker BIGINT NOT NULL, part BIGINT NOT NULL)")
        .await
        .unwrap();
    let location = dir.path().join("t");
    let inner: StorageRef = Arc::new(ObjectStoreStorage::open(location.to_str().unwrap()).unwrap());
    let rates = FaultRates {
        read_failure: 0.005,
        write_failure: 0.04,
        lost_answer: 0.1,
        max_delay: Duration::from_millis(2),
    };
    let faulty = Arc::new(FaultyStorage::new(inner, rates, seed));
    let engine = wavelake_write::session();
    engine.register("t", faulty.clone()).await.unwrap();

    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut model: BTreeMap<i64, Marker> = BTreeMap::new();
    let (mut acked, mut failed, mut reads_ok, mut reads_failed) = (0u64, 0u64, 0u64, 0u64);
    for op in 0..ops as i64 {
        let change = next_change(&mut rng, &model, op);
        let statement = change.sql("t");
        // A failed INSERT may still have landed (its answer lost): the
        // model then knows the marker, not whether its rows are there.
        if let Change::Insert(marker) = change {
            model.entry(marker).or_default();
        }
        match engine.query(&statement).await {
            Ok(_) => {
                acked += 1;
                change.record(&mut model, true);
            }
            Err(e) => {
                failed += 1;
                assert_injected(&e, &statement);
                change.record(&mut model, false);
            }
        }
        clean.refresh("t").await.unwrap();
        let rows = rows_by_marker(&clean, "t").await;
        check(&model, &rows, &statement);
        // A reader through the faults sees what the clean one sees, or
        // fails with the fault.
        let expected = rows.values().map(Vec::len).sum::<usize>() as i64;
        match engine.query("SELECT count(*) FROM t").await {
            Ok(batches) => {
                let counted = batches[0].column(0).as_primitive::<Int64Type>().value(0);
                assert_eq!(
                    counted, expected,
                    "a reader through the faults after {statement}"
                );
                reads_ok += 1;
            }
            Err(e) => {
                assert_injected(&e, "SELECT count(*)");
                reads_failed += 1;
            }
        }
    }
    let counts = &faulty.counts;
    eprintln!(
        "faults (seed {seed}): {ops} statements, {acked} acknowledged, {failed} failed; \
         {reads_ok} reads agreed, {reads_failed} failed; {} storage calls, {} faults \
         injected ({} read failures, {} write failures, {} lost answers)",
        counts.calls.load(Ordering::Relaxed),
        counts.injected(),
        counts.read_failures.load(Ordering::Relaxed),
        counts.write_failures.load(Ordering::Relaxed),
        counts.lost_answers.load(Ordering::Relaxed),
    );
    assert!(counts.lost_answers.load(Ordering::Relaxed) > 0 && failed > 0);
    let rows: BTreeSet<i64> = rows_by_marker(&clean, "t").await.into_keys().collect();
    assert!(!rows.is_empty());
    wavelake_tests::assert_oracles_agree("faults_never_lose_or_tear_a_commit", &[location]).await;
}

/// What one writer of the concurrent campaign saw.
struct WriterOutcome {
    model: BTreeMap<i64, Marker>,
    acked: u64,
    failed: u64,
    conflicts: u64,
    faults: u64,
    calls: u64,
}

/// One of `writers` writers: its own engine through its own faulty
/// storage over the shared table, changing only its own markers (those
/// equal to `writer` modulo `writers`), its rows checked against its model
/// after every statement while the others write too.
async fn concurrent_writer(
    writer: i64,
    writers: i64,
    ops: u64,
    root: std::path::PathBuf,
    seed: u64,
) -> WriterOutcome {
    let rates = FaultRates {
        read_failure: 0.005,
        write_failure: 0.04,
        lost_answer: 0.1,
        max_delay: Duration::from_millis(2),
    };
    let location = root.join("t");
    let inner: StorageRef = Arc::new(ObjectStoreStorage::open(location.to_str().unwrap()).unwrap());
    let faulty = Arc::new(FaultyStorage::new(inner, rates, seed));
    let engine = wavelake_write::session();
    engine.register("t", faulty.clone()).await.unwrap();
    let clean = wavelake_tests::engine_at(&root).await;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut model: BTreeMap<i64, Marker> = BTreeMap::new();
    let (mut acked, mut failed, mut conflicts) = (0u64, 0u64, 0u64);
    for op in 0..ops as i64 {
        let change = next_change(&mut rng, &model, op * writers + writer);
        let statement = change.sql("t");
        if let Change::Insert(marker) = change {
            model.entry(marker).or_default();
        }
        match engine.query(&statement).await {
            Ok(_) => {
                acked += 1;
                change.record(&mut model, true);
            }
            Err(Error::CommitConflict { .. }) => {
                conflicts += 1;
                change.record(&mut model, false);
            }
            Err(e) => {
                failed += 1;
                assert_injected(&e, &statement);
                change.record(&mut model, false);
            }
        }
        clean.refresh("t").await.unwrap();
        let mine: BTreeMap<i64, Vec<i64>> = rows_by_marker(&clean, "t")
            .await
            .into_iter()
            .filter(|(marker, _)| marker.rem_euclid(writers) == writer)
            .collect();
        check(&model, &mine, &format!("writer {writer}: {statement}"));
    }
    let counts = &faulty.counts;
    WriterOutcome {
        model,
        acked,
        failed,
        conflicts,
        faults: counts.injected(),
        calls: counts.calls.load(Ordering::Relaxed),
    }
}

/// Writers racing through faults: each writer's acknowledged changes are
/// there exactly once, nothing of a failed or conflicting one is partly
/// visible, at every step and at the end, and the oracles agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_under_faults_never_lose_or_tear_a_commit() {
    let ops = env_or("WAVELAKE_FAULT_OPS", 300) / 3;
    let seed = env_or("WAVELAKE_FAULT_SEED", 20261202);
    let writers = 3i64;
    let dir = tempfile::tempdir().unwrap();
    let clean = wavelake_tests::engine_at(dir.path()).await;
    clean
        .query("CREATE TABLE t (marker BIGINT NOT NULL, part BIGINT NOT NULL)")
        .await
        .unwrap();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let root = dir.path().to_path_buf();
            tokio::spawn(concurrent_writer(w, writers, ops, root, seed + w as u64))
        })
        .collect();
    let mut model = BTreeMap::new();
    let (mut acked, mut failed, mut conflicts, mut faults, mut calls) = (0, 0, 0, 0, 0);
    for task in tasks {
        let outcome = task.await.unwrap();
        model.extend(outcome.model);
        acked += outcome.acked;
        failed += outcome.failed;
        conflicts += outcome.conflicts;
        faults += outcome.faults;
        calls += outcome.calls;
    }
    clean.refresh("t").await.unwrap();
    let rows = rows_by_marker(&clean, "t").await;
    check(&model, &rows, "every writer");
    eprintln!(
        "racing writers under faults (seed {seed}): {writers} writers x {ops} statements, \
         {acked} acknowledged, {failed} failed by a fault, {conflicts} conflicts; \
         {calls} storage calls, {faults} faults injected"
    );
    assert!(acked > 0 && failed > 0, "both outcomes happened");
    assert!(!rows.is_empty());
    wavelake_tests::assert_oracles_agree(
        "racing_writers_under_faults_never_lose_or_tear_a_commit",
        &[dir.path().join("t")],
    )
    .await;
}
