//! File statistics from the log (`add.stats`), shaped as DataFusion's
//! `PruningStatistics` so a query's filters can skip whole files.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, UInt64Array};
use arrow::datatypes::DataType;
use datafusion_common::pruning::PruningStatistics;
use datafusion_common::stats::Precision;
use datafusion_common::{Column, ColumnStatistics, ScalarValue, Statistics};
use serde::Deserialize;
use serde_json::Value;

use crate::protocol::Add;
use crate::schema::TableSchemas;

/// The statistics document of one file.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileStats {
    /// Physical rows in the file (deleted rows included).
    #[serde(default)]
    pub num_records: Option<u64>,
    /// Lower bounds by physical column name (nested as objects).
    #[serde(default)]
    pub min_values: HashMap<String, Value>,
    /// Upper bounds by physical column name.
    #[serde(default)]
    pub max_values: HashMap<String, Value>,
    /// Null counts by physical column name.
    #[serde(default)]
    pub null_count: HashMap<String, Value>,
}

impl FileStats {
    /// Parses `add.stats`; unreadable statistics are treated as absent.
    pub fn of(add: &Add) -> Option<Self> {
        serde_json::from_str(add.stats.as_deref()?).ok()
    }
}

/// Statistics of a list of files for the columns a predicate uses.
#[derive(Debug)]
pub struct FilesStatistics {
    num_files: usize,
    row_counts: ArrayRef,
    min: HashMap<String, ArrayRef>,
    max: HashMap<String, ArrayRef>,
    null_counts: HashMap<String, ArrayRef>,
}

impl FilesStatistics {
    /// Collects statistics of `files` for the logical columns in `columns`.
    /// Partition columns get their value as both bounds.
    pub fn new(
        files: &[&Add],
        schemas: &TableSchemas,
        partition_values: &[Vec<ScalarValue>],
        columns: &HashSet<String>,
    ) -> Self {
        let parsed: Vec<Option<FileStats>> = files.iter().map(|f| FileStats::of(f)).collect();
        let row_counts: UInt64Array = parsed
            .iter()
            .map(|s| s.as_ref().and_then(|s| s.num_records))
            .collect();
        let mut stats = Self {
            num_files: files.len(),
            row_counts: Arc::new(row_counts),
            min: HashMap::new(),
            max: HashMap::new(),
            null_counts: HashMap::new(),
        };
        for (index, field) in schemas.partition_logical.iter().enumerate() {
            if !columns.contains(field.name()) {
                continue;
            }
            let values: Vec<ScalarValue> =
                partition_values.iter().map(|p| p[index].clone()).collect();
            let nulls: UInt64Array = values
                .iter()
                .map(|v| Some(u64::from(v.is_null())))
                .collect();
            if let Ok(array) = ScalarValue::iter_to_array(values) {
                stats.min.insert(field.name().clone(), array.clone());
                stats.max.insert(field.name().clone(), array);
                stats
                    .null_counts
                    .insert(field.name().clone(), Arc::new(nulls));
            }
        }
        for (logical, physical) in schemas.logical.fields().iter().zip(physical_names(schemas)) {
            let Some(physical) = physical else { continue };
            if !columns.contains(logical.name()) || !is_prunable(logical.data_type()) {
                continue;
            }
            let ty = logical.data_type();
            let bound = |pick: fn(&FileStats) -> &HashMap<String, Value>, upper: bool| {
                let values = parsed.iter().map(|s| {
                    s.as_ref().and_then(|s| pick(s).get(&physical)).map_or_else(
                        || ScalarValue::try_from(ty).unwrap_or(ScalarValue::Null),
                        |v| json_to_scalar(v, ty, upper),
                    )
                });
                ScalarValue::iter_to_array(values).ok()
            };
            if let Some(array) = bound(|s| &s.min_values, false) {
                stats.min.insert(logical.name().clone(), array);
            }
            if let Some(array) = bound(|s| &s.max_values, true) {
                stats.max.insert(logical.name().clone(), array);
            }
            let nulls: UInt64Array = parsed
                .iter()
                .map(|s| {
                    s.as_ref()
                        .and_then(|s| s.null_count.get(&physical))
                        .and_then(Value::as_u64)
                })
                .collect();
            stats
                .null_counts
                .insert(logical.name().clone(), Arc::new(nulls));
        }
        stats
    }
}

