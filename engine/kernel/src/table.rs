//! A Delta table in some storage: loading snapshots (latest, by version, by
//! timestamp) and reading its commit history.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use serde_json::{Map, Value};
use url::Url;

use crate::log::{self, LOG_DIR, LogFile, LogFileKind, LogSegment};
use crate::protocol::ActionBatch;
use crate::snapshot::Snapshot;
use crate::snapshot_cache::SnapshotCache;
use crate::storage::{Storage, StorageRef};
use crate::{Error, Result};

/// One entry of a table's history.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitEntry {
    /// The version the commit created.
    pub version: i64,
    /// When it was committed, in milliseconds since the epoch.
    pub timestamp: Option<i64>,
    /// The operation (`WRITE`, `DELETE`, `MERGE`, ...).
    pub operation: Option<String>,
    /// The operation's parameters.
    pub parameters: Option<Value>,
    /// The operation's metrics.
    pub metrics: Option<Value>,
    /// The writer that made the commit.
    pub engine_info: Option<String>,
    /// The whole `commitInfo` action.
    pub commit_info: Option<Map<String, Value>>,
}

/// A Delta table: its storage and root.
#[derive(Debug, Clone)]
pub struct Table {
    storage: StorageRef,
    root: Url,
    cache: Option<Arc<SnapshotCache>>,
}

impl Table {
    /// The table stored in `storage`.
    pub fn new(storage: StorageRef) -> Result<Self> {
        let location = storage.location();
        let root = Url::parse(&location)
            .map_err(|e| Error::InvalidArgument(format!("bad table location {location}: {e}")))?;
        Ok(Self {
            storage,
            root,
            cache: None,
        })
    }

    /// This table, taking its latest snapshots from `cache`.
    pub fn with_cache(mut self, cache: Option<Arc<SnapshotCache>>) -> Self {
        self.cache = cache;
        self
    }

    /// The table's storage.
    pub fn storage(&self) -> &StorageRef {
        &self.storage
    }

    /// The table's root URL.
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// The latest snapshot (through the cache, when the table has one).
    pub async fn snapshot(&self) -> Result<Snapshot> {
        match &self.cache {
            Some(cache) => cache.latest(self).await,
            None => self.load_latest().await,
        }
    }

    /// The latest snapshot, replayed from the log without any cache.
    pub async fn load_latest(&self) -> Result<Snapshot> {
        self.load(None).await
    }

    /// The snapshot at `version`, or the latest when `None`.
    pub async fn snapshot_at(&self, version: Option<i64>) -> Result<Snapshot> {
        match version {
            Some(version) => self.load(Some(version)).await,
            None => self.snapshot().await,
        }
    }

    /// The latest snapshot, from `previous` and the commits made since it
    /// (`previous` itself when there are none). A log that cannot be
    /// advanced this way (its commit gone: the table was replaced; or a gap
    /// after it) is loaded in full.
    pub async fn refresh(&self, previous: &Snapshot) -> Result<Snapshot> {
        let storage = self.storage.as_ref();
        let commits = match LogSegment::commits_after(storage, previous.version()).await {
            Ok(Some(commits)) => commits,
            Ok(None) | Err(Error::InvalidTable { .. }) => return self.load_latest().await,
            Err(e) => return Err(e),
        };
        let Some(last) = commits.last() else {
            return Ok(previous.clone());
        };
        let (version, file_time) = (last.file.version, last.file.last_modified);
        let batches = log::replay::read_commit_files(storage, &commits).await?;
        let timestamp = log::commit_timestamp(
            batches.last().and_then(|b| b.commit_info.as_ref()),
            file_time,
        );
        let mut state = log::replay::advance(&self.root, previous.state(), batches)?;
        state.version = version;
        state.timestamp = timestamp;
        Snapshot::try_new(state, self.root.clone())
    }

    async fn load(&self, version: Option<i64>) -> Result<Snapshot> {
        let segment = LogSegment::load(self.storage.as_ref(), version).await?;
        let state = log::replay(self.storage.as_ref(), &self.root, &segment).await?;
        Snapshot::try_new(state, self.root.clone())
    }

