//! Multi-statement transactions (`BEGIN; …; COMMIT`) on one table: every
//! statement runs as usual against a [`StagedLog`], a view of the table
//! whose log commits stay in memory (data files are written to the table,
//! where nothing references them yet). Later statements read the earlier
//! ones' commits; others see nothing. [`StagedTransaction::commit`]
//! squashes the staged commits into one Delta commit on top of the version
//! the transaction began at, with the usual conflict checks;
//! [`StagedTransaction::rollback`] deletes the files it wrote.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use crate::log::{LOG_DIR, LogFile};
use crate::protocol::{ActionBatch, Add, AddCdc, FileKey};
use crate::storage::{FileMeta, Storage, StorageRef};
use crate::table::Table;
use crate::transaction::{IsolationLevel, ReadScope, StagedReads, Transaction};
use crate::{Error, Result};

/// A table's storage whose log is the table's up to `base`, then commits
/// kept in memory.
#[derive(Debug)]
pub struct StagedLog {
    inner: StorageRef,
    base: i64,
    staged: Mutex<BTreeMap<String, Bytes>>,
    /// What the staged commits (and the transaction's queries) read.
    reads: StagedReads,
}

impl StagedLog {
    /// Stages commits on top of version `base` of the table in `inner`.
    pub fn new(inner: StorageRef, base: i64) -> Self {
        Self {
            inner,
            base,
            staged: Mutex::default(),
            reads: StagedReads::default(),
        }
    }

