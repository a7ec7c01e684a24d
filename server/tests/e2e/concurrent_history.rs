//! A seeded, randomized concurrency checker: writers in threads (the
//! engine in process) and in separate processes (`wavelake sql`) race
//! INSERTs, DELETEs and UPDATEs by key, MERGE upserts of a few hot keys,
//! OPTIMIZE and VACUUM on one table, on a local directory and on S3
//! (moto). Every statement carries a unique marker. Afterwards the table's
//! history is replayed version by version: each commit is the effect of
//! exactly one acknowledged statement applied to the version before it,
//! every acknowledged INSERT and MERGE shows exactly once, no statement
//! that failed with a conflict shows at all, no key ever has two rows, and
//! `deltalake` and DuckDB read the final rows. `WAVELAKE_HISTORY_OPS` and
//! `WAVELAKE_HISTORY_SEED` make it longer or different.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use wavelake_engine::SqlSession;
use wavelake_engine::storage::{ObjectStoreStorage, StorageRef};
use wavelake_tests::MotoServer;

/// Keys every writer's MERGE upserts race on.
const HOT_KEYS: [i64; 3] = [-1, -2, -3];

/// Where the table is, and how each kind of writer reaches it.
#[derive(Clone)]
struct Target {
    location: String,
    options: Vec<(&'static str, String)>,
    environment: Vec<(&'static str, String)>,
}

impl Target {
    fn storage(&self) -> StorageRef {
        Arc::new(ObjectStoreStorage::open_with(&self.location, self.options.clone()).unwrap())
    }

    async fn engine(&self) -> SqlSession {
        let engine = wavelake_write::session();
        engine.register("t", self.storage()).await.unwrap();
        engine
    }
}

/// One statement, and the marker it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Insert { marker: i64 },
    Delete { key: i64 },
    Update { key: i64, marker: i64 },
    Merge { key: i64, marker: i64 },
    Optimize,
    Vacuum,
}

impl Change {
    fn sql(self) -> String {
        match self {
            Self::Insert { marker } => format!("INSERT INTO t VALUES ({marker}, 0, {marker})"),
            Self::Delete { key } => format!("DELETE FROM t WHERE k = {key}"),
            Self::Update { key, marker } => {
                format!("UPDATE t SET v = v + 1, marker = {marker} WHERE k = {key}")
            }
            Self::Merge { key, marker } => format!(
                "MERGE INTO t USING (SELECT CAST({key} AS BIGINT) AS k, CAST({marker} AS BIGINT) \
                 AS marker) s ON t.k = s.k WHEN MATCHED THEN UPDATE SET v = t.v + 1, marker = \
                 s.marker WHEN NOT MATCHED THEN INSERT (k, v, marker) VALUES (s.k, 0, s.marker)"
            ),
            Self::Optimize => "OPTIMIZE t".into(),
            Self::Vacuum => "VACUUM t".into(),
        }
    }

    fn marker(self) -> Option<i64> {
        match self {
            Self::Insert { marker } | Self::Update { marker, .. } | Self::Merge { marker, .. } => {
                Some(marker)
            }
            _ => None,
        }
    }
}

/// What happened to a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Acknowledged,
    Conflict,
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The statements of writer `writer`, drawn from the seed.
fn plan(seed: u64, writer: i64, count: i64) -> Vec<Change> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ (writer as u64).wrapping_mul(0x9e37));
    (0..count)
        .map(|i| {
            let marker = writer * 10_000 + i + 1;
            // An earlier writer's or this one's insert, or a hot key.
            let any_key = |rng: &mut rand::rngs::StdRng| {
                if rng.random_bool(0.4) {
                    HOT_KEYS[rng.random_range(0..HOT_KEYS.len())]
                } else {
                    rng.random_range(0..4) * 10_000 + rng.random_range(1..=i.max(1))
                }
            };
            match rng.random_range(0..100) {
                0..40 => Change::Insert { marker },
                40..55 => Change::Delete {
                    key: any_key(&mut rng),
                },
                55..70 => Change::Update {
                    key: any_key(&mut rng),
                    marker,
                },
                70..92 => Change::Merge {
                    key: HOT_KEYS[rng.random_range(0..HOT_KEYS.len())],
                    marker,
                },
                92..97 => Change::Optimize,
                _ => Change::Vacuum,
            }
        })
        .collect()
}

