//! DELETE and UPDATE. By default they are merge-on-read: the rows they
//! change are marked in deletion vectors (and updated rows written to new
//! files), so changing one row never rewrites a file. A table whose
//! `delta.enableDeletionVectors` is `false` gets copy-on-write instead:
//! every file holding a changed row is rewritten without it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{Field, Int64Type, Schema, SchemaRef};
use datafusion::common::Column;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::execution::context::{SessionContext, SessionState};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, cast, col};
use datafusion::prelude::DataFrame;
use futures::StreamExt;
use roaring::RoaringTreemap;

use super::quoted;
use super::target::CHANGE_TYPE_COLUMN;
use super::{TableFileWriter, WriteTarget, delete_uncommitted, now_ms, remove_of};
use crate::changes::{ChangeType, records_changes};
use crate::protocol::features::{ensure_writable, is_append_only, with_feature};
use crate::protocol::{
    Add, AddCdc, DeletionVectorFile, FileKey, MAX_INLINE_DV_BYTES, Metadata, Remove,
};
use crate::scan::{
    DeltaTableProvider, FILE_PATH_COLUMN, FilePruner, ROW_INDEX_COLUMN, load_deletion_vector,
};
use crate::snapshot::Snapshot;
use crate::stats::FileStats;
use crate::table::Table;
use crate::transaction::{IsolationLevel, ReadScope, Transaction};
use crate::{Error, Result};

/// What a DELETE or UPDATE did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DmlOutcome {
    /// The version committed; `None` when no row matched.
    pub version: Option<i64>,
    /// Rows deleted, updated or inserted.
    pub rows: u64,
    /// The same, by kind.
    pub counts: ChangeCounts,
    /// Data files added (updated rows, rewritten files).
    pub files_added: usize,
    /// Data files removed entirely.
    pub files_removed: usize,
    /// Deletion vectors written.
    pub deletion_vectors: usize,
    /// Bytes written: data files plus deletion vector files.
    pub bytes_written: u64,
}

/// Rows a change touched, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeCounts {
    /// Rows updated in place (old row removed, new one written).
    pub updated: u64,
    /// Rows deleted.
    pub deleted: u64,
    /// Rows inserted (MERGE's not-matched rows).
    pub inserted: u64,
}

impl ChangeCounts {
    fn add(&mut self, other: &ChangeCounts) {
        self.updated += other.updated;
        self.deleted += other.deleted;
        self.inserted += other.inserted;
    }

    /// All rows touched.
    pub fn total(&self) -> u64 {
        self.updated + self.deleted + self.inserted
    }
}

/// One batch of a change: rows of the table that go (file path and row
/// index columns), rows to write, and, when the table records its change
/// data feed, the changed rows with their [`CHANGE_TYPE_COLUMN`].
pub(crate) struct RowChanges {
    pub removed: Option<RecordBatch>,
    pub written: Option<RecordBatch>,
    pub counts: ChangeCounts,
    pub change_data: Option<RecordBatch>,
}

/// `rows` (table columns, by logical name) with a [`CHANGE_TYPE_COLUMN`]
/// saying they are `kind`; every column nullable, so batches of any kind
/// concatenate.
pub(crate) fn tagged(rows: &RecordBatch, kind: ChangeType) -> Result<RecordBatch> {
    let mut fields: Vec<Field> = rows
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    fields.push(Field::new(
        CHANGE_TYPE_COLUMN,
        arrow::datatypes::DataType::Utf8,
        true,
    ));
    let mut columns = rows.columns().to_vec();
    columns.push(Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
        kind.as_str(),
        rows.num_rows(),
    ))) as ArrayRef);
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// The columns of `rows` under the names of `schema`'s fields (same
/// count, same types): values read under aliases, renamed back.
pub(crate) fn renamed(rows: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .zip(rows.columns())
        .map(|(field, column)| Field::new(field.name(), column.data_type().clone(), true))
        .collect();
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        rows.columns().to_vec(),
    )?)
}

