//! VACUUM: deletes files of the table directory that no version within
//! the retention window needs: not active now, not removed recently
//! (tombstones newer than the retention), not written recently (a writer
//! may be about to commit them), and not in `_delta_log/` or other hidden
//! directories. Change data files (`_change_data/`), which no snapshot
//! references, go once they are older than the retention, as in Delta.

use std::collections::HashSet;

use futures::StreamExt;

use super::checkpoint::deleted_file_retention_ms;
use super::now_ms;
use super::optimize::ProgressFn;
use crate::log::LogSegment;
use crate::protocol::{DeletionVectorDescriptor, DvLocation};
use crate::storage::resolve_data_path;
use crate::table::Table;
use crate::target::CHANGE_DATA_DIR;
use crate::{Error, Result};

/// Deletes issued at once.
const DELETE_CONCURRENCY: usize = 16;

/// The shortest retention VACUUM uses unless an operator sets another:
/// one hour, longer than any write the server lets run.
pub const SAFE_MINIMUM_RETENTION_MS: i64 = 3_600_000;

/// How to vacuum.
#[derive(Clone, Default)]
pub struct VacuumOptions {
    /// Keep files removed within this many hours (the table's
    /// `delta.deletedFileRetentionDuration` when `None`).
    pub retain_hours: Option<f64>,
    /// List what would be deleted without deleting.
    pub dry_run: bool,
    /// Allow a retention shorter than the table's (readers of older
    /// versions may lose files), down to the minimum.
    pub skip_retention_check: bool,
    /// The shortest retention VACUUM ever uses, in milliseconds, whatever
    /// the table's properties or `RETAIN` say, so that files a writer has
    /// written but not yet committed are never deleted
    /// ([`SAFE_MINIMUM_RETENTION_MS`] when `None`). An operator's setting.
    pub minimum_retention_ms: Option<i64>,
    /// Called as files are deleted: done, total.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for VacuumOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VacuumOptions")
            .field("retain_hours", &self.retain_hours)
            .field("dry_run", &self.dry_run)
            .field("skip_retention_check", &self.skip_retention_check)
            .field("minimum_retention_ms", &self.minimum_retention_ms)
            .finish_non_exhaustive()
    }
}

/// What VACUUM deleted (or, dry, would delete).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VacuumOutcome {
    /// The files, relative to the table root, sorted.
    pub files: Vec<String>,
    /// Their total size.
    pub bytes: u64,
    /// Whether nothing was deleted.
    pub dry_run: bool,
}

impl VacuumOutcome {
    /// As rows: one `path` per file deleted (or to delete).
    pub fn to_batch(&self) -> Result<arrow::array::RecordBatch> {
        let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("path", arrow::datatypes::DataType::Utf8, false),
        ]));
        Ok(arrow::array::RecordBatch::try_new(
            schema,
            vec![std::sync::Arc::new(arrow::array::StringArray::from(
                self.files.clone(),
            ))],
        )?)
    }
}

