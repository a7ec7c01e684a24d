//! `POST /api/v1/tables/{namespace}/{table}/upload`: bulk append of a
//! Parquet, CSV (with header), newline-delimited JSON or Arrow IPC stream
//! body. The body is spooled to a temporary file as it arrives (at most
//! `limits.max_upload_bytes`), decoded against the table's schema batch by
//! batch, and committed once. An `Idempotency-Key` header makes retries
//! safe: the key is recorded as an application transaction, and a second
//! upload with it commits nothing. With `?create=true` a missing table is
//! created from the upload, its schema inferred from the file, in the same
//! single commit.

use std::sync::Arc;

use arrow::array::RecordBatch;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::names::check_name;
use crate::state::AppState;
use wavelake_write::ingest::{self, UploadFormat};
use wavelake_write::{SaveMode, WriteOptions, write};

/// `?format=` and `?create=true` (make the table from the upload when it
/// does not exist, its schema inferred from the file).
#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    format: Option<UploadFormat>,
    #[serde(default)]
    create: bool,
}

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
    let format = body_format(
        query.format,
        &headers,
        "say the format: ?format=parquet|csv|json|arrow, or a Content-Type of \
         application/vnd.apache.parquet, text/csv, application/x-ndjson or \
         application/vnd.apache.arrow.stream",
    )?;
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
            let (inferred, spooled_back) = tokio::task::spawn_blocking(move || {
                let schema = ingest::infer_schema(&spooled, format);
                (schema, spooled)
            })
            .await
            .map_err(ApiError::internal)?;
            spooled = spooled_back;
            inferred?
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
        let created =
            wavelake_write::create_table_from_stream(&engine, &name, &schema, batches).await;
        decoder.await.map_err(ApiError::internal)?;
        let rows = created?;
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
    decoder.await.map_err(ApiError::internal)?;
    let outcome = outcome?;
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

/// The format a body is in: `?format=`, else its `Content-Type`; a
/// `400` saying `how_to_say` when neither names one.
pub(super) fn body_format(
    query: Option<UploadFormat>,
    headers: &HeaderMap,
    how_to_say: &str,
) -> Result<UploadFormat, ApiError> {
    query
        .or_else(|| {
            headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(UploadFormat::from_content_type)
        })
        .ok_or_else(|| ApiError::bad_request(how_to_say))
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

/// Decodes the spooled file, sending batches to the writer; a file that
/// fails to decode, at its start or midway, sends the writer its error and
/// ends, so that nothing of it is committed and the writer answers with it.
fn decode(
    file: std::fs::File,
    format: UploadFormat,
    schema: arrow::datatypes::SchemaRef,
    sender: &tokio::sync::mpsc::Sender<wavelake_engine::Result<RecordBatch>>,
) {
    let batches = match ingest::decode(&file, format, schema) {
        Ok(batches) => batches,
        Err(error) => {
            let _ = sender.blocking_send(Err(error));
            return;
        }
    };
    for batch in batches {
        let failed = batch.is_err();
        if sender.blocking_send(batch).is_err() || failed {
            return;
        }
    }
}
