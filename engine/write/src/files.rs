//! Turning rows into data files of a table: rows are checked against the
//! schema, split by partition values, renamed to physical columns, written
//! as Parquet files of about the target size, stored, and described by
//! `add` actions.

use std::collections::HashMap;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::row::{RowConverter, SortField};
use datafusion::common::ScalarValue;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use super::conform::conform;
use super::target::{CHANGE_DATA_DIR, FileKind, WriteTarget};
use crate::encoder::FileEncoder;
use crate::protocol::Add;
use crate::storage::Storage;
use crate::{Error, Result};

/// Directory name of a null partition value, as Hive and Spark write it.
pub const NULL_PARTITION_DIR: &str = "__HIVE_DEFAULT_PARTITION__";

/// Characters Hive escapes in partition directory names.
const HIVE_ESCAPED: &AsciiSet = &CONTROLS
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'\'')
    .add(b'*')
    .add(b'/')
    .add(b':')
    .add(b'=')
    .add(b'?')
    .add(b'\\')
    .add(b'{')
    .add(b'[')
    .add(b']')
    .add(b'^')
    .add(0x7f);

/// Characters percent-encoded when a relative file path becomes a URI.
const URI_PATH_ESCAPED: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'[')
    .add(b']')
    .add(b'^')
    .add(b'|')
    .add(b'\\');

/// Bytes a writer holds in files not yet stored, across all the
/// partitions it writes: past it, the largest open file is stored early
/// (smaller than the target size), so an INSERT touching many partitions
/// holds at most this much however many it touches.
pub const WRITE_BUFFER_BYTES: usize = 256 << 20;

/// Files a writer keeps open at once (each Parquet writer has buffers of
/// its own, whatever its rows); past it the largest is stored early.
pub const MAX_OPEN_FILES: usize = 128;

/// Partitions one write may put rows in: a write that would create files
/// in more is refused, before it stores millions of tiny files and log
/// entries no reader could list in reasonable time.
pub const MAX_PARTITIONS_PER_WRITE: usize = 100_000;

/// Files the rows of an unpartitioned table's write are spread over at
/// most, so that a large write encodes on that many cores (one file each).
pub const MAX_STRIPES: usize = 4;

/// Writes rows of one table into new data files.
pub struct TableFileWriter<'a> {
    target: &'a WriteTarget,
    storage: &'a dyn Storage,
    now_ms: i64,
    data_change: bool,
    /// Files being written, by partition key and stripe.
    open: HashMap<(Vec<u8>, usize), OpenFile>,
    /// Files each partition's rows are spread over, encoded at once.
    stripes: usize,
    /// The stripe each partition's next rows go to.
    next_stripe: HashMap<Vec<u8>, usize>,
    done: Vec<Add>,
    stored: Vec<String>,
    partition_converter: Option<RowConverter>,
    files_started: usize,
    /// Partitions written so far.
    partitions: std::collections::HashSet<Vec<u8>>,
    buffer_bytes: usize,
    max_partitions: usize,
}

struct OpenFile {
    writer: FileEncoder,
    partition_values: HashMap<String, Option<String>>,
    directory: String,
}

impl std::fmt::Debug for TableFileWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableFileWriter")
            .field("open", &self.open.len())
            .field("done", &self.done.len())
            .finish()
    }
}

impl<'a> TableFileWriter<'a> {
    /// A writer of new files for `target` into `storage`. `data_change` is
    /// false for files that only rearrange existing rows (compaction).
    pub fn new(
        target: &'a WriteTarget,
        storage: &'a dyn Storage,
        now_ms: i64,
        data_change: bool,
    ) -> Result<Self> {
        let partition_converter = if target.schemas.partition_logical.is_empty() {
            None
        } else {
            Some(RowConverter::new(
                target
                    .schemas
                    .partition_logical
                    .iter()
                    .map(|f| SortField::new(f.data_type().clone()))
                    .collect(),
            )?)
        };
        Ok(Self {
            target,
            storage,
            now_ms,
            data_change,
            open: HashMap::new(),
            // A partitioned write's partitions encode at once already, and
            // compaction (no data change) is there to make fewer files.
            stripes: if data_change && target.schemas.partition_logical.is_empty() {
                std::thread::available_parallelism()
                    .map_or(1, std::num::NonZero::get)
                    .clamp(1, MAX_STRIPES)
            } else {
                1
            },
            next_stripe: HashMap::new(),
            done: Vec::new(),
            stored: Vec::new(),
            partition_converter,
            files_started: 0,
            partitions: std::collections::HashSet::new(),
            buffer_bytes: WRITE_BUFFER_BYTES,
            max_partitions: MAX_PARTITIONS_PER_WRITE,
        })
    }