    /// The snapshot of the newest version committed at or before
    /// `timestamp_ms`. A timestamp after the latest commit gives the latest
    /// version; one before the first available commit is an error.
    pub async fn snapshot_at_timestamp(&self, timestamp_ms: i64) -> Result<Snapshot> {
        let history = self.history().await?;
        let version = version_at(&history, timestamp_ms)?;
        self.snapshot_at(Some(version)).await
    }

    /// Every commit still in the log, oldest first.
    pub async fn history(&self) -> Result<Vec<CommitEntry>> {
        let commits = self.commit_files().await?;
        let reads: Vec<_> = commits
            .into_iter()
            .map(|(file, prefetched)| read_entry(self.storage.as_ref(), file, prefetched))
            .collect();
        futures::stream::iter(reads)
            .buffered(16)
            .try_collect()
            .await
    }

    /// The commit that made `version`, or `None` when the log has no such
    /// commit (not made yet, or removed by log retention): one read, for
    /// following a table commit by commit.
    pub async fn commit(&self, version: i64) -> Result<Option<CommitEntry>> {
        let path = log::commit_path(version);
        let bytes = match self.storage.get(&path).await {
            Ok(bytes) => bytes,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let file = LogFile {
            version,
            kind: LogFileKind::Commit,
            path,
            size: Some(bytes.len() as u64),
            last_modified: None,
        };
        let actions = ActionBatch::from_json_lines(&file.path, &bytes)?;
        Ok(Some(entry(file, actions.commit_info)))
    }

    /// The log's commit files, oldest first, with their contents when
    /// finding them meant reading them.
    pub(crate) async fn commit_files(&self) -> Result<Vec<(LogFile, Option<bytes::Bytes>)>> {
        if let Some(listed) = self.storage.list(LOG_DIR, None).await? {
            let mut commits: Vec<LogFile> = listed
                .iter()
                .filter_map(LogFile::parse)
                .filter(|f| f.kind == LogFileKind::Commit)
                .collect();
            if commits.is_empty() && listed.is_empty() {
                return Err(Error::TableNotFound {
                    location: self.storage.location(),
                    reason: "_delta_log is missing or empty".into(),
                });
            }
            commits.sort_by_key(|f| f.version);
            return Ok(commits.into_iter().map(|f| (f, None)).collect());
        }
        let segment = LogSegment::load(self.storage.as_ref(), None).await?;
        Ok(segment
            .commits
            .into_iter()
            .map(|c| (c.file, c.bytes))
            .collect())
    }
}

async fn read_entry(
    storage: &dyn Storage,
    file: LogFile,
    prefetched: Option<bytes::Bytes>,
) -> Result<CommitEntry> {
    let bytes = match prefetched {
        Some(bytes) => bytes,
        None => storage.get(&file.path).await?,
    };
    let actions = ActionBatch::from_json_lines(&file.path, &bytes)?;
    Ok(entry(file, actions.commit_info))
}

fn entry(file: LogFile, info: Option<Map<String, Value>>) -> CommitEntry {
    let get = |name: &str| info.as_ref().and_then(|i| i.get(name)).cloned();
    CommitEntry {
        version: file.version,
        timestamp: log::commit_timestamp(info.as_ref(), file.last_modified),
        operation: get("operation").and_then(|v| v.as_str().map(str::to_owned)),
        parameters: get("operationParameters"),
        metrics: get("operationMetrics"),
        engine_info: get("engineInfo").and_then(|v| v.as_str().map(str::to_owned)),
        commit_info: info,
    }
}

/// The newest version committed at or before `timestamp_ms`.
pub fn version_at(history: &[CommitEntry], timestamp_ms: i64) -> Result<i64> {
    let mut best = None;
    for commit in history {
        match commit.timestamp {
            Some(t) if t <= timestamp_ms => best = Some(commit.version),
            Some(_) => break,
            None => {}
        }
    }
    best.ok_or_else(|| Error::TimestampOutOfRange {
        timestamp: format_millis(timestamp_ms),
        reason: match history.first().and_then(|c| c.timestamp) {
            Some(first) => format!(
                "the earliest available commit is at {}",
                format_millis(first)
            ),
            None => "the table has no commits with timestamps".into(),
        },
    })
}

fn format_millis(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// Shares a table.
pub type TableRef = Arc<Table>;
