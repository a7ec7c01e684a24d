//! Writing data files: Parquet bytes plus the Delta statistics of their
//! rows (`numRecords`, `minValues`, `maxValues`, `nullCount`), keyed by the
//! column names the batches carry (physical names under column mapping).
//!
//! Bounds are only ever widened, never narrowed, so file skipping stays
//! correct: strings are cut to [`STRING_PREFIX_LENGTH`] characters (a cut
//! maximum gets U+10FFFF appended), timestamps are written in milliseconds
//! like Spark (readers widen the maximum by 999 µs), and decimals that a
//! JSON number cannot hold exactly, floats with NaN, booleans, binary and
//! nested lists or maps get null counts only.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::buffer::NullBuffer;
use arrow::compute::concat;
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, DecimalType, Float32Type, Float64Type, Int8Type,
    Int16Type, Int32Type, Int64Type, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::{Map, Number, Value};

use crate::{Error, Result};

/// Characters of a string kept in its statistics (Delta's default).
pub const STRING_PREFIX_LENGTH: usize = 32;

/// How data files are written.
#[derive(Debug, Clone)]
pub struct DataFileOptions {
    /// `snappy` (default) or `zstd`.
    pub compression: Compression,
    /// Columns that get Parquet bloom filters.
    pub bloom_filter_columns: Vec<String>,
    /// Rows per row group at most.
    pub max_row_group_rows: usize,
}

impl Default for DataFileOptions {
    fn default() -> Self {
        Self {
            compression: Compression::SNAPPY,
            bloom_filter_columns: Vec::new(),
            max_row_group_rows: 1024 * 1024,
        }
    }
}

impl DataFileOptions {
    /// Options with the codec named `codec` (`snappy`, `zstd`, `none`).
    pub fn with_codec(mut self, codec: &str) -> Result<Self> {
        self.compression = match codec.to_ascii_lowercase().as_str() {
            "snappy" => Compression::SNAPPY,
            "zstd" => Compression::ZSTD(ZstdLevel::default()),
            "none" | "uncompressed" => Compression::UNCOMPRESSED,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unknown compression codec {other:?} (snappy, zstd or none)"
                )));
            }
        };
        Ok(self)
    }
}

/// A data file ready to be stored and added to the log.
#[derive(Debug, Clone)]
pub struct WrittenFile {
    /// The Parquet bytes.
    pub bytes: Bytes,
    /// Rows in the file.
    pub num_records: u64,
    /// The `add.stats` document.
    pub stats: String,
}

/// Writes `batches` (all of `schema`) as one Parquet file with its stats.
pub fn write_data_file(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    options: &DataFileOptions,
) -> Result<WrittenFile> {
    let mut properties = WriterProperties::builder()
        .set_compression(options.compression)
        .set_max_row_group_row_count(Some(options.max_row_group_rows.max(1)));
    for column in &options.bloom_filter_columns {
        if schema.field_with_name(column).is_err() {
            return Err(Error::InvalidArgument(format!(
                "bloom filter column {column:?} is not in the table"
            )));
        }
        properties = properties.set_column_bloom_filter_enabled(column.as_str().into(), true);
    }
    let mut buffer = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buffer, schema.clone(), Some(properties.build()))
        .map_err(|e| Error::InvalidArgument(format!("cannot write Parquet: {e}")))?;
    for batch in batches {
        writer
            .write(batch)
            .map_err(|e| Error::InvalidArgument(format!("cannot write Parquet: {e}")))?;
    }
    writer
        .close()
        .map_err(|e| Error::InvalidArgument(format!("cannot write Parquet: {e}")))?;
    let num_records = batches.iter().map(|b| b.num_rows() as u64).sum();
    Ok(WrittenFile {
        bytes: Bytes::from(buffer),
        num_records,
        stats: file_statistics(schema, batches)?,
    })
}

/// The Delta statistics document of `batches`.
pub fn file_statistics(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut min = Map::new();
    let mut max = Map::new();
    let mut nulls = Map::new();
    for (index, field) in schema.fields().iter().enumerate() {
        let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(index).as_ref()).collect();
        let column = if parts.is_empty() {
            arrow::array::new_empty_array(field.data_type())
        } else {
            concat(&parts)?
        };
        column_statistics(field.name(), &column, None, &mut min, &mut max, &mut nulls);
    }
    let mut doc = Map::new();
    doc.insert("numRecords".into(), rows.into());
    doc.insert("minValues".into(), Value::Object(min));
    doc.insert("maxValues".into(), Value::Object(max));
    doc.insert("nullCount".into(), Value::Object(nulls));
    Ok(Value::Object(doc).to_string())
}