    fn staged(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Bytes>> {
        self.staged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `path` is a log file the transaction must not see: a
    /// version committed by others after it began, or the pointer to
    /// their checkpoints.
    fn hidden(&self, path: &str) -> bool {
        if !path.starts_with(LOG_DIR) {
            return false;
        }
        if path.ends_with("_last_checkpoint") {
            return true;
        }
        let meta = FileMeta {
            path: path.to_owned(),
            size: 0,
            last_modified: 0,
        };
        LogFile::parse(&meta).is_some_and(|file| file.version > self.base)
    }

    /// The staged commit files, by version.
    fn staged_commits(&self) -> Result<Vec<(i64, ActionBatch)>> {
        let staged = self.staged();
        let mut commits = Vec::new();
        for (path, bytes) in staged.iter() {
            let meta = FileMeta {
                path: path.clone(),
                size: bytes.len() as u64,
                last_modified: 0,
            };
            if let Some(file) = LogFile::parse(&meta)
                && file.kind == crate::log::LogFileKind::Commit
            {
                commits.push((file.version, ActionBatch::from_json_lines(path, bytes)?));
            }
        }
        commits.sort_by_key(|(version, _)| *version);
        Ok(commits)
    }
}

#[async_trait]
impl Storage for StagedLog {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn get(&self, path: &str) -> Result<Bytes> {
        if let Some(bytes) = self.staged().get(path) {
            return Ok(bytes.clone());
        }
        if self.hidden(path) {
            return Err(Error::NotFound {
                path: path.to_owned(),
            });
        }
        self.inner.get(path).await
    }

    async fn get_ranges(&self, path: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        if let Some(bytes) = self.staged().get(path).cloned() {
            return ranges
                .iter()
                .map(|range| {
                    let end = usize::try_from(range.end).unwrap_or(usize::MAX);
                    let start = usize::try_from(range.start).unwrap_or(usize::MAX);
                    if start > end || end > bytes.len() {
                        return Err(Error::InvalidArgument(format!(
                            "range {range:?} is outside {path} ({} bytes)",
                            bytes.len()
                        )));
                    }
                    Ok(bytes.slice(start..end))
                })
                .collect();
        }
        if self.hidden(path) {
            return Err(Error::NotFound {
                path: path.to_owned(),
            });
        }
        self.inner.get_ranges(path, ranges).await
    }

    async fn list(&self, prefix: &str, start_after: Option<&str>) -> Result<Option<Vec<FileMeta>>> {
        let mut files: Vec<FileMeta> = match self.inner.list(prefix, start_after).await? {
            Some(files) => files
                .into_iter()
                .filter(|f| !self.hidden(&f.path))
                .collect(),
            None => return Ok(None),
        };
        let staged: Vec<FileMeta> = self
            .staged()
            .iter()
            .filter(|(path, _)| path.starts_with(prefix))
            .filter(|(path, _)| start_after.is_none_or(|after| path.as_str() > after))
            .map(|(path, bytes)| FileMeta {
                path: path.clone(),
                size: bytes.len() as u64,
                last_modified: 0,
            })
            .collect();
        files.retain(|f| !staged.iter().any(|s| s.path == f.path));
        files.extend(staged);
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Some(files))
    }

    async fn put(&self, path: &str, bytes: Bytes) -> Result<()> {
        if path.starts_with(LOG_DIR) {
            self.staged().insert(path.to_owned(), bytes);
            return Ok(());
        }
        self.inner.put(path, bytes).await
    }

    async fn put_if_absent(&self, path: &str, bytes: Bytes) -> Result<()> {
        if path.starts_with(LOG_DIR) {
            let visible_before = !self.hidden(path) && self.inner.size(path).await.is_ok();
            let mut staged = self.staged();
            if visible_before || staged.contains_key(path) {
                return Err(Error::AlreadyExists {
                    path: path.to_owned(),
                });
            }
            staged.insert(path.to_owned(), bytes);
            return Ok(());
        }
        self.inner.put_if_absent(path, bytes).await
    }

    async fn delete(&self, path: &str) -> Result<()> {
        if self.staged().remove(path).is_some() {
            return Ok(());
        }
        if path.starts_with(LOG_DIR) {
            // The transaction never deletes the table's own log.
            return Ok(());
        }
        self.inner.delete(path).await
    }

    async fn size(&self, path: &str) -> Result<u64> {
        if let Some(bytes) = self.staged().get(path) {
            return Ok(bytes.len() as u64);
        }
        if self.hidden(path) {
            return Err(Error::NotFound {
                path: path.to_owned(),
            });
        }
        self.inner.size(path).await
    }

    fn extension(&self) -> Option<&(dyn std::any::Any + Send + Sync)> {
        Some(&self.reads)
    }
}

/// The table's column names, in order.
fn metadata_columns(metadata: &crate::protocol::Metadata) -> Result<Vec<String>> {
    Ok(crate::schema::StructType::parse(&metadata.schema_string)?
        .fields
        .into_iter()
        .map(|f| f.name)
        .collect())
}

/// An open transaction on one table.
#[derive(Debug, Clone)]
pub struct StagedTransaction {
    table: Table,
    staged: Arc<StagedLog>,
}

/// What a committed transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionOutcome {
    /// The version committed; `None` when the transaction changed nothing.
    pub version: Option<i64>,
    /// Data files added and removed, net.
    pub files_added: usize,
    /// Data files removed, net.
    pub files_removed: usize,
}

impl StagedTransaction {
    /// Begins a transaction on `table` at its latest version. `read_at`:
    /// the version its queries read the table at before its first change
    /// (the transaction's snapshot); a commit since then that changed data
    /// they read is a [`Error::CommitConflict`] now (one landing later is
    /// one at COMMIT).
    pub async fn begin(table: &Table, read_at: Option<i64>) -> Result<Self> {
        let latest = table.snapshot().await?;
        let base = latest.version();
        let staged = Arc::new(StagedLog::new(table.storage().clone(), base));
        if let Some(read_at) = read_at {
            let reader = Transaction::new(Some(read_at), "TRANSACTION")
                .isolation(IsolationLevel::of(latest.metadata())?)
                .read(ReadScope::WholeTable);
            for version in read_at + 1..=base {
                let path = crate::log::commit_path(version);
                let bytes = table.storage().get(&path).await?;
                reader.check_conflict(version, &ActionBatch::from_json_lines(&path, &bytes)?)?;
            }
            staged.reads.note_whole_table();
        }
        Ok(Self {
            table: table.clone(),
            staged,
        })
    }