/// Runs VACUUM on `table`.
pub async fn vacuum(table: &Table, options: &VacuumOptions) -> Result<VacuumOutcome> {
    let snapshot = table.snapshot().await?;
    let minimum = options
        .minimum_retention_ms
        .unwrap_or(SAFE_MINIMUM_RETENTION_MS)
        .max(0);
    // A table property below the minimum (set by another tool) is raised
    // to it: background rounds never go under.
    let table_retention = deleted_file_retention_ms(snapshot.metadata())?.max(minimum);
    let retention = match options.retain_hours {
        Some(hours) if !hours.is_finite() || hours < 0.0 => {
            return Err(Error::InvalidArgument(format!(
                "VACUUM RETAIN takes a non-negative number of hours, not {hours}"
            )));
        }
        Some(hours) => (hours * 3_600_000.0) as i64,
        None => table_retention,
    };
    if retention < table_retention && !options.skip_retention_check {
        return Err(Error::InvalidArgument(format!(
            "VACUUM RETAIN {} HOURS is shorter than the table's retention of {} hours \
             (delta.deletedFileRetentionDuration): readers of older versions and writers about \
             to commit could lose files. To do it anyway, run \
             SET spark.databricks.delta.retentionDurationCheck.enabled = false first (or pass \
             --force on the command line)",
            retention as f64 / 3_600_000.0,
            table_retention as f64 / 3_600_000.0,
        )));
    }
    if retention < minimum {
        return Err(Error::NotAllowed(format!(
            "VACUUM RETAIN {} HOURS is shorter than the server's minimum retention of {} \
             hours: writers about to commit could lose the files they wrote",
            retention as f64 / 3_600_000.0,
            minimum as f64 / 3_600_000.0,
        )));
    }
    let now = now_ms();
    let cutoff = now - retention;
    let root = table.root();
    let storage = table.storage().as_ref();
    let mut keep: HashSet<String> = HashSet::new();
    let mut keep_file = |path: &str, dv: Option<&DeletionVectorDescriptor>| -> Result<()> {
        keep.insert(resolve_data_path(root, path));
        if let Some(dv) = dv
            && let DvLocation::File { path: dv_path, .. } =
                dv.location().map_err(|reason| Error::DeletionVector {
                    data_file: path.to_owned(),
                    reason,
                })?
        {
            keep.insert(resolve_data_path(root, &dv_path));
        }
        Ok(())
    };
    for add in snapshot.files() {
        keep_file(&add.path, add.deletion_vector.as_ref())?;
    }
    let segment = LogSegment::load(storage, Some(snapshot.version())).await?;
    for remove in crate::log::tombstones(storage, &segment).await? {
        if remove.deletion_timestamp.is_none_or(|t| t > cutoff) {
            keep_file(&remove.path, remove.deletion_vector.as_ref())?;
        }
    }
    let listed = storage.list("", None).await?.unwrap_or_default();
    let mut doomed: Vec<(String, u64)> = listed
        .into_iter()
        .filter(|file| !is_hidden(&file.path) || file.path.starts_with(CHANGE_DATA_DIR))
        .filter(|file| file.last_modified < cutoff)
        .filter(|file| !keep.contains(&file.path))
        .map(|file| (file.path, file.size))
        .collect();
    doomed.sort();
    let outcome = VacuumOutcome {
        bytes: doomed.iter().map(|(_, size)| size).sum(),
        files: doomed.iter().map(|(path, _)| path.clone()).collect(),
        dry_run: options.dry_run,
    };
    if options.dry_run {
        return Ok(outcome);
    }
    let total = doomed.len() as u64;
    // Futures collected first (not a closure over the stream) so that the
    // whole vacuum stays `Send`.
    let deletes: Vec<_> = doomed
        .iter()
        .map(|(path, _)| storage.delete(path))
        .collect();
    let mut deletes = futures::stream::iter(deletes).buffer_unordered(DELETE_CONCURRENCY);
    let mut done = 0u64;
    while let Some(deleted) = deletes.next().await {
        match deleted {
            Ok(()) | Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        done += 1;
        if let Some(progress) = &options.progress {
            progress(done, total);
        }
    }
    Ok(outcome)
}

/// Whether a path is in a hidden directory or is a hidden file: a name
/// starting with `_` or `.`, unless it is a partition directory
/// (`_col=value`).
fn is_hidden(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    parts.iter().enumerate().any(|(i, part)| {
        let is_dir = i + 1 < parts.len();
        (part.starts_with('_') || part.starts_with('.')) && !(is_dir && part.contains('='))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_and_hidden_files_are_never_vacuumed() {
        assert!(is_hidden("_delta_log/00000000000000000000.json"));
        assert!(is_hidden("_delta_log/_sidecars/a.parquet"));
        assert!(is_hidden(".part-0.parquet.crc"));
        assert!(is_hidden("day=1/.part-0.parquet.crc"));
        assert!(is_hidden("_change_data/cdc-0.parquet"));
        assert!(!is_hidden("part-0.parquet"));
        assert!(!is_hidden("_day=1/part-0.parquet"));
        assert!(!is_hidden("day=__HIVE_DEFAULT_PARTITION__/part-0.parquet"));
        assert!(!is_hidden("deletion_vector_0a.bin"));
    }
}
