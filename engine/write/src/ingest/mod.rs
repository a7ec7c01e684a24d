//! Uploaded files decoded into Arrow batches: Parquet, CSV with a header
//! line, newline-delimited JSON and Arrow IPC streams. Each is checked
//! before its decoder allocates what the file declares (an IPC message's
//! body, a Parquet footer's column chunks), and a panic inside a decoder is
//! contained and reported as [`Error::InvalidUpload`], so no upload can
//! take the process down.

pub mod ipc_framing;

use std::io::{BufReader, Read, Seek, SeekFrom};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::ChunkReader;

use crate::data_file::{catch_decoder_panic, check_layout, check_pages};
use crate::{Error, Result};

/// Rows decoded per batch.
pub const BATCH_ROWS: usize = 8192;

/// Rows read to infer a CSV or JSON upload's schema.
pub const INFER_ROWS: usize = 1000;

/// The formats an upload can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadFormat {
    /// Apache Parquet.
    Parquet,
    /// CSV with a header line.
    Csv,
    /// One JSON object per line.
    Json,
    /// An Arrow IPC stream.
    Arrow,
}

impl UploadFormat {
    /// The format a `Content-Type` names, if any.
    pub fn from_content_type(value: &str) -> Option<Self> {
        let value = value.split(';').next().unwrap_or("").trim();
        Some(match value {
            "application/vnd.apache.parquet" | "application/x-parquet" => Self::Parquet,
            "text/csv" => Self::Csv,
            "application/x-ndjson" | "application/jsonl" | "application/json" => Self::Json,
            "application/vnd.apache.arrow.stream" => Self::Arrow,
            _ => return None,
        })
    }

    /// The format's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Parquet => "Parquet",
            Self::Csv => "CSV",
            Self::Json => "JSON",
            Self::Arrow => "Arrow IPC",
        }
    }

    fn invalid(self, reason: impl std::fmt::Display) -> Error {
        Error::InvalidUpload {
            format: self.name(),
            reason: reason.to_string(),
        }
    }
}

/// Something both readable from its start and open at any offset (the
/// Parquet reader's need): a spooled file, or bytes in memory.
pub trait UploadSource: ChunkReader + Send + Sized + 'static {
    /// A reader positioned at the start.
    fn reader(&self) -> Result<Box<dyn ReadSeek>>;

    /// Another handle on the same bytes, for the Parquet reader to own.
    fn duplicate(&self) -> Result<Self>;
}

fn spool_error(e: std::io::Error) -> Error {
    Error::Storage {
        path: "the spooled upload".into(),
        message: e.to_string(),
    }
}

/// [`Read`] + [`Seek`] + [`Send`], as one trait object.
pub trait ReadSeek: Read + Seek + Send {}

impl<T: Read + Seek + Send> ReadSeek for T {}

impl UploadSource for std::fs::File {
    fn reader(&self) -> Result<Box<dyn ReadSeek>> {
        let mut copy = self.try_clone().map_err(spool_error)?;
        copy.seek(SeekFrom::Start(0)).map_err(spool_error)?;
        Ok(Box::new(copy))
    }

    fn duplicate(&self) -> Result<Self> {
        self.try_clone().map_err(spool_error)
    }
}

impl UploadSource for Bytes {
    fn reader(&self) -> Result<Box<dyn ReadSeek>> {
        Ok(Box::new(std::io::Cursor::new(self.clone())))
    }

    fn duplicate(&self) -> Result<Self> {
        Ok(self.clone())
    }
}

/// Batches decoded from an upload, in order.
pub type Batches = Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;

