//! Commits: the actions of one change to a table, written as the next
//! `_delta_log/N.json` with put-if-absent. When another writer took that
//! version first, the winner's actions are checked for a logical conflict
//! the way Delta does; without one the commit is rebased onto the next
//! version and retried after a random wait, so writers that collided do not
//! collide again in lockstep. Target-agnostic: all IO is through
//! [`Storage`], and waits use the host's timer.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::log::commit_path;
use crate::protocol::{
    ActionBatch, Add, AddCdc, DomainMetadata, FileKey, Metadata, Protocol, Remove, Txn,
};
use crate::scan::FilePruner;
use crate::storage::Storage;
use crate::{Error, Result};

/// Lost races a commit survives (rebasing each time) before giving up.
pub const MAX_COMMIT_ATTEMPTS: usize = 16;

/// The longest wait before retrying a commit that lost a race.
const MAX_COMMIT_BACKOFF_MS: u64 = 1_000;

/// A random wait before retry `retry` (1-based) of a commit that lost a
/// race: uniform over a window that doubles from 10 ms up to one second
/// ("full jitter"). Without it, a writer on a slow store can lose every
/// race to writers that retry in step with it.
fn commit_backoff(retry: usize) -> Duration {
    let window = (10u64 << retry.min(7)).min(MAX_COMMIT_BACKOFF_MS);
    let random = uuid::Uuid::new_v4().as_u128() % u128::from(window + 1);
    Duration::from_millis(u64::try_from(random).unwrap_or(window))
}

/// What a commit's operation read, for conflict detection.
#[derive(Debug, Clone, Default)]
pub enum ReadScope {
    /// Read nothing: a blind append (adds files only).
    #[default]
    Nothing,
    /// Read (and may have rewritten or removed) these files only, whatever
    /// else the table holds (compaction).
    Files(HashSet<FileKey>),
    /// Read with a predicate: the files it scanned, and which files a
    /// concurrent commit adds that the predicate would have read (a DELETE
    /// or UPDATE with a condition).
    Predicate {
        /// The files read.
        files: HashSet<FileKey>,
        /// Which new files it would have read; `None`: every one.
        matches: Option<std::sync::Arc<FilePruner>>,
    },
    /// Read the whole table (an overwrite, a MERGE's join, a change with
    /// no condition).
    WholeTable,
    /// Read what each of these scopes read (the statements of a
    /// multi-statement transaction); see [`ReadScope::union`].
    Each(Vec<ReadScope>),
}

impl ReadScope {
    /// What `scopes` read together: nothing when none read anything, the
    /// whole table when one did, else each of them.
    pub fn union(scopes: impl IntoIterator<Item = ReadScope>) -> Self {
        let mut each = Vec::new();
        for scope in scopes {
            match scope {
                Self::Nothing => {}
                Self::WholeTable => return Self::WholeTable,
                Self::Each(inner) => each.extend(inner),
                other => each.push(other),
            }
        }
        match each.len() {
            0 => Self::Nothing,
            1 => each.pop().unwrap_or_default(),
            _ => Self::Each(each),
        }
    }
}

/// What the commits staged in a transaction's log read, kept for its
/// COMMIT: a storage offers it as its [`Storage::extension`], and every
/// commit made through that storage leaves its read scope here.
#[derive(Debug, Default)]
pub struct StagedReads(std::sync::Mutex<Vec<ReadScope>>);

impl StagedReads {
    fn note(&self, scope: &ReadScope) {
        self.lock().push(scope.clone());
    }

    /// Notes that the transaction read the whole table (a query).
    pub fn note_whole_table(&self) {
        self.lock().push(ReadScope::WholeTable);
    }

    /// What every staged commit read, together.
    pub fn union(&self) -> ReadScope {
        ReadScope::union(self.lock().iter().cloned())
    }

    /// Forgets every scope (the transaction rolled back).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ReadScope>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How strictly concurrent commits are kept apart, as Delta's
/// `delta.isolationLevel` says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IsolationLevel {
    /// Delta's default: a concurrent blind append does not conflict with
    /// what a commit read (the append is ordered after it).
    #[default]
    WriteSerializable,
    /// Every file a concurrent commit adds is checked against what a
    /// commit read, blind appends included.
    Serializable,
}

