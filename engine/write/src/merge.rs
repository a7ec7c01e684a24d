//! MERGE INTO, merge-on-read like DELETE and UPDATE. One query joins the
//! target (with its row ids) to the source and picks, for every row, the
//! first `WHEN` clause that applies; matched rows that are updated or
//! deleted are marked in deletion vectors, updated and inserted rows go to
//! new files, and one commit records it all. A target row matched by two
//! source rows is an error, as in Delta.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch, RecordBatchOptions};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{Int64Type, Schema, SchemaRef};
use datafusion::execution::context::SessionState;
use datafusion::prelude::DataFrame;
use futures::StreamExt;

use super::dml::{Change, ChangeCounts, DmlOutcome, RowChanges, change_rows, renamed};
use super::quoted;
use crate::changes::ChangeType;
use crate::command::{Merge, MergeAction, MergeWhen};
use crate::scan::{DeltaTableProvider, FILE_PATH_COLUMN, ROW_INDEX_COLUMN};
use crate::table::Table;
use crate::{Error, Result};

/// The source's marker column: true on every source row, null where the
/// join found none.
const SOURCE_ROW_COLUMN: &str = "__wavelake_source_row";

static NEXT_TARGET_NAME: AtomicU64 = AtomicU64::new(0);

/// A MERGE read to run: the target as of now, registered for its join
/// query under a name of its own. The session plans the join query (with
/// its sandbox and time travel), then [`PreparedMerge::apply`] writes the
/// effect.
pub struct PreparedMerge<'a> {
    change: Change<'a>,
    target_name: String,
    join_sql: String,
    actions: Vec<MergeAction>,
}

impl<'a> PreparedMerge<'a> {
    /// Reads `table`'s latest snapshot and builds `merge`'s join query.
    pub async fn new(table: &'a Table, merge: &Merge) -> Result<Self> {
        let change = Change::prepare(table, "MERGE").await?;
        let columns = change.logical_columns();
        let target_name = registered_name();
        let join_sql = join_query(merge, &columns, &target_name, change.records_changes())?;
        Ok(Self {
            change,
            target_name,
            join_sql,
            actions: merge.clauses.iter().map(|c| c.action.clone()).collect(),
        })
    }

    /// The name the join query reads the target under.
    pub fn target_name(&self) -> &str {
        &self.target_name
    }

    /// The target as the join query reads it (with row ids).
    pub fn target(&self) -> Result<Arc<DeltaTableProvider>> {
        Ok(Arc::new(self.change.provider()?))
    }

    /// The join query whose rows are the merge's effect.
    pub fn join_sql(&self) -> &str {
        &self.join_sql
    }

    /// Runs the planned join query `frame` and commits its effect.
    pub async fn apply(self, state: &SessionState, frame: DataFrame) -> Result<DmlOutcome> {
        let target_schema = self.change.logical_schema();
        let actions = self.actions;
        let recording = self.change.records_changes();
        let changes = frame
            .execute_stream()
            .await?
            .map(move |batch| split_changes(&batch?, &target_schema, &actions, recording));
        self.change.apply(state, changes).await
    }
}

fn registered_name() -> String {
    format!(
        "__wavelake_merge_target_{}",
        NEXT_TARGET_NAME.fetch_add(1, Ordering::Relaxed)
    )
}