/// The schema of an upload: a Parquet or Arrow file's own, or the types the
/// first [`INFER_ROWS`] rows of a CSV or JSON file hold.
pub fn infer_schema(source: &impl UploadSource, format: UploadFormat) -> Result<SchemaRef> {
    let schema = contain_panics(format, || match format {
        UploadFormat::Csv => {
            let (schema, _) = arrow::csv::reader::Format::default()
                .with_header(true)
                .infer_schema(BufReader::new(source.reader()?), Some(INFER_ROWS))
                .map_err(|e| format.invalid(e))?;
            Ok(Arc::new(schema))
        }
        UploadFormat::Json => {
            let (schema, _) = arrow::json::reader::infer_json_schema(
                BufReader::new(source.reader()?),
                Some(INFER_ROWS),
            )
            .map_err(|e| format.invalid(e))?;
            Ok(Arc::new(schema))
        }
        UploadFormat::Arrow => {
            let reader = checked_ipc(source)?;
            Ok(arrow::ipc::reader::StreamReader::try_new(reader, None)
                .map_err(|e| format.invalid(e))?
                .schema())
        }
        UploadFormat::Parquet => Ok(parquet_builder(source)?.schema().clone()),
    })?;
    if schema.fields().is_empty() {
        return Err(format.invalid("the upload has no columns"));
    }
    Ok(schema)
}

/// Decodes an upload against `schema` (a table's, or the one
/// [`infer_schema`] found), [`BATCH_ROWS`] rows at a time. A file that
/// fails to decode, at its start or midway, yields an error and then ends.
pub fn decode(
    source: &impl UploadSource,
    format: UploadFormat,
    schema: SchemaRef,
) -> Result<Batches> {
    let (text_rows, text_buffer) = text_batch_size(source.len());
    let arrow_batches = contain_panics(format, || -> Result<ArrowBatches> {
        Ok(match format {
            UploadFormat::Csv => Box::new(
                arrow::csv::ReaderBuilder::new(schema)
                    .with_header(true)
                    .with_batch_size(text_rows)
                    .build(BufReader::with_capacity(text_buffer, source.reader()?))
                    .map_err(|e| format.invalid(e))?,
            ),
            UploadFormat::Json => Box::new(
                arrow::json::ReaderBuilder::new(schema)
                    .with_batch_size(text_rows)
                    .build(BufReader::with_capacity(text_buffer, source.reader()?))
                    .map_err(|e| format.invalid(e))?,
            ),
            UploadFormat::Arrow => Box::new(
                arrow::ipc::reader::StreamReader::try_new(checked_ipc(source)?, None)
                    .map_err(|e| format.invalid(e))?,
            ),
            UploadFormat::Parquet => Box::new(
                parquet_builder(source)?
                    .with_batch_size(BATCH_ROWS)
                    .build()
                    .map_err(|e| format.invalid(e))?,
            ),
        })
    })?;
    Ok(Box::new(Contained {
        format,
        batches: Some(arrow_batches),
    }))
}

/// Rows per batch and read buffer bytes for a CSV or JSON upload of
/// `len` bytes: a row takes at least two bytes (a value or `{}`, and a
/// line end), so a small body never gets decoders sized for
/// [`BATCH_ROWS`] rows (a one-row append would otherwise allocate and
/// free hundreds of kilobytes).
fn text_batch_size(len: u64) -> (usize, usize) {
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    let rows = (len / 2).saturating_add(1).min(BATCH_ROWS);
    let buffer = len.clamp(64, 64 * 1024);
    (rows, buffer)
}

type ArrowBatches =
    Box<dyn Iterator<Item = std::result::Result<RecordBatch, arrow::error::ArrowError>> + Send>;

/// An Arrow reader's batches with its errors and panics turned into
/// [`Error::InvalidUpload`]; it ends after the first.
struct Contained {
    format: UploadFormat,
    batches: Option<ArrowBatches>,
}

impl Iterator for Contained {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let batches = self.batches.as_mut()?;
        let format = self.format;
        let next = contain_panics(format, || {
            batches.next().transpose().map_err(|e| format.invalid(e))
        });
        match next {
            Ok(Some(batch)) => Some(Ok(batch)),
            Ok(None) => {
                self.batches = None;
                None
            }
            Err(e) => {
                self.batches = None;
                Some(Err(e))
            }
        }
    }
}

