//! The change data feed: the files that hold the rows commits inserted,
//! deleted or updated between two versions of a table that records change
//! data (`delta.enableChangeDataFeed`). A commit with `cdc` actions is
//! described by its change files alone; any other commit by the files it
//! added (inserts) and removed (deletes) with `dataChange`.

use std::collections::HashMap;

use futures::{StreamExt, TryStreamExt};
use roaring::RoaringTreemap;

use crate::deletion::load_deletion_vector;
use crate::log::{self, LogFile};
use crate::protocol::{ActionBatch, Add, AddCdc, DeletionVectorDescriptor, Metadata, Remove};
use crate::snapshot::Snapshot;
use crate::stats::FileStats;
use crate::storage::resolve_data_path;
use crate::table::Table;
use crate::{Error, Result};

/// The table property that makes writers record change data.
pub const CHANGE_DATA_FEED_PROPERTY: &str = "delta.enableChangeDataFeed";

/// What a row of the change data feed is (its `_change_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeType {
    /// A row the commit inserted.
    Insert,
    /// A row the commit deleted, as it was.
    Delete,
    /// A row the commit updated, as it was before.
    UpdatePreimage,
    /// A row the commit updated, as it is after.
    UpdatePostimage,
}

impl ChangeType {
    /// The `_change_type` value, as Delta writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Insert => "insert",
            Self::Delete => "delete",
            Self::UpdatePreimage => "update_preimage",
            Self::UpdatePostimage => "update_postimage",
        }
    }
}

/// What one file of the feed holds.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeAction {
    /// A change data file: its `_change_type` column says what each row is.
    Cdc(AddCdc),
    /// A file the commit added: its rows (less those its deletion vector
    /// marks) are inserts.
    Add(Add),
    /// A file the commit removed: its rows (less those its deletion vector
    /// marks) are deletes. Partition values and size are always present.
    Remove(Remove),
    /// A file whose deletion vector the commit replaced (a DELETE or UPDATE
    /// that wrote no change files): rows only the new vector marks are
    /// deletes, rows only the old one marked are inserts (see
    /// [`Table::changed_rows`]).
    DeletionVectorChange {
        /// The file with its old deletion vector.
        remove: Box<Remove>,
        /// The file with its new deletion vector.
        add: Box<Add>,
    },
}

/// The rows of one file a [`ChangeAction::DeletionVectorChange`] changed.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangedRows {
    /// Rows the new deletion vector marks and the old did not.
    pub deleted: RoaringTreemap,
    /// Rows the old deletion vector marked and the new does not.
    pub restored: RoaringTreemap,
    /// Rows in the file.
    pub num_rows: u64,
}

/// One file of the feed, with the commit it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeFile {
    /// The commit's version.
    pub version: i64,
    /// The commit's timestamp, in milliseconds since the epoch.
    pub timestamp: i64,
    /// The file.
    pub action: ChangeAction,
}

/// The change data feed of a range of versions.
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    /// The first version of the range.
    pub start: i64,
    /// The last version of the range.
    pub end: i64,
    /// The table at `end`: the schema the feed is read with.
    pub snapshot: Snapshot,
    /// The files, in commit order.
    pub files: Vec<ChangeFile>,
}

