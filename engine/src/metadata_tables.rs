//! SQL-queryable metadata of any registered table, as table functions:
//!
//! - `delta_history('t')`: one row per commit, newest first (version,
//!   timestamp, operation, parameters, metrics, engine).
//! - `delta_files('t' [, version])`: the active files with their size, row
//!   count, partition values, statistics and deletion vector.
//! - `delta_schema('t' [, version])`: the columns, with partitioning and
//!   column-mapping details.
//! - `delta_protocol('t' [, version])`: protocol versions and table features.
//! - `delta_properties('t' [, version])`: the table properties.
//!
//! `DESCRIBE HISTORY t` is rewritten to `delta_history('t')` by the engine.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Int32Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use serde_json::{Map, Value};

use crate::schema::{ColumnMappingMode, DataType, StructType};
use crate::snapshot::Snapshot;
use crate::stats::FileStats;
use crate::table::CommitEntry;
use crate::versions::{TableVersions, VersionDirectory};
use crate::{Error, Result};

/// Which metadata a table function returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataKind {
    /// `delta_history`.
    History,
    /// `delta_files`.
    Files,
    /// `delta_schema`.
    Schema,
    /// `delta_protocol`.
    Protocol,
    /// `delta_properties`.
    Properties,
}

impl MetadataKind {
    /// Every kind, for registration.
    pub const ALL: [Self; 5] = [
        Self::History,
        Self::Files,
        Self::Schema,
        Self::Protocol,
        Self::Properties,
    ];

    /// The SQL name of the table function.
    pub fn function_name(self) -> &'static str {
        match self {
            Self::History => "delta_history",
            Self::Files => "delta_files",
            Self::Schema => "delta_schema",
            Self::Protocol => "delta_protocol",
            Self::Properties => "delta_properties",
        }
    }

    /// The columns the function returns.
    pub fn schema(self) -> SchemaRef {
        let text = || ArrowType::Utf8;
        let millis = || ArrowType::Timestamp(TimeUnit::Millisecond, Some(Arc::from("UTC")));
        let list = || ArrowType::List(Arc::new(Field::new("item", ArrowType::Utf8, true)));
        let fields = match self {
            Self::History => vec![
                Field::new("version", ArrowType::Int64, false),
                Field::new("timestamp", millis(), true),
                Field::new("operation", text(), true),
                Field::new("operation_parameters", text(), true),
                Field::new("operation_metrics", text(), true),
                Field::new("engine_info", text(), true),
                Field::new("commit_info", text(), true),
            ],
            Self::Files => vec![
                Field::new("path", text(), false),
                Field::new("partition_values", text(), false),
                Field::new("size_bytes", ArrowType::Int64, false),
                Field::new("modification_time", millis(), true),
                Field::new("num_records", ArrowType::Int64, true),
                Field::new("min_values", text(), true),
                Field::new("max_values", text(), true),
                Field::new("null_counts", text(), true),
                Field::new("deletion_vector_storage", text(), true),
                Field::new("deleted_rows", ArrowType::Int64, true),
            ],
            Self::Schema => vec![
                Field::new("ordinal", ArrowType::Int32, false),
                Field::new("column_name", text(), false),
                Field::new("data_type", text(), false),
                Field::new("nullable", ArrowType::Boolean, false),
                Field::new("is_partition", ArrowType::Boolean, false),
                Field::new("physical_name", text(), true),
                Field::new("field_id", ArrowType::Int64, true),
                Field::new("comment", text(), true),
            ],
            Self::Protocol => vec![
                Field::new("version", ArrowType::Int64, false),
                Field::new("min_reader_version", ArrowType::Int32, false),
                Field::new("min_writer_version", ArrowType::Int32, false),
                Field::new("reader_features", list(), true),
                Field::new("writer_features", list(), true),
            ],
            Self::Properties => vec![
                Field::new("key", text(), false),
                Field::new("value", text(), true),
            ],
        };
        Arc::new(Schema::new(fields))
    }
}

/// One metadata table function, resolving table names in the session's
/// directory of tables.
pub struct MetadataFunction {
    kind: MetadataKind,
    tables: VersionDirectory,
}

impl MetadataFunction {
    /// The function of `kind` over the tables of `tables`.
    pub fn new(kind: MetadataKind, tables: VersionDirectory) -> Self {
        Self { kind, tables }
    }
}

