//! # Wavelake write path
//!
//! New tables, appends and overwrites of rows, and the changes to existing
//! rows: DML as deletion vectors, MERGE, DDL, OPTIMIZE and Z-order, VACUUM,
//! RESTORE and checkpoints. Everything goes through a [`Storage`] and one
//! [`Transaction`], so a write is all or nothing: files of a failed write
//! are deleted again and never referenced by the log.
//!
//! A SQL session reaches it only through the engine's
//! [`WritePath`](wavelake_engine::write_path::WritePath) trait, which
//! [`DeltaWriter`] implements: [`session`] and [`session_with`] make
//! sessions that write. The engine, the npm package and the web app must
//! not depend on this crate.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod alter;
pub mod buffer;
pub mod checkpoint;
pub mod conform;
pub mod constraints;
pub mod create;
pub mod data_file;
pub mod dml;
pub mod encoder;
pub mod files;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod ingest;
pub mod merge;
pub mod optimize;
pub mod properties;
pub mod restore;
pub mod staged;
mod statements;
pub mod target;
pub mod transaction;
pub mod vacuum;
pub mod zorder;

use arrow::array::RecordBatch;
use futures::{Stream, StreamExt};

pub use create::{NewTable, NewTableActions};
pub use files::TableFileWriter;
pub use statements::{DeltaWriter, create_table_from_stream, session, session_with};
pub use target::WriteTarget;

// The engine's and the kernel's modules, under the names the write path's
// modules use for them.
use wavelake_engine::{
    Error, Result, Table, changes, command, log, parquet_guard, protocol, scan, schema, snapshot,
    stats, storage, string_views, table, timer,
};

use crate::protocol::features::{ensure_writable, is_append_only};
use crate::protocol::{Add, Remove, Txn};
use crate::storage::Storage;
use crate::transaction::{IsolationLevel, ReadScope, Transaction};

/// A column name as SQL and `col()` take it: double-quoted, so case, dots
/// and quotes survive.
pub fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A one-row result of named unsigned figures (null where unknown).
pub fn outcome_batch(figures: &[(&str, Option<u64>)]) -> Result<arrow::array::RecordBatch> {
    let fields: Vec<arrow::datatypes::Field> = figures
        .iter()
        .map(|(name, _)| {
            arrow::datatypes::Field::new(*name, arrow::datatypes::DataType::UInt64, true)
        })
        .collect();
    let columns: Vec<arrow::array::ArrayRef> = figures
        .iter()
        .map(|(_, value)| {
            std::sync::Arc::new(arrow::array::UInt64Array::from(vec![*value]))
                as arrow::array::ArrayRef
        })
        .collect();
    Ok(arrow::array::RecordBatch::try_new(
        std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
        columns,
    )?)
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// What happens to the rows already in the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SaveMode {
    /// Keep them; add the new rows.
    #[default]
    Append,
    /// Replace them with the new rows.
    Overwrite,
}

/// How rows are written into an existing table.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Append or overwrite.
    pub mode: SaveMode,
    /// An application id and version: the write happens only if the table
    /// has not yet recorded this version (or a later one) for the id, so a
    /// retried write is applied once.
    pub app_transaction: Option<(String, i64)>,
}

/// What a write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// The version committed; `None` when an application transaction had
    /// already been applied and nothing was written.
    pub version: Option<i64>,
    /// Rows written.
    pub rows: u64,
    /// Files added.
    pub files_added: usize,
    /// Files removed (overwrites).
    pub files_removed: usize,
    /// Bytes of the files added.
    pub bytes_added: u64,
    /// Races lost (and rebased over) on the way.
    pub retries: usize,
}

/// Creates a table in `storage`, filled with `rows` when given (one commit:
/// a failed `CREATE TABLE AS SELECT` leaves no table behind).
pub async fn create_table<S>(
    storage: &dyn Storage,
    table: &NewTable,
    rows: Option<S>,
) -> Result<WriteOutcome>
where
    S: Stream<Item = Result<RecordBatch>>,
{
    if let Some(listed) = storage.list(crate::log::LOG_DIR, None).await?
        && !listed.is_empty()
    {
        return Err(Error::TableExists(format!(
            "a Delta table is already stored at {}",
            storage.location()
        )));
    }
    let now = now_ms();
    let (protocol, metadata) = table.actions(now)?;
    let target = WriteTarget::new(&metadata)?;
    let operation = if rows.is_some() {
        "CREATE TABLE AS SELECT"
    } else {
        "CREATE TABLE"
    };
    let (adds, rows_written) = match rows {
        Some(rows) => write_files(&target, storage, rows, now).await?,
        None => (Vec::new(), 0),
    };
    let outcome = WriteOutcome {
        rows: rows_written,
        files_added: adds.len(),
        bytes_added: adds.iter().map(|a| a.size.max(0) as u64).sum(),
        ..WriteOutcome::default()
    };
    let transaction = Transaction::new(None, operation)
        .parameter("isManaged", "false")
        .parameter(
            "description",
            metadata.description.clone().unwrap_or_default(),
        )
        .parameter(
            "partitionBy",
            serde_json::to_string(&metadata.partition_columns).unwrap_or_default(),
        )
        .parameter(
            "properties",
            serde_json::to_string(&table.properties).unwrap_or_default(),
        )
        .metric("numFiles", outcome.files_added.to_string())
        .metric("numOutputRows", outcome.rows.to_string())
        .metric("numOutputBytes", outcome.bytes_added.to_string())
        .protocol(protocol)
        .metadata(metadata)
        .add_files(adds.clone());
    match transaction.commit(storage, now).await {
        Ok(committed) => Ok(WriteOutcome {
            version: Some(committed.version),
            retries: committed.retries,
            ..outcome
        }),
        Err(e) => {
            delete_uncommitted(storage, &adds, &e).await;
            Err(match e {
                Error::CommitConflict { .. } => Error::TableExists(format!(
                    "another writer created a table at {} first",
                    storage.location()
                )),
                other => other,
            })
        }
    }
}

