//! Delta file statistics accumulated batch by batch while a file is written:
//! `numRecords`, and per leaf column (nested through structs) `nullCount`
//! and, for types that get bounds, `minValues` and `maxValues` — from the
//! rows, or for the common types from the Parquet writer's own column chunk
//! statistics ([`super::footer`]).

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Decimal128Type, DecimalType, Field, SchemaRef, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::functions_aggregate::min_max::{MaxAccumulator, MinAccumulator};
use datafusion::logical_expr::Accumulator;
use parquet::file::metadata::RowGroupMetaData;
use serde_json::{Map, Number, Value};

use super::STRING_PREFIX_LENGTH;
use crate::Result;

/// Statistics of the rows written so far.
#[derive(Debug)]
pub struct StatisticsAccumulator {
    columns: Vec<ColumnNode>,
    rows: u64,
}

/// One column of the schema: a struct with children, or a leaf.
#[derive(Debug)]
enum ColumnNode {
    Struct {
        name: String,
        children: Vec<ColumnNode>,
    },
    Leaf(Box<LeafStats>),
}

#[derive(Debug)]
struct LeafStats {
    name: String,
    /// Names from the top-level column down to this one.
    path: Vec<String>,
    data_type: DataType,
    nulls: u64,
    /// Bounds gathered from the rows, for leaves whose bounds do not come
    /// from the Parquet footer.
    bounds: Option<(MinAccumulator, MaxAccumulator)>,
    /// The bounds are read from the Parquet footer at the end.
    footer_bounds: bool,
    saw_nan: bool,
}

impl StatisticsAccumulator {
    /// An accumulator for batches of `schema`, bounds from the rows.
    pub fn new(schema: &SchemaRef) -> Self {
        Self::with_footer_bounds(schema, false)
    }

    /// An accumulator for a file the Parquet writer writes: the bounds of
    /// the types [`bounds_from_footer`] names are left to
    /// [`Self::finish_with_footer`].
    pub fn leaving_bounds_to_parquet(schema: &SchemaRef) -> Self {
        Self::with_footer_bounds(schema, true)
    }

    fn with_footer_bounds(schema: &SchemaRef, footer: bool) -> Self {
        Self {
            columns: schema
                .fields()
                .iter()
                .map(|f| ColumnNode::new(f, &[], footer))
                .collect(),
            rows: 0,
        }
    }

    /// Adds the rows of `batch` (of the accumulator's schema).
    pub fn update(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        for (node, column) in self.columns.iter_mut().zip(batch.columns()) {
            node.update(column, None)?;
        }
        Ok(())
    }

    /// Rows seen so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The `add.stats` JSON document.
    pub fn finish(&mut self) -> Result<String> {
        self.finish_with_footer(&[])
    }

    /// The `add.stats` JSON document, with the bounds left to Parquet read
    /// from the statistics of the file's `row_groups`.
    pub fn finish_with_footer(&mut self, row_groups: &[RowGroupMetaData]) -> Result<String> {
        let (mut min, mut max, mut nulls) = (Map::new(), Map::new(), Map::new());
        for node in &mut self.columns {
            node.finish(row_groups, &mut min, &mut max, &mut nulls)?;
        }
        let mut doc = Map::new();
        doc.insert("numRecords".into(), self.rows.into());
        doc.insert("minValues".into(), Value::Object(min));
        doc.insert("maxValues".into(), Value::Object(max));
        doc.insert("nullCount".into(), Value::Object(nulls));
        Ok(Value::Object(doc).to_string())
    }
}