/// The tagged batches that are not empty, as one (`None` when all are).
pub(crate) fn change_rows(parts: Vec<(RecordBatch, ChangeType)>) -> Result<Option<RecordBatch>> {
    let tagged = parts
        .iter()
        .filter(|(rows, _)| rows.num_rows() > 0)
        .map(|(rows, kind)| tagged(rows, *kind))
        .collect::<Result<Vec<_>>>()?;
    match tagged.first() {
        None => Ok(None),
        Some(first) => Ok(Some(arrow::compute::concat_batches(
            &first.schema(),
            &tagged,
        )?)),
    }
}

/// Deletes the rows matching every one of `filters` (all rows if none).
pub async fn delete(table: &Table, state: &SessionState, filters: Vec<Expr>) -> Result<DmlOutcome> {
    let change = Change::prepare(table, "DELETE").await?;
    let predicate = conjunction(
        filters
            .into_iter()
            .map(unqualify)
            .collect::<Result<Vec<_>>>()?,
    );
    change.run(state, predicate, None).await
}

/// Sets columns to the expressions of `assignments` in the rows matching
/// every one of `filters` (all rows if none).
pub async fn update(
    table: &Table,
    state: &SessionState,
    assignments: Vec<(String, Expr)>,
    filters: Vec<Expr>,
) -> Result<DmlOutcome> {
    let change = Change::prepare(table, "UPDATE").await?;
    let predicate = conjunction(
        filters
            .into_iter()
            .map(unqualify)
            .collect::<Result<Vec<_>>>()?,
    );
    let logical = change.snapshot.arrow_schema();
    let mut set: HashMap<String, Expr> = HashMap::new();
    for (column, expr) in assignments {
        let field = logical
            .fields()
            .iter()
            .find(|f| f.name().eq_ignore_ascii_case(&column))
            .ok_or_else(|| Error::Sql(format!("UPDATE sets unknown column {column}")))?;
        let expr = unqualify(expr)?;
        if matches!(&expr, Expr::Column(c) if c.name == *field.name()) {
            continue;
        }
        set.insert(field.name().clone(), cast(expr, field.data_type().clone()));
    }
    change.run(state, predicate, Some(set)).await
}

/// Strips table qualifiers and gives view literals and casts their
/// declared types: the expressions, planned in a session that reads
/// strings as views, are evaluated over the table alone as declared.
fn unqualify(expr: Expr) -> Result<Expr> {
    let expr = crate::string_views::with_declared_literals(expr)?;
    Ok(expr
        .transform(|e| match e {
            Expr::Column(c) if c.relation.is_some() => Ok(Transformed::yes(Expr::Column(
                Column::new_unqualified(c.name),
            ))),
            other => Ok(Transformed::no(other)),
        })?
        .data)
}

pub(crate) struct Change<'a> {
    table: &'a Table,
    snapshot: Snapshot,
    operation: &'static str,
    merge_on_read: bool,
    /// What the change read, for conflicts with concurrent commits: the
    /// whole table unless a condition narrowed it.
    read: ReadScope,
    /// Where the rows it changes are recorded, when the table keeps a
    /// change data feed.
    change_data: Option<WriteTarget>,
}

impl<'a> Change<'a> {
    pub(crate) async fn prepare(table: &'a Table, operation: &'static str) -> Result<Self> {
        let snapshot = table.snapshot().await?;
        ensure_writable(snapshot.protocol(), snapshot.metadata())?;
        if is_append_only(snapshot.metadata()) {
            return Err(Error::InvalidArgument(format!(
                "the table is append-only (delta.appendOnly); {operation} is not allowed"
            )));
        }
        let merge_on_read = !snapshot
            .metadata()
            .property("delta.enableDeletionVectors")
            .is_some_and(|v| v.eq_ignore_ascii_case("false"));
        let change_data = records_changes(snapshot.metadata())
            .then(|| WriteTarget::change_data(snapshot.metadata()))
            .transpose()?;
        Ok(Self {
            table,
            snapshot,
            operation,
            merge_on_read,
            read: ReadScope::WholeTable,
            change_data,
        })
    }