impl IsolationLevel {
    /// The level a table's metadata asks for (`delta.isolationLevel`).
    pub fn of(metadata: &Metadata) -> Result<Self> {
        match metadata.property("delta.isolationLevel") {
            None => Ok(Self::WriteSerializable),
            Some(level) if level.eq_ignore_ascii_case("WriteSerializable") => {
                Ok(Self::WriteSerializable)
            }
            Some(level) if level.eq_ignore_ascii_case("Serializable") => Ok(Self::Serializable),
            Some(other) => Err(Error::UnsupportedFeature {
                feature: format!(
                    "delta.isolationLevel = {other} (Serializable and WriteSerializable are)"
                ),
            }),
        }
    }
}

/// One change to a table, committed atomically.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// Unique to this transaction, written as `commitInfo.txnId`: a commit
    /// found at the version this one tried is recognised as its own.
    id: String,
    read_version: Option<i64>,
    operation: String,
    parameters: Map<String, Value>,
    metrics: Map<String, Value>,
    read_scope: ReadScope,
    isolation: IsolationLevel,
    protocol: Option<Protocol>,
    metadata: Option<Metadata>,
    adds: Vec<Add>,
    removes: Vec<Remove>,
    change_files: Vec<AddCdc>,
    txns: Vec<Txn>,
    domains: Vec<DomainMetadata>,
    checkpoint_interval: Option<i64>,
}

