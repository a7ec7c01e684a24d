//! `table_changes('t', start[, end])` in SQL: the change data feed of a
//! table between two versions (or timestamps), as Spark and Databricks
//! return it: the table's columns, then `_change_type`, `_commit_version`
//! and `_commit_timestamp`.
//!
//! The session resolves each call before planning (reading the log is
//! asynchronous, planning a table function is not): the feed's files are
//! found in the log and each group of them becomes a scan of the table's
//! own provider, so column mapping, partition values, deletion vectors and
//! type conversions are read exactly as in any query. Change data files
//! carry `_change_type` themselves; files a commit added or removed without
//! them are inserts or deletes; a deletion vector a commit replaced yields
//! the rows it newly marks (deletes) or no longer marks (inserts).

use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::Column;
use datafusion::execution::context::SessionContext;
use datafusion::functions::expr_fn::coalesce;
use datafusion::logical_expr::{Expr, cast};
use datafusion::prelude::DataFrame;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, FunctionArg, FunctionArgExpr, Ident, ObjectName, Statement as SqlStatement,
    TableFactor, UnaryOperator, Value, VisitMut, VisitorMut,
};
use roaring::RoaringTreemap;

use crate::changes::{ChangeAction, ChangeFeed, ChangeType};
use crate::log::TableState;
use crate::protocol::{Add, DeletionVectorDescriptor};
use crate::scan::DeltaTableProvider;
use crate::schema::{DataType as DeltaType, StructField, StructType};
use crate::snapshot::Snapshot;
use crate::table::Table;
use crate::{Error, Result};

/// The SQL name of the function.
pub const FUNCTION_NAME: &str = "table_changes";
/// Column saying what each row is.
pub const CHANGE_TYPE_COLUMN: &str = "_change_type";
/// Column holding the version that made the change.
pub const COMMIT_VERSION_COLUMN: &str = "_commit_version";
/// Column holding when that version was committed.
pub const COMMIT_TIMESTAMP_COLUMN: &str = "_commit_timestamp";

/// Where a change range starts or ends.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedBound {
    /// A table version.
    Version(i64),
    /// A timestamp, as written (`'2024-01-01 10:00:00'`).
    Timestamp(String),
}

/// One `table_changes(…)` call of a statement.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedCall {
    /// The table, as named in the call.
    pub table: String,
    /// The first version (or timestamp) of the range.
    pub start: FeedBound,
    /// The last one; the latest version when absent.
    pub end: Option<FeedBound>,
}

impl FeedCall {
    /// The range's versions in `table`: a starting timestamp means the
    /// first commit at or after it, an ending one the last commit at or
    /// before it.
    pub async fn versions(&self, table: &Table) -> Result<(i64, Option<i64>)> {
        let millis = |text: &str| {
            crate::session::parse_timestamp_millis(text).ok_or_else(|| {
                Error::Sql(format!(
                    "{FUNCTION_NAME}: {text:?} is neither a version nor a timestamp"
                ))
            })
        };
        let start = match &self.start {
            FeedBound::Version(v) => *v,
            FeedBound::Timestamp(text) => table.version_at_or_after(millis(text)?).await?,
        };
        let end = match &self.end {
            None => None,
            Some(FeedBound::Version(v)) => Some(*v),
            Some(FeedBound::Timestamp(text)) => {
                Some(table.snapshot_at_timestamp(millis(text)?).await?.version())
            }
        };
        Ok((start, end))
    }
}

/// Finds the `table_changes(…)` calls of `statement`, in visit order.
pub fn find_calls(statement: &mut SqlStatement) -> Result<Vec<FeedCall>> {
    let mut finder = CallFinder {
        found: Ok(Vec::new()),
    };
    let _ = statement.visit(&mut finder);
    finder.found
}

/// Points each `table_changes(…)` call of `statement` at the table
/// registered for it, in the order [`find_calls`] found them.
pub fn replace_calls(statement: &mut SqlStatement, names: &[String]) {
    let mut replacer = CallReplacer {
        names: names.iter(),
    };
    let _ = statement.visit(&mut replacer);
}

fn is_call(factor: &TableFactor) -> bool {
    matches!(
        factor,
        TableFactor::Table { name, args: Some(_), .. }
            if name.0.len() == 1
                && name.to_string().eq_ignore_ascii_case(FUNCTION_NAME)
    )
}