    /// Whether the table keeps a change data feed, which this change must
    /// write its changed rows to.
    pub(crate) fn records_changes(&self) -> bool {
        self.change_data.is_some()
    }

    /// The table as read by this change, with its row-id columns
    /// ([`FILE_PATH_COLUMN`], [`ROW_INDEX_COLUMN`]).
    pub(crate) fn provider(&self) -> Result<DeltaTableProvider> {
        Ok(
            DeltaTableProvider::new(self.snapshot.clone(), self.table.storage().clone())?
                .with_row_ids(),
        )
    }

    fn frame(&self, state: &SessionState, files: Option<HashSet<String>>) -> Result<DataFrame> {
        let mut provider = self.provider()?;
        if let Some(files) = files {
            provider = provider.with_files(files);
        }
        let ctx = SessionContext::new_with_state(state.clone());
        Ok(ctx.read_table(Arc::new(provider))?)
    }

    /// The table's logical (Arrow) schema.
    pub(crate) fn logical_schema(&self) -> arrow::datatypes::SchemaRef {
        self.snapshot.arrow_schema()
    }

    /// The table's columns, by logical name.
    pub(crate) fn logical_columns(&self) -> Vec<String> {
        self.snapshot
            .arrow_schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    async fn run(
        mut self,
        state: &SessionState,
        predicate: Option<Expr>,
        assignments: Option<HashMap<String, Expr>>,
    ) -> Result<DmlOutcome> {
        let mut matched = self.frame(state, None)?;
        if let Some(predicate) = predicate {
            // It reads the files its condition may match, and would have
            // read any such file a concurrent commit adds.
            let pruner = FilePruner::new(&self.snapshot, state, std::slice::from_ref(&predicate));
            let keep = pruner.as_ref().map(FilePruner::snapshot_files);
            let files = self
                .snapshot
                .files()
                .iter()
                .enumerate()
                .filter(|(i, _)| keep.as_ref().is_none_or(|keep| keep[*i]))
                .map(|(_, add)| add.replay_key())
                .collect();
            self.read = ReadScope::Predicate {
                files,
                matches: pruner.map(Arc::new),
            };
            matched = matched.filter(predicate)?;
        }
        // The changed rows: for UPDATE their new values, then (for the
        // change data feed) their old values, then their ids.
        let columns = self.logical_columns();
        let mut select: Vec<Expr> = Vec::new();
        if let Some(set) = &assignments {
            for name in &columns {
                let value = set.get(name).cloned().unwrap_or_else(|| col(quoted(name)));
                select.push(value.alias(name));
            }
        }
        let recording = self.records_changes();
        if recording {
            for (i, name) in columns.iter().enumerate() {
                select.push(col(quoted(name)).alias(format!("__wavelake_preimage_{i}")));
            }
        }
        select.push(col(FILE_PATH_COLUMN));
        select.push(col(ROW_INDEX_COLUMN));
        let updating = assignments.is_some();
        let logical = self.logical_schema();
        let changes = matched
            .select(select)?
            .execute_stream()
            .await?
            .map(move |batch| {
                let batch = batch?;
                let n = batch.num_columns();
                let width = logical.fields().len();
                let rows = batch.num_rows() as u64;
                let removed = Some(batch.project(&[n - 2, n - 1])?);
                let written = if updating {
                    Some(batch.project(&(0..width).collect::<Vec<_>>())?)
                } else {
                    None
                };
                let change_data = if recording {
                    let first = if updating { width } else { 0 };
                    let before = batch.project(&(first..first + width).collect::<Vec<_>>())?;
                    let before = renamed(&before, &logical)?;
                    change_rows(match &written {
                        Some(after) => vec![
                            (before, ChangeType::UpdatePreimage),
                            (after.clone(), ChangeType::UpdatePostimage),
                        ],
                        None => vec![(before, ChangeType::Delete)],
                    })?
                } else {
                    None
                };
                let counts = if updating {
                    ChangeCounts {
                        updated: rows,
                        ..Default::default()
                    }
                } else {
                    ChangeCounts {
                        deleted: rows,
                        ..Default::default()
                    }
                };
                Ok(RowChanges {
                    removed,
                    written,
                    counts,
                    change_data,
                })
            });
        self.apply(state, changes).await
    }

    /// Applies a stream of changes: removed rows are marked in deletion
    /// vectors (or their files rewritten without them), written rows go
    /// to new files, and one commit records it all.
    pub(crate) async fn apply<S>(self, state: &SessionState, changes: S) -> Result<DmlOutcome>
    where
        S: futures::Stream<Item = Result<RowChanges>>,
    {
        let now = now_ms();
        let target = WriteTarget::new(self.snapshot.metadata())?;
        let storage = self.table.storage().as_ref();
        let mut writer = TableFileWriter::new(&target, storage, now, true)?;
        let change_target = self.change_data.clone();
        let mut change_writer = change_target
            .as_ref()
            .map(|target| TableFileWriter::new(target, storage, now, false))
            .transpose()?;
        let mut deleted: HashMap<String, RoaringTreemap> = HashMap::new();
        let mut counts = ChangeCounts::default();
        let mut changes = std::pin::pin!(changes);
        while let Some(change) = changes.next().await {
            let step = async {
                let change = change?;
                counts.add(&change.counts);
                if let Some(removed) = &change.removed {
                    record_row_ids(removed, &mut deleted)?;
                }
                if let Some(written) = &change.written {
                    writer.write(written).await?;
                }
                if let (Some(changes), Some(rows)) = (change_writer.as_mut(), &change.change_data) {
                    changes.write(rows).await?;
                }
                Ok::<(), Error>(())
            };
            if let Err(e) = step.await {
                abandon(writer, change_writer).await;
                return Err(e);
            }
        }
        if counts.total() == 0 {
            abandon(writer, change_writer).await;
            return Ok(DmlOutcome::default());
        }
        if !self.merge_on_read
            && !deleted.is_empty()
            && let Err(e) = self.copy_remaining_rows(state, &deleted, &mut writer).await
        {
            abandon(writer, change_writer).await;
            return Err(e);
        }
        let change_files = match change_writer {
            Some(changes) => match changes.finish().await {
                Ok(files) => files,
                Err(e) => {
                    writer.abandon().await;
                    return Err(e);
                }
            },
            None => Vec::new(),
        };
        let adds = match writer.finish().await {
            Ok(adds) => adds,
            Err(e) => {
                super::delete_files(storage, &change_files).await;
                return Err(e);
            }
        };
        let committed = self
            .commit(adds.clone(), change_files.clone(), deleted, counts, now)
            .await;
        if let Err(e) = &committed {
            delete_uncommitted(storage, &adds, e).await;
            delete_uncommitted(storage, &change_files, e).await;
        }
        committed
    }

    /// Copy-on-write: the rows of every file that lost some, minus those,
    /// written again.
    async fn copy_remaining_rows(
        &self,
        state: &SessionState,
        deleted: &HashMap<String, RoaringTreemap>,
        writer: &mut TableFileWriter<'_>,
    ) -> Result<()> {
        let files: HashSet<String> = deleted.keys().cloned().collect();
        let mut select: Vec<Expr> = self
            .logical_columns()
            .iter()
            .map(|c| col(quoted(c)))
            .collect();
        select.push(col(FILE_PATH_COLUMN));
        select.push(col(ROW_INDEX_COLUMN));
        let mut stream = self
            .frame(state, Some(files))?
            .select(select)?
            .execute_stream()
            .await?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let n = batch.num_columns();
            let keep = surviving_rows(&batch.project(&[n - 2, n - 1])?, deleted)?;
            let values = batch.project(&(0..n - 2).collect::<Vec<_>>())?;
            writer
                .write(&arrow::compute::filter_record_batch(&values, &keep)?)
                .await?;
        }
        Ok(())
    }