/// The query whose rows are the merge's effect: for every row a clause
/// applies to, the target columns' new values, the target row's id (null
/// for inserts) and the clause's index, then, with `preimage` (for the
/// change data feed), the target columns' old values.
fn join_query(
    merge: &Merge,
    columns: &[String],
    target_table: &str,
    preimage: bool,
) -> Result<String> {
    let t = &merge.target_alias;
    let s = &merge.source_alias;
    let row_index = format!("{t}.{}", quoted(ROW_INDEX_COLUMN));
    let source_row = format!("{s}.{}", quoted(SOURCE_ROW_COLUMN));
    let mut branches = Vec::new();
    for (kind, guard) in [
        (
            MergeWhen::Matched,
            format!("{row_index} IS NOT NULL AND {source_row} IS NOT NULL"),
        ),
        (MergeWhen::NotMatched, format!("{row_index} IS NULL")),
        (
            MergeWhen::NotMatchedBySource,
            format!("{source_row} IS NULL"),
        ),
    ] {
        let whens: Vec<String> = merge
            .clauses
            .iter()
            .enumerate()
            .filter(|(_, c)| c.when == kind)
            .map(|(i, c)| {
                let condition = c.condition.as_deref().unwrap_or("TRUE");
                format!("WHEN ({condition}) THEN {i}")
            })
            .collect();
        if !whens.is_empty() {
            branches.push(format!("WHEN {guard} THEN CASE {} END", whens.join(" ")));
        }
    }
    let action = format!("CASE {} END", branches.join(" "));
    let mut select = Vec::with_capacity(columns.len() + 3);
    for column in columns {
        let current = format!("{t}.{}", quoted(column));
        let mut whens = Vec::new();
        for (i, clause) in merge.clauses.iter().enumerate() {
            let value = match &clause.action {
                MergeAction::Delete => continue,
                MergeAction::UpdateAll | MergeAction::InsertAll => {
                    format!("{s}.{}", quoted(column))
                }
                MergeAction::Update(set) => match set
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(column))
                {
                    Some((_, value)) => value.clone(),
                    None => continue,
                },
                MergeAction::Insert {
                    columns: given,
                    values,
                } => match given.iter().position(|c| c.eq_ignore_ascii_case(column)) {
                    Some(at) => values[at].clone(),
                    None => "NULL".into(),
                },
            };
            whens.push(format!("WHEN {i} THEN {value}"));
        }
        select.push(if whens.is_empty() {
            format!("{current} AS {}", quoted(column))
        } else {
            format!(
                "CASE {action} {} ELSE {current} END AS {}",
                whens.join(" "),
                quoted(column)
            )
        });
    }
    for clause in &merge.clauses {
        let named: Vec<&String> = match &clause.action {
            MergeAction::Update(set) => set.iter().map(|(c, _)| c).collect(),
            MergeAction::Insert { columns: given, .. } => given.iter().collect(),
            _ => Vec::new(),
        };
        if let Some(unknown) = named
            .iter()
            .find(|c| !columns.iter().any(|known| known.eq_ignore_ascii_case(c)))
        {
            return Err(Error::Sql(format!(
                "MERGE names column {unknown}, which the target table does not have"
            )));
        }
    }
    select.push(format!("{t}.{}", quoted(FILE_PATH_COLUMN)));
    select.push(row_index.clone());
    select.push(format!("{action} AS __wavelake_merge_clause"));
    if preimage {
        for (i, column) in columns.iter().enumerate() {
            select.push(format!("{t}.{} AS __wavelake_preimage_{i}", quoted(column)));
        }
    }
    let has = |kind| merge.clauses.iter().any(|c| c.when == kind);
    let join = match (
        has(MergeWhen::NotMatched),
        has(MergeWhen::NotMatchedBySource),
    ) {
        (false, false) => "INNER JOIN",
        (true, false) => "RIGHT JOIN",
        (false, true) => "LEFT JOIN",
        (true, true) => "FULL JOIN",
    };
    Ok(format!(
        "SELECT {select} FROM {target_table} AS {t} {join} \
         (SELECT *, TRUE AS {marker} FROM {source}) AS {s} ON {on} WHERE {action} IS NOT NULL",
        select = select.join(", "),
        marker = quoted(SOURCE_ROW_COLUMN),
        source = merge.source,
        on = merge.on,
    ))
}