fn column_statistics(
    name: &str,
    column: &ArrayRef,
    parent_nulls: Option<&NullBuffer>,
    min: &mut Map<String, Value>,
    max: &mut Map<String, Value>,
    nulls: &mut Map<String, Value>,
) {
    let combined = NullBuffer::union(parent_nulls, column.logical_nulls().as_ref());
    if let DataType::Struct(_) = column.data_type() {
        let Some(parent) = column.as_struct_opt() else {
            return;
        };
        let (mut child_min, mut child_max, mut child_nulls) = (Map::new(), Map::new(), Map::new());
        for (field, child) in parent.fields().iter().zip(parent.columns()) {
            column_statistics(
                field.name(),
                child,
                combined.as_ref(),
                &mut child_min,
                &mut child_max,
                &mut child_nulls,
            );
        }
        min.insert(name.into(), Value::Object(child_min));
        max.insert(name.into(), Value::Object(child_max));
        nulls.insert(name.into(), Value::Object(child_nulls));
        return;
    }
    let null_count = combined.as_ref().map_or(0, NullBuffer::null_count);
    nulls.insert(name.into(), null_count.into());
    // Bounds over the rows that are valid here and in every parent.
    let column = match &combined {
        Some(valid) if null_count > 0 => with_nulls(column, valid),
        _ => column.clone(),
    };
    if let Some((lo, hi)) = bounds(&column) {
        min.insert(name.into(), lo);
        max.insert(name.into(), hi);
    }
}

fn with_nulls(column: &ArrayRef, valid: &NullBuffer) -> ArrayRef {
    let data = column.to_data().into_builder().nulls(Some(valid.clone()));
    data.build()
        .map(arrow::array::make_array)
        .unwrap_or_else(|_| column.clone())
}

/// JSON lower and upper bounds of the non-null values, if this type gets
/// bounds and there is at least one value.
fn bounds(column: &ArrayRef) -> Option<(Value, Value)> {
    use arrow::compute::{max, max_string, min, min_string};
    let number = |v: f64| Number::from_f64(v).map(Value::Number);
    match column.data_type() {
        DataType::Int8 => pair(
            min(column.as_primitive::<Int8Type>()),
            max(column.as_primitive::<Int8Type>()),
            |v| Some(v.into()),
        ),
        DataType::Int16 => pair(
            min(column.as_primitive::<Int16Type>()),
            max(column.as_primitive::<Int16Type>()),
            |v| Some(v.into()),
        ),
        DataType::Int32 => pair(
            min(column.as_primitive::<Int32Type>()),
            max(column.as_primitive::<Int32Type>()),
            |v| Some(v.into()),
        ),
        DataType::Int64 => pair(
            min(column.as_primitive::<Int64Type>()),
            max(column.as_primitive::<Int64Type>()),
            |v| Some(v.into()),
        ),
        DataType::Float32 => {
            let values = column.as_primitive::<Float32Type>();
            if values.iter().flatten().any(f32::is_nan) {
                return None;
            }
            pair(min(values), max(values), |v| number(f64::from(v)))
        }
        DataType::Float64 => {
            let values = column.as_primitive::<Float64Type>();
            if values.iter().flatten().any(f64::is_nan) {
                return None;
            }
            pair(min(values), max(values), number)
        }
        DataType::Date32 => {
            let values = column.as_primitive::<Date32Type>();
            pair(min(values), max(values), |days| {
                let date = chrono::DateTime::from_timestamp(i64::from(days) * 86_400, 0)?;
                Some(Value::String(date.format("%Y-%m-%d").to_string()))
            })
        }
        DataType::Timestamp(TimeUnit::Microsecond, zone) => {
            let values = column.as_primitive::<TimestampMicrosecondType>();
            let suffix = if zone.is_some() { "Z" } else { "" };
            pair(min(values), max(values), |micros| {
                // Milliseconds, cut toward the past (readers widen maxima).
                let at = chrono::DateTime::from_timestamp_micros(micros.div_euclid(1000) * 1000)?;
                Some(Value::String(format!(
                    "{}{suffix}",
                    at.format("%Y-%m-%dT%H:%M:%S%.3f")
                )))
            })
        }
        DataType::Decimal128(_, scale) => {
            let values = column.as_primitive::<Decimal128Type>();
            let scale = *scale;
            pair(min(values), max(values), |raw| exact_decimal(raw, scale))
        }
        DataType::Utf8 => {
            let values = column.as_string::<i32>();
            let lo = min_string(values)?;
            let hi = max_string(values)?;
            Some((Value::String(prefix(lo)), Value::String(upper_prefix(hi))))
        }
        DataType::LargeUtf8 => {
            let values = column.as_string::<i64>();
            let lo = min_string(values)?;
            let hi = max_string(values)?;
            Some((Value::String(prefix(lo)), Value::String(upper_prefix(hi))))
        }
        _ => None,
    }
}