    /// The version the transaction began at.
    pub fn base_version(&self) -> i64 {
        self.staged.base
    }

    /// The storage the transaction's statements run against.
    pub fn storage(&self) -> StorageRef {
        self.staged.clone()
    }

    /// Notes that a statement of the transaction read the table without
    /// committing (a query): a concurrent change to the table's data then
    /// conflicts with the transaction, since what it wrote may rest on
    /// what it read.
    pub fn note_query(&self) {
        self.staged.reads.note_whole_table();
    }

    /// The table as the transaction sees it.
    pub fn staged_table(&self) -> Result<Table> {
        Table::new(self.storage())
    }

    /// Commits what every statement staged as one commit on top of the
    /// version the transaction began at; a concurrent commit that changed
    /// what the transaction read is a [`Error::CommitConflict`] (and its
    /// files are deleted).
    pub async fn commit(&self, statements: &[String], now_ms: i64) -> Result<TransactionOutcome> {
        let commits = self.staged.staged_commits()?;
        if commits.is_empty() {
            return Ok(TransactionOutcome {
                version: None,
                files_added: 0,
                files_removed: 0,
            });
        }
        let base = self.table.snapshot_at(Some(self.staged.base)).await?;
        let last = self.staged_table()?.snapshot_at(None).await?;
        let before: HashSet<FileKey> = base.files().iter().map(Add::replay_key).collect();
        let after: HashSet<FileKey> = last.files().iter().map(Add::replay_key).collect();
        let removes: Vec<_> = base
            .files()
            .iter()
            .filter(|add| !after.contains(&add.replay_key()))
            .map(|add| crate::remove_of(add, now_ms, true))
            .collect();
        let adds: Vec<Add> = last
            .files()
            .iter()
            .filter(|add| !before.contains(&add.replay_key()))
            .cloned()
            .map(|add| Add {
                data_change: true,
                ..add
            })
            .collect();
        // Change files written at COMMIT (not by a statement).
        let mut written_here: Vec<String> = Vec::new();
        let mut change_files: Vec<AddCdc> = commits
            .iter()
            .flat_map(|(_, batch)| batch.cdcs.iter().cloned())
            .collect();
        if !change_files.is_empty() {
            // Readers take a commit with change files from those alone:
            // the statements that only appended need change files too.
            let appended: Vec<i64> = commits
                .iter()
                .filter(|(_, batch)| {
                    batch.cdcs.is_empty() && batch.adds.iter().any(|a| a.data_change)
                })
                .map(|(version, _)| *version)
                .collect();
            for version in appended {
                match self.inserts_as_change_files(version, now_ms).await {
                    Ok(files) => {
                        written_here.extend(files.iter().map(|f| f.path.clone()));
                        change_files.extend(files);
                    }
                    Err(e) => {
                        self.delete(&written_here).await;
                        self.rollback().await;
                        return Err(e);
                    }
                }
            }
        }
        let (files_added, files_removed) = (adds.len(), removes.len());
        let mut transaction = Transaction::new(Some(self.staged.base), "TRANSACTION")
            .checkpoint_interval_of(last.metadata())
            .isolation(IsolationLevel::of(last.metadata())?)
            .parameter("statements", serde_json::json!(statements))
            .metric("numAddedFiles", files_added.to_string())
            .metric("numRemovedFiles", files_removed.to_string())
            .read(self.staged.reads.union());
        if last.metadata() != base.metadata() {
            transaction = transaction.metadata(last.metadata().clone());
        }
        if last.protocol() != base.protocol() {
            transaction = transaction.protocol(last.protocol().clone());
        }
        let transaction = transaction
            .remove_files(removes)
            .add_files(adds)
            .change_files(change_files);
        match transaction
            .commit(self.table.storage().as_ref(), now_ms)
            .await
        {
            Ok(committed) => Ok(TransactionOutcome {
                version: Some(committed.version),
                files_added,
                files_removed,
            }),
            Err(e) => {
                if !e.commit_may_have_landed() {
                    self.delete(&written_here).await;
                    self.rollback().await;
                }
                Err(e)
            }
        }
    }

