//! Log replay: from a checkpoint and the commits after it to the table's
//! state (protocol, metadata, active files, app transactions, domains).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use futures::{StreamExt, TryStreamExt};
use url::Url;

use super::checkpoint::read_checkpoint;
use super::segment::{CommitFile, LogSegment};
use crate::protocol::features::ensure_readable;
use crate::protocol::{
    ActionBatch, Add, DeletionVectorDescriptor, DomainMetadata, Metadata, Protocol, Txn,
};
use crate::storage::{Storage, resolve_data_path_ref};
use crate::{Error, Result};

/// Commits read at once during replay.
const COMMIT_READ_CONCURRENCY: usize = 16;

/// The largest commit file a reader loads (it is read whole). A commit
/// adding a hundred thousand files is about 50 MiB; larger ones are refused
/// before they are fetched where the listing gives their size, and once
/// read where it does not.
pub const MAX_COMMIT_FILE_BYTES: u64 = 256 << 20;

/// The reconstructed state of one table version.
#[derive(Debug, Clone)]
pub struct TableState {
    /// The version.
    pub version: i64,
    /// The protocol in force.
    pub protocol: Protocol,
    /// The metadata in force.
    pub metadata: Metadata,
    /// The active data files.
    pub files: Vec<Add>,
    /// Latest transaction version per application id.
    pub txns: HashMap<String, Txn>,
    /// Active metadata domains.
    pub domains: HashMap<String, DomainMetadata>,
    /// When the version was committed, in milliseconds since the epoch
    /// (in-commit timestamp, else file time, else `commitInfo.timestamp`).
    pub timestamp: Option<i64>,
}

/// Reads the commits of a segment, in ascending order.
pub async fn read_commits(storage: &dyn Storage, segment: &LogSegment) -> Result<Vec<ActionBatch>> {
    read_commit_files(storage, &segment.commits).await
}

/// Reads commit files, in the order given.
pub async fn read_commit_files(
    storage: &dyn Storage,
    commits: &[CommitFile],
) -> Result<Vec<ActionBatch>> {
    // Futures collected first (not a closure over the stream) so that the
    // whole read stays `Send` for callers that need it.
    let reads: Vec<_> = commits
        .iter()
        .map(|commit| read_commit(storage, commit))
        .collect();
    futures::stream::iter(reads)
        .buffered(COMMIT_READ_CONCURRENCY)
        .try_collect()
        .await
}

async fn read_commit(storage: &dyn Storage, commit: &CommitFile) -> Result<ActionBatch> {
    if let Some(size) = commit.file.size {
        check_commit_size(&commit.file.path, size)?;
    }
    let bytes = match &commit.bytes {
        Some(bytes) => bytes.clone(),
        None => storage.get(&commit.file.path).await.map_err(|e| match e {
            Error::NotFound { path } => Error::invalid_table(format!(
                "commit file {path} disappeared while reading the log"
            )),
            other => other,
        })?,
    };
    check_commit_size(&commit.file.path, bytes.len() as u64)?;
    let path = commit.file.path.clone();
    crate::decode_pool::decode(&commit.file.path, bytes.len(), move || {
        ActionBatch::from_json_lines(&path, &bytes)
    })
    .await
}

fn check_commit_size(path: &str, size: u64) -> Result<()> {
    if size <= MAX_COMMIT_FILE_BYTES {
        return Ok(());
    }
    Err(Error::LimitExceeded {
        what: "a Delta commit file".into(),
        limit: format!("{MAX_COMMIT_FILE_BYTES} bytes"),
        detail: format!("{path} has {size} bytes"),
    })
}

/// Replays `segment` into the table's state at its version.
pub async fn replay(storage: &dyn Storage, root: &Url, segment: &LogSegment) -> Result<TableState> {
    let commits = read_commits(storage, segment).await?;
    let checkpoint = if segment.checkpoint.is_empty() {
        None
    } else {
        Some(read_checkpoint(storage, &segment.checkpoint).await?)
    };
    let timestamp = segment.commits.last().and_then(|last| {
        let info = commits.last().and_then(|c| c.commit_info.as_ref());
        commit_timestamp(info, last.file.last_modified)
    });
    let mut state = reconcile(root, commits, checkpoint)?;
    state.version = segment.version;
    state.timestamp = timestamp;
    Ok(state)
}

/// The timestamp of a commit: in-commit timestamp, else the file's time,
/// else `commitInfo.timestamp`.
pub fn commit_timestamp(
    info: Option<&serde_json::Map<String, serde_json::Value>>,
    file_time: Option<i64>,
) -> Option<i64> {
    let field = |name: &str| {
        info.and_then(|i| i.get(name))
            .and_then(serde_json::Value::as_i64)
    };
    field("inCommitTimestamp")
        .or(file_time)
        .or_else(|| field("timestamp"))
}

