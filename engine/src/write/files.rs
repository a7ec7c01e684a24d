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
use super::target::WriteTarget;
use crate::data_file::DataFileWriter;
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

/// Writes rows of one table into new data files.
pub struct TableFileWriter<'a> {
    target: &'a WriteTarget,
    storage: &'a dyn Storage,
    now_ms: i64,
    data_change: bool,
    open: HashMap<Vec<u8>, OpenFile>,
    done: Vec<Add>,
    stored: Vec<String>,
    partition_converter: Option<RowConverter>,
    files_started: usize,
}

struct OpenFile {
    writer: DataFileWriter,
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
            done: Vec::new(),
            stored: Vec::new(),
            partition_converter,
            files_started: 0,
        })
    }

    /// Writes `batch` (logical columns, in any order and convertible
    /// types). Rows that do not fit the table fail before any is written.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = conform(batch, self.target.logical())?;
        for (key, rows) in self.split_by_partition(&batch)? {
            self.write_to_partition(key, rows).await?;
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
    /// rolls over near the target size even within one large batch.
    async fn write_to_partition(&mut self, key: Vec<u8>, rows: RecordBatch) -> Result<()> {
        let count = rows.num_rows();
        let per_row = (rows.get_array_memory_size() / count.max(1)).max(1);
        let slice_rows = (self.target.target_file_size / per_row).clamp(1, count.max(1));
        let mut offset = 0;
        while offset < count {
            let slice = rows.slice(offset, slice_rows.min(count - offset));
            offset += slice.num_rows();
            if !self.open.contains_key(&key) {
                let file = self.start_file(&slice)?;
                self.open.insert(key.clone(), file);
            }
            let physical = self.physical_batch(&slice)?;
            let full = match self.open.get_mut(&key) {
                Some(file) => {
                    file.writer.write(&physical)?;
                    file.writer.estimated_size() >= self.target.target_file_size
                }
                None => false,
            };
            if full && let Some(file) = self.open.remove(&key) {
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
            writer: DataFileWriter::try_new(&schemas.file_physical, &self.target.file_options)?,
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
        let name = format!(
            "part-{:05}-{}-c000.{codec}parquet",
            self.files_started,
            uuid::Uuid::new_v4()
        );
        self.files_started += 1;
        let path = format!("{}{name}", file.directory);
        let written = file.writer.finish()?;
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