/// A line of a commit file (or a row of a checkpoint, as JSON).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum ActionLine<'a> {
    CommitInfo(&'a Map<String, Value>),
    Protocol(&'a Protocol),
    #[serde(rename = "metaData")]
    Metadata(&'a Metadata),
    Txn(&'a Txn),
    DomainMetadata(&'a DomainMetadata),
    Remove(&'a Remove),
    Add(&'a Add),
    Cdc(&'a AddCdc),
}

/// Actions as newline-terminated JSON lines.
pub(crate) fn json_lines<'a>(lines: impl IntoIterator<Item = ActionLine<'a>>) -> Result<String> {
    let mut text = String::new();
    for line in lines {
        text.push_str(
            &serde_json::to_string(&line)
                .map_err(|e| Error::InvalidArgument(format!("cannot serialize action: {e}")))?,
        );
        text.push('\n');
    }
    Ok(text)
}

/// A committed transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The version the commit became.
    pub version: i64,
    /// Races lost (and rebased over) on the way.
    pub retries: usize,
}

impl Transaction {
    /// A change based on `read_version` (`None` creates the table), named
    /// like Delta's operations (`WRITE`, `DELETE`, `MERGE`, ...).
    pub fn new(read_version: Option<i64>, operation: impl Into<String>) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            read_version,
            operation: operation.into(),
            parameters: Map::new(),
            metrics: Map::new(),
            read_scope: ReadScope::Nothing,
            isolation: IsolationLevel::default(),
            protocol: None,
            metadata: None,
            adds: Vec::new(),
            removes: Vec::new(),
            change_files: Vec::new(),
            txns: Vec::new(),
            domains: Vec::new(),
            checkpoint_interval: None,
        }
    }

    /// Records an operation parameter in the commit info.
    pub fn parameter(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.parameters.insert(key.to_owned(), value.into());
        self
    }

    /// Records an operation metric in the commit info.
    pub fn metric(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.metrics.insert(key.to_owned(), value.into());
        self
    }

    /// Declares what the operation read.
    pub fn read(mut self, scope: ReadScope) -> Self {
        self.read_scope = scope;
        self
    }

    /// Sets how strictly concurrent commits are kept apart.
    pub fn isolation(mut self, level: IsolationLevel) -> Self {
        self.isolation = level;
        self
    }

    /// Sets the protocol.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// Sets the metadata (schema, partitioning, properties).
    pub fn metadata(mut self, metadata: Metadata) -> Self {
        self.checkpoint_interval = Some(crate::checkpoint::checkpoint_interval(&metadata));
        self.metadata = Some(metadata);
        self
    }

    /// Takes the checkpoint interval from the table's metadata (when the
    /// commit does not change it): a commit whose version is a multiple
    /// of it is followed by a checkpoint.
    pub fn checkpoint_interval_of(mut self, metadata: &Metadata) -> Self {
        if self.metadata.is_none() {
            self.checkpoint_interval = Some(crate::checkpoint::checkpoint_interval(metadata));
        }
        self
    }

    /// Adds data files.
    pub fn add_files(mut self, adds: impl IntoIterator<Item = Add>) -> Self {
        self.adds.extend(adds);
        self
    }

    /// Removes data files.
    pub fn remove_files(mut self, removes: impl IntoIterator<Item = Remove>) -> Self {
        self.removes.extend(removes);
        self
    }

    /// Records change data files (`cdc`): the rows this commit changed,
    /// for the table's change data feed.
    pub fn change_files(mut self, files: impl IntoIterator<Item = AddCdc>) -> Self {
        self.change_files.extend(files);
        self
    }

    /// Records an application transaction (idempotent writes).
    pub fn app_transaction(mut self, txn: Txn) -> Self {
        self.txns.push(txn);
        self
    }

    /// Sets a metadata domain.
    pub fn domain(mut self, domain: DomainMetadata) -> Self {
        self.domains.push(domain);
        self
    }

    /// Writes the checkpoint of `version` when the interval calls for one.
    /// A failed checkpoint does not fail the commit: readers replay the
    /// JSON commits instead, and the next checkpoint covers this one.
    async fn checkpoint_if_due(&self, storage: &dyn Storage, version: i64, now_ms: i64) {
        use crate::checkpoint::{DEFAULT_CHECKPOINT_INTERVAL, is_due, write_checkpoint};
        let interval = self
            .checkpoint_interval
            .unwrap_or(DEFAULT_CHECKPOINT_INTERVAL);
        if is_due(version, interval)
            && let Err(e) = write_checkpoint(storage, Some(version), now_ms).await
        {
            tracing::warn!(version, error = %e, "checkpoint after commit failed");
        }
    }

    /// Whether the commit only adds files it wrote without reading the
    /// table: no removes, no protocol or metadata change.
    pub fn is_blind_append(&self) -> bool {
        matches!(self.read_scope, ReadScope::Nothing)
            && self.removes.is_empty()
            && self.protocol.is_none()
            && self.metadata.is_none()
            && !self.adds.is_empty()
    }

    /// The commit file's text at `timestamp_ms`, as JSON lines.
    pub fn to_json_lines(&self, timestamp_ms: i64) -> Result<String> {
        let mut info = Map::new();
        info.insert("timestamp".into(), timestamp_ms.into());
        info.insert("operation".into(), self.operation.clone().into());
        info.insert(
            "operationParameters".into(),
            Value::Object(self.parameters.clone()),
        );
        if let Some(v) = self.read_version {
            info.insert("readVersion".into(), v.into());
        }
        info.insert("isBlindAppend".into(), self.is_blind_append().into());
        info.insert("txnId".into(), self.id.clone().into());
        if !self.metrics.is_empty() {
            info.insert(
                "operationMetrics".into(),
                Value::Object(self.metrics.clone()),
            );
        }
        info.insert(
            "engineInfo".into(),
            format!("Wavelake/{}", env!("CARGO_PKG_VERSION")).into(),
        );
        let mut lines = vec![ActionLine::CommitInfo(&info)];
        lines.extend(self.protocol.as_ref().map(ActionLine::Protocol));
        lines.extend(self.metadata.as_ref().map(ActionLine::Metadata));
        lines.extend(self.txns.iter().map(ActionLine::Txn));
        lines.extend(self.domains.iter().map(ActionLine::DomainMetadata));
        lines.extend(self.removes.iter().map(ActionLine::Remove));
        lines.extend(self.adds.iter().map(ActionLine::Add));
        lines.extend(self.change_files.iter().map(ActionLine::Cdc));
        json_lines(lines)
    }

    /// Writes the commit as the next version, rebasing over writers that
    /// won a race when their changes do not conflict with this one.
    pub async fn commit(&self, storage: &dyn Storage, now_ms: i64) -> Result<Committed> {
        let mut version = self.read_version.map_or(0, |v| v + 1);
        for retries in 0..MAX_COMMIT_ATTEMPTS {
            let text = self.to_json_lines(now_ms)?;
            match storage
                .put_if_absent(&commit_path(version), Bytes::from(text))
                .await
            {
                Ok(()) => {
                    self.leave_read_scope(storage);
                    self.checkpoint_if_due(storage, version, now_ms).await;
                    return Ok(Committed { version, retries });
                }
                Err(Error::AlreadyExists { .. }) => {
                    // Wait first, then catch up: the next attempt follows
                    // the catch-up at once, while its version is free.
                    if retries + 1 < MAX_COMMIT_ATTEMPTS {
                        crate::timer::sleep(commit_backoff(retries + 1)).await;
                    }
                    // Catch up on every commit that won meanwhile, checking
                    // each, so the next attempt is at a version that was
                    // free a moment ago (not one more lost race per winner).
                    let attempted = version;
                    loop {
                        let path = commit_path(version);
                        // Until the file at the attempted version is known
                        // not to be this commit, it may be.
                        let unknown = |e: Error| match version == attempted {
                            true => Error::CommitOutcomeUnknown {
                                version,
                                reason: e.to_string(),
                            },
                            false => e,
                        };
                        let bytes = match storage.get(&path).await {
                            Ok(bytes) => bytes,
                            Err(Error::NotFound { .. }) => break,
                            Err(other) => return Err(unknown(other)),
                        };
                        let winner =
                            ActionBatch::from_json_lines(&path, &bytes).map_err(unknown)?;
                        if self.is_own(&winner) {
                            // The store wrote it and then answered that the
                            // file exists (a retried request whose first
                            // answer was lost): this commit is in.
                            self.leave_read_scope(storage);
                            self.checkpoint_if_due(storage, version, now_ms).await;
                            return Ok(Committed { version, retries });
                        }
                        self.check_conflict(version, &winner)?;
                        version += 1;
                    }
                }
                // The store may have applied the write and lost its answer.
                Err(other) => {
                    return Err(Error::CommitOutcomeUnknown {
                        version,
                        reason: other.to_string(),
                    });
                }
            }
        }
        Err(Error::CommitConflict {
            version,
            reason: format!("lost {MAX_COMMIT_ATTEMPTS} races in a row"),
        })
    }

    /// Leaves what this commit read with the storage it committed to, when
    /// that keeps track ([`StagedReads`]).
    fn leave_read_scope(&self, storage: &dyn Storage) {
        if let Some(reads) = storage
            .extension()
            .and_then(|e| e.downcast_ref::<StagedReads>())
        {
            reads.note(&self.read_scope);
        }
    }

    /// Whether `commit` is this transaction's own (its `txnId`).
    fn is_own(&self, commit: &ActionBatch) -> bool {
        commit
            .commit_info
            .as_ref()
            .and_then(|info| info.get("txnId"))
            .and_then(Value::as_str)
            == Some(self.id.as_str())
    }

    /// Whether the winning commit `winner` at `version` invalidates this one.
    pub fn check_conflict(&self, version: i64, winner: &ActionBatch) -> Result<()> {
        let conflict = |reason: String| Err(Error::CommitConflict { version, reason });
        if self.read_version.is_none() {
            return conflict("the table was created concurrently".into());
        }
        if winner.protocol.is_some() {
            return conflict("a concurrent commit changed the protocol".into());
        }
        if winner.metadata.is_some() {
            return conflict("a concurrent commit changed the schema or properties".into());
        }
        for txn in &winner.txns {
            if self.txns.iter().any(|t| t.app_id == txn.app_id) {
                return conflict(format!(
                    "application {} committed concurrently (its version {})",
                    txn.app_id, txn.version
                ));
            }
        }
        let ours: HashSet<FileKey> = self.removes.iter().map(Remove::replay_key).collect();
        if let Some(both) = winner
            .removes
            .iter()
            .find(|r| ours.contains(&r.replay_key()))
        {
            return conflict(format!("a concurrent commit also removed {}", both.path));
        }
        // Files the winner added that this commit should have read: its
        // data changes, and under Serializable its blind appends too.
        let winner_blind = winner
            .commit_info
            .as_ref()
            .and_then(|info| info.get("isBlindAppend"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let added: Vec<&Add> =
            if winner_blind && self.isolation == IsolationLevel::WriteSerializable {
                Vec::new()
            } else {
                winner.adds.iter().filter(|a| a.data_change).collect()
            };
        match read_conflict(&self.read_scope, winner, &added) {
            Some(reason) => conflict(reason),
            None => Ok(()),
        }
    }
}

/// Why the winning commit `winner`, which added `added` (the files it adds
/// that a reader must have seen), changed what `scope` read; `None` when
/// it did not.
fn read_conflict(scope: &ReadScope, winner: &ActionBatch, added: &[&Add]) -> Option<String> {
    let removed_read = |read: &HashSet<FileKey>| {
        winner
            .removes
            .iter()
            .find(|r| read.contains(&r.replay_key()))
            .map(|r| {
                format!(
                    "a concurrent commit removed {}, which this one read",
                    r.path
                )
            })
    };
    match scope {
        ReadScope::Nothing => None,
        ReadScope::Files(read) => removed_read(read),
        ReadScope::Predicate { files, matches } => {
            if let Some(reason) = removed_read(files) {
                return Some(reason);
            }
            let matching = match matches {
                Some(pruner) => pruner.files(added),
                None => vec![true; added.len()],
            };
            added
                .iter()
                .zip(matching)
                .find(|(_, m)| *m)
                .map(|(add, _)| {
                    format!(
                        "a concurrent commit added {}, which may hold rows this one's \
                     condition matches",
                        add.path
                    )
                })
        }
        ReadScope::WholeTable => (!added.is_empty()
            || winner.removes.iter().any(|r| r.data_change))
        .then(|| "a concurrent commit changed data this one read".to_owned()),
        ReadScope::Each(scopes) => scopes
            .iter()
            .find_map(|scope| read_conflict(scope, winner, added)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use datafusion::object_store::memory::InMemory;
    use url::Url;

    use super::*;
    use crate::Table;
    use crate::protocol::Format;
    use crate::storage::{ObjectStoreStorage, StorageRef};

    fn storage() -> StorageRef {
        Arc::new(
            ObjectStoreStorage::new(
                Arc::new(InMemory::new()),
                Url::parse("memory:///t/").unwrap(),
            )
            .unwrap(),
        )
    }

    fn add(path: &str) -> Add {
        Add {
            path: path.into(),
            partition_values: HashMap::new(),
            size: 10,
            modification_time: 1,
            data_change: true,
            stats: Some(r#"{"numRecords":1}"#.into()),
            tags: None,
            deletion_vector: None,
            base_row_id: None,
            default_row_commit_version: None,
            clustering_provider: None,
        }
    }

    fn remove(path: &str) -> Remove {
        Remove {
            path: path.into(),
            deletion_timestamp: Some(2),
            data_change: true,
            extended_file_metadata: None,
            partition_values: None,
            size: None,
            stats: None,
            tags: None,
            deletion_vector: None,
            base_row_id: None,
            default_row_commit_version: None,
        }
    }

    fn create() -> Transaction {
        Transaction::new(None, "CREATE TABLE")
            .protocol(Protocol {
                min_reader_version: 1,
                min_writer_version: 2,
                reader_features: None,
                writer_features: None,
            })
            .metadata(Metadata {
                id: "test".into(),
                name: None,
                description: None,
                format: Format::default(),
                schema_string:
                    r#"{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}}]}"#
                        .into(),
                partition_columns: vec![],
                created_time: Some(0),
                configuration: HashMap::new(),
            })
    }

    async fn active_files(storage: &StorageRef) -> (i64, Vec<String>) {
        let snapshot = Table::new(storage.clone())
            .unwrap()
            .snapshot()
            .await
            .unwrap();
        let mut files: Vec<String> = snapshot.files().iter().map(|f| f.path.clone()).collect();
        files.sort();
        (snapshot.version(), files)
    }

    #[test]
    fn commit_backoff_grows_and_stays_bounded() {
        for _ in 0..100 {
            assert!(commit_backoff(1) <= Duration::from_millis(20));
            assert!(commit_backoff(16) <= Duration::from_millis(MAX_COMMIT_BACKOFF_MS));
        }
        let waits: HashSet<Duration> = (0..20).map(|_| commit_backoff(6)).collect();
        assert!(waits.len() > 1, "the waits are random: {waits:?}");
    }

    #[tokio::test]
    async fn commits_are_read_back_by_the_reader() {
        let storage = storage();
        let created = create().commit(storage.as_ref(), 1).await.unwrap();
        assert_eq!(
            created,
            Committed {
                version: 0,
                retries: 0
            }
        );
        Transaction::new(Some(0), "WRITE")
            .add_files([add("a.parquet")])
            .metric("numFiles", "1")
            .commit(storage.as_ref(), 2)
            .await
            .unwrap();
        assert_eq!(active_files(&storage).await, (1, vec!["a.parquet".into()]));
        let history = Table::new(storage.clone())
            .unwrap()
            .history()
            .await
            .unwrap();
        assert_eq!(history[1].operation.as_deref(), Some("WRITE"));
    }

    #[tokio::test]
    async fn blind_appends_that_lose_a_race_rebase() {
        let storage = storage();
        create().commit(storage.as_ref(), 1).await.unwrap();
        let first = Transaction::new(Some(0), "WRITE").add_files([add("a.parquet")]);
        let second = Transaction::new(Some(0), "WRITE").add_files([add("b.parquet")]);
        first.commit(storage.as_ref(), 2).await.unwrap();
        let rebased = second.commit(storage.as_ref(), 3).await.unwrap();
        assert_eq!(
            rebased,
            Committed {
                version: 2,
                retries: 1
            }
        );
        assert_eq!(
            active_files(&storage).await,
            (2, vec!["a.parquet".into(), "b.parquet".into()])
        );
    }

    /// A store that writes a new file and then answers that it exists, as
    /// S3 does to a PUT retried after its first answer was lost; with
    /// `unreadable_log`, commit files cannot be read back either.
    #[derive(Debug)]
    struct LostAnswer(StorageRef, bool);

    #[async_trait::async_trait]
    impl Storage for LostAnswer {
        fn location(&self) -> String {
            self.0.location()
        }
        async fn get(&self, path: &str) -> Result<Bytes> {
            if self.1 && path.ends_with(".json") {
                return Err(Error::Storage {
                    path: path.into(),
                    message: "connection reset".into(),
                });
            }
            self.0.get(path).await
        }
        async fn get_ranges(
            &self,
            path: &str,
            ranges: &[std::ops::Range<u64>],
        ) -> Result<Vec<Bytes>> {
            self.0.get_ranges(path, ranges).await
        }
        async fn list(
            &self,
            prefix: &str,
            start_after: Option<&str>,
        ) -> Result<Option<Vec<crate::storage::FileMeta>>> {
            self.0.list(prefix, start_after).await
        }
        async fn put(&self, path: &str, bytes: Bytes) -> Result<()> {
            self.0.put(path, bytes).await
        }
        async fn put_if_absent(&self, path: &str, bytes: Bytes) -> Result<()> {
            self.0.put_if_absent(path, bytes).await?;
            Err(Error::AlreadyExists {
                path: path.to_owned(),
            })
        }
    }

    #[tokio::test]
    async fn a_commit_whose_answer_was_lost_is_recognised_as_its_own() {
        let storage = storage();
        create().commit(storage.as_ref(), 1).await.unwrap();
        Transaction::new(Some(0), "WRITE")
            .add_files([add("a.parquet"), add("b.parquet")])
            .commit(storage.as_ref(), 2)
            .await
            .unwrap();
        let lossy = LostAnswer(storage.clone(), false);
        let delete = Transaction::new(Some(1), "DELETE")
            .read(ReadScope::Files(HashSet::from([
                remove("a.parquet").replay_key()
            ])))
            .remove_files([remove("a.parquet")]);
        // Not a conflict with itself, nor committed a second time.
        let committed = delete.commit(&lossy, 3).await.expect("committed once");
        assert_eq!(committed.version, 2);
        let append = Transaction::new(Some(2), "WRITE").add_files([add("c.parquet")]);
        assert_eq!(append.commit(&lossy, 4).await.unwrap().version, 3);
        assert_eq!(
            active_files(&storage).await,
            (3, vec!["b.parquet".into(), "c.parquet".into()])
        );
    }

    #[tokio::test]
    async fn a_commit_that_cannot_be_told_apart_is_reported_as_unknown() {
        let storage = storage();
        create().commit(storage.as_ref(), 1).await.unwrap();
        let unreadable = LostAnswer(storage.clone(), true);
        let err = Transaction::new(Some(0), "WRITE")
            .add_files([add("a.parquet")])
            .commit(&unreadable, 2)
            .await
            .expect_err("cannot tell");
        assert!(
            matches!(err, Error::CommitOutcomeUnknown { version: 1, .. }),
            "{err:?}"
        );
        assert!(err.commit_may_have_landed());
        // It did land: the files it names must be kept by the writer.
        assert_eq!(active_files(&storage).await, (1, vec!["a.parquet".into()]));
    }

    #[tokio::test]
    async fn removing_the_same_file_twice_conflicts() {
        let storage = storage();
        create().commit(storage.as_ref(), 1).await.unwrap();
        Transaction::new(Some(0), "WRITE")
            .add_files([add("a.parquet"), add("b.parquet")])
            .commit(storage.as_ref(), 2)
            .await
            .unwrap();
        let delete = |path: &str| {
            Transaction::new(Some(1), "DELETE")
                .read(ReadScope::Files(HashSet::from([remove(path).replay_key()])))
                .remove_files([remove(path)])
        };
        delete("a.parquet")
            .commit(storage.as_ref(), 3)
            .await
            .unwrap();
        let err = delete("a.parquet")
            .commit(storage.as_ref(), 4)
            .await
            .expect_err("both deleted a.parquet");
        assert!(
            matches!(&err, Error::CommitConflict { version: 2, reason } if reason.contains("a.parquet")),
            "{err:?}"
        );
        // Deleting another file, or appending, does not conflict.
        let other = delete("b.parquet")
            .commit(storage.as_ref(), 5)
            .await
            .unwrap();
        assert_eq!(
            other,
            Committed {
                version: 3,
                retries: 1
            }
        );
        assert_eq!(active_files(&storage).await, (3, vec![]));
    }

    #[test]
    fn a_union_of_scopes_keeps_each_and_the_whole_table_absorbs_them() {
        let files = |path: &str| ReadScope::Files(HashSet::from([remove(path).replay_key()]));
        assert!(matches!(
            ReadScope::union([ReadScope::Nothing, ReadScope::Nothing]),
            ReadScope::Nothing
        ));
        assert!(matches!(
            ReadScope::union([ReadScope::Nothing, files("a.parquet")]),
            ReadScope::Files(read) if read.len() == 1
        ));
        assert!(matches!(
            ReadScope::union([
                files("a.parquet"),
                ReadScope::WholeTable,
                files("b.parquet")
            ]),
            ReadScope::WholeTable
        ));
        let each = ReadScope::union([
            files("a.parquet"),
            ReadScope::union([files("b.parquet"), files("c.parquet")]),
        ]);
        assert!(
            matches!(&each, ReadScope::Each(scopes) if scopes.len() == 3),
            "{each:?}"
        );
    }

    #[tokio::test]
    async fn a_union_conflicts_with_what_any_of_its_scopes_read() {
        let storage = storage();
        create().commit(storage.as_ref(), 1).await.unwrap();
        Transaction::new(Some(0), "WRITE")
            .add_files([add("a.parquet"), add("b.parquet"), add("c.parquet")])
            .commit(storage.as_ref(), 2)
            .await
            .unwrap();
        let files = |path: &str| ReadScope::Files(HashSet::from([remove(path).replay_key()]));
        let reader = || {
            Transaction::new(Some(1), "TRANSACTION")
                .read(ReadScope::union([files("a.parquet"), files("b.parquet")]))
                .add_files([add("d.parquet")])
        };
        let remove_one = |path: &str, read_version| {
            Transaction::new(Some(read_version), "DELETE")
                .read(files(path))
                .remove_files([remove(path)])
        };
        // c.parquet was read by neither scope.
        remove_one("c.parquet", 1)
            .commit(storage.as_ref(), 3)
            .await
            .unwrap();
        reader().commit(storage.as_ref(), 4).await.unwrap();
        // b.parquet was read by the second.
        remove_one("b.parquet", 3)
            .commit(storage.as_ref(), 5)
            .await
            .unwrap();
        let err = Transaction::new(Some(3), "TRANSACTION")
            .read(ReadScope::union([files("a.parquet"), files("b.parquet")]))
            .commit(storage.as_ref(), 6)
            .await
            .expect_err("b.parquet was removed after it was read");
        assert!(
            matches!(&err, Error::CommitConflict { version: 4, reason } if reason.contains("b.parquet")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn whole_table_readers_conflict_with_concurrent_data_changes() {
        let storage = storage();
        create().commit(storage.as_ref(), 1).await.unwrap();
        let overwrite = |level| {
            Transaction::new(Some(0), "WRITE")
                .read(ReadScope::WholeTable)
                .isolation(level)
                .add_files([add("new.parquet")])
        };
        // A blind append: ordered after a WriteSerializable reader, a
        // conflict for a Serializable one.
        Transaction::new(Some(0), "WRITE")
            .add_files([add("a.parquet")])
            .commit(storage.as_ref(), 2)
            .await
            .unwrap();
        let err = overwrite(IsolationLevel::Serializable)
            .commit(storage.as_ref(), 3)
            .await
            .expect_err("conflict");
        assert_eq!(err.code(), "COMMIT_CONFLICT");
        let committed = overwrite(IsolationLevel::WriteSerializable)
            .commit(storage.as_ref(), 3)
            .await
            .unwrap();
        assert_eq!(committed.version, 2);
        // A change that read the table (not blind) conflicts at any level.
        Transaction::new(Some(2), "DELETE")
            .read(ReadScope::Files(HashSet::new()))
            .add_files([add("b.parquet")])
            .commit(storage.as_ref(), 4)
            .await
            .unwrap();
        let err = Transaction::new(Some(2), "WRITE")
            .read(ReadScope::WholeTable)
            .add_files([add("c.parquet")])
            .commit(storage.as_ref(), 5)
            .await
            .expect_err("conflict");
        assert_eq!(err.code(), "COMMIT_CONFLICT");
        let again = create()
            .commit(storage.as_ref(), 4)
            .await
            .expect_err("exists");
        assert!(
            matches!(again, Error::CommitConflict { version: 0, .. }),
            "{again:?}"
        );
    }

    #[tokio::test]
    async fn predicate_readers_conflict_with_new_files_they_would_have_read() {
        let storage = storage();
        create().commit(storage.as_ref(), 1).await.unwrap();
        let delete = || {
            Transaction::new(Some(0), "DELETE")
                .read(ReadScope::Predicate {
                    files: HashSet::new(),
                    matches: None,
                })
                .add_files([add("rewritten.parquet")])
        };
        // A MERGE that inserted a row the DELETE's condition may match.
        Transaction::new(Some(0), "MERGE")
            .read(ReadScope::WholeTable)
            .add_files([add("merged.parquet")])
            .commit(storage.as_ref(), 2)
            .await
            .unwrap();
        let err = delete()
            .commit(storage.as_ref(), 3)
            .await
            .expect_err("conflict");
        assert!(
            matches!(&err, Error::CommitConflict { reason, .. } if reason.contains("merged.parquet")),
            "{err:?}"
        );
        // After a blind append it commits.
        Transaction::new(Some(1), "WRITE")
            .add_files([add("appended.parquet")])
            .commit(storage.as_ref(), 4)
            .await
            .unwrap();
        let mut late = delete();
        late.read_version = Some(1);
        assert_eq!(late.commit(storage.as_ref(), 5).await.unwrap().version, 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_appenders_all_land_once_in_contiguous_versions() {
        let storage = storage();
        create().commit(storage.as_ref(), 1).await.unwrap();
        let writers = (0..12).map(|i| {
            let storage = storage.clone();
            tokio::spawn(async move {
                Transaction::new(Some(0), "WRITE")
                    .add_files([add(&format!("f{i:02}.parquet"))])
                    .commit(storage.as_ref(), 10 + i)
                    .await
            })
        });
        let mut versions: Vec<i64> = futures::future::join_all(writers)
            .await
            .into_iter()
            .map(|r| r.unwrap().unwrap().version)
            .collect();
        versions.sort();
        assert_eq!(versions, (1..=12).collect::<Vec<_>>());
        let (version, files) = active_files(&storage).await;
        assert_eq!(version, 12);
        assert_eq!(
            files,
            (0..12)
                .map(|i| format!("f{i:02}.parquet"))
                .collect::<Vec<_>>()
        );
    }
}
