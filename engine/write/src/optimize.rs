//! OPTIMIZE: bin-packing compaction of small files, and Z-order
//! clustering. Files carrying deletion vectors are always rewritten, so
//! deleted rows are gone afterwards. Both commit with `dataChange = false`:
//! readers of the change feed see no new data.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, UInt64Type};
use datafusion::common::ScalarValue;
use datafusion::execution::context::{SessionContext, SessionState};
use datafusion::functions_aggregate::expr_fn::{max, min};
use datafusion::logical_expr::{Expr, col};
use futures::StreamExt;
use serde_json::Value;

use super::quoted;
use super::zorder::{ZOrderKey, sortable_key};
use super::{TableFileWriter, WriteTarget, delete_uncommitted, now_ms, remove_of};
use crate::protocol::Add;
use crate::protocol::features::ensure_writable;
use crate::scan::DeltaTableProvider;
use crate::snapshot::Snapshot;
use crate::table::Table;
use crate::transaction::{ReadScope, Transaction};
use crate::{Error, Result};

/// Reports progress: rows written so far, rows to write in all.
pub type ProgressFn = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// What to optimize, and how.
#[derive(Clone, Default)]
pub struct OptimizeOptions {
    /// A predicate over partition columns (SQL) choosing the partitions.
    pub predicate: Option<String>,
    /// Columns to Z-order by; empty for bin-packing.
    pub zorder_by: Vec<String>,
    /// Called as rows are written.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for OptimizeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OptimizeOptions")
            .field("predicate", &self.predicate)
            .field("zorder_by", &self.zorder_by)
            .finish_non_exhaustive()
    }
}

/// What OPTIMIZE did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptimizeOutcome {
    /// The version committed; `None` when there was nothing to do.
    pub version: Option<i64>,
    /// Files rewritten (removed).
    pub files_removed: usize,
    /// Files written.
    pub files_added: usize,
    /// Bytes of the files removed.
    pub bytes_removed: u64,
    /// Bytes of the files written.
    pub bytes_added: u64,
    /// Rows written.
    pub rows: u64,
}

impl OptimizeOutcome {
    /// As a one-row result.
    pub fn to_batch(&self) -> Result<RecordBatch> {
        super::outcome_batch(&[
            ("version", self.version.map(|v| v.max(0) as u64)),
            ("files_removed", Some(self.files_removed as u64)),
            ("files_added", Some(self.files_added as u64)),
            ("bytes_removed", Some(self.bytes_removed)),
            ("bytes_added", Some(self.bytes_added)),
            ("rows", Some(self.rows)),
        ])
    }
}

/// Files below this fraction of the target size are compacted.
const SMALL_FILE_FRACTION: f64 = 0.75;

/// Runs OPTIMIZE on `table`.
pub async fn optimize(
    table: &Table,
    state: &SessionState,
    options: &OptimizeOptions,
) -> Result<OptimizeOutcome> {
    let snapshot = table.snapshot().await?;
    ensure_writable(snapshot.protocol(), snapshot.metadata())?;
    let target = WriteTarget::new(snapshot.metadata())?;
    let ctx = SessionContext::new_with_state(state.clone());
    let chosen = chosen_partitions(&ctx, &snapshot, options.predicate.as_deref()).await?;
    let zorder = !options.zorder_by.is_empty();
    let small = (target.target_file_size as f64 * SMALL_FILE_FRACTION) as i64;
    let mut by_partition: HashMap<String, Vec<&Add>> = HashMap::new();
    for (index, add) in snapshot.files().iter().enumerate() {
        if !chosen.contains(&index) {
            continue;
        }
        if zorder || add.size < small || add.deletion_vector.is_some() {
            let key = serde_json::to_string(&add.partition_values).unwrap_or_default();
            by_partition.entry(key).or_default().push(add);
        }
    }
    let rewritten: Vec<&Add> = by_partition
        .into_values()
        .filter(|files| {
            zorder || files.len() > 1 || files.iter().any(|f| f.deletion_vector.is_some())
        })
        .flatten()
        .collect();
    if rewritten.is_empty() {
        return Ok(OptimizeOutcome::default());
    }
    let paths: HashSet<String> = rewritten.iter().map(|a| a.path.clone()).collect();
    let provider =
        DeltaTableProvider::new(snapshot.clone(), table.storage().clone())?.with_files(paths);
    let mut frame = ctx.read_table(Arc::new(provider))?;
    let logical = snapshot.arrow_schema();
    let columns: Vec<Expr> = logical
        .fields()
        .iter()
        .map(|f| col(quoted(f.name())))
        .collect();
    if zorder {
        let mut keys = Vec::new();
        for name in &options.zorder_by {
            let field = logical
                .fields()
                .iter()
                .find(|f| f.name().eq_ignore_ascii_case(name))
                .ok_or_else(|| Error::Sql(format!("ZORDER BY column {name} does not exist")))?;
            if snapshot.metadata().partition_columns.contains(field.name()) {
                return Err(Error::Sql(format!(
                    "cannot Z-order by partition column {}: its files already hold one value",
                    field.name()
                )));
            }
            keys.push(col(quoted(field.name())));
        }
        let ranges = value_ranges(&frame, &keys).await?;
        let key = ZOrderKey::new(ranges)?.into_udf();
        frame = frame.sort(vec![key.call(keys).sort(true, true)])?;
    }
    let total_rows: u64 = rewritten
        .iter()
        .filter_map(|a| crate::stats::FileStats::of(a).and_then(|s| s.num_records))
        .sum();
    let now = now_ms();
    let storage = table.storage().as_ref();
    let mut writer = TableFileWriter::new(&target, storage, now, false)?;
    let mut stream = frame.select(columns)?.execute_stream().await?;
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let written = match batch {
            Ok(batch) => {
                rows += batch.num_rows() as u64;
                writer.write(&batch).await
            }
            Err(e) => Err(e.into()),
        };
        if let Err(e) = written {
            writer.abandon().await;
            return Err(e);
        }
        if let Some(progress) = &options.progress {
            progress(rows, total_rows.max(rows));
        }
    }
    let adds = writer.finish().await?;
    let outcome = OptimizeOutcome {
        version: None,
        files_removed: rewritten.len(),
        files_added: adds.len(),
        bytes_removed: rewritten.iter().map(|a| a.size.max(0) as u64).sum(),
        bytes_added: adds.iter().map(|a| a.size.max(0) as u64).sum(),
        rows,
    };
    let mut transaction = Transaction::new(Some(snapshot.version()), "OPTIMIZE")
        .checkpoint_interval_of(snapshot.metadata())
        .read(ReadScope::Files(
            rewritten.iter().map(|a| a.replay_key()).collect(),
        ))
        .parameter(
            "predicate",
            Value::String(
                serde_json::to_string(&options.predicate.iter().collect::<Vec<_>>())
                    .unwrap_or_default(),
            ),
        )
        .parameter(
            "zOrderBy",
            Value::String(serde_json::to_string(&options.zorder_by).unwrap_or_default()),
        )
        .metric("numRemovedFiles", outcome.files_removed.to_string())
        .metric("numAddedFiles", outcome.files_added.to_string())
        .metric("numRemovedBytes", outcome.bytes_removed.to_string())
        .metric("numAddedBytes", outcome.bytes_added.to_string())
        .remove_files(rewritten.iter().map(|a| remove_of(a, now, false)))
        .add_files(adds.clone());
    transaction = transaction.parameter("auto", Value::Bool(false));
    match transaction.commit(storage, now).await {
        Ok(committed) => Ok(OptimizeOutcome {
            version: Some(committed.version),
            ..outcome
        }),
        Err(e) => {
            delete_uncommitted(storage, &adds, &e).await;
            Err(e)
        }
    }
}

