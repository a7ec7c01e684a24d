//! `POST /api/v1/tables/{namespace}/{table}/upload`: bulk append of a
//! Parquet, CSV (with header), newline-delimited JSON or Arrow IPC stream
//! body. The body is spooled to a temporary file as it arrives (at most
//! `limits.max_upload_bytes`), decoded against the table's schema batch by
//! batch, and committed once. An `Idempotency-Key` header makes retries
//! safe: the key is recorded as an application transaction, and a second
//! upload with it commits nothing. With `?create=true` a missing table is
//! created from the upload, its schema inferred from the file, in the same
//! single commit.

use std::io::{BufReader, Seek, SeekFrom};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::{ApiError, check_name};
use crate::auth::Principal;
use crate::state::AppState;
use wavelake_engine::write::{SaveMode, WriteOptions, write};

/// Upload formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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
    fn from_content_type(value: &str) -> Option<Self> {
        let value = value.split(';').next().unwrap_or("").trim();
        Some(match value {
            "application/vnd.apache.parquet" | "application/x-parquet" => Self::Parquet,
            "text/csv" => Self::Csv,
            "application/x-ndjson" | "application/jsonl" | "application/json" => Self::Json,
            "application/vnd.apache.arrow.stream" => Self::Arrow,
            _ => return None,
        })
    }
}

/// `?format=` and `?create=true` (make the table from the upload when it
/// does not exist, its schema inferred from the file).
#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    format: Option<UploadFormat>,
    #[serde(default)]
    create: bool,
}

/// Rows decoded per batch.
const BATCH_ROWS: usize = 8192;

/// Appends the body to the table.
pub async fn upload(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((namespace, table)): Path<(String, String)>,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let namespace = state.namespace_for(&principal, Some(&namespace))?;
    check_name("table", &table)?;
    state.may_write(&principal, &namespace)?;
    let format = query
        .format
        .or_else(|| {
            headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(UploadFormat::from_content_type)
        })
        .ok_or_else(|| {
            ApiError::bad_request(
                "say the format: ?format=parquet|csv|json|arrow, or a Content-Type of \
                 application/vnd.apache.parquet, text/csv, application/x-ndjson or \
                 application/vnd.apache.arrow.stream",
            )
        })?;
    let key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 200)
                .map(str::to_owned)
                .ok_or_else(|| ApiError::bad_request("Idempotency-Key must be 1 to 200 characters"))
        })
        .transpose()?;
    let engine = state.session(&principal, &namespace).await?;
    let name = format!("{namespace}.{table}");
    let target = engine.table(&name);
    if target.is_none() && !query.create {
        return Err(ApiError::not_found(format!(
            "table {name} does not exist (upload with ?create=true to create it from the file)"
        )));
    }
    if target.is_none() && key.is_some() {
        return Err(ApiError::bad_request(
            "an Idempotency-Key makes appends safe to retry; a create happens once (a second \
             one finds the table), so send the key only once the table exists",
        ));
    }
    let limit = state.config.limits.max_upload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large(limit));
    }
    let mut spooled = spool(body, limit).await?;
    let schema = match &target {
        Some(target) => target.snapshot().await?.arrow_schema(),
        None => {
            let inferred = tokio::task::spawn_blocking(move || {
                let schema = infer_schema(&mut spooled, format);
                (spooled, schema)
            })
            .await
            .map_err(ApiError::internal)?;
            spooled = inferred.0;
            inferred.1?
        }
    };
    let (sender, receiver) = tokio::sync::mpsc::channel::<wavelake_engine::Result<RecordBatch>>(4);
    let decoded_schema = schema.clone();
    let decoder =
        tokio::task::spawn_blocking(move || decode(spooled, format, decoded_schema, &sender));
    let batches = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    let Some(target) = target else {
        let created = engine
            .create_table_from_stream(&name, &schema, batches)
            .await;
        let decoded = decoder.await.map_err(ApiError::internal)?;
        let rows = created?;
        decoded?;
        metrics::counter!("wavelake_commits_total").increment(1);
        metrics::counter!("wavelake_upload_rows_total").increment(rows);
        return Ok((
            StatusCode::CREATED,
            Json(json!({"version": 0, "rows": rows, "created": true})),
        ));
    };
    let options = WriteOptions {
        mode: SaveMode::Append,
        app_transaction: key.clone().map(|k| (format!("wavelake-upload:{k}"), 1)),
    };
    let outcome = write(&target, batches.boxed(), &options).await;
    let decoded = decoder.await.map_err(ApiError::internal)?;
    let outcome = outcome?;
    decoded?;
    match outcome.version {
        Some(version) => {
            metrics::counter!("wavelake_commits_total").increment(1);
            metrics::counter!("wavelake_upload_rows_total").increment(outcome.rows);
            Ok((
                StatusCode::CREATED,
                Json(
                    json!({"version": version, "rows": outcome.rows, "files": outcome.files_added}),
                ),
            ))
        }
        None => Ok((
            StatusCode::OK,
            Json(json!({"version": null, "rows": 0, "already_applied": key})),
        )),
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "UPLOAD_TOO_LARGE",
        format!("uploads are limited to {limit} bytes"),
    )
}