    async fn commit(
        &self,
        adds: Vec<Add>,
        change_files: Vec<Add>,
        deleted: HashMap<String, RoaringTreemap>,
        counts: ChangeCounts,
        now: i64,
    ) -> Result<DmlOutcome> {
        let storage = self.table.storage().as_ref();
        let by_path: HashMap<&str, &Add> = self
            .snapshot
            .files()
            .iter()
            .map(|a| (a.path.as_str(), a))
            .collect();
        let mut removes: Vec<Remove> = Vec::new();
        let mut marked: Vec<Add> = Vec::new();
        let mut read: HashSet<FileKey> = HashSet::new();
        let mut dv_file = DeletionVectorFile::new();
        let mut deletion_vectors = 0;
        let mut files_removed = 0;
        for (path, new_rows) in &deleted {
            let add = by_path.get(path.as_str()).copied().ok_or_else(|| {
                Error::Sql(format!("a matched row names file {path}, not in the table"))
            })?;
            read.insert(add.replay_key());
            removes.push(remove_of(add, now, true));
            if !self.merge_on_read {
                files_removed += 1;
                continue;
            }
            let data_path = self.snapshot.file_path(add);
            let mut all = match &add.deletion_vector {
                Some(dv) => load_deletion_vector(storage, &data_path, dv).await?,
                None => RoaringTreemap::new(),
            };
            all |= new_rows;
            let num_records = FileStats::of(add).and_then(|s| s.num_records);
            if num_records.is_some_and(|n| all.len() >= n) {
                files_removed += 1;
                continue;
            }
            let descriptor = if all.serialized_size() + 4 <= MAX_INLINE_DV_BYTES {
                crate::protocol::DeletionVectorDescriptor::inline(&all)
            } else {
                dv_file.push(&all)
            };
            deletion_vectors += 1;
            marked.push(Add {
                deletion_vector: Some(descriptor),
                modification_time: now,
                data_change: true,
                stats: add.stats.as_deref().map(loosen_bounds),
                ..add.clone()
            });
        }
        let mut bytes_written: u64 = adds
            .iter()
            .chain(&change_files)
            .map(|a| a.size.max(0) as u64)
            .sum();
        let dv_path = dv_file.path();
        if !dv_file.is_empty() {
            let bytes = dv_file.into_bytes();
            bytes_written += bytes.len() as u64;
            storage.put(&dv_path, bytes.into()).await?;
        }
        let read = match &self.read {
            ReadScope::Predicate { files, matches } => ReadScope::Predicate {
                files: files.union(&read).cloned().collect(),
                matches: matches.clone(),
            },
            other => other.clone(),
        };
        let mut transaction = Transaction::new(Some(self.snapshot.version()), self.operation)
            .checkpoint_interval_of(self.snapshot.metadata())
            .isolation(IsolationLevel::of(self.snapshot.metadata())?)
            .read(read)
            .metric("numRemovedFiles", files_removed.to_string())
            .metric("numAddedFiles", adds.len().to_string())
            .metric("numDeletionVectorsAdded", deletion_vectors.to_string())
            .metric("numBytesWritten", bytes_written.to_string());
        transaction = match self.operation {
            "UPDATE" => transaction.metric("numUpdatedRows", counts.updated.to_string()),
            "DELETE" => transaction.metric("numDeletedRows", counts.deleted.to_string()),
            _ => transaction
                .metric("numTargetRowsUpdated", counts.updated.to_string())
                .metric("numTargetRowsDeleted", counts.deleted.to_string())
                .metric("numTargetRowsInserted", counts.inserted.to_string()),
        };
        if self.merge_on_read
            && deletion_vectors > 0
            && let Some((protocol, metadata)) = self.enable_deletion_vectors()
        {
            transaction = transaction.protocol(protocol).metadata(metadata);
        }
        let files_added = adds.len();
        let change_files: Vec<AddCdc> =
            change_files.into_iter().map(AddCdc::from_written).collect();
        if !change_files.is_empty() {
            transaction = transaction.metric("numCdcFiles", change_files.len().to_string());
        }
        let transaction = transaction
            .remove_files(removes)
            .add_files(marked)
            .add_files(adds)
            .change_files(change_files);
        match transaction.commit(storage, now).await {
            Ok(committed) => Ok(DmlOutcome {
                version: Some(committed.version),
                rows: counts.total(),
                counts,
                files_added,
                files_removed,
                deletion_vectors,
                bytes_written,
            }),
            Err(e) => {
                if deletion_vectors > 0 && !e.commit_may_have_landed() {
                    let _ = storage.delete(&dv_path).await;
                }
                Err(e)
            }
        }
    }

