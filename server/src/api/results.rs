//! Query results as HTTP bodies: JSON (default), CSV or an Arrow IPC
//! stream, as `Accept` asks. A result that fits in [`BUFFERED_BYTES`] is
//! sent whole, with `x-wavelake-row-count` and `x-wavelake-truncated`
//! headers; a larger one is encoded batch by batch as the query produces
//! it, so the server holds one batch of it at a time rather than the
//! whole result several times over. A streamed JSON body ends with its
//! `row_count` and `truncated`; a streamed CSV or Arrow body has no
//! headers saying so (they would have to be sent before the rows).

use std::pin::Pin;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use axum::body::Body;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use datafusion::execution::SendableRecordBatchStream;
use futures::{Stream, StreamExt};
use serde_json::json;

use crate::error::ApiError;

/// The media type of an Arrow IPC stream.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// Results up to this many bytes (in Arrow memory) are sent whole.
pub const BUFFERED_BYTES: usize = 8 << 20;

/// The encodings a result can be sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `{"columns": […], "rows": [{…}, …], "row_count": n, "truncated": b}`.
    Json,
    /// CSV with a header line, text cells made spreadsheet-safe.
    Csv,
    /// An Arrow IPC stream.
    Arrow,
}

impl Encoding {
    /// The encoding `Accept` asks for (JSON unless it names another).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json");
        if accept.contains(ARROW_STREAM) {
            Self::Arrow
        } else if accept.contains("text/csv") {
            Self::Csv
        } else {
            Self::Json
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Arrow => ARROW_STREAM,
        }
    }
}

/// Encodes one result, batch by batch.
pub struct ResultEncoder {
    encoding: Encoding,
    schema: SchemaRef,
    /// Arrow: the IPC writer, its buffer drained after every batch.
    arrow: Option<arrow::ipc::writer::StreamWriter<Vec<u8>>>,
    batches: usize,
}

impl ResultEncoder {
    /// An encoder of a result with `schema`.
    pub fn new(encoding: Encoding, schema: SchemaRef) -> Result<Self, ApiError> {
        let arrow = match encoding {
            Encoding::Arrow => Some(
                arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &schema)
                    .map_err(ApiError::internal)?,
            ),
            _ => None,
        };
        Ok(Self {
            encoding,
            schema,
            arrow,
            batches: 0,
        })
    }

    /// What comes before the rows.
    pub fn start(&mut self) -> Result<Bytes, ApiError> {
        Ok(match self.encoding {
            Encoding::Json => {
                let columns: Vec<serde_json::Value> = self
                    .schema
                    .fields()
                    .iter()
                    .map(|f| json!({"name": f.name(), "type": f.data_type().to_string(), "nullable": f.is_nullable()}))
                    .collect();
                let columns = serde_json::to_string(&columns).map_err(ApiError::internal)?;
                Bytes::from(format!("{{\"columns\":{columns},\"rows\":["))
            }
            Encoding::Csv => Bytes::new(),
            Encoding::Arrow => self.drain_arrow(),
        })
    }

    /// The rows of one batch.
    pub fn batch(&mut self, batch: &RecordBatch) -> Result<Bytes, ApiError> {
        if batch.num_rows() == 0 && self.encoding != Encoding::Csv {
            return Ok(Bytes::new());
        }
        let first = self.batches == 0;
        self.batches += 1;
        Ok(match self.encoding {
            Encoding::Json => {
                let mut lines = Vec::new();
                let mut writer = arrow::json::LineDelimitedWriter::new(&mut lines);
                writer
                    .write(&json_safe(batch)?)
                    .map_err(ApiError::internal)?;
                writer.finish().map_err(ApiError::internal)?;
                // One object a line; strings escape their newlines, so the
                // line breaks are exactly the separators.
                if lines.last() == Some(&b'\n') {
                    lines.pop();
                }
                for byte in &mut lines {
                    if *byte == b'\n' {
                        *byte = b',';
                    }
                }
                if !first && !lines.is_empty() {
                    lines.insert(0, b',');
                }
                Bytes::from(lines)
            }
            Encoding::Csv => {
                let mut out = Vec::new();
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(first)
                    .build(&mut out);
                writer
                    .write(&spreadsheet_safe(batch)?)
                    .map_err(ApiError::internal)?;
                drop(writer);
                Bytes::from(out)
            }
            Encoding::Arrow => {
                if let Some(writer) = &mut self.arrow {
                    writer.write(batch).map_err(ApiError::internal)?;
                }
                self.drain_arrow()
            }
        })
    }

    /// What comes after the rows.
    pub fn finish(&mut self, rows: usize, truncated: bool) -> Result<Bytes, ApiError> {
        Ok(match self.encoding {
            Encoding::Json => Bytes::from(format!(
                "],\"row_count\":{rows},\"truncated\":{truncated}}}"
            )),
            Encoding::Csv if self.batches == 0 => {
                // No rows: the header line alone.
                let empty = RecordBatch::new_empty(self.schema.clone());
                self.batch(&empty)?
            }
            Encoding::Csv => Bytes::new(),
            Encoding::Arrow => {
                if let Some(writer) = &mut self.arrow {
                    writer.finish().map_err(ApiError::internal)?;
                }
                self.drain_arrow()
            }
        })
    }

    fn drain_arrow(&mut self) -> Bytes {
        self.arrow
            .as_mut()
            .map(|writer| Bytes::from(std::mem::take(writer.get_mut())))
            .unwrap_or_default()
    }
}

