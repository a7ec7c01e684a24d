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

mod footer;
mod statistics;

pub use crate::parquet_guard::{
    MAX_COLUMN_CHUNK_BYTES, MAX_PAGE_BYTES, catch_decoder_panic, check_layout, check_pages,
    contain_decoder_panics, page_header,
};

pub use statistics::StatisticsAccumulator;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

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
    let mut writer = DataFileWriter::try_new(schema, options)?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()
}

/// The Delta statistics document of `batches` (all of `schema`).
pub fn file_statistics(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String> {
    let mut stats = StatisticsAccumulator::new(schema);
    for batch in batches {
        stats.update(batch)?;
    }
    stats.finish()
}

/// One data file being written batch by batch, in memory, with its
/// statistics kept up to date.
pub struct DataFileWriter {
    writer: ArrowWriter<Vec<u8>>,
    stats: StatisticsAccumulator,
}

impl std::fmt::Debug for DataFileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataFileWriter")
            .field("rows", &self.stats.rows())
            .field("bytes", &self.estimated_size())
            .finish()
    }
}

impl DataFileWriter {
    /// Starts a file of `schema`.
    pub fn try_new(schema: &SchemaRef, options: &DataFileOptions) -> Result<Self> {
        let mut properties = WriterProperties::builder()
            .set_compression(options.compression)
            .set_statistics_truncate_length(Some(footer::TRUNCATE_BYTES))
            .set_max_row_group_row_count(Some(options.max_row_group_rows.max(1)));
        for column in &options.bloom_filter_columns {
            if schema.field_with_name(column).is_err() {
                return Err(Error::InvalidArgument(format!(
                    "bloom filter column {column:?} is not in the table"
                )));
            }
            properties = properties.set_column_bloom_filter_enabled(column.as_str().into(), true);
        }
        let writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties.build()))
            .map_err(parquet_error)?;
        Ok(Self {
            writer,
            stats: StatisticsAccumulator::leaving_bounds_to_parquet(schema),
        })
    }

    /// Appends `batch`.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.stats.update(batch)?;
        self.writer.write(batch).map_err(parquet_error)
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.stats.rows()
    }

    /// Bytes the file has so far, counting the row group in progress at its
    /// in-memory size (an upper bound of its encoded size).
    pub fn estimated_size(&self) -> usize {
        self.writer.bytes_written() + self.writer.in_progress_size()
    }

    /// Closes the file.
    pub fn finish(mut self) -> Result<WrittenFile> {
        self.writer.flush().map_err(parquet_error)?;
        let stats = self
            .stats
            .finish_with_footer(self.writer.flushed_row_groups())?;
        let num_records = self.stats.rows();
        let bytes = self.writer.into_inner().map_err(parquet_error)?;
        Ok(WrittenFile {
            bytes: Bytes::from(bytes),
            num_records,
            stats,
        })
    }
}