/// Whether `metadata` makes writers record change data.
pub fn records_changes(metadata: &Metadata) -> bool {
    metadata
        .property(CHANGE_DATA_FEED_PROPERTY)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

impl Table {
    /// The change data feed from `start` to `end` (the latest version when
    /// `None`), both inclusive. Every version in the range must record
    /// change data and still be in the log.
    pub async fn changes(&self, start: i64, end: Option<i64>) -> Result<ChangeFeed> {
        let snapshot = self.snapshot_at(end).await?;
        let end = snapshot.version();
        if start < 0 || start > end {
            return Err(Error::InvalidArgument(format!(
                "the change data range starts at version {start}, which is not between 0 and {end}"
            )));
        }
        let start_metadata = if start == end {
            snapshot.metadata().clone()
        } else {
            self.snapshot_at(Some(start)).await?.metadata().clone()
        };
        if !records_changes(&start_metadata) {
            return Err(not_recorded(start));
        }
        let commits: HashMap<i64, LogFile> = self
            .commit_files()
            .await?
            .into_iter()
            .map(|(file, _)| (file.version, file))
            .collect();
        let reads: Vec<_> = (start..=end)
            .map(|version| {
                let file = commits.get(&version).cloned();
                self.read_change_commit(version, file)
            })
            .collect();
        let batches: Vec<(i64, i64, ActionBatch)> = futures::stream::iter(reads)
            .buffered(16)
            .try_collect()
            .await?;
        let mut files = Vec::new();
        for (version, timestamp, batch) in batches {
            if let Some(metadata) = &batch.metadata
                && !records_changes(metadata)
            {
                return Err(not_recorded(version));
            }
            self.commit_changes(version, timestamp, batch, &mut files)
                .await?;
        }
        Ok(ChangeFeed {
            start,
            end,
            snapshot,
            files,
        })
    }

    /// The first version committed at or after `timestamp_ms`: where a
    /// change data range given by a starting timestamp begins.
    pub async fn version_at_or_after(&self, timestamp_ms: i64) -> Result<i64> {
        let history = self.history().await?;
        history
            .iter()
            .find(|c| c.timestamp.is_some_and(|t| t >= timestamp_ms))
            .map(|c| c.version)
            .ok_or_else(|| Error::TimestampOutOfRange {
                timestamp: timestamp_ms.to_string(),
                reason: "no commit is that recent".into(),
            })
    }

    async fn read_change_commit(
        &self,
        version: i64,
        file: Option<LogFile>,
    ) -> Result<(i64, i64, ActionBatch)> {
        let path = log::commit_path(version);
        let gone = || Error::VersionNotFound {
            version,
            reason: "its commit is no longer in the log (log retention)".into(),
        };
        let bytes = match self.storage().get(&path).await {
            Ok(bytes) => bytes,
            Err(Error::NotFound { .. }) => return Err(gone()),
            Err(e) => return Err(e),
        };
        let batch = ActionBatch::from_json_lines(&path, &bytes)?;
        let timestamp = log::commit_timestamp(
            batch.commit_info.as_ref(),
            file.and_then(|f| f.last_modified),
        )
        .unwrap_or_default();
        Ok((version, timestamp, batch))
    }

    /// Appends the change files of one commit.
    async fn commit_changes(
        &self,
        version: i64,
        timestamp: i64,
        batch: ActionBatch,
        files: &mut Vec<ChangeFile>,
    ) -> Result<()> {
        let change = |action| ChangeFile {
            version,
            timestamp,
            action,
        };
        if !batch.cdcs.is_empty() {
            files.extend(batch.cdcs.into_iter().map(ChangeAction::Cdc).map(change));
            return Ok(());
        }
        let mut before: Option<Snapshot> = None;
        let mut adds: Vec<Add> = batch.adds.into_iter().filter(|a| a.data_change).collect();
        for mut remove in batch.removes.into_iter().filter(|r| r.data_change) {
            if remove.partition_values.is_none() || remove.size.is_none() {
                let previous = match &before {
                    Some(snapshot) => snapshot,
                    None => before.insert(self.snapshot_at(Some(version - 1)).await?),
                };
                let target = resolve_data_path(self.root(), &remove.path);
                let added = previous
                    .files()
                    .iter()
                    .find(|a| resolve_data_path(self.root(), &a.path) == target)
                    .ok_or_else(|| {
                        Error::invalid_table(format!(
                            "version {version} removes {}, which version {} does not have",
                            remove.path,
                            version - 1
                        ))
                    })?;
                remove.partition_values = Some(added.partition_values.clone());
                remove.size = Some(added.size);
            }
            let target = resolve_data_path(self.root(), &remove.path);
            let readded = adds
                .iter()
                .position(|a| resolve_data_path(self.root(), &a.path) == target);
            let action = match readded {
                Some(index) => ChangeAction::DeletionVectorChange {
                    remove: Box::new(remove),
                    add: Box::new(adds.remove(index)),
                },
                None => ChangeAction::Remove(remove),
            };
            files.push(change(action));
        }
        files.extend(adds.into_iter().map(ChangeAction::Add).map(change));
        Ok(())
    }

    /// The rows a [`ChangeAction::DeletionVectorChange`] deleted and
    /// restored.
    pub async fn changed_rows(&self, remove: &Remove, add: &Add) -> Result<ChangedRows> {
        let path = resolve_data_path(self.root(), &add.path);
        let load = |dv: Option<&DeletionVectorDescriptor>| {
            let path = path.clone();
            let dv = dv.cloned();
            async move {
                match dv {
                    Some(dv) => load_deletion_vector(self.storage().as_ref(), &path, &dv).await,
                    None => Ok(RoaringTreemap::new()),
                }
            }
        };
        let old = load(remove.deletion_vector.as_ref()).await?;
        let new = load(add.deletion_vector.as_ref()).await?;
        let num_rows = FileStats::of(add)
            .and_then(|s| s.num_records)
            .ok_or_else(|| {
                Error::invalid_table(format!(
                    "{} has a deletion vector but no numRecords statistic",
                    add.path
                ))
            })?;
        Ok(ChangedRows {
            deleted: &new - &old,
            restored: &old - &new,
            num_rows,
        })
    }
}

fn not_recorded(version: i64) -> Error {
    Error::ChangeDataNotRecorded {
        version,
        reason: format!("{CHANGE_DATA_FEED_PROPERTY} is not true at that version"),
    }
}
