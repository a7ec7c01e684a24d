//! Deletion vectors read when a scan runs rather than when it is planned.
//!
//! A scan planned by one process and run by others (a Ballista scheduler
//! and its executors) carries each kept file's deletion-vector descriptor,
//! not the decoded vector: the executor running a partition reads the
//! vectors of that partition's files from its own storage and turns them
//! into Parquet row selections just before reading the files.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_datasource::file_groups::FileGroup;
use datafusion_datasource::file_scan_config::{FileScanConfig, FileScanConfigBuilder};
use datafusion_datasource::source::DataSourceExec;
use datafusion_datasource_parquet::ParquetRowSelection;
use serde::{Deserialize, Serialize};

use crate::deletion::{StoredDeletionVectors, row_selection};
use crate::protocol::DeletionVectorDescriptor;
use crate::storage::{StorageObjectStore, StorageRef, as_object_store};
use crate::{Error, Result};

/// Deletion-vector files of one partition read at once.
const CONCURRENCY: usize = 8;

/// Where a scan's files come from, as another process needs it to read
/// them itself: the table, its version and the deletion vectors of the
/// files kept (never credentials: a reader opens the location with its own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanSource {
    /// The table's location (URL).
    pub location: String,
    /// The snapshot version scanned.
    pub version: i64,
    /// The deletion vectors of the kept files that have one.
    pub deletion_vectors: Vec<FileDeletionVector>,
}

/// The deletion vector of one data file of a scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDeletionVector {
    /// The data file, from the table root.
    pub path: String,
    /// Where the vector is stored.
    pub descriptor: DeletionVectorDescriptor,
    /// Rows in the data file, when its statistics say.
    pub num_records: Option<u64>,
    /// The data file's size in bytes.
    pub size: u64,
}

/// `input` (the Parquet scan under a `DeltaScanExec`) narrowed to its
/// partition `partition`, as a one-partition scan whose files carry the row
/// selections of their deletion vectors, read from `storage`. The scan's
/// object store is registered in `context` (a process running a plan it
/// received has not seen the table before).
pub(super) async fn partition_with_deletion_vectors(
    input: &Arc<dyn ExecutionPlan>,
    partition: usize,
    source: &ScanSource,
    storage: &StorageRef,
    context: &TaskContext,
) -> Result<Arc<dyn ExecutionPlan>> {
    let config = file_scan_config(input)?;
    context.runtime_env().register_object_store(
        config.object_store_url.as_ref(),
        as_object_store(storage.clone()),
    );
    let storage = storage.as_ref();
    let group = config.file_groups.get(partition).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "the scan has {} partitions, not {}",
            config.file_groups.len(),
            partition + 1
        ))
    })?;
    let vectors: HashMap<&str, &FileDeletionVector> = source
        .deletion_vectors
        .iter()
        .map(|dv| (dv.path.as_str(), dv))
        .collect();
    let mut files = Vec::with_capacity(group.len());
    let needed: Vec<&FileDeletionVector> = group
        .iter()
        .filter_map(|file| {
            let path = StorageObjectStore::storage_path(&file.object_meta.location);
            vectors.get(path.as_str()).copied()
        })
        .collect();
    let stored = StoredDeletionVectors::fetch(
        storage,
        needed.iter().map(|dv| (dv.path.as_str(), &dv.descriptor)),
        CONCURRENCY,
    )
    .await?;
    for file in group.iter() {
        let path = StorageObjectStore::storage_path(&file.object_meta.location);
        let Some(dv) = vectors.get(path.as_str()) else {
            files.push(file.clone());
            continue;
        };
        let deleted = stored.load(storage, &dv.path, &dv.descriptor).await?;
        let num_rows = match dv.num_records {
            Some(rows) => rows,
            None => super::footer_row_count(storage, &dv.path, dv.size).await?,
        };
        let selection =
            row_selection(&deleted, num_rows).map_err(|reason| Error::DeletionVector {
                data_file: dv.path.clone(),
                reason,
            })?;
        files.push(
            file.clone()
                .with_extension(ParquetRowSelection::new(selection)),
        );
    }
    let narrowed = FileScanConfigBuilder::from(config.clone())
        .with_file_groups(vec![FileGroup::new(files)])
        .build();
    Ok(DataSourceExec::from_data_source(narrowed))
}

/// The file scan configuration of `input`, a `DataSourceExec` over files.
pub(crate) fn file_scan_config(input: &Arc<dyn ExecutionPlan>) -> Result<&FileScanConfig> {
    input
        .downcast_ref::<DataSourceExec>()
        .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>())
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "a Delta scan reads deletion vectors only directly above a file scan, not above {}",
                input.name()
            ))
        })
}