    /// Deletes files of the table by their `add`/`cdc` paths.
    async fn delete(&self, paths: &[String]) {
        let root = self.table.root().clone();
        for path in paths {
            let _ = self
                .table
                .storage()
                .delete(&crate::storage::resolve_data_path(&root, path))
                .await;
        }
    }

    /// The rows staged version `version` appended, written as change data
    /// files of inserts.
    async fn inserts_as_change_files(&self, version: i64, now_ms: i64) -> Result<Vec<AddCdc>> {
        use futures::StreamExt;
        let staged = self.staged_table()?;
        let feed = staged.changes(version, Some(version)).await?;
        let metadata = feed.snapshot.metadata().clone();
        let ctx = datafusion::prelude::SessionContext::new();
        let frame = wavelake_engine::change_feed::feed_frame(&ctx, &staged, feed).await?;
        let mut columns: Vec<datafusion::logical_expr::Expr> = metadata_columns(&metadata)?
            .into_iter()
            .map(|name| {
                datafusion::logical_expr::Expr::Column(datafusion::common::Column::new_unqualified(
                    name,
                ))
            })
            .collect();
        columns.push(datafusion::logical_expr::Expr::Column(
            datafusion::common::Column::new_unqualified(crate::target::CHANGE_TYPE_COLUMN),
        ));
        let mut rows = frame.select(columns)?.execute_stream().await?;
        let target = crate::target::WriteTarget::change_data(&metadata)?;
        let storage = self.table.storage().as_ref();
        let mut writer = crate::TableFileWriter::new(&target, storage, now_ms, false)?;
        while let Some(batch) = rows.next().await {
            let written = match batch {
                Ok(batch) => writer.write(&batch).await,
                Err(e) => Err(e.into()),
            };
            if let Err(e) = written {
                writer.abandon().await;
                return Err(e);
            }
        }
        Ok(writer
            .finish()
            .await?
            .into_iter()
            .map(AddCdc::from_written)
            .collect())
    }

    /// Deletes every file the transaction's statements wrote (data,
    /// deletion vector and change data files); the table is as it was.
    pub async fn rollback(&self) {
        let Ok(commits) = self.staged.staged_commits() else {
            return;
        };
        let Ok(base) = self.table.snapshot_at(Some(self.staged.base)).await else {
            return;
        };
        let kept: HashSet<String> = base.files().iter().map(|a| a.path.clone()).collect();
        let kept_vectors: HashSet<String> = base
            .files()
            .iter()
            .filter_map(|a| a.deletion_vector.as_ref())
            .map(|dv| dv.path_or_inline_dv.clone())
            .collect();
        let root = self.table.root().clone();
        for (_, batch) in commits {
            let mut paths: Vec<String> = batch
                .adds
                .iter()
                .filter(|a| !kept.contains(&a.path))
                .map(|a| a.path.clone())
                .collect();
            paths.extend(batch.cdcs.iter().map(|c| c.path.clone()));
            for path in paths {
                let _ = self
                    .table
                    .storage()
                    .delete(&crate::storage::resolve_data_path(&root, &path))
                    .await;
            }
            for add in &batch.adds {
                if let Some(dv) = &add.deletion_vector
                    && !kept_vectors.contains(&dv.path_or_inline_dv)
                    && let Ok(crate::protocol::DvLocation::File { path, .. }) = dv.location()
                {
                    let _ = self.table.storage().delete(&path).await;
                }
            }
        }
        self.staged.staged().clear();
        self.staged.reads.clear();
    }
}