struct CallFinder {
    found: Result<Vec<FeedCall>>,
}

impl VisitorMut for CallFinder {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if !is_call(factor) {
            return ControlFlow::Continue(());
        }
        let TableFactor::Table {
            args: Some(args), ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        match (&mut self.found, parse_call(&args.args)) {
            (Ok(found), Ok(call)) => {
                found.push(call);
                ControlFlow::Continue(())
            }
            (found, Err(e)) => {
                *found = Err(e);
                ControlFlow::Break(())
            }
            (Err(_), _) => ControlFlow::Break(()),
        }
    }
}

struct CallReplacer<'a> {
    names: std::slice::Iter<'a, String>,
}

impl VisitorMut for CallReplacer<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if is_call(factor)
            && let TableFactor::Table { name, args, .. } = factor
            && let Some(temp) = self.names.next()
        {
            *name = ObjectName::from(vec![Ident::new(temp)]);
            *args = None;
        }
        ControlFlow::Continue(())
    }
}

fn usage() -> Error {
    Error::Sql(format!(
        "usage: {FUNCTION_NAME}('table name', start version or timestamp[, end version or \
         timestamp])"
    ))
}

fn parse_call(args: &[FunctionArg]) -> Result<FeedCall> {
    let values: Vec<&SqlExpr> = args
        .iter()
        .map(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => Ok(expr),
            _ => Err(usage()),
        })
        .collect::<Result<_>>()?;
    let (table, start, end) = match values.as_slice() {
        [table, start] => (table, start, None),
        [table, start, end] => (table, start, Some(end)),
        _ => return Err(usage()),
    };
    let table = match table {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            _ => return Err(usage()),
        },
        SqlExpr::Identifier(ident) => ident.value.clone(),
        SqlExpr::CompoundIdentifier(parts) => parts
            .iter()
            .map(|p| p.value.as_str())
            .collect::<Vec<_>>()
            .join("."),
        _ => return Err(usage()),
    };
    Ok(FeedCall {
        table,
        start: bound(start)?,
        end: end.map(|e| bound(e)).transpose()?,
    })
}

fn bound(expr: &SqlExpr) -> Result<FeedBound> {
    match expr {
        SqlExpr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().map(FeedBound::Version).map_err(|_| usage()),
            Value::SingleQuotedString(s) => Ok(FeedBound::Timestamp(s.clone())),
            _ => Err(usage()),
        },
        SqlExpr::UnaryOp {
            op: UnaryOperator::Minus,
            ..
        } => Err(Error::Sql(format!(
            "{FUNCTION_NAME}: a version is not negative"
        ))),
        SqlExpr::TypedString(typed) => match &typed.value.value {
            Value::SingleQuotedString(s) => Ok(FeedBound::Timestamp(s.clone())),
            _ => Err(usage()),
        },
        _ => Err(usage()),
    }
}

/// The columns `table_changes` returns for a table whose schema is
/// `logical`.
pub fn feed_schema(logical: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = logical
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    fields.push(Field::new(CHANGE_TYPE_COLUMN, DataType::Utf8, true));
    fields.push(Field::new(COMMIT_VERSION_COLUMN, DataType::Int64, true));
    fields.push(Field::new(
        COMMIT_TIMESTAMP_COLUMN,
        DataType::Timestamp(TimeUnit::Millisecond, Some(Arc::from("UTC"))),
        true,
    ));
    Arc::new(Schema::new(fields))
}

/// Partition column the feed's scan gives each file: the kind of change
/// its rows are (null for change data files, whose rows say).
const KIND_COLUMN: &str = "__wavelake_change_kind";
/// Partition column the feed's scan gives each file: its commit's version.
const VERSION_COLUMN: &str = "__wavelake_commit_version";
/// Partition column the feed's scan gives each file: its commit's time.
const TIMESTAMP_COLUMN: &str = "__wavelake_commit_millis";