impl fmt::Debug for MetadataFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.function_name())
    }
}

impl TableFunctionImpl for MetadataFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let name = self.kind.function_name();
        let usage = || {
            let version = if self.kind == MetadataKind::History {
                ""
            } else {
                " [, version]"
            };
            DataFusionError::Plan(format!("usage: {name}('table name'{version})"))
        };
        let exprs = args.exprs();
        let table_name = match exprs.first() {
            Some(Expr::Literal(
                ScalarValue::Utf8(Some(s))
                | ScalarValue::Utf8View(Some(s))
                | ScalarValue::LargeUtf8(Some(s)),
                _,
            )) => s.clone(),
            _ => return Err(usage()),
        };
        let version = match exprs.get(1) {
            None => None,
            Some(_) if self.kind == MetadataKind::History => return Err(usage()),
            Some(Expr::Literal(value, _)) => Some(
                match value {
                    ScalarValue::Int64(Some(v)) => Some(*v),
                    ScalarValue::Int32(Some(v)) => Some(i64::from(*v)),
                    _ => None,
                }
                .ok_or_else(usage)?,
            ),
            Some(_) => return Err(usage()),
        };
        if exprs.len() > 2 {
            return Err(usage());
        }
        let table = self.tables.lookup(&table_name).ok_or_else(|| {
            DataFusionError::Plan(format!("{name}: no Delta table named {table_name:?}"))
        })?;
        Ok(Arc::new(MetadataTable {
            kind: self.kind,
            table,
            version,
            schema: self.kind.schema(),
        }))
    }
}

/// The provider a metadata function returns: it reads the log when scanned.
#[derive(Debug)]
struct MetadataTable {
    kind: MetadataKind,
    table: Arc<dyn TableVersions>,
    version: Option<i64>,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for MetadataTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let batch = metadata_batch(self.kind, self.table.as_ref(), self.version).await?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}

/// The metadata of `kind` for `table` at `version` (latest when `None`).
pub async fn metadata_batch(
    kind: MetadataKind,
    table: &dyn TableVersions,
    version: Option<i64>,
) -> Result<RecordBatch> {
    match kind {
        MetadataKind::History => history_batch(table.history().await?),
        _ => snapshot_batch(kind, &table.version(version).await?.0),
    }
}

/// The files, schema, protocol or properties of one snapshot, as the
/// metadata function of `kind` returns them (history is not in a
/// snapshot: see [`history_batch`]).
pub fn snapshot_batch(kind: MetadataKind, snapshot: &Snapshot) -> Result<RecordBatch> {
    let columns = match kind {
        MetadataKind::History => {
            return Err(Error::InvalidArgument(
                "a snapshot holds no history: read the table's commits".into(),
            ));
        }
        MetadataKind::Files => files_columns(snapshot),
        MetadataKind::Schema => schema_columns(snapshot),
        MetadataKind::Protocol => protocol_columns(snapshot),
        MetadataKind::Properties => properties_columns(snapshot),
    };
    Ok(RecordBatch::try_new(kind.schema(), columns)?)
}

/// Commits (oldest first, as [`crate::Table::history`] gives them) as
/// `delta_history` returns them: newest first.
pub fn history_batch(mut history: Vec<CommitEntry>) -> Result<RecordBatch> {
    history.reverse();
    Ok(RecordBatch::try_new(
        MetadataKind::History.schema(),
        history_columns(&history),
    )?)
}

fn json_text(value: Option<&Value>) -> Option<String> {
    value.filter(|v| !v.is_null()).map(Value::to_string)
}

fn history_columns(history: &[CommitEntry]) -> Vec<ArrayRef> {
    let mut version = Int64Builder::new();
    let mut timestamp = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut operation = StringBuilder::new();
    let mut parameters = StringBuilder::new();
    let mut metrics = StringBuilder::new();
    let mut engine = StringBuilder::new();
    let mut info = StringBuilder::new();
    for commit in history {
        version.append_value(commit.version);
        timestamp.append_option(commit.timestamp);
        operation.append_option(commit.operation.as_deref());
        parameters.append_option(json_text(commit.parameters.as_ref()));
        metrics.append_option(json_text(commit.metrics.as_ref()));
        engine.append_option(commit.engine_info.as_deref());
        info.append_option(
            commit
                .commit_info
                .as_ref()
                .map(|i| Value::Object(i.clone()).to_string()),
        );
    }
    vec![
        Arc::new(version.finish()),
        Arc::new(timestamp.finish()),
        Arc::new(operation.finish()),
        Arc::new(parameters.finish()),
        Arc::new(metrics.finish()),
        Arc::new(engine.finish()),
        Arc::new(info.finish()),
    ]
}