    /// The protocol and metadata that let the table hold deletion vectors,
    /// if it cannot yet.
    fn enable_deletion_vectors(&self) -> Option<(crate::protocol::Protocol, Metadata)> {
        let protocol = self.snapshot.protocol();
        let metadata = self.snapshot.metadata();
        let has_feature = protocol.has_reader_feature("deletionVectors")
            && protocol.has_writer_feature("deletionVectors");
        let enabled = metadata.property("delta.enableDeletionVectors") == Some("true");
        if has_feature && enabled {
            return None;
        }
        let mut metadata = metadata.clone();
        metadata
            .configuration
            .insert("delta.enableDeletionVectors".into(), Some("true".into()));
        Some((with_feature(protocol, "deletionVectors", true), metadata))
    }
}

/// Deletes what the writers of a failed change stored.
async fn abandon(writer: TableFileWriter<'_>, change_writer: Option<TableFileWriter<'_>>) {
    writer.abandon().await;
    if let Some(changes) = change_writer {
        changes.abandon().await;
    }
}

/// Records the (file, row) ids of a (file path, row index) batch.
fn record_row_ids(batch: &RecordBatch, into: &mut HashMap<String, RoaringTreemap>) -> Result<()> {
    let paths = batch.column(0);
    let rows = batch
        .column(1)
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| Error::Sql("row index column has the wrong type".into()))?;
    let paths = arrow::compute::cast(paths, &arrow::datatypes::DataType::Utf8)?;
    let paths = paths.as_string::<i32>();
    for i in 0..batch.num_rows() {
        if paths.is_null(i) || rows.is_null(i) {
            return Err(Error::Sql("a matched row has no file or position".into()));
        }
        let position =
            u64::try_from(rows.value(i)).map_err(|_| Error::Sql("negative row position".into()))?;
        let fresh = into
            .entry(paths.value(i).to_owned())
            .or_default()
            .insert(position);
        if !fresh {
            return Err(Error::Sql("a target row was matched more than once".into()));
        }
    }
    Ok(())
}

/// Which rows of a (file path, row index) batch are not in `deleted`.
fn surviving_rows(
    ids: &RecordBatch,
    deleted: &HashMap<String, RoaringTreemap>,
) -> Result<arrow::array::BooleanArray> {
    let paths = arrow::compute::cast(ids.column(0), &arrow::datatypes::DataType::Utf8)?;
    let paths = paths.as_string::<i32>();
    let rows = ids
        .column(1)
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| Error::Sql("row index column has the wrong type".into()))?;
    Ok((0..ids.num_rows())
        .map(|i| {
            let gone = deleted
                .get(paths.value(i))
                .is_some_and(|d| u64::try_from(rows.value(i)).is_ok_and(|row| d.contains(row)));
            Some(!gone)
        })
        .collect())
}

/// Statistics of a file that now carries a deletion vector: its bounds may
/// no longer be tight.
fn loosen_bounds(stats: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(stats) {
        Ok(serde_json::Value::Object(mut doc)) => {
            doc.insert("tightBounds".into(), serde_json::Value::Bool(false));
            serde_json::Value::Object(doc).to_string()
        }
        _ => stats.to_owned(),
    }
}