/// The state after `commits` (ascending: the versions right after
/// `previous`) are applied to `previous`, which stands in for a checkpoint.
/// Version and timestamp are left for the caller to set.
pub fn advance(root: &Url, previous: &TableState, commits: Vec<ActionBatch>) -> Result<TableState> {
    let base = ActionBatch {
        adds: previous.files.clone(),
        protocol: Some(previous.protocol.clone()),
        metadata: Some(previous.metadata.clone()),
        txns: previous.txns.values().cloned().collect(),
        domains: previous.domains.values().cloned().collect(),
        ..ActionBatch::default()
    };
    reconcile(root, commits, Some(base))
}

/// Reconciles commits (ascending) on top of a checkpoint.
pub fn reconcile(
    root: &Url,
    commits: Vec<ActionBatch>,
    checkpoint: Option<ActionBatch>,
) -> Result<TableState> {
    // Newest first: the first action seen for a file decides its fate.
    let newest_first: Vec<(ActionBatch, bool)> = commits
        .into_iter()
        .rev()
        .map(|commit| (commit, false))
        .chain(checkpoint.map(|checkpoint| (checkpoint, true)))
        .collect();
    let kept = active_adds(root, &newest_first);
    let mut files = Vec::with_capacity(kept.iter().flatten().filter(|keep| **keep).count());
    let mut protocol = None;
    let mut metadata = None;
    let mut txns: HashMap<String, Txn> = HashMap::new();
    let mut domains: HashMap<String, DomainMetadata> = HashMap::new();
    let mut domains_seen: HashSet<String> = HashSet::new();
    for ((batch, _), keep) in newest_first.into_iter().zip(kept) {
        if protocol.is_none() {
            protocol = batch.protocol;
        }
        if metadata.is_none() {
            metadata = batch.metadata;
        }
        for txn in batch.txns {
            txns.entry(txn.app_id.clone()).or_insert(txn);
        }
        for domain in batch.domains {
            if domains_seen.insert(domain.domain.clone()) && !domain.removed {
                domains.insert(domain.domain.clone(), domain);
            }
        }
        files.extend(
            batch
                .adds
                .into_iter()
                .zip(keep)
                .filter_map(|(add, keep)| keep.then_some(add)),
        );
    }
    let protocol =
        protocol.ok_or_else(|| Error::invalid_table("the log has no protocol action"))?;
    ensure_readable(&protocol)?;
    let metadata =
        metadata.ok_or_else(|| Error::invalid_table("the log has no metaData action"))?;
    Ok(TableState {
        version: 0,
        protocol,
        metadata,
        files,
        txns,
        domains,
        timestamp: None,
    })
}

