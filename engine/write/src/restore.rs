//! RESTORE TABLE … TO VERSION AS OF n: one commit that makes the latest
//! version hold exactly the files (and schema) of an earlier one. Files
//! VACUUM already deleted make the restore fail before anything is
//! committed.

use std::collections::HashSet;

use super::{now_ms, remove_of};
use crate::protocol::Add;
use crate::protocol::features::ensure_writable;
use crate::snapshot::Snapshot;
use crate::storage::resolve_data_path;
use crate::table::Table;
use crate::transaction::{IsolationLevel, ReadScope, Transaction};
use crate::{Error, Result};

/// What RESTORE did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreOutcome {
    /// The version committed.
    pub version: i64,
    /// The version restored.
    pub restored_version: i64,
    /// Files removed (added after the restored version).
    pub files_removed: usize,
    /// Files brought back.
    pub files_restored: usize,
}

impl RestoreOutcome {
    /// As a one-row result.
    pub fn to_batch(&self) -> Result<arrow::array::RecordBatch> {
        super::outcome_batch(&[
            ("version", Some(self.version.max(0) as u64)),
            (
                "restored_version",
                Some(self.restored_version.max(0) as u64),
            ),
            ("num_removed_files", Some(self.files_removed as u64)),
            ("num_restored_files", Some(self.files_restored as u64)),
        ])
    }
}

/// Restores `table` to the state of `target`, an earlier snapshot of it.
pub async fn restore(table: &Table, target: &Snapshot) -> Result<RestoreOutcome> {
    let current = table.snapshot().await?;
    ensure_writable(current.protocol(), current.metadata())?;
    ensure_writable(current.protocol(), target.metadata())?;
    if target.version() >= current.version() {
        return Err(Error::InvalidArgument(format!(
            "cannot restore to version {}: the table is at version {}",
            target.version(),
            current.version()
        )));
    }
    let now_keys: HashSet<_> = current.files().iter().map(Add::replay_key).collect();
    let then_keys: HashSet<_> = target.files().iter().map(Add::replay_key).collect();
    let removed: Vec<&Add> = current
        .files()
        .iter()
        .filter(|a| !then_keys.contains(&a.replay_key()))
        .collect();
    let restored: Vec<Add> = target
        .files()
        .iter()
        .filter(|a| !now_keys.contains(&a.replay_key()))
        .map(|a| Add {
            data_change: true,
            ..a.clone()
        })
        .collect();
    if let Some(listed) = table.storage().list("", None).await? {
        let present: HashSet<String> = listed.into_iter().map(|f| f.path).collect();
        if let Some(gone) = restored
            .iter()
            .find(|a| !present.contains(&resolve_data_path(table.root(), &a.path)))
        {
            return Err(Error::InvalidArgument(format!(
                "cannot restore to version {}: its file {} was deleted (by VACUUM?)",
                target.version(),
                gone.path
            )));
        }
    }
    let now = now_ms();
    let size = |files: &mut dyn Iterator<Item = &Add>| -> i64 { files.map(|a| a.size).sum() };
    let mut transaction = Transaction::new(Some(current.version()), "RESTORE")
        .checkpoint_interval_of(current.metadata())
        .read(ReadScope::WholeTable)
        .isolation(IsolationLevel::of(current.metadata())?)
        .parameter("version", target.version())
        .metric("numRemovedFiles", removed.len().to_string())
        .metric("numRestoredFiles", restored.len().to_string())
        .metric(
            "removedFilesSize",
            size(&mut removed.iter().copied()).to_string(),
        )
        .metric("restoredFilesSize", size(&mut restored.iter()).to_string())
        .metric("numOfFilesAfterRestore", target.files().len().to_string())
        .metric(
            "tableSizeAfterRestore",
            size(&mut target.files().iter()).to_string(),
        );
    if target.metadata() != current.metadata() {
        transaction = transaction.metadata(target.metadata().clone());
    }
    let outcome = RestoreOutcome {
        version: 0,
        restored_version: target.version(),
        files_removed: removed.len(),
        files_restored: restored.len(),
    };
    let committed = transaction
        .remove_files(removed.iter().map(|a| remove_of(a, now, true)))
        .add_files(restored)
        .commit(table.storage().as_ref(), now)
        .await?;
    Ok(RestoreOutcome {
        version: committed.version,
        ..outcome
    })
}