/// A whole result as a response, with its row count in headers.
pub fn respond(
    headers: &HeaderMap,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    truncated: bool,
) -> Result<Response, ApiError> {
    let encoding = Encoding::from_headers(headers);
    let mut encoder = ResultEncoder::new(encoding, schema.clone())?;
    let mut body = encoder.start()?.to_vec();
    let mut rows = 0;
    for batch in batches {
        rows += batch.num_rows();
        body.extend_from_slice(&encoder.batch(batch)?);
    }
    body.extend_from_slice(&encoder.finish(rows, truncated)?);
    let mut response = ([(header::CONTENT_TYPE, encoding.content_type())], body).into_response();
    for (name, value) in [
        ("x-wavelake-row-count", rows.to_string()),
        ("x-wavelake-truncated", truncated.to_string()),
    ] {
        if let Ok(value) = value.parse() {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}

/// How a result stream is cut and bounded.
#[derive(Debug, Clone, Copy)]
pub struct ResultLimits {
    /// Rows sent at most; the rest is cut (and the result marked truncated).
    pub max_rows: usize,
    /// When the query must have produced its last row.
    pub deadline: tokio::time::Instant,
}

/// What reading a result's first part gave.
pub enum Prefetched {
    /// The whole result: sent with its headers.
    Whole {
        /// Its columns.
        schema: SchemaRef,
        /// Its batches.
        batches: Vec<RecordBatch>,
        /// Whether rows were cut at the limit.
        truncated: bool,
    },
    /// More than [`BUFFERED_BYTES`]: the batches read so far and the rest
    /// of the stream, to be sent as they come.
    Streaming {
        /// The batches read so far.
        head: Vec<RecordBatch>,
        /// The rest.
        rest: SendableRecordBatchStream,
        /// Rows in `head`.
        rows: usize,
    },
}

/// Reads `stream` until it ends or holds more than [`BUFFERED_BYTES`],
/// cutting rows at `limits.max_rows`.
pub async fn prefetch(
    mut stream: SendableRecordBatchStream,
    limits: ResultLimits,
) -> wavelake_engine::Result<Prefetched> {
    let schema = stream.schema();
    let mut batches = Vec::new();
    let mut rows = 0usize;
    let mut bytes = 0usize;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let room = limits.max_rows - rows;
        if batch.num_rows() > room {
            batches.push(batch.slice(0, room));
            return Ok(Prefetched::Whole {
                schema,
                batches,
                truncated: true,
            });
        }
        rows += batch.num_rows();
        bytes += batch.get_array_memory_size();
        batches.push(batch);
        if bytes > BUFFERED_BYTES {
            return Ok(Prefetched::Streaming {
                head: batches,
                rest: stream,
                rows,
            });
        }
    }
    Ok(Prefetched::Whole {
        schema,
        batches,
        truncated: false,
    })
}

/// A result larger than [`BUFFERED_BYTES`] as a streamed response: `head`
/// then the rest of the query's batches, encoded as they come, cut at
/// `limits.max_rows`. A query failing or passing its deadline midway ends
/// the body with an error, so the client sees an incomplete response
/// rather than a short one that looks whole.
pub fn respond_streaming(
    headers: &HeaderMap,
    head: Vec<RecordBatch>,
    rest: SendableRecordBatchStream,
    rows: usize,
    limits: ResultLimits,
) -> Result<Response, ApiError> {
    let encoding = Encoding::from_headers(headers);
    let mut encoder = ResultEncoder::new(encoding, rest.schema())?;
    let mut first = encoder.start()?.to_vec();
    for batch in &head {
        first.extend_from_slice(&encoder.batch(batch)?);
    }
    let state = StreamState {
        encoder,
        rest: Some(rest),
        rows,
        limits,
    };
    let tail = futures::stream::unfold(state, StreamState::next_chunk);
    let body: Pin<Box<dyn Stream<Item = Result<Bytes, ApiError>> + Send>> =
        Box::pin(futures::stream::once(async move { Ok(Bytes::from(first)) }).chain(tail));
    let body =
        Body::from_stream(body.map(|chunk| chunk.map_err(|e| std::io::Error::other(e.message))));
    Ok(([(header::CONTENT_TYPE, encoding.content_type())], body).into_response())
}

/// The state of a streamed result between chunks.
struct StreamState {
    encoder: ResultEncoder,
    /// The query's batches; `None` once the end was sent.
    rest: Option<SendableRecordBatchStream>,
    rows: usize,
    limits: ResultLimits,
}

impl StreamState {
    /// The next chunk of the body: a batch's rows, or the end.
    async fn next_chunk(mut self) -> Option<(Result<Bytes, ApiError>, Self)> {
        let rest = self.rest.as_mut()?;
        let next = tokio::time::timeout_at(self.limits.deadline, rest.next()).await;
        let chunk = match next {
            Err(_) => Err(ApiError::bad_request(
                "the query passed its time limit midway",
            )),
            Ok(Some(Err(e))) => Err(ApiError::from(wavelake_engine::Error::from(e))),
            Ok(Some(Ok(batch))) => {
                let room = self.limits.max_rows - self.rows;
                if batch.num_rows() > room {
                    self.rows += room;
                    self.rest = None;
                    let cut = self.encoder.batch(&batch.slice(0, room));
                    let end = self.encoder.finish(self.rows, true);
                    cut.and_then(|cut| Ok([cut, end?].concat().into()))
                } else {
                    self.rows += batch.num_rows();
                    self.encoder.batch(&batch)
                }
            }
            Ok(None) => {
                self.rest = None;
                self.encoder.finish(self.rows, false)
            }
        };
        if chunk.is_err() {
            self.rest = None;
        }
        Some((chunk, self))
    }
}

/// `batch` with the keys of every map (however nested) as text: JSON
/// objects have only string keys, so a map keyed by numbers, dates or
/// anything else is written as `{"1": …}`, as Spark writes it.
fn json_safe(batch: &RecordBatch) -> Result<RecordBatch, ApiError> {
    let targets: Vec<DataType> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| text_keyed(f.data_type()))
        .collect();
    if targets
        .iter()
        .zip(batch.schema().fields())
        .all(|(target, field)| target == field.data_type())
    {
        return Ok(batch.clone());
    }
    let columns = batch
        .columns()
        .iter()
        .zip(&targets)
        .map(|(column, target)| arrow::compute::cast(column, target))
        .collect::<Result<Vec<ArrayRef>, _>>()
        .map_err(ApiError::internal)?;
    let fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .zip(targets)
        .map(|(field, target)| field.as_ref().clone().with_data_type(target))
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(ApiError::internal)
}