/// Writes `rows` into the table: appended, or replacing every row.
pub async fn write<S>(table: &Table, rows: S, options: &WriteOptions) -> Result<WriteOutcome>
where
    S: Stream<Item = Result<RecordBatch>>,
{
    let snapshot = table.snapshot().await?;
    ensure_writable(snapshot.protocol(), snapshot.metadata())?;
    if options.mode == SaveMode::Overwrite && is_append_only(snapshot.metadata()) {
        return Err(Error::InvalidArgument(
            "the table is append-only (delta.appendOnly); it cannot be overwritten".into(),
        ));
    }
    if let Some((app_id, version)) = &options.app_transaction
        && let Some(done) = snapshot.txn(app_id)
        && done.version >= *version
    {
        return Ok(WriteOutcome::default());
    }
    let storage = table.storage().as_ref();
    let now = now_ms();
    let target = WriteTarget::new(snapshot.metadata())?;
    let (adds, rows_written) = write_files(&target, storage, rows, now).await?;
    let mut transaction = Transaction::new(Some(snapshot.version()), "WRITE")
        .checkpoint_interval_of(snapshot.metadata())
        .parameter(
            "mode",
            match options.mode {
                SaveMode::Append => "Append",
                SaveMode::Overwrite => "Overwrite",
            },
        );
    let mut files_removed = 0;
    if options.mode == SaveMode::Overwrite {
        let removes: Vec<Remove> = snapshot
            .files()
            .iter()
            .map(|a| remove_of(a, now, true))
            .collect();
        files_removed = removes.len();
        transaction = transaction
            .read(ReadScope::WholeTable)
            .isolation(IsolationLevel::of(snapshot.metadata())?)
            .remove_files(removes);
    }
    if let Some((app_id, version)) = &options.app_transaction {
        transaction = transaction.app_transaction(Txn {
            app_id: app_id.clone(),
            version: *version,
            last_updated: Some(now),
        });
    }
    let bytes_added: u64 = adds.iter().map(|a| a.size.max(0) as u64).sum();
    let transaction = transaction
        .metric("numFiles", adds.len().to_string())
        .metric("numOutputRows", rows_written.to_string())
        .metric("numOutputBytes", bytes_added.to_string())
        .metric("numRemovedFiles", files_removed.to_string())
        .add_files(adds.clone());
    match transaction.commit(storage, now).await {
        Ok(committed) => Ok(WriteOutcome {
            version: Some(committed.version),
            rows: rows_written,
            files_added: adds.len(),
            files_removed,
            bytes_added,
            retries: committed.retries,
        }),
        Err(e) => {
            delete_uncommitted(storage, &adds, &e).await;
            Err(e)
        }
    }
}

/// Writes a stream of rows as new data files of `target`; the files'
/// `add` actions and the number of rows. On an error, files already
/// stored are deleted again.
pub async fn write_files<S>(
    target: &WriteTarget,
    storage: &dyn Storage,
    rows: S,
    now_ms: i64,
) -> Result<(Vec<Add>, u64)>
where
    S: Stream<Item = Result<RecordBatch>>,
{
    let mut writer = TableFileWriter::new(target, storage, now_ms, true)?;
    let mut count = 0u64;
    let mut rows = std::pin::pin!(rows);
    while let Some(batch) = rows.next().await {
        let result = match batch {
            Ok(batch) => {
                count += batch.num_rows() as u64;
                writer.write(&batch).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            writer.abandon().await;
            return Err(e);
        }
    }
    Ok((writer.finish().await?, count))
}

/// The `remove` action retiring `add`.
pub fn remove_of(add: &Add, now_ms: i64, data_change: bool) -> Remove {
    Remove {
        path: add.path.clone(),
        deletion_timestamp: Some(now_ms),
        data_change,
        extended_file_metadata: Some(true),
        partition_values: Some(add.partition_values.clone()),
        size: Some(add.size),
        stats: None,
        tags: add.tags.clone(),
        deletion_vector: add.deletion_vector.clone(),
        base_row_id: add.base_row_id,
        default_row_commit_version: add.default_row_commit_version,
    }
}

/// Deletes the files written for a commit that failed with `error`,
/// unless the commit may have been made after all (then they stay: the log
/// may reference them).
pub async fn delete_uncommitted(storage: &dyn Storage, adds: &[Add], error: &Error) {
    if !error.commit_may_have_landed() {
        delete_files(storage, adds).await;
    }
}

/// Deletes files that were written for a commit that did not happen.
pub async fn delete_files(storage: &dyn Storage, adds: &[Add]) {
    for add in adds {
        let path = percent_encoding::percent_decode_str(&add.path)
            .decode_utf8_lossy()
            .into_owned();
        let _ = storage.delete(&path).await;
    }
}