/// What a query planner may know of one file before reading it, from its
/// log statistics: its rows, and per column of `schemas.file_physical` and
/// then per partition column (`partition_values`) its null count and
/// bounds. Bounds are inexact (Delta truncates strings and timestamps);
/// with a deletion vector every figure is, the rows counted less those
/// deleted. `None` for a file without statistics.
pub fn scan_statistics(
    add: &Add,
    schemas: &TableSchemas,
    partition_values: &[ScalarValue],
) -> Option<Statistics> {
    let stats = FileStats::of(add)?;
    let records = usize::try_from(stats.num_records?).ok()?;
    let deleted = add
        .deletion_vector
        .as_ref()
        .map_or(0, |dv| usize::try_from(dv.cardinality).unwrap_or(0));
    let exact = |n: usize| match deleted {
        0 => Precision::Exact(n),
        _ => Precision::Inexact(n),
    };
    let mut columns = Vec::with_capacity(schemas.file_physical.fields().len());
    for field in schemas.file_physical.fields() {
        let mut column = ColumnStatistics::new_unknown();
        let name = field.name();
        if let Some(nulls) = stats.null_count.get(name).and_then(Value::as_u64) {
            column.null_count = usize::try_from(nulls).map_or(Precision::Absent, exact);
        }
        if is_prunable(field.data_type()) {
            let bound = |values: &HashMap<String, Value>, upper: bool| {
                values
                    .get(name)
                    .map(|v| json_to_scalar(v, field.data_type(), upper))
                    .filter(|v| !v.is_null())
                    .map_or(Precision::Absent, Precision::Inexact)
            };
            column.min_value = bound(&stats.min_values, false);
            column.max_value = bound(&stats.max_values, true);
        }
        columns.push(column);
    }
    for value in partition_values {
        let mut column = ColumnStatistics::new_unknown();
        column.null_count = exact(if value.is_null() { records } else { 0 });
        // A bound of rows that are all deleted (or none) is no bound.
        if !value.is_null() && records > deleted {
            let bound = match deleted {
                0 => Precision::Exact(value.clone()),
                _ => Precision::Inexact(value.clone()),
            };
            column.min_value = bound.clone();
            column.max_value = bound;
        }
        columns.push(column);
    }
    Some(Statistics {
        num_rows: exact(records.saturating_sub(deleted)),
        total_byte_size: Precision::Absent,
        column_statistics: columns,
    })
}

/// Physical names of the logical columns, `None` for partition columns.
fn physical_names(schemas: &TableSchemas) -> Vec<Option<String>> {
    let mut file_fields = schemas.file_physical.fields().iter();
    schemas
        .logical
        .fields()
        .iter()
        .map(|f| {
            if schemas
                .partition_logical
                .iter()
                .any(|p| p.name() == f.name())
            {
                None
            } else {
                file_fields.next().map(|p| p.name().clone())
            }
        })
        .collect()
}

fn is_prunable(data_type: &DataType) -> bool {
    data_type.is_primitive()
        || matches!(
            data_type,
            DataType::Utf8
                | DataType::Utf8View
                | DataType::Boolean
                | DataType::Date32
                | DataType::Timestamp(..)
        )
}

/// Converts a statistics value to a scalar of `data_type`; anything that
/// does not convert is an unknown bound (null), which never prunes.
fn json_to_scalar(value: &Value, data_type: &DataType, upper: bool) -> ScalarValue {
    let unknown = || ScalarValue::try_from(data_type).unwrap_or(ScalarValue::Null);
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return unknown(),
    };
    let Ok(scalar) = ScalarValue::Utf8(Some(text)).cast_to(data_type) else {
        return unknown();
    };
    match (scalar, upper) {
        // Delta truncates timestamp statistics to milliseconds: widen the max.
        (ScalarValue::TimestampMicrosecond(Some(v), tz), true) => {
            ScalarValue::TimestampMicrosecond(Some(v.saturating_add(999)), tz)
        }
        (scalar, _) => scalar,
    }
}

impl PruningStatistics for FilesStatistics {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.min.get(&column.name).cloned()
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.max.get(&column.name).cloned()
    }

    fn num_containers(&self) -> usize {
        self.num_files
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        self.null_counts.get(&column.name).cloned()
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        Some(self.row_counts.clone())
    }

    fn contained(&self, _column: &Column, _values: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}