/// Writes the body to an anonymous temporary file, refusing more than
/// `limit` bytes.
async fn spool(body: Body, limit: usize) -> Result<std::fs::File, ApiError> {
    let file = tempfile::tempfile().map_err(ApiError::internal)?;
    let mut writer = tokio::fs::File::from_std(file.try_clone().map_err(ApiError::internal)?);
    let mut stream = body.into_data_stream();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("upload interrupted: {e}")))?;
        total += chunk.len();
        if total > limit {
            return Err(too_large(limit));
        }
        writer.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    writer.flush().await.map_err(ApiError::internal)?;
    if total == 0 {
        return Err(ApiError::bad_request("the upload is empty"));
    }
    Ok(file)
}

/// Rows read to infer a CSV or JSON upload's schema.
const INFER_ROWS: usize = 1000;

/// The schema of a spooled upload: a Parquet or Arrow file's own, or the
/// types a CSV or JSON file's first rows hold.
fn infer_schema(file: &mut std::fs::File, format: UploadFormat) -> Result<SchemaRef, ApiError> {
    let bad = |e: &dyn std::fmt::Display| {
        ApiError::bad_request(format!("the upload is not valid {format:?}: {e}"))
    };
    file.seek(SeekFrom::Start(0)).map_err(ApiError::internal)?;
    let copy = file.try_clone().map_err(ApiError::internal)?;
    let schema = match format {
        UploadFormat::Csv => {
            let (schema, _) = arrow::csv::reader::Format::default()
                .with_header(true)
                .infer_schema(BufReader::new(copy), Some(INFER_ROWS))
                .map_err(|e| bad(&e))?;
            Arc::new(schema)
        }
        UploadFormat::Json => {
            let (schema, _) =
                arrow::json::reader::infer_json_schema(BufReader::new(copy), Some(INFER_ROWS))
                    .map_err(|e| bad(&e))?;
            Arc::new(schema)
        }
        UploadFormat::Arrow => {
            let mut copy = copy;
            check_ipc_framing(&mut copy)?;
            arrow::ipc::reader::StreamReader::try_new(BufReader::new(copy), None)
                .map_err(|e| bad(&e))?
                .schema()
        }
        UploadFormat::Parquet => {
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(copy)
                .map_err(|e| bad(&e))?
                .schema()
                .clone()
        }
    };
    if schema.fields().is_empty() {
        return Err(ApiError::bad_request("the upload has no columns"));
    }
    Ok(schema)
}

/// Refuses an Arrow IPC stream whose messages declare more bytes than the
/// upload holds (see [`super::ipc_framing`]).
fn check_ipc_framing(file: &mut std::fs::File) -> Result<(), ApiError> {
    let len = file.metadata().map_err(ApiError::internal)?.len();
    super::ipc_framing::check_stream(file, len)
        .map_err(|why| ApiError::bad_request(format!("the upload is not valid Arrow: {why}")))
}

/// Decodes the spooled file, sending batches to the writer; a file that
/// fails to decode, at its start or midway, sends the writer an error, so
/// that nothing of it is committed.
fn decode(
    file: std::fs::File,
    format: UploadFormat,
    schema: SchemaRef,
    sender: &tokio::sync::mpsc::Sender<wavelake_engine::Result<RecordBatch>>,
) -> Result<(), ApiError> {
    let decoded = decode_batches(file, format, schema, sender);
    if let Err(error) = &decoded {
        let _ = sender.blocking_send(Err(wavelake_engine::Error::SchemaMismatch(
            error.message.clone(),
        )));
    }
    decoded
}

fn decode_batches(
    mut file: std::fs::File,
    format: UploadFormat,
    schema: SchemaRef,
    sender: &tokio::sync::mpsc::Sender<wavelake_engine::Result<RecordBatch>>,
) -> Result<(), ApiError> {
    let bad = |e: &dyn std::fmt::Display| {
        ApiError::bad_request(format!("the upload is not valid {format:?}: {e}"))
    };
    file.seek(SeekFrom::Start(0)).map_err(ApiError::internal)?;
    let batches: Box<dyn Iterator<Item = Result<RecordBatch, arrow::error::ArrowError>>> =
        match format {
            UploadFormat::Csv => Box::new(
                arrow::csv::ReaderBuilder::new(schema)
                    .with_header(true)
                    .with_batch_size(BATCH_ROWS)
                    .build(BufReader::new(file))
                    .map_err(|e| bad(&e))?,
            ),
            UploadFormat::Json => Box::new(
                arrow::json::ReaderBuilder::new(schema)
                    .with_batch_size(BATCH_ROWS)
                    .build(BufReader::new(file))
                    .map_err(|e| bad(&e))?,
            ),
            UploadFormat::Arrow => {
                check_ipc_framing(&mut file)?;
                Box::new(
                    arrow::ipc::reader::StreamReader::try_new(BufReader::new(file), None)
                        .map_err(|e| bad(&e))?,
                )
            }
            UploadFormat::Parquet => Box::new(
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .map_err(|e| bad(&e))?
                    .with_batch_size(BATCH_ROWS)
                    .build()
                    .map_err(|e| bad(&e))?,
            ),
        };
    for batch in batches {
        match batch {
            Ok(batch) => {
                if sender.blocking_send(Ok(batch)).is_err() {
                    return Ok(());
                }
            }
            Err(e) => return Err(bad(&e)),
        }
    }
    Ok(())
}
