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
use wavelake_engine::storage::{ObjectStoreStorage, StorageRef};
use wavelake_engine::{Engine, Error};
use wavelake_tests::faults::{FaultRates, FaultyStorage};

/// Rows each INSERT writes, all with its marker (parts 0, 1, 2).
const ROWS_PER_MARKER: i64 = 3;

/// What the model knows of one marker's rows.
#[derive(Debug, Default)]
struct Marker {
    /// The INSERT was acknowledged.
    inserted: bool,
    /// A DELETE was acknowledged.
    deleted: bool,
    /// A DELETE failed: the rows may be gone.
    maybe_deleted: bool,
    /// UPDATEs acknowledged, and attempted (each adds 10 to `part`).
    updates_acked: i64,
    updates_tried: i64,
}

/// One statement of the campaign.
#[derive(Debug, Clone, Copy)]
enum Change {
    /// Inserts the rows of a new marker.
    Insert(i64),
    /// Deletes a marker's rows.
    Delete(i64),
    /// Adds 10 to the `part` of a marker's rows.
    Update(i64),
    /// Compacts the table.
    Optimize,
}

impl Change {
    fn sql(self) -> String {
        match self {
            Self::Insert(marker) => {
                let values: Vec<String> = (0..ROWS_PER_MARKER)
                    .map(|part| format!("({marker}, {part})"))
                    .collect();
                format!("INSERT INTO t VALUES {}", values.join(", "))
            }
            Self::Delete(marker) => format!("DELETE FROM t WHERE marker = {marker}"),
            Self::Update(marker) => {
                format!("UPDATE t SET part = part + 10 WHERE marker = {marker}")
            }
            Self::Optimize => "OPTIMIZE t".to_owned(),
        }
    }

    /// What the model learns from the statement's outcome.
    fn record(self, model: &mut BTreeMap<i64, Marker>, acknowledged: bool) {
        match self {
            Self::Insert(marker) => model.entry(marker).or_default().inserted = acknowledged,
            Self::Delete(marker) => {
                let known = model.entry(marker).or_default();
                known.deleted |= acknowledged;
                known.maybe_deleted |= !acknowledged;
            }
            Self::Update(marker) => {
                let known = model.entry(marker).or_default();
                known.updates_tried += 1;
                known.updates_acked += i64::from(acknowledged);
            }
            Self::Optimize => {}
        }
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `marker → parts` of the table as a clean reader sees it.
async fn rows_by_marker(engine: &Engine) -> BTreeMap<i64, Vec<i64>> {
    let batches = engine
        .query("SELECT marker, part FROM t ORDER BY marker, part")
        .await
        .expect("a clean reader reads the table");
    let mut rows: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for batch in &batches {
        let markers = batch.column(0).as_primitive::<Int64Type>();
        let parts = batch.column(1).as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            rows.entry(markers.value(i))
                .or_default()
                .push(parts.value(i));
        }
    }
    rows
}

/// Checks the table against the model; panics with the first mismatch.
fn check(model: &BTreeMap<i64, Marker>, rows: &BTreeMap<i64, Vec<i64>>, after: &str) {
    for (marker, parts) in rows {
        let known = model
            .get(marker)
            .unwrap_or_else(|| panic!("after {after}: rows of marker {marker}, never inserted"));
        let shift = parts[0] / 10 * 10;
        let expected: Vec<i64> = (0..ROWS_PER_MARKER).map(|p| p + shift).collect();
        assert_eq!(
            parts, &expected,
            "after {after}: marker {marker} is partly visible or changed in part"
        );
        let applied = shift / 10;
        assert!(
            (known.updates_acked..=known.updates_tried).contains(&applied),
            "after {after}: marker {marker} updated {applied} times, {known:?}"
        );
        assert!(
            !known.deleted,
            "after {after}: marker {marker} deleted yet there"
        );
    }
    for (marker, known) in model {
        if known.inserted && !known.deleted && !known.maybe_deleted {
            assert!(
                rows.contains_key(marker),
                "after {after}: acknowledged marker {marker} is lost"
            );
        }
    }
}

/// Asserts that a failed statement failed because of an injected fault.
fn assert_injected(err: &Error, statement: &str) {
    let text = err.to_string();
    assert!(
        text.contains("injected fault"),
        "{statement}: failed for another reason than the injected fault: {err:?}"
    );
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
    let engine = Engine::new();
    engine.register("t", faulty.clone()).await.unwrap();

    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut model: BTreeMap<i64, Marker> = BTreeMap::new();
    let (mut acked, mut failed, mut reads_ok, mut reads_failed) = (0u64, 0u64, 0u64, 0u64);
    for op in 0..ops as i64 {
        let live: Vec<i64> = model
            .iter()
            .filter(|(_, m)| m.inserted && !m.deleted && !m.maybe_deleted)
            .map(|(k, _)| *k)
            .collect();
        let choice = rng.random_range(0..100);
        let pick = |rng: &mut StdRng| live[rng.random_range(0..live.len())];
        let change = if choice < 60 || live.is_empty() {
            Change::Insert(op)
        } else if choice < 75 {
            Change::Delete(pick(&mut rng))
        } else if choice < 92 {
            Change::Update(pick(&mut rng))
        } else {
            Change::Optimize
        };
        let statement = change.sql();
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
        let rows = rows_by_marker(&clean).await;
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
    let rows: BTreeSet<i64> = rows_by_marker(&clean).await.into_keys().collect();
    assert!(!rows.is_empty());
    wavelake_tests::assert_oracles_agree("faults_never_lose_or_tear_a_commit", &[location]).await;
}