/// One batch of the join query as changes: target rows that go, rows
/// written (cast to the target's types, failing on overflow), counts by
/// kind, and, when `recording`, the change data feed's rows.
fn split_changes(
    batch: &RecordBatch,
    target: &SchemaRef,
    actions: &[MergeAction],
    recording: bool,
) -> Result<RowChanges> {
    let columns = target.fields().len();
    let clause = batch
        .column(columns + 2)
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| Error::Sql("MERGE clause column has the wrong type".into()))?;
    let paths = batch.column(columns);
    let mut counts = ChangeCounts::default();
    let mut written = Vec::with_capacity(batch.num_rows());
    // Which rows are which kind of change, for the change data feed.
    let mut kinds = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let action = usize::try_from(clause.value(row))
            .ok()
            .and_then(|i| actions.get(i))
            .ok_or_else(|| Error::Sql("MERGE picked a clause that does not exist".into()))?;
        let is_target_row = paths.is_valid(row);
        let kind = match action {
            MergeAction::Delete => {
                counts.deleted += 1;
                ChangeType::Delete
            }
            _ if is_target_row => {
                counts.updated += 1;
                ChangeType::UpdatePostimage
            }
            _ => {
                counts.inserted += 1;
                ChangeType::Insert
            }
        };
        kinds.push(kind);
        written.push(Some(action.writes()));
    }
    let removed_mask = arrow::compute::is_not_null(paths)?;
    let ids = batch.project(&[columns, columns + 1])?;
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    let values = target
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| cast_with_options(batch.column(i), field.data_type(), &strict))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let values = RecordBatch::try_new_with_options(
        Arc::new(Schema::new(
            target
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
        )),
        values,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?;
    let change_data = if recording {
        let before = batch.project(&(columns + 3..columns + 3 + columns).collect::<Vec<_>>())?;
        let before = renamed(&before, target)?;
        let only = |rows: &RecordBatch, kind: ChangeType| {
            let mask: BooleanArray = kinds.iter().map(|k| Some(*k == kind)).collect();
            arrow::compute::filter_record_batch(rows, &mask)
        };
        change_rows(vec![
            (only(&before, ChangeType::Delete)?, ChangeType::Delete),
            (
                only(&before, ChangeType::UpdatePostimage)?,
                ChangeType::UpdatePreimage,
            ),
            (
                only(&values, ChangeType::UpdatePostimage)?,
                ChangeType::UpdatePostimage,
            ),
            (only(&values, ChangeType::Insert)?, ChangeType::Insert),
        ])?
    } else {
        None
    };
    let removed = arrow::compute::filter_record_batch(&ids, &removed_mask)?;
    let written = arrow::compute::filter_record_batch(&values, &BooleanArray::from(written))?;
    Ok(RowChanges {
        removed: (removed.num_rows() > 0).then_some(removed),
        written: (written.num_rows() > 0).then_some(written),
        counts,
        change_data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::parse_merge;

    #[test]
    fn the_join_query_picks_clauses_in_order() {
        let merge = parse_merge(
            "MERGE INTO t USING s ON t.k = s.k WHEN MATCHED AND s.v < 0 THEN DELETE \
             WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT (k) VALUES (s.k)",
        )
        .unwrap();
        let sql = join_query(&merge, &["k".into(), "v".into()], "__target", false).unwrap();
        assert!(sql.contains("FROM __target AS t RIGHT JOIN"), "{sql}");
        assert!(
            sql.contains("WHEN (s.v < 0) THEN 0 WHEN (TRUE) THEN 1"),
            "{sql}"
        );
        assert!(sql.contains("WHEN 1 THEN s.v"), "{sql}");
        assert!(sql.contains("WHEN 2 THEN NULL"), "{sql}");
        let unknown =
            parse_merge("MERGE INTO t USING s ON t.k = s.k WHEN MATCHED THEN UPDATE SET w = 1")
                .unwrap();
        let err = join_query(&unknown, &["k".into()], "__target", false).unwrap_err();
        assert!(err.to_string().contains("column w"), "{err}");
    }
}