/// The rows of `feed` (read from `table`) as one frame of `ctx`: one scan
/// of every file of the feed (so it runs wherever a query runs, the
/// browser included), each file told its commit and kind of change by
/// partition values of its own.
pub async fn feed_frame(
    ctx: &SessionContext,
    table: &Table,
    feed: ChangeFeed,
) -> Result<DataFrame> {
    let logical = feed.snapshot.arrow_schema();
    let files = feed_files(table, &feed).await?;
    let snapshot = &feed.snapshot;
    let mut schema = snapshot.schema().clone();
    for (name, kind) in [
        (CHANGE_TYPE_COLUMN, "string"),
        (KIND_COLUMN, "string"),
        (VERSION_COLUMN, "long"),
        (TIMESTAMP_COLUMN, "long"),
    ] {
        schema.fields.push(StructField::new(
            name,
            DeltaType::Primitive(kind.into()),
            true,
        ));
    }
    let mut metadata = snapshot.metadata().clone();
    metadata.schema_string = StructType::to_json(&schema)?;
    metadata
        .partition_columns
        .extend([KIND_COLUMN, VERSION_COLUMN, TIMESTAMP_COLUMN].map(String::from));
    let state = TableState {
        version: feed.end,
        protocol: snapshot.protocol().clone(),
        metadata,
        files,
        txns: Default::default(),
        domains: Default::default(),
        timestamp: snapshot.timestamp(),
    };
    let scanned = Snapshot::try_new(state, snapshot.root().clone())?;
    let provider = DeltaTableProvider::new(scanned, table.storage().clone())?;
    let column = |name: &str| Expr::Column(Column::new_unqualified(name));
    let mut select: Vec<Expr> = logical.fields().iter().map(|f| column(f.name())).collect();
    select.push(
        coalesce(vec![column(CHANGE_TYPE_COLUMN), column(KIND_COLUMN)]).alias(CHANGE_TYPE_COLUMN),
    );
    select.push(column(VERSION_COLUMN).alias(COMMIT_VERSION_COLUMN));
    select.push(
        cast(
            column(TIMESTAMP_COLUMN),
            DataType::Timestamp(TimeUnit::Millisecond, Some(Arc::from("UTC"))),
        )
        .alias(COMMIT_TIMESTAMP_COLUMN),
    );
    Ok(ctx.read_table(Arc::new(provider))?.select(select)?)
}

/// Every file of the feed as a file to scan, with the partition values
/// that tell its commit and kind: change data files as they are, files a
/// commit added (inserts) or removed (deletes) with the deletion vector
/// they had, and for a replaced deletion vector the rows it newly marks
/// (deletes) and unmarks (inserts), as a deletion vector of every other
/// row.
async fn feed_files(table: &Table, feed: &ChangeFeed) -> Result<Vec<Add>> {
    let mut files = Vec::new();
    for file in &feed.files {
        let tagged = |mut add: Add, kind: Option<ChangeType>| {
            add.partition_values
                .insert(KIND_COLUMN.into(), kind.map(|k| k.as_str().to_owned()));
            add.partition_values
                .insert(VERSION_COLUMN.into(), Some(file.version.to_string()));
            add.partition_values
                .insert(TIMESTAMP_COLUMN.into(), Some(file.timestamp.to_string()));
            add
        };
        match &file.action {
            ChangeAction::Cdc(cdc) => files.push(tagged(cdc.as_add(), None)),
            ChangeAction::Add(add) => files.push(tagged(add.clone(), Some(ChangeType::Insert))),
            ChangeAction::Remove(remove) => {
                files.push(tagged(remove.as_add(), Some(ChangeType::Delete)));
            }
            ChangeAction::DeletionVectorChange { remove, add } => {
                let rows = table.changed_rows(remove, add).await?;
                for (kind, changed) in [
                    (ChangeType::Delete, &rows.deleted),
                    (ChangeType::Insert, &rows.restored),
                ] {
                    if changed.is_empty() {
                        continue;
                    }
                    let only = Add {
                        deletion_vector: Some(only_rows(changed, rows.num_rows)),
                        ..add.as_ref().clone()
                    };
                    files.push(tagged(only, Some(kind)));
                }
            }
        }
    }
    Ok(files)
}

/// A deletion vector that leaves exactly `rows` of a file of `num_rows`.
fn only_rows(rows: &RoaringTreemap, num_rows: u64) -> DeletionVectorDescriptor {
    let mut others = RoaringTreemap::new();
    others.insert_range(0..num_rows);
    others -= rows;
    DeletionVectorDescriptor::inline(&others)
}