fn parquet_error(e: parquet::errors::ParquetError) -> Error {
    Error::InvalidArgument(format!("cannot write Parquet: {e}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        Decimal128Array, Float64Array, Int64Array, StringArray, StructArray,
        TimestampMicrosecondArray,
    };
    use arrow::buffer::NullBuffer;
    use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};

    use super::*;
    use crate::stats::FileStats;

    fn stats_of(batch: &RecordBatch) -> serde_json::Value {
        serde_json::from_str(
            &file_statistics(&batch.schema(), std::slice::from_ref(batch)).unwrap(),
        )
        .unwrap()
    }

    /// Numbers compared as numbers (Parquet keeps a zero minimum as -0.0).
    fn same_statistics(a: &serde_json::Value, b: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .all(|(k, v)| y.get(k).is_some_and(|w| same_statistics(v, w)))
            }
            _ => a == b,
        }
    }

    fn mixed_batch(
        ints: &[Option<i64>],
        floats: &[Option<f64>],
        texts: &[Option<String>],
    ) -> RecordBatch {
        use arrow::array::{Date32Array, Float32Array, Int8Array, Int16Array, Int32Array};
        let rows = ints.len();
        let inner = Fields::from(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("t", DataType::Utf8, true),
        ]);
        let parent_nulls = NullBuffer::from((0..rows).map(|i| i % 4 != 3).collect::<Vec<_>>());
        let nested = StructArray::new(
            inner.clone(),
            vec![
                Arc::new(Int64Array::from(ints.to_vec())),
                Arc::new(StringArray::from(texts.to_vec())),
            ],
            Some(parent_nulls),
        );
        let narrow = |v: &Option<i64>, m: i64| v.map(|v| v % m);
        RecordBatch::try_from_iter(vec![
            (
                "i8",
                Arc::new(Int8Array::from_iter(
                    ints.iter().map(|v| narrow(v, 100).map(|v| v as i8)),
                )) as arrow::array::ArrayRef,
            ),
            (
                "i16",
                Arc::new(Int16Array::from_iter(
                    ints.iter().map(|v| narrow(v, 30000).map(|v| v as i16)),
                )),
            ),
            (
                "i32",
                Arc::new(Int32Array::from_iter(
                    ints.iter().map(|v| v.map(|v| v as i32)),
                )),
            ),
            ("i64", Arc::new(Int64Array::from(ints.to_vec()))),
            (
                "f32",
                Arc::new(Float32Array::from_iter(
                    floats.iter().map(|v| v.map(|v| v as f32)),
                )),
            ),
            ("f64", Arc::new(Float64Array::from(floats.to_vec()))),
            (
                "day",
                Arc::new(Date32Array::from_iter(
                    ints.iter().map(|v| narrow(v, 100_000).map(|v| v as i32)),
                )),
            ),
            (
                "at",
                Arc::new(TimestampMicrosecondArray::from(ints.to_vec()).with_timezone("UTC")),
            ),
            (
                "amount",
                Arc::new(
                    Decimal128Array::from(
                        ints.iter().map(|v| v.map(i128::from)).collect::<Vec<_>>(),
                    )
                    .with_precision_and_scale(20, 2)
                    .unwrap(),
                ),
            ),
            ("text", Arc::new(StringArray::from(texts.to_vec()))),
            ("nested", Arc::new(nested)),
        ])
        .unwrap()
    }

    proptest::proptest! {
        /// The bounds taken from the Parquet footer are the ones the rows
        /// give, whatever the row groups, nulls, NaN, zeros and strings
        /// (long, and of characters up to four bytes).
        #[test]
        fn footer_bounds_equal_the_bounds_of_the_rows(
            rows in proptest::collection::vec(
                (
                    proptest::option::weighted(0.8, -1_000_000_000_000i64..1_000_000_000_000),
                    proptest::option::weighted(0.8, proptest::prop_oneof![
                        -1.0e9f64..1.0e9,
                        proptest::strategy::Just(0.0),
                        proptest::strategy::Just(-0.0),
                        proptest::strategy::Just(f64::NAN),
                    ]),
                    proptest::option::weighted(0.8, "[a-zé€😀]{0,60}"),
                ),
                1..40,
            ),
            row_group_rows in 1usize..12,
        ) {
            let ints: Vec<_> = rows.iter().map(|r| r.0).collect();
            let floats: Vec<_> = rows.iter().map(|r| r.1).collect();
            let texts: Vec<_> = rows.iter().map(|r| r.2.clone()).collect();
            let batch = mixed_batch(&ints, &floats, &texts);
            let options = DataFileOptions {
                max_row_group_rows: row_group_rows,
                ..DataFileOptions::default()
            };
            let half = batch.num_rows() / 2;
            let parts = [batch.slice(0, half), batch.slice(half, batch.num_rows() - half)];
            let written = write_data_file(&batch.schema(), &parts, &options).unwrap();
            let from_footer: serde_json::Value = serde_json::from_str(&written.stats).unwrap();
            let from_rows = stats_of(&batch);
            proptest::prop_assert!(
                same_statistics(&from_footer, &from_rows),
                "footer {from_footer}\nrows {from_rows}"
            );
        }
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