fn files_columns(snapshot: &Snapshot) -> Vec<ArrayRef> {
    let mut path = StringBuilder::new();
    let mut partitions = StringBuilder::new();
    let mut size = Int64Builder::new();
    let mut modified = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut records = Int64Builder::new();
    let mut min = StringBuilder::new();
    let mut max = StringBuilder::new();
    let mut nulls = StringBuilder::new();
    let mut dv_storage = StringBuilder::new();
    let mut deleted = Int64Builder::new();
    let schema = snapshot.schema();
    let mode = snapshot.column_mapping();
    for add in snapshot.files() {
        path.append_value(&add.path);
        let values: Map<String, Value> = snapshot
            .metadata()
            .partition_columns
            .iter()
            .map(|logical| {
                let physical = schema
                    .field(logical)
                    .map_or(logical.as_str(), |f| f.physical_name(mode));
                let value = add.partition_values.get(physical).cloned().flatten();
                (logical.clone(), value.map_or(Value::Null, Value::String))
            })
            .collect();
        partitions.append_value(Value::Object(values).to_string());
        size.append_value(add.size);
        // Unknown (0) when a Delta Sharing server answered in the parquet
        // format, which carries no modification times.
        modified.append_option((add.modification_time > 0).then_some(add.modification_time));
        let stats = FileStats::of(add);
        records.append_option(
            stats
                .as_ref()
                .and_then(|s| s.num_records)
                .and_then(|n| i64::try_from(n).ok()),
        );
        let logical = |values: &HashMap<String, Value>| {
            Value::Object(logical_stats(schema, mode, values)).to_string()
        };
        min.append_option(stats.as_ref().map(|s| logical(&s.min_values)));
        max.append_option(stats.as_ref().map(|s| logical(&s.max_values)));
        nulls.append_option(stats.as_ref().map(|s| logical(&s.null_count)));
        let dv = add.deletion_vector.as_ref();
        dv_storage.append_option(dv.map(|d| d.storage_type.as_str()));
        deleted.append_option(dv.map(|d| d.cardinality));
    }
    vec![
        Arc::new(path.finish()),
        Arc::new(partitions.finish()),
        Arc::new(size.finish()),
        Arc::new(modified.finish()),
        Arc::new(records.finish()),
        Arc::new(min.finish()),
        Arc::new(max.finish()),
        Arc::new(nulls.finish()),
        Arc::new(dv_storage.finish()),
        Arc::new(deleted.finish()),
    ]
}

/// Statistics keyed by physical names, re-keyed by the schema's logical
/// names (nested structs too); keys the schema does not know are kept.
fn logical_stats(
    schema: &StructType,
    mode: ColumnMappingMode,
    values: &HashMap<String, Value>,
) -> Map<String, Value> {
    let mut out = Map::new();
    let mut known = std::collections::HashSet::new();
    for field in &schema.fields {
        let physical = field.physical_name(mode);
        let Some(value) = values.get(physical) else {
            continue;
        };
        known.insert(physical);
        let value = match (&field.data_type, value) {
            (DataType::Nested(nested), Value::Object(inner)) => match nested.as_ref() {
                crate::schema::NestedType::Struct { fields } => {
                    let inner: HashMap<String, Value> =
                        inner.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    let nested_schema = StructType {
                        type_name: "struct".into(),
                        fields: fields.clone(),
                    };
                    Value::Object(logical_stats(&nested_schema, mode, &inner))
                }
                _ => value.clone(),
            },
            _ => value.clone(),
        };
        out.insert(field.name.clone(), value);
    }
    for (key, value) in values {
        if !known.contains(key.as_str()) {
            out.insert(key.clone(), value.clone());
        }
    }
    out
}

