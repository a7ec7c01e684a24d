//! Where a queryable table's versions come from, for time travel
//! (`VERSION AS OF`, `TIMESTAMP AS OF`) and the metadata functions
//! (`delta_history`, `delta_files`, …): a [`Table`] reads its own log; a
//! table a Delta Sharing server describes asks the server for the version
//! (see `sharing::SharedTableVersions`).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use crate::Result;
use crate::snapshot::Snapshot;
use crate::storage::StorageRef;
use crate::table::{CommitEntry, Table};

/// The versions of one table: any of them as a snapshot with the storage
/// its files are read from, and the commits that made them.
#[async_trait]
pub trait TableVersions: Debug + Send + Sync {
    /// The table at `version`, or the latest when `None`.
    async fn version(&self, version: Option<i64>) -> Result<(Snapshot, StorageRef)>;

    /// The newest version committed at or before `timestamp_ms`
    /// (milliseconds since the epoch).
    async fn version_at_timestamp(&self, timestamp_ms: i64) -> Result<(Snapshot, StorageRef)>;

    /// Every commit the source still knows, oldest first.
    async fn history(&self) -> Result<Vec<CommitEntry>>;
}

#[async_trait]
impl TableVersions for Table {
    async fn version(&self, version: Option<i64>) -> Result<(Snapshot, StorageRef)> {
        Ok((self.snapshot_at(version).await?, self.storage().clone()))
    }

    async fn version_at_timestamp(&self, timestamp_ms: i64) -> Result<(Snapshot, StorageRef)> {
        let snapshot = self.snapshot_at_timestamp(timestamp_ms).await?;
        Ok((snapshot, self.storage().clone()))
    }

    async fn history(&self) -> Result<Vec<CommitEntry>> {
        Table::history(self).await
    }
}

/// Tables with a log the session reads, by registry name.
pub type TableRegistry = Arc<RwLock<HashMap<String, Table>>>;

/// Tables whose versions another source describes (shared tables), by
/// registry name.
pub type DescribedRegistry = Arc<RwLock<HashMap<String, Arc<dyn TableVersions>>>>;

/// Every table a session can time travel on or describe, by name: the
/// tables with a log, then the described ones. An unqualified name is
/// looked up as written, then in the default namespace; a qualified one
/// only as written.
#[derive(Debug, Clone, Default)]
pub struct VersionDirectory {
    tables: TableRegistry,
    described: DescribedRegistry,
    default_schema: Option<String>,
}

impl VersionDirectory {
    /// A directory over both registries.
    pub fn new(
        tables: TableRegistry,
        described: DescribedRegistry,
        default_schema: Option<String>,
    ) -> Self {
        Self {
            tables,
            described,
            default_schema,
        }
    }

    /// The versions of the table `name` refers to, if any.
    pub fn lookup(&self, name: &str) -> Option<Arc<dyn TableVersions>> {
        let qualified = match (&self.default_schema, name.contains('.')) {
            (Some(schema), false) => Some(format!("{schema}.{name}")),
            _ => None,
        };
        let candidates = std::iter::once(name.to_owned()).chain(qualified);
        for candidate in candidates {
            if let Some(table) = self.tables.read().ok()?.get(&candidate) {
                return Some(Arc::new(table.clone()));
            }
            if let Some(source) = self.described.read().ok()?.get(&candidate) {
                return Some(source.clone());
            }
        }
        None
    }
}