impl ColumnNode {
    fn new(field: &Field, parents: &[String], footer: bool) -> Self {
        let mut path = parents.to_vec();
        path.push(field.name().clone());
        match field.data_type() {
            DataType::Struct(children) => ColumnNode::Struct {
                name: field.name().clone(),
                children: children
                    .iter()
                    .map(|c| ColumnNode::new(c, &path, footer))
                    .collect(),
            },
            data_type => {
                let footer_bounds = footer && bounds_from_footer(data_type);
                ColumnNode::Leaf(Box::new(LeafStats {
                    name: field.name().clone(),
                    path,
                    data_type: data_type.clone(),
                    nulls: 0,
                    footer_bounds,
                    bounds: (gets_bounds(data_type) && !footer_bounds)
                        .then(|| {
                            Some((
                                MinAccumulator::try_new(data_type).ok()?,
                                MaxAccumulator::try_new(data_type).ok()?,
                            ))
                        })
                        .flatten(),
                    saw_nan: false,
                }))
            }
        }
    }

    fn update(&mut self, column: &ArrayRef, parent_nulls: Option<&NullBuffer>) -> Result<()> {
        let combined = NullBuffer::union(parent_nulls, column.logical_nulls().as_ref());
        match self {
            ColumnNode::Struct { children, .. } => {
                if let Some(parent) = column.as_struct_opt() {
                    for (child, array) in children.iter_mut().zip(parent.columns()) {
                        child.update(array, combined.as_ref())?;
                    }
                }
            }
            ColumnNode::Leaf(leaf) => {
                let null_count = combined.as_ref().map_or(0, NullBuffer::null_count);
                leaf.nulls += null_count as u64;
                let floats = matches!(leaf.data_type, DataType::Float32 | DataType::Float64);
                if leaf.bounds.is_none() && !floats {
                    return Ok(());
                }
                // Bounds over the rows valid here and in every parent.
                let column = match &combined {
                    Some(valid) if null_count > 0 => with_nulls(column, valid),
                    _ => column.clone(),
                };
                leaf.saw_nan |= has_nan(&column);
                if let Some((min, max)) = &mut leaf.bounds {
                    min.update_batch(std::slice::from_ref(&column))?;
                    max.update_batch(std::slice::from_ref(&column))?;
                }
            }
        }
        Ok(())
    }

    fn finish(
        &mut self,
        row_groups: &[RowGroupMetaData],
        min: &mut Map<String, Value>,
        max: &mut Map<String, Value>,
        nulls: &mut Map<String, Value>,
    ) -> Result<()> {
        match self {
            ColumnNode::Struct { name, children } => {
                let (mut cmin, mut cmax, mut cnulls) = (Map::new(), Map::new(), Map::new());
                for child in children {
                    child.finish(row_groups, &mut cmin, &mut cmax, &mut cnulls)?;
                }
                min.insert(name.clone(), Value::Object(cmin));
                max.insert(name.clone(), Value::Object(cmax));
                nulls.insert(name.clone(), Value::Object(cnulls));
            }
            ColumnNode::Leaf(leaf) => {
                nulls.insert(leaf.name.clone(), leaf.nulls.into());
                if leaf.saw_nan {
                    return Ok(());
                }
                if leaf.footer_bounds {
                    let bounds =
                        super::footer::column_bounds(row_groups, &leaf.path, &leaf.data_type);
                    if let Some((lo, hi)) = bounds
                        && let (Some(lo), Some(hi)) = (lower_json(&lo), upper_json(&hi))
                    {
                        min.insert(leaf.name.clone(), lo);
                        max.insert(leaf.name.clone(), hi);
                    }
                    return Ok(());
                }
                if let Some((lo, hi)) = &mut leaf.bounds
                    && let (Some(lo), Some(hi)) =
                        (lower_json(&lo.evaluate()?), upper_json(&hi.evaluate()?))
                {
                    min.insert(leaf.name.clone(), lo);
                    max.insert(leaf.name.clone(), hi);
                }
            }
        }
        Ok(())
    }
}

/// Types whose values get `minValues` and `maxValues`: booleans, binary
/// and nested lists or maps get null counts only.
fn gets_bounds(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Float32
            | DataType::Float64
            | DataType::Date32
            | DataType::Timestamp(TimeUnit::Microsecond, _)
            | DataType::Decimal128(_, _)
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
    )
}