fn schema_columns(snapshot: &Snapshot) -> Vec<ArrayRef> {
    let mut ordinal = Int32Builder::new();
    let mut name = StringBuilder::new();
    let mut data_type = StringBuilder::new();
    let mut nullable = BooleanBuilder::new();
    let mut partition = BooleanBuilder::new();
    let mut physical = StringBuilder::new();
    let mut field_id = Int64Builder::new();
    let mut comment = StringBuilder::new();
    let mode = snapshot.column_mapping();
    let partitions = &snapshot.metadata().partition_columns;
    for (i, field) in snapshot.schema().fields.iter().enumerate() {
        ordinal.append_value(i32::try_from(i + 1).unwrap_or(i32::MAX));
        name.append_value(&field.name);
        data_type.append_value(match &field.data_type {
            DataType::Primitive(p) => p.clone(),
            nested => serde_json::to_string(nested).unwrap_or_default(),
        });
        nullable.append_value(field.nullable);
        partition.append_value(partitions.contains(&field.name));
        physical.append_option(
            (mode != ColumnMappingMode::None).then(|| field.physical_name(mode).to_owned()),
        );
        field_id.append_option(field.field_id());
        comment.append_option(field.metadata.get("comment").and_then(Value::as_str));
    }
    vec![
        Arc::new(ordinal.finish()),
        Arc::new(name.finish()),
        Arc::new(data_type.finish()),
        Arc::new(nullable.finish()),
        Arc::new(partition.finish()),
        Arc::new(physical.finish()),
        Arc::new(field_id.finish()),
        Arc::new(comment.finish()),
    ]
}

fn protocol_columns(snapshot: &Snapshot) -> Vec<ArrayRef> {
    let protocol = snapshot.protocol();
    let features = |list: &Option<Vec<String>>| {
        let mut builder = ListBuilder::new(StringBuilder::new());
        match list {
            Some(items) => {
                for item in items {
                    builder.values().append_value(item);
                }
                builder.append(true);
            }
            None => builder.append(false),
        }
        Arc::new(builder.finish()) as ArrayRef
    };
    vec![
        Arc::new(arrow::array::Int64Array::from(vec![snapshot.version()])),
        Arc::new(arrow::array::Int32Array::from(vec![
            protocol.min_reader_version,
        ])),
        Arc::new(arrow::array::Int32Array::from(vec![
            protocol.min_writer_version,
        ])),
        features(&protocol.reader_features),
        features(&protocol.writer_features),
    ]
}

fn properties_columns(snapshot: &Snapshot) -> Vec<ArrayRef> {
    let mut entries: Vec<(&String, &Option<String>)> =
        snapshot.metadata().configuration.iter().collect();
    entries.sort();
    let mut key = StringBuilder::new();
    let mut value = StringBuilder::new();
    for (k, v) in entries {
        key.append_value(k);
        value.append_option(v.as_deref());
    }
    vec![Arc::new(key.finish()), Arc::new(value.finish())]
}

/// `DESCRIBE HISTORY name` as the equivalent query, if `sql` is one.
pub fn describe_history_query(sql: &str) -> Option<String> {
    let trimmed = sql.trim().trim_end_matches(';').trim();
    let mut words = trimmed.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("DESCRIBE") {
        return None;
    }
    if !words.next()?.eq_ignore_ascii_case("HISTORY") {
        return None;
    }
    let name = words.next()?;
    let limit = match (words.next(), words.next(), words.next()) {
        (None, _, _) => String::new(),
        (Some(l), Some(n), None) if l.eq_ignore_ascii_case("LIMIT") => {
            format!(" LIMIT {}", n.parse::<u64>().ok()?)
        }
        _ => return None,
    };
    let name = name.trim_matches('`').trim_matches('"').replace('\'', "''");
    Some(format!("SELECT * FROM delta_history('{name}'){limit}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_history_becomes_a_table_function_query() {
        assert_eq!(
            describe_history_query("describe history `trips`;").as_deref(),
            Some("SELECT * FROM delta_history('trips')")
        );
        assert_eq!(
            describe_history_query("DESCRIBE HISTORY t LIMIT 3").as_deref(),
            Some("SELECT * FROM delta_history('t') LIMIT 3")
        );
        assert_eq!(describe_history_query("DESCRIBE t"), None);
        assert_eq!(describe_history_query("DESCRIBE HISTORY t LIMIT x"), None);
    }
}