/// Which `add`s of each batch (newest first; `true` marks a checkpoint)
/// are active: those whose file (path and deletion vector) no newer action
/// named. Keys borrow the batches' paths, so the set copies none of them.
fn active_adds(root: &Url, newest_first: &[(ActionBatch, bool)]) -> Vec<Vec<bool>> {
    let key = |path, dv: Option<&DeletionVectorDescriptor>| {
        (
            resolve_data_path_ref(root, path),
            dv.map(DeletionVectorDescriptor::unique_id),
        )
    };
    let actions = newest_first
        .iter()
        .map(|(batch, _)| batch.adds.len() + batch.removes.len())
        .sum();
    let mut seen: HashSet<(Cow<'_, str>, Option<String>), foldhash::fast::RandomState> =
        HashSet::with_capacity_and_hasher(actions, foldhash::fast::RandomState::default());
    newest_first
        .iter()
        .map(|(batch, from_checkpoint)| {
            let keep = batch
                .adds
                .iter()
                .map(|add| seen.insert(key(&add.path, add.deletion_vector.as_ref())))
                .collect();
            // Checkpoint removes are only tombstones for VACUUM.
            if !from_checkpoint {
                for remove in &batch.removes {
                    seen.insert(key(&remove.path, remove.deletion_vector.as_ref()));
                }
            }
            keep
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(json: &str) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(json).unwrap()
    }

    fn batch(lines: &str) -> ActionBatch {
        ActionBatch::from_json_lines("commit.json", lines.as_bytes()).unwrap()
    }

    #[test]
    fn the_newest_action_for_a_file_and_deletion_vector_decides_whether_it_is_active() {
        let root = Url::parse("file:///data/t/").unwrap();
        let checkpoint = batch(concat!(
            r#"{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}"#,
            "\n",
            r#"{"metaData":{"id":"t","format":{"provider":"parquet","options":{}},"schemaString":"{\"type\":\"struct\",\"fields\":[]}","partitionColumns":[],"configuration":{}}}"#,
            "\n",
            r#"{"add":{"path":"a.parquet","partitionValues":{},"size":1,"modificationTime":0,"dataChange":true}}"#,
            "\n",
            r#"{"add":{"path":"b%20c.parquet","partitionValues":{},"size":2,"modificationTime":0,"dataChange":true}}"#,
            "\n",
            r#"{"remove":{"path":"d.parquet","dataChange":true}}"#,
        ));
        let commits = vec![
            // Removes `a` by its absolute URI, adds `d` (a checkpoint's
            // remove is only a tombstone) and `e`.
            batch(concat!(
                r#"{"remove":{"path":"file:///data/t/a.parquet","dataChange":true}}"#,
                "\n",
                r#"{"add":{"path":"d.parquet","partitionValues":{},"size":3,"modificationTime":0,"dataChange":true}}"#,
                "\n",
                r#"{"add":{"path":"e.parquet","partitionValues":{},"size":4,"modificationTime":0,"dataChange":true}}"#,
            )),
            // `b c` gains a deletion vector: the same path, another file key.
            batch(concat!(
                r#"{"remove":{"path":"b%20c.parquet","dataChange":true}}"#,
                "\n",
                r#"{"add":{"path":"b%20c.parquet","partitionValues":{},"size":2,"modificationTime":0,"dataChange":true,"deletionVector":{"storageType":"i","pathOrInlineDv":"wi5b=000010000siXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L","sizeInBytes":40,"cardinality":6}}}"#,
                "\n",
                r#"{"remove":{"path":"e.parquet","dataChange":true}}"#,
                "\n",
                r#"{"add":{"path":"e.parquet","partitionValues":{},"size":5,"modificationTime":0,"dataChange":true}}"#,
            )),
        ];
        let state = reconcile(&root, commits, Some(checkpoint)).unwrap();
        let files: Vec<(&str, i64, bool)> = state
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.size, f.deletion_vector.is_some()))
            .collect();
        assert_eq!(
            files,
            vec![
                ("b%20c.parquet", 2, true),
                ("e.parquet", 5, false),
                ("d.parquet", 3, false),
            ]
        );
    }

    #[test]
    fn in_commit_timestamps_win_over_file_times() {
        let with_ict = info(r#"{"timestamp": 5, "inCommitTimestamp": 42}"#);
        assert_eq!(commit_timestamp(Some(&with_ict), Some(7)), Some(42));
        let without = info(r#"{"timestamp": 5}"#);
        assert_eq!(commit_timestamp(Some(&without), Some(7)), Some(7));
        assert_eq!(commit_timestamp(Some(&without), None), Some(5));
        assert_eq!(commit_timestamp(None, None), None);
    }

    #[tokio::test]
    async fn oversized_commits_and_action_lines_are_refused_by_name() {
        use crate::log::files::{LogFile, LogFileKind};
        let listed = |size: u64| CommitFile {
            file: LogFile {
                version: 0,
                kind: LogFileKind::Commit,
                path: "_delta_log/00000000000000000000.json".into(),
                size: Some(size),
                last_modified: None,
            },
            bytes: None,
        };
        // Refused from the listing's size, before any read.
        let storage = crate::storage::metered_memory_files(&[]).await;
        let err = read_commit(&storage, &listed(MAX_COMMIT_FILE_BYTES + 1))
            .await
            .expect_err("too large");
        assert!(
            matches!(&err, Error::LimitExceeded { what, .. } if what == "a Delta commit file"),
            "{err}"
        );
        assert!(err.to_string().contains("268435457 bytes"), "{err}");
        assert_eq!(storage.meter().figures().requests, 0);
        // One huge line in a small-enough file.
        let mut line = br#"{"commitInfo":{"x":""#.to_vec();
        line.resize(crate::protocol::MAX_ACTION_LINE_BYTES + 1, b'a');
        line.extend_from_slice(b"\"}}\n");
        let mut commit = listed(line.len() as u64);
        commit.bytes = Some(bytes::Bytes::from(line));
        let err = read_commit(&storage, &commit)
            .await
            .expect_err("line too long");
        assert!(
            matches!(&err, Error::LimitExceeded { what, .. } if what == "a Delta log action"),
            "{err}"
        );
        assert!(err.to_string().contains("line 1 of _delta_log/"), "{err}");
    }
}