/// Types whose bounds the Parquet footer gives as the rows would: all
/// that get bounds but decimals (stored in one of three physical types).
fn bounds_from_footer(data_type: &DataType) -> bool {
    gets_bounds(data_type) && !matches!(data_type, DataType::Decimal128(_, _))
}

fn has_nan(column: &ArrayRef) -> bool {
    use arrow::datatypes::{Float32Type, Float64Type};
    // Without nulls the values are read directly, not as options.
    let dense = column.logical_null_count() == 0;
    match column.data_type() {
        DataType::Float32 => {
            let floats = column.as_primitive::<Float32Type>();
            if dense {
                floats.values().iter().any(|v| v.is_nan())
            } else {
                floats.iter().flatten().any(f32::is_nan)
            }
        }
        DataType::Float64 => {
            let floats = column.as_primitive::<Float64Type>();
            if dense {
                floats.values().iter().any(|v| v.is_nan())
            } else {
                floats.iter().flatten().any(f64::is_nan)
            }
        }
        _ => false,
    }
}

fn with_nulls(column: &ArrayRef, valid: &NullBuffer) -> ArrayRef {
    let data = column.to_data().into_builder().nulls(Some(valid.clone()));
    data.build()
        .map(arrow::array::make_array)
        .unwrap_or_else(|_| column.clone())
}

/// A lower bound as JSON (strings cut to their prefix).
fn lower_json(value: &ScalarValue) -> Option<Value> {
    match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(Value::String(
            s.chars().take(STRING_PREFIX_LENGTH).collect(),
        )),
        other => scalar_json(other),
    }
}

/// An upper bound as JSON (a cut string gets U+10FFFF appended so it still
/// bounds the value).
fn upper_json(value: &ScalarValue) -> Option<Value> {
    match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => {
            if s.chars().count() <= STRING_PREFIX_LENGTH {
                return Some(Value::String(s.clone()));
            }
            let mut cut: String = s.chars().take(STRING_PREFIX_LENGTH).collect();
            cut.push(char::MAX);
            Some(Value::String(cut))
        }
        other => scalar_json(other),
    }
}

fn scalar_json(value: &ScalarValue) -> Option<Value> {
    let number = |v: f64| Number::from_f64(v).map(Value::Number);
    match value {
        ScalarValue::Int8(Some(v)) => Some((*v).into()),
        ScalarValue::Int16(Some(v)) => Some((*v).into()),
        ScalarValue::Int32(Some(v)) => Some((*v).into()),
        ScalarValue::Int64(Some(v)) => Some((*v).into()),
        ScalarValue::Float32(Some(v)) => number(f64::from(*v)),
        ScalarValue::Float64(Some(v)) => number(*v),
        ScalarValue::Date32(Some(days)) => {
            let date = chrono::DateTime::from_timestamp(i64::from(*days) * 86_400, 0)?;
            Some(Value::String(date.format("%Y-%m-%d").to_string()))
        }
        ScalarValue::TimestampMicrosecond(Some(micros), zone) => {
            // Milliseconds, cut toward the past (readers widen maxima).
            let at = chrono::DateTime::from_timestamp_micros(micros.div_euclid(1000) * 1000)?;
            let suffix = if zone.is_some() { "Z" } else { "" };
            Some(Value::String(format!(
                "{}{suffix}",
                at.format("%Y-%m-%dT%H:%M:%S%.3f")
            )))
        }
        ScalarValue::Decimal128(Some(raw), _, scale) => exact_decimal(*raw, *scale),
        _ => None,
    }
}

/// A decimal as a JSON number, only when an `f64` holds it exactly.
fn exact_decimal(raw: i128, scale: i8) -> Option<Value> {
    let text = Decimal128Type::format_decimal(raw, 38, scale);
    let value: f64 = text.parse().ok()?;
    let back = format!("{value:.prec$}", prec = usize::try_from(scale.max(0)).ok()?);
    (back == text || (scale <= 0 && value.fract() == 0.0 && value.abs() < 9.0e15))
        .then(|| Number::from_f64(value).map(Value::Number))
        .flatten()
}