/// Runs `change` in this process.
async fn run_in_process(target: &Target, change: Change) -> Outcome {
    match target.engine().await.query(&change.sql()).await {
        Ok(_) => Outcome::Acknowledged,
        Err(wavelake_engine::Error::CommitConflict { .. }) => Outcome::Conflict,
        Err(e) => panic!("{change:?}: neither committed nor a conflict: {e}"),
    }
}

/// Runs `change` with `wavelake sql` in a process of its own.
fn run_in_a_process(target: &Target, change: Change) -> Outcome {
    let out = Command::new(env!("CARGO_BIN_EXE_wavelake"))
        .args(["sql", &change.sql(), "--table"])
        .arg(format!("t={}", target.location))
        .args(["--format", "csv"])
        .envs(target.environment.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("wavelake runs");
    match out.status.code() {
        Some(0) => Outcome::Acknowledged,
        Some(3) => Outcome::Conflict,
        _ => panic!(
            "{change:?}: neither committed nor a conflict: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The rows of version `version`: key → (v, marker).
async fn rows_at(engine: &SqlSession, version: i64) -> BTreeMap<i64, (i64, i64)> {
    let batches = engine
        .query(&format!(
            "SELECT k, v, marker FROM t VERSION AS OF {version}"
        ))
        .await
        .unwrap();
    let mut rows = BTreeMap::new();
    for batch in &batches {
        let (k, v, m) = (
            batch.column(0).as_primitive::<Int64Type>(),
            batch.column(1).as_primitive::<Int64Type>(),
            batch.column(2).as_primitive::<Int64Type>(),
        );
        for i in 0..batch.num_rows() {
            let previous = rows.insert(k.value(i), (v.value(i), m.value(i)));
            assert!(
                previous.is_none(),
                "version {version}: key {} has two rows",
                k.value(i)
            );
        }
    }
    rows
}

/// Replays the history against the statements and their outcomes.
async fn check_history(target: &Target, outcomes: &BTreeMap<i64, (Change, Outcome)>) -> usize {
    let engine = target.engine().await;
    let latest = engine
        .query("SELECT max(version) FROM delta_history('t')")
        .await
        .unwrap()[0]
        .column(0)
        .as_primitive::<Int64Type>()
        .value(0);
    let mut before = rows_at(&engine, 0).await;
    assert!(before.is_empty());
    let mut seen: BTreeMap<i64, i64> = BTreeMap::new();
    for version in 1..=latest {
        let after = rows_at(&engine, version).await;
        let removed: Vec<i64> = before
            .keys()
            .filter(|k| !after.contains_key(k))
            .copied()
            .collect();
        let changed: Vec<i64> = after
            .iter()
            .filter(|(k, row)| before.get(k) != Some(row))
            .map(|(k, _)| *k)
            .collect();
        assert!(
            removed.len() + changed.len() <= 1,
            "version {version} changed more than one statement's key: removed {removed:?}, \
             changed {changed:?}"
        );
        if let Some(&key) = changed.first() {
            let (v, marker) = after[&key];
            let (change, outcome) = outcomes
                .get(&marker)
                .unwrap_or_else(|| panic!("version {version}: marker {marker} of no statement"));
            assert_eq!(
                *outcome,
                Outcome::Acknowledged,
                "version {version}: {change:?} failed with a conflict, yet shows"
            );
            let expected = match (*change, before.get(&key)) {
                (Change::Insert { marker }, None) if key == marker => (0, marker),
                (Change::Merge { key: k, marker }, None) if k == key => (0, marker),
                (Change::Merge { key: k, marker }, Some((v, _))) if k == key => (v + 1, marker),
                (Change::Update { key: k, marker }, Some((v, _))) if k == key => (v + 1, marker),
                (other, previous) => panic!(
                    "version {version}: key {key} went from {previous:?} to {:?}, which \
                     {other:?} does not do",
                    after[&key]
                ),
            };
            assert_eq!((v, marker), expected, "version {version}: key {key}");
            *seen.entry(marker).or_default() += 1;
        }
        if let Some(&key) = removed.first() {
            let deleted = outcomes.values().any(|(change, outcome)| {
                *change == Change::Delete { key } && *outcome == Outcome::Acknowledged
            });
            assert!(
                deleted,
                "version {version}: key {key} vanished without a DELETE"
            );
        }
        before = after;
    }
    for (marker, (change, outcome)) in outcomes {
        let shown = seen.get(marker).copied().unwrap_or(0);
        match (change, outcome) {
            (Change::Insert { .. } | Change::Merge { .. }, Outcome::Acknowledged) => {
                assert_eq!(shown, 1, "{change:?} acknowledged, shown {shown} times");
            }
            (_, Outcome::Conflict) => assert_eq!(shown, 0, "{change:?} failed, yet shown"),
            _ => assert!(shown <= 1, "{change:?} shown {shown} times"),
        }
    }
    latest as usize
}

async fn run_history(test: &str, target: Target) -> Vec<(i64, (Change, Outcome))> {
    let seed = env_or("WAVELAKE_HISTORY_SEED", 20261202);
    let ops = env_or("WAVELAKE_HISTORY_OPS", 25) as i64;
    let creator = wavelake_write::session().with_storage_opener({
        let options = target.options.clone();
        Arc::new(move |location: &str| {
            Ok(Arc::new(ObjectStoreStorage::open_with(location, options.clone())?) as StorageRef)
        })
    });
    creator
        .query(&format!(
            "CREATE TABLE t (k BIGINT NOT NULL, v BIGINT NOT NULL, marker BIGINT NOT NULL) \
             LOCATION '{}'",
            target.location
        ))
        .await
        .unwrap();
    // Writers 0 and 1 in threads, 2 and 3 in processes of their own.
    let mut tasks = Vec::new();
    for writer in 0..4i64 {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for change in plan(seed, writer, ops) {
                let outcome = if writer < 2 {
                    run_in_process(&target, change).await
                } else {
                    let target = target.clone();
                    tokio::task::spawn_blocking(move || run_in_a_process(&target, change))
                        .await
                        .unwrap()
                };
                outcomes.push((change, outcome));
            }
            outcomes
        }));
    }
    let mut all = Vec::new();
    let mut by_marker = BTreeMap::new();
    for task in tasks {
        for (change, outcome) in task.await.unwrap() {
            if let Some(marker) = change.marker() {
                by_marker.insert(marker, (change, outcome));
            }
            all.push((change.marker().unwrap_or(0), (change, outcome)));
        }
    }
    // Deletes carry no marker: key them apart.
    for (i, (_, (change, outcome))) in all.iter().enumerate() {
        if let Change::Delete { .. } = change {
            by_marker.insert(-1_000_000 - i as i64, (*change, *outcome));
        }
    }
    let versions = check_history(&target, &by_marker).await;
    let acknowledged = all
        .iter()
        .filter(|(_, (_, o))| *o == Outcome::Acknowledged)
        .count();
    let kinds: BTreeSet<&str> = all
        .iter()
        .map(|(_, (c, _))| match c {
            Change::Insert { .. } => "insert",
            Change::Delete { .. } => "delete",
            Change::Update { .. } => "update",
            Change::Merge { .. } => "merge",
            Change::Optimize => "optimize",
            Change::Vacuum => "vacuum",
        })
        .collect();
    eprintln!(
        "{test} (seed {seed}): {} statements ({kinds:?}) by 2 threads and 2 processes, \
         {acknowledged} acknowledged, {} conflicts; {versions} versions replayed",
        all.len(),
        all.len() - acknowledged
    );
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_histories_replay_on_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("t");
    let target = Target {
        location: location.to_str().unwrap().to_owned(),
        options: Vec::new(),
        environment: Vec::new(),
    };
    run_history("local directory", target).await;
    wavelake_tests::assert_oracles_agree(
        "concurrent_histories_replay_on_a_local_directory",
        &[location],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_histories_replay_on_s3() {
    let Some(moto) = MotoServer::start("concurrent_histories_replay_on_s3") else {
        return;
    };
    moto.create_bucket("history");
    let environment = vec![
        ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_ACCESS_KEY_ID", "wavelake".into()),
        ("AWS_SECRET_ACCESS_KEY", "wavelake".into()),
        ("AWS_REGION", "us-east-1".into()),
    ];
    let target = Target {
        location: "s3://history/t".into(),
        options: moto.options(),
        environment,
    };
    run_history("S3 (moto)", target).await;
}