    /// Holds at most `bytes` in files not yet stored (instead of
    /// [`WRITE_BUFFER_BYTES`]).
    pub fn with_buffer_bytes(mut self, bytes: usize) -> Self {
        self.buffer_bytes = bytes;
        self
    }

    /// Puts rows in at most `count` partitions (instead of
    /// [`MAX_PARTITIONS_PER_WRITE`]).
    pub fn with_max_partitions(mut self, count: usize) -> Self {
        self.max_partitions = count;
        self
    }

    /// Bytes held in open files now.
    pub fn buffered_bytes(&self) -> usize {
        self.open.values().map(|f| f.writer.estimated_size()).sum()
    }

    /// Stores the largest open files until the rest fit the buffer and the
    /// open-file limit.
    async fn keep_within_budget(&mut self) -> Result<()> {
        while self.open.len() > MAX_OPEN_FILES || self.buffered_bytes() > self.buffer_bytes {
            let largest = self
                .open
                .iter()
                .max_by_key(|(_, f)| f.writer.estimated_size())
                .map(|(key, _)| key.clone());
            let Some(file) = largest.and_then(|key| self.open.remove(&key)) else {
                break;
            };
            self.store(file).await?;
        }
        Ok(())
    }

    /// Writes `batch` (logical columns, in any order and convertible
    /// types). Rows that do not fit the table fail before any is written.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = conform(batch, self.target.logical())?;
        self.target.constraints.check(&batch)?;
        for (key, rows) in self.split_by_partition(&batch)? {
            if !self.partitions.contains(&key) {
                if self.partitions.len() >= self.max_partitions {
                    return Err(Error::LimitExceeded {
                        what: "the partitions one write puts rows in".into(),
                        limit: format!("{} partitions", self.max_partitions),
                        detail: "split the write, or partition the table by fewer values".into(),
                    });
                }
                self.partitions.insert(key.clone());
            }
            self.write_to_partition(key, rows).await?;
            self.keep_within_budget().await?;
        }
        Ok(())
    }

    /// Closes and stores every open file; the `add` actions of all files
    /// written.
    pub async fn finish(mut self) -> Result<Vec<Add>> {
        let open: Vec<OpenFile> = self.open.drain().map(|(_, f)| f).collect();
        for file in open {
            self.store(file).await?;
        }
        Ok(self.done)
    }

    /// Deletes the files already stored: cleanup after a failed write.
    pub async fn abandon(self) {
        for path in &self.stored {
            let _ = self.storage.delete(path).await;
        }
    }

    fn split_by_partition(&self, batch: &RecordBatch) -> Result<Vec<(Vec<u8>, RecordBatch)>> {
        let Some(converter) = &self.partition_converter else {
            return Ok(vec![(Vec::new(), batch.clone())]);
        };
        let columns: Vec<ArrayRef> =
            self.target
                .schemas
                .partition_logical
                .iter()
                .map(|f| {
                    batch.column_by_name(f.name()).cloned().ok_or_else(|| {
                        Error::SchemaMismatch(format!("missing column {}", f.name()))
                    })
                })
                .collect::<Result<_>>()?;
        let rows = converter.convert_columns(&columns)?;
        let mut groups: Vec<(Vec<u8>, Vec<u32>)> = Vec::new();
        let mut index: HashMap<&[u8], usize> = HashMap::new();
        for (i, row) in rows.iter().enumerate() {
            let slot = *index.entry(row.data()).or_insert_with(|| {
                groups.push((row.data().to_vec(), Vec::new()));
                groups.len() - 1
            });
            groups[slot].1.push(i as u32);
        }
        if groups.len() == 1 {
            let (key, _) = groups.remove(0);
            return Ok(vec![(key, batch.clone())]);
        }
        groups
            .into_iter()
            .map(|(key, indices)| {
                let taken = take_record_batch(batch, &UInt32Array::from(indices))?;
                Ok((key, taken))
            })
            .collect()
    }

    /// Writes one partition's rows, in slices small enough that a file
    /// rolls over near the target size even within one large batch. The
    /// partition's batches go to its stripes in turn, each stripe a file
    /// encoded by a task of its own.
    async fn write_to_partition(&mut self, key: Vec<u8>, rows: RecordBatch) -> Result<()> {
        let count = rows.num_rows();
        let per_row = (rows.get_array_memory_size() / count.max(1)).max(1);
        let slice_rows = (self.target.target_file_size / per_row).clamp(1, count.max(1));
        let mut offset = 0;
        while offset < count {
            let slice = rows.slice(offset, slice_rows.min(count - offset));
            offset += slice.num_rows();
            let stripe = self.next_stripe.entry(key.clone()).or_insert(0);
            let file_key = (key.clone(), *stripe);
            *stripe = (*stripe + 1) % self.stripes;
            if !self.open.contains_key(&file_key) {
                let file = self.start_file(&slice)?;
                self.open.insert(file_key.clone(), file);
            }
            let physical = self.physical_batch(&slice)?;
            let full = match self.open.get_mut(&file_key) {
                Some(file) => {
                    file.writer.write(physical).await?;
                    file.writer.estimated_size() >= self.target.target_file_size
                }
                None => false,
            };
            if full && let Some(file) = self.open.remove(&file_key) {
                self.store(file).await?;
            }
        }
        Ok(())
    }

    fn start_file(&mut self, rows: &RecordBatch) -> Result<OpenFile> {
        let schemas = &self.target.schemas;
        let mut partition_values = HashMap::new();
        let mut directory = String::new();
        for (field, physical) in schemas
            .partition_logical
            .iter()
            .zip(&schemas.partition_physical_names)
        {
            let column = rows
                .column_by_name(field.name())
                .ok_or_else(|| Error::SchemaMismatch(format!("missing column {}", field.name())))?;
            let value = serialize_partition_value(&ScalarValue::try_from_array(column, 0)?)?;
            let segment = match &value {
                Some(text) => utf8_percent_encode(text, HIVE_ESCAPED).to_string(),
                None => NULL_PARTITION_DIR.to_owned(),
            };
            directory.push_str(&format!("{physical}={segment}/"));
            partition_values.insert(physical.clone(), value);
        }
        Ok(OpenFile {
            writer: FileEncoder::start(&schemas.file_physical, &self.target.file_options)?,
            partition_values,
            directory,
        })
    }

    /// The data-file columns of logical `rows`: no partition columns,
    /// physical names and field ids.
    fn physical_batch(&self, rows: &RecordBatch) -> Result<RecordBatch> {
        let schemas = &self.target.schemas;
        let columns: Vec<ArrayRef> = schemas
            .logical
            .fields()
            .iter()
            .zip(rows.columns())
            .filter(|(field, _)| {
                !schemas
                    .partition_logical
                    .iter()
                    .any(|p| p.name() == field.name())
            })
            .zip(schemas.file_physical.fields())
            .map(|((_, column), physical)| crate::scan::retype(column, physical.data_type()))
            .collect::<Result<_, _>>()?;
        Ok(RecordBatch::try_new_with_options(
            schemas.file_physical.clone(),
            columns,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.num_rows())),
        )?)
    }

    async fn store(&mut self, file: OpenFile) -> Result<()> {
        if file.writer.rows() == 0 {
            return Ok(());
        }
        let codec = match self.target.file_options.compression {
            parquet::basic::Compression::SNAPPY => "snappy.",
            parquet::basic::Compression::ZSTD(_) => "zstd.",
            _ => "",
        };
        let (root, stem) = match self.target.kind {
            FileKind::Data => ("", "part"),
            FileKind::ChangeData => (CHANGE_DATA_DIR, "cdc"),
        };
        let name = format!(
            "{stem}-{:05}-{}-c000.{codec}parquet",
            self.files_started,
            uuid::Uuid::new_v4()
        );
        self.files_started += 1;
        let path = format!("{root}{}{name}", file.directory);
        let written = file.writer.finish().await?;
        let size = written.bytes.len() as i64;
        self.storage.put(&path, written.bytes).await?;
        self.stored.push(path.clone());
        self.done.push(Add {
            path: utf8_percent_encode(&path, URI_PATH_ESCAPED).to_string(),
            partition_values: file.partition_values,
            size,
            modification_time: self.now_ms,
            data_change: self.data_change,
            stats: Some(written.stats),
            tags: None,
            deletion_vector: None,
            base_row_id: None,
            default_row_commit_version: None,
            clustering_provider: None,
        });
        Ok(())
    }
}