/// `data_type` with every map's key type made `Utf8`.
fn text_keyed(data_type: &DataType) -> DataType {
    let field =
        |f: &Arc<Field>| Arc::new(f.as_ref().clone().with_data_type(text_keyed(f.data_type())));
    match data_type {
        DataType::Map(entries, sorted) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return data_type.clone();
            };
            let kv: Vec<Arc<Field>> = kv
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    if i == 0
                        && !matches!(
                            f.data_type(),
                            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                        )
                    {
                        Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8))
                    } else {
                        field(f)
                    }
                })
                .collect();
            DataType::Map(
                Arc::new(
                    entries
                        .as_ref()
                        .clone()
                        .with_data_type(DataType::Struct(kv.into())),
                ),
                *sorted,
            )
        }
        DataType::List(f) => DataType::List(field(f)),
        DataType::LargeList(f) => DataType::LargeList(field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(field(f), *n),
        DataType::Struct(fields) => {
            DataType::Struct(fields.iter().map(field).collect::<Vec<_>>().into())
        }
        other => other.clone(),
    }
}

/// The batch with text a spreadsheet would run as a formula (starting with
/// `=`, `+`, `-`, `@`, a tab or a carriage return) prefixed with `'`, as
/// OWASP advises for CSV downloads: opened in a spreadsheet, a cell shows
/// the value instead of running it. Numbers are left alone.
pub fn spreadsheet_safe(batch: &RecordBatch) -> Result<RecordBatch, ApiError> {
    let risky = |text: &str| text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if !matches!(
            field.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) {
            fields.push(field.clone());
            columns.push(column.clone());
            continue;
        }
        let text = arrow::compute::cast(column, &DataType::Utf8).map_err(ApiError::internal)?;
        let text = text.as_string::<i32>();
        let safe: StringArray = text
            .iter()
            .map(|value| {
                value.map(|v| {
                    if risky(v) {
                        std::borrow::Cow::Owned(format!("'{v}"))
                    } else {
                        std::borrow::Cow::Borrowed(v)
                    }
                })
            })
            .collect();
        fields.push(Arc::new(Field::new(
            field.name(),
            DataType::Utf8,
            safe.null_count() > 0 || field.is_nullable(),
        )));
        columns.push(Arc::new(safe));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use arrow::array::Int64Array;

    use super::*;

    #[test]
    fn csv_cells_cannot_become_spreadsheet_formulas() {
        use arrow::array::{Int64Array, StringArray};
        let batch = RecordBatch::try_from_iter([
            (
                "s",
                Arc::new(StringArray::from(vec![
                    Some("=HYPERLINK(\"http://x\")"),
                    Some("+1"),
                    Some("-2"),
                    Some("@SUM(A1)"),
                    Some("plain"),
                    None,
                ])) as _,
            ),
            (
                "n",
                Arc::new(Int64Array::from(vec![-1, 2, 3, 4, 5, 6])) as _,
            ),
        ])
        .unwrap();
        let safe = spreadsheet_safe(&batch).unwrap();
        let text = safe
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let values: Vec<Option<&str>> = text.iter().collect();
        assert_eq!(
            values,
            vec![
                Some("'=HYPERLINK(\"http://x\")"),
                Some("'+1"),
                Some("'-2"),
                Some("'@SUM(A1)"),
                Some("plain"),
                None
            ]
        );
        assert_eq!(safe.column(1).as_ref(), batch.column(1).as_ref());
    }

    fn batch(from: i64, to: i64) -> RecordBatch {
        RecordBatch::try_from_iter([
            (
                "id",
                Arc::new(Int64Array::from_iter_values(from..to)) as ArrayRef,
            ),
            (
                "s",
                Arc::new(StringArray::from_iter_values(
                    (from..to).map(|i| format!("line\n{i}")),
                )) as ArrayRef,
            ),
        ])
        .unwrap()
    }

    fn encode(encoding: Encoding, batches: &[RecordBatch], truncated: bool) -> Vec<u8> {
        let mut encoder = ResultEncoder::new(encoding, batches[0].schema()).unwrap();
        let mut out = encoder.start().unwrap().to_vec();
        let mut rows = 0;
        for batch in batches {
            rows += batch.num_rows();
            out.extend_from_slice(&encoder.batch(batch).unwrap());
        }
        out.extend_from_slice(&encoder.finish(rows, truncated).unwrap());
        out
    }

    #[test]
    fn maps_with_keys_other_than_text_are_json_objects() {
        use arrow::array::{Int32Builder, MapBuilder, StringBuilder};
        let mut builder = MapBuilder::new(None, Int32Builder::new(), StringBuilder::new());
        builder.keys().append_value(1);
        builder.values().append_value("a");
        builder.keys().append_value(20);
        builder.values().append_null();
        builder.append(true).unwrap();
        builder.append(false).unwrap();
        let map = builder.finish();
        let schema = Arc::new(Schema::new(vec![Field::new(
            "m",
            map.data_type().clone(),
            true,
        )]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(map)]).unwrap();
        let text = encode(Encoding::Json, &[batch], false);
        let value: serde_json::Value = serde_json::from_slice(&text).unwrap();
        // Null values are left out, as null columns of a row are.
        assert_eq!(value["rows"], json!([{"m": {"1": "a"}}, {}]));
    }

    #[test]
    fn json_encoded_batch_by_batch_is_one_document() {
        let parts = [batch(0, 3), batch(3, 3), batch(3, 5)];
        let text = encode(Encoding::Json, &parts, true);
        let value: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(value["row_count"], 5);
        assert_eq!(value["truncated"], true);
        let ids: Vec<i64> = value["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, vec![0, 1, 2, 3, 4]);
        assert_eq!(value["rows"][4]["s"], "line\n4");
        assert_eq!(value["columns"][0]["name"], "id");
        let empty = encode(Encoding::Json, &[batch(0, 0)], false);
        let value: serde_json::Value = serde_json::from_slice(&empty).unwrap();
        assert_eq!(value["rows"], json!([]));
    }

    #[test]
    fn csv_and_arrow_encoded_batch_by_batch_read_back_whole() {
        let parts = [batch(0, 3), batch(3, 5)];
        let text = String::from_utf8(encode(Encoding::Csv, &parts, false)).unwrap();
        assert!(text.starts_with("id,s\n"), "{text}");
        assert_eq!(text.matches("id,s").count(), 1, "one header line");
        let bytes = encode(Encoding::Arrow, &parts, false);
        let read: Vec<RecordBatch> =
            arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
                .unwrap()
                .map(Result::unwrap)
                .collect();
        let rows: usize = read.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 5);
        let header_only = String::from_utf8(encode(Encoding::Csv, &[batch(0, 0)], false)).unwrap();
        assert_eq!(header_only, "id,s\n");
    }

    fn stream_of(
        batches: Vec<datafusion::error::Result<RecordBatch>>,
    ) -> SendableRecordBatchStream {
        let schema = batch(0, 0).schema();
        Box::pin(
            datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                schema,
                futures::stream::iter(batches),
            ),
        )
    }

    fn limits(max_rows: usize) -> ResultLimits {
        ResultLimits {
            max_rows,
            deadline: tokio::time::Instant::now() + std::time::Duration::from_secs(60),
        }
    }

    /// 40 batches of 50,000 rows: well over [`BUFFERED_BYTES`].
    fn large() -> Vec<datafusion::error::Result<RecordBatch>> {
        (0..40)
            .map(|i| Ok(batch(i * 50_000, (i + 1) * 50_000)))
            .collect()
    }

    async fn streamed(
        batches: Vec<datafusion::error::Result<RecordBatch>>,
        max_rows: usize,
    ) -> Result<Bytes, axum::Error> {
        let Prefetched::Streaming { head, rest, rows } =
            prefetch(stream_of(batches), limits(max_rows))
                .await
                .unwrap()
        else {
            panic!("a large result is streamed");
        };
        assert!(rows < 2_000_000, "only the head is held: {rows} rows");
        let response =
            respond_streaming(&HeaderMap::new(), head, rest, rows, limits(max_rows)).unwrap();
        assert!(response.headers().get("x-wavelake-row-count").is_none());
        axum::body::to_bytes(response.into_body(), usize::MAX).await
    }

    #[tokio::test]
    async fn a_large_result_is_streamed_and_cut_at_the_row_limit() {
        let body = streamed(large(), usize::MAX).await.unwrap();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["row_count"], 2_000_000);
        assert_eq!(value["truncated"], false);
        assert_eq!(value["rows"][1_999_999]["id"], 1_999_999);
        let body = streamed(large(), 1_234_567).await.unwrap();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["row_count"], 1_234_567);
        assert_eq!(value["truncated"], true);
        assert_eq!(value["rows"].as_array().unwrap().len(), 1_234_567);
    }

    #[tokio::test]
    async fn a_query_failing_midway_breaks_the_body_instead_of_ending_it() {
        let mut batches = large();
        batches.push(Err(datafusion::error::DataFusionError::Execution(
            "disk on fire".into(),
        )));
        assert!(streamed(batches, usize::MAX).await.is_err());
    }

    #[tokio::test]
    async fn a_small_result_is_read_whole_with_its_schema() {
        let Prefetched::Whole {
            schema,
            batches,
            truncated,
        } = prefetch(stream_of(vec![]), limits(10)).await.unwrap()
        else {
            panic!("an empty result is whole");
        };
        assert_eq!(schema.field(0).name(), "id");
        assert!(batches.is_empty() && !truncated);
    }
}