/// Indices (into `snapshot.files()`) of the files whose partition values
/// satisfy `predicate` (all files without one).
async fn chosen_partitions(
    ctx: &SessionContext,
    snapshot: &Snapshot,
    predicate: Option<&str>,
) -> Result<HashSet<usize>> {
    let count = snapshot.files().len();
    let Some(predicate) = predicate else {
        return Ok((0..count).collect());
    };
    let partition_fields = &snapshot.schemas().partition_logical;
    if partition_fields.is_empty() {
        return Err(Error::Sql(
            "OPTIMIZE … WHERE needs a partitioned table: the predicate chooses partitions".into(),
        ));
    }
    let values = snapshot.all_partition_values()?;
    let mut fields: Vec<Field> = partition_fields
        .iter()
        .map(|f| f.clone().with_nullable(true))
        .collect();
    fields.push(Field::new("__wavelake_file_index", DataType::UInt64, false));
    let mut columns = Vec::with_capacity(fields.len());
    for (column, field) in partition_fields.iter().enumerate() {
        let scalars: Vec<ScalarValue> = values
            .iter()
            .map(|row| {
                row.get(column)
                    .cloned()
                    .unwrap_or(ScalarValue::try_from(field.data_type())?)
                    .cast_to(field.data_type())
            })
            .collect::<datafusion::error::Result<_>>()?;
        columns.push(if scalars.is_empty() {
            arrow::array::new_empty_array(field.data_type())
        } else {
            ScalarValue::iter_to_array(scalars)?
        });
    }
    columns.push(Arc::new(UInt64Array::from_iter_values(0..count as u64)));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    let frame = ctx.read_batch(batch)?;
    let expr = frame.parse_sql_expr(predicate).map_err(|e| {
        Error::Sql(format!(
            "OPTIMIZE … WHERE may only use partition columns ({}): {}",
            partition_fields
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", "),
            Error::from(e)
        ))
    })?;
    let matched = frame
        .filter(expr)?
        .select(vec![col("__wavelake_file_index")])?
        .collect()
        .await?;
    let mut chosen = HashSet::new();
    for batch in matched {
        for index in batch.column(0).as_primitive::<UInt64Type>().values() {
            chosen.insert(*index as usize);
        }
    }
    Ok(chosen)
}

/// The sortable-key range of each of `keys` over `frame`.
async fn value_ranges(
    frame: &datafusion::prelude::DataFrame,
    keys: &[Expr],
) -> Result<Vec<(u64, u64)>> {
    let mut aggregates = Vec::with_capacity(keys.len() * 2);
    for (i, key) in keys.iter().enumerate() {
        aggregates.push(min(key.clone()).alias(format!("low{i}")));
        aggregates.push(max(key.clone()).alias(format!("high{i}")));
    }
    let batches = frame
        .clone()
        .aggregate(vec![], aggregates)?
        .collect()
        .await?;
    let Some(batch) = batches.first() else {
        return Ok(vec![(0, 0); keys.len()]);
    };
    (0..keys.len())
        .map(|i| {
            let low = ScalarValue::try_from_array(batch.column(2 * i), 0)?;
            let high = ScalarValue::try_from_array(batch.column(2 * i + 1), 0)?;
            Ok((sortable_key(&low)?, sortable_key(&high)?))
        })
        .collect()
}