/// A partition value as Delta serializes it (`None` for null; empty
/// strings are null, as Hive-style partitioning cannot tell them apart).
pub fn serialize_partition_value(value: &ScalarValue) -> Result<Option<String>> {
    if value.is_null() {
        return Ok(None);
    }
    let text = match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => s.clone(),
        ScalarValue::Date32(Some(days)) => {
            chrono::DateTime::from_timestamp(i64::from(*days) * 86_400, 0)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .ok_or_else(|| Error::InvalidArgument(format!("date out of range: {value}")))?
        }
        ScalarValue::TimestampMicrosecond(Some(micros), _) => {
            chrono::DateTime::from_timestamp_micros(*micros)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
                .ok_or_else(|| Error::InvalidArgument(format!("timestamp out of range: {value}")))?
        }
        ScalarValue::Binary(_) | ScalarValue::LargeBinary(_) | ScalarValue::BinaryView(_) => {
            return Err(Error::InvalidArgument(
                "binary columns cannot be partition columns".into(),
            ));
        }
        other => other.to_string(),
    };
    Ok((!text.is_empty()).then_some(text))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::protocol::{Format, Metadata};

    fn partitioned_target() -> WriteTarget {
        let metadata = Metadata {
            id: "t".into(),
            name: None,
            description: None,
            format: Format::default(),
            schema_string: r#"{"type":"struct","fields":[
                {"name":"p","type":"string","nullable":true,"metadata":{}},
                {"name":"v","type":"long","nullable":true,"metadata":{}}]}"#
                .into(),
            partition_columns: vec!["p".into()],
            created_time: Some(0),
            configuration: HashMap::new(),
        };
        WriteTarget::new(&metadata).expect("target")
    }

    fn rows(partitions: usize, per_partition: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("p", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
        ]));
        let count = partitions * per_partition;
        let p: Vec<String> = (0..count).map(|i| format!("p{}", i % partitions)).collect();
        let v: Vec<i64> = (0..count as i64).collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(p)),
                Arc::new(Int64Array::from(v)),
            ],
        )
        .expect("batch")
    }

    #[tokio::test]
    async fn many_partitions_are_written_within_the_buffer() {
        let storage = crate::storage::metered_memory_files(&[]).await;
        let target = partitioned_target();
        let budget = 2 << 20;
        let mut writer = TableFileWriter::new(&target, &storage, 0, true)
            .expect("writer")
            .with_buffer_bytes(budget);
        for _ in 0..4 {
            writer.write(&rows(500, 200)).await.expect("writes");
            assert!(writer.open.len() <= MAX_OPEN_FILES, "{}", writer.open.len());
            assert!(
                writer.buffered_bytes() <= budget,
                "{}",
                writer.buffered_bytes()
            );
        }
        let adds = writer.finish().await.expect("finishes");
        let partitions: std::collections::HashSet<_> = adds
            .iter()
            .map(|a| a.partition_values["p"].clone())
            .collect();
        assert_eq!(partitions.len(), 500);
        let rows: i64 = adds
            .iter()
            .map(|a| {
                let stats: serde_json::Value =
                    serde_json::from_str(a.stats.as_deref().expect("stats")).expect("json");
                stats["numRecords"].as_i64().expect("count")
            })
            .sum();
        assert_eq!(rows, 4 * 500 * 200);
    }

    #[tokio::test]
    async fn a_write_into_too_many_partitions_is_refused_by_name() {
        let storage = crate::storage::metered_memory_files(&[]).await;
        let target = partitioned_target();
        let mut writer = TableFileWriter::new(&target, &storage, 0, true)
            .expect("writer")
            .with_max_partitions(50);
        writer.write(&rows(50, 2)).await.expect("50 partitions fit");
        let err = writer.write(&rows(51, 1)).await.expect_err("51 do not");
        assert!(
            matches!(&err, Error::LimitExceeded { limit, .. } if limit == "50 partitions"),
            "{err}"
        );
        writer.abandon().await;
    }
}