fn pair<T: Copy>(
    lo: Option<T>,
    hi: Option<T>,
    to_json: impl Fn(T) -> Option<Value>,
) -> Option<(Value, Value)> {
    Some((to_json(lo?)?, to_json(hi?)?))
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

fn prefix(text: &str) -> String {
    text.chars().take(STRING_PREFIX_LENGTH).collect()
}

fn upper_prefix(text: &str) -> String {
    if text.chars().count() <= STRING_PREFIX_LENGTH {
        return text.to_owned();
    }
    let mut cut = prefix(text);
    cut.push(char::MAX);
    cut
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        Decimal128Array, Float64Array, Int64Array, StringArray, StructArray,
        TimestampMicrosecondArray,
    };
    use arrow::datatypes::{Field, Fields, Schema};

    use super::*;
    use crate::stats::FileStats;

    fn stats_of(batch: &RecordBatch) -> serde_json::Value {
        serde_json::from_str(
            &file_statistics(&batch.schema(), std::slice::from_ref(batch)).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn statistics_bound_every_value_and_count_nulls() {
        let long = "x".repeat(40);
        let inner = Fields::from(vec![Field::new("n", DataType::Int64, true)]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("price", DataType::Decimal128(10, 2), true),
            Field::new("ratio", DataType::Float64, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("s", DataType::Struct(inner.clone()), true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(3), None, Some(-7)])),
                Arc::new(StringArray::from(vec![
                    Some("b"),
                    Some(long.as_str()),
                    None,
                ])),
                Arc::new(
                    Decimal128Array::from(vec![Some(1999), Some(5), None])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
                Arc::new(Float64Array::from(vec![Some(0.5), Some(f64::NAN), None])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![Some(1_500), Some(2_999), None])
                        .with_timezone("UTC"),
                ),
                Arc::new(StructArray::new(
                    inner,
                    vec![Arc::new(Int64Array::from(vec![Some(1), Some(9), Some(4)]))],
                    Some(NullBuffer::from(vec![true, true, false])),
                )),
            ],
        )
        .unwrap();
        let stats = stats_of(&batch);
        assert_eq!(stats["numRecords"], 3);
        assert_eq!(stats["minValues"]["id"], -7);
        assert_eq!(stats["maxValues"]["id"], 3);
        assert_eq!(stats["nullCount"]["id"], 1);
        assert_eq!(stats["minValues"]["name"], "b");
        let max_name = stats["maxValues"]["name"].as_str().unwrap();
        assert!(
            max_name > long.as_str(),
            "a cut maximum still bounds the value"
        );
        assert_eq!(max_name.chars().count(), STRING_PREFIX_LENGTH + 1);
        assert_eq!(stats["minValues"]["price"], 0.05);
        assert_eq!(stats["maxValues"]["price"], 19.99);
        assert!(stats["minValues"].get("ratio").is_none(), "NaN: no bounds");
        assert_eq!(stats["nullCount"]["ratio"], 1);
        assert_eq!(stats["minValues"]["at"], "1970-01-01T00:00:00.001Z");
        assert_eq!(stats["maxValues"]["at"], "1970-01-01T00:00:00.002Z");
        // The null struct row hides its child's value 4.
        assert_eq!(stats["maxValues"]["s"]["n"], 9);
        assert_eq!(stats["nullCount"]["s"]["n"], 1);
        // The engine's own statistics parser reads the document.
        let add_stats: FileStats = serde_json::from_value(stats).unwrap();
        assert_eq!(add_stats.num_records, Some(3));
    }

    #[test]
    fn written_files_read_back_with_their_rows() {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from_iter_values(0..1000))],
        )
        .unwrap();
        let options = DataFileOptions {
            bloom_filter_columns: vec!["id".into()],
            ..DataFileOptions::default()
        }
        .with_codec("zstd")
        .unwrap();
        let file = write_data_file(&schema, std::slice::from_ref(&batch), &options).unwrap();
        assert_eq!(file.num_records, 1000);
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            file.bytes.clone(),
        )
        .unwrap();
        let metadata = reader.metadata().clone();
        let column = metadata.row_group(0).column(0);
        assert!(
            column.bloom_filter_offset().is_some(),
            "bloom filter written"
        );
        assert!(matches!(column.compression(), Compression::ZSTD(_)));
        let rows: usize = reader.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 1000);
        assert!(DataFileOptions::default().with_codec("lzma").is_err());
    }
}