/// A reader over an Arrow IPC stream whose framing fits the upload (see
/// [`ipc_framing`]).
fn checked_ipc(source: &impl UploadSource) -> Result<BufReader<Box<dyn ReadSeek>>> {
    let mut reader = source.reader()?;
    ipc_framing::check_stream(&mut reader, source.len())
        .map_err(|why| UploadFormat::Arrow.invalid(why))?;
    Ok(BufReader::new(reader))
}

/// The Parquet reader of an upload whose footer fits the file and whose
/// pages declare sizes a reader can hold (see [`check_layout`] and
/// [`check_pages`]).
fn parquet_builder<S: UploadSource>(source: &S) -> Result<ParquetRecordBatchReaderBuilder<S>> {
    let invalid = |e: &dyn std::fmt::Display| UploadFormat::Parquet.invalid(e);
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(source.duplicate()?).map_err(|e| invalid(&e))?;
    let as_upload = |e: Error| match e {
        Error::Corrupt { reason, .. } => invalid(&reason),
        other => other,
    };
    check_layout("the upload", builder.metadata(), source.len()).map_err(as_upload)?;
    check_pages("the upload", builder.metadata(), source).map_err(as_upload)?;
    Ok(builder)
}

/// Runs a decoder step, turning a panic in it into
/// [`Error::InvalidUpload`]: Arrow's and Parquet's decoders still assert on
/// some malformed input.
fn contain_panics<T>(format: UploadFormat, step: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_decoder_panic(step).unwrap_or_else(|message| {
        Err(format.invalid(format_args!("the decoder failed on its data: {message}")))
    })
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;

    fn batch() -> RecordBatch {
        RecordBatch::try_from_iter(vec![
            (
                "id",
                Arc::new(Int64Array::from(vec![1, 2, 3])) as arrow::array::ArrayRef,
            ),
            (
                "name",
                Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])),
            ),
        ])
        .unwrap()
    }

    #[test]
    fn small_bodies_get_small_batches_and_every_row_is_read() {
        assert_eq!(text_batch_size(0), (1, 64));
        assert_eq!(text_batch_size(20), (11, 64));
        assert_eq!(text_batch_size(1 << 30), (BATCH_ROWS, 64 * 1024));
        // The tightest rows there are: `{}` and a line end, the last
        // without one. Every row is read, however the batches fall.
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        for rows in [1, 2, 3, 50, 10_000] {
            let body = Bytes::from(vec!["{}"; rows].join("\n"));
            let read: usize = decode(&body, UploadFormat::Json, schema.clone())
                .unwrap()
                .map(|b| b.unwrap().num_rows())
                .sum();
            assert_eq!(read, rows);
        }
        let body = Bytes::from(format!("a\n{}", vec!["1"; 5000].join("\n")));
        let read: usize = decode(&body, UploadFormat::Csv, schema)
            .unwrap()
            .map(|b| b.unwrap().num_rows())
            .sum();
        assert_eq!(read, 5000);
    }

    fn encoded(format: UploadFormat) -> Bytes {
        let batch = batch();
        let mut out = Vec::new();
        match format {
            UploadFormat::Csv => arrow::csv::Writer::new(&mut out).write(&batch).unwrap(),
            UploadFormat::Json => {
                let mut writer = arrow::json::LineDelimitedWriter::new(&mut out);
                writer.write(&batch).unwrap();
                writer.finish().unwrap();
            }
            UploadFormat::Arrow => {
                let mut writer =
                    arrow::ipc::writer::StreamWriter::try_new(&mut out, &batch.schema()).unwrap();
                writer.write(&batch).unwrap();
                writer.finish().unwrap();
            }
            UploadFormat::Parquet => {
                let mut writer =
                    parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
                writer.write(&batch).unwrap();
                writer.close().unwrap();
            }
        }
        Bytes::from(out)
    }

    #[test]
    fn every_format_decodes_to_the_rows_sent() {
        for format in [
            UploadFormat::Csv,
            UploadFormat::Json,
            UploadFormat::Arrow,
            UploadFormat::Parquet,
        ] {
            let source = encoded(format);
            let schema = infer_schema(&source, format).unwrap();
            assert_eq!(schema.field(0).name(), "id", "{format:?}");
            let batches: Vec<RecordBatch> = decode(&source, format, schema)
                .unwrap()
                .collect::<Result<_>>()
                .unwrap();
            let ids: Vec<i64> = batches
                .iter()
                .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
                .collect();
            assert_eq!(ids, vec![1, 2, 3], "{format:?}");
            assert_eq!(batches[0].column(1).null_count(), 1, "{format:?}");
        }
    }

    #[test]
    fn a_bad_row_midway_ends_the_batches_with_an_error() {
        let mut text = String::from("id,name\n");
        for i in 0..(BATCH_ROWS + 10) {
            text.push_str(&format!("{i},n{i}\n"));
        }
        text.push_str("not a number,x\n");
        let source = Bytes::from(text);
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let mut batches = decode(&source, UploadFormat::Csv, schema).unwrap();
        assert!(batches.next().unwrap().is_ok());
        let err = batches.next().unwrap().unwrap_err();
        assert!(
            matches!(err, Error::InvalidUpload { format: "CSV", .. }),
            "{err}"
        );
        assert!(batches.next().is_none(), "nothing follows an error");
    }

    #[test]
    fn parquet_the_decoder_panics_on_is_an_invalid_upload() {
        // Files on which the parquet crate's page decoders panic (found by
        // fuzzing checkpoints); as uploads they must be refused the same way.
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/regressions/checkpoint"
        );
        let mut refused = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let source = Bytes::from(std::fs::read(entry.unwrap().path()).unwrap());
            let outcome = infer_schema(&source, UploadFormat::Parquet).and_then(|schema| {
                decode(&source, UploadFormat::Parquet, schema)?.collect::<Result<Vec<_>>>()
            });
            let err = outcome.unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidUpload {
                        format: "Parquet",
                        ..
                    }
                ),
                "{err}"
            );
            refused += 1;
        }
        assert!(refused >= 3, "{refused}");
    }

    #[test]
    fn uploads_the_fuzzers_found_decoder_panics_in_are_invalid_uploads() {
        // Found by libFuzzer: arrow's IPC reader slicing a buffer past its
        // length, parquet's decoder reading a bitmap past its end.
        for (dir, format) in [
            ("upload_arrow", UploadFormat::Arrow),
            ("upload_parquet", UploadFormat::Parquet),
        ] {
            let dir = format!("{}/../fuzz/regressions/{dir}", env!("CARGO_MANIFEST_DIR"));
            for entry in std::fs::read_dir(dir).unwrap() {
                let source = Bytes::from(std::fs::read(entry.unwrap().path()).unwrap());
                let outcome = infer_schema(&source, format).and_then(|schema| {
                    decode(&source, format, schema)?.collect::<Result<Vec<_>>>()
                });
                let err = outcome.unwrap_err();
                assert!(matches!(err, Error::InvalidUpload { .. }), "{err}");
            }
        }
    }

    #[test]
    fn an_arrow_stream_declaring_more_than_it_holds_is_refused() {
        let mut bytes = encoded(UploadFormat::Arrow).to_vec();
        bytes.truncate(bytes.len() - 20);
        let err = decode(&Bytes::from(bytes), UploadFormat::Arrow, batch().schema())
            .err()
            .unwrap();
        assert!(matches!(err, Error::InvalidUpload { .. }), "{err}");
    }

    #[test]
    fn content_types_name_their_formats() {
        assert_eq!(
            UploadFormat::from_content_type("text/csv; charset=utf-8"),
            Some(UploadFormat::Csv)
        );
        assert_eq!(
            UploadFormat::from_content_type("application/vnd.apache.arrow.stream"),
            Some(UploadFormat::Arrow)
        );
        assert_eq!(UploadFormat::from_content_type("text/plain"), None);
    }
}
