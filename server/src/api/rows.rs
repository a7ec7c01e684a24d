//! `POST /api/v1/tables/{namespace}/{table}/rows`: buffered ingest. The
//! body (newline-delimited JSON, CSV with a header, or an Arrow IPC
//! stream; one row or many) is checked against the table, appended to the
//! table's write-ahead log and acknowledged once on disk: `202` with its
//! sequence number. The rows reach the Delta table with the next flush
//! (`[ingest]`: every `flush_interval_ms` or `flush_rows`), one commit for
//! everything buffered. Queries through this server read them at once
//! (the session merges the buffer with the latest snapshot); Delta readers
//! elsewhere see them from the flush on. A full
//! buffer answers `429` with `Retry-After`, and nothing of the body is
//! kept; a body is appended whole or not at all.

use std::sync::Arc;

use arrow::array::RecordBatch;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::names::check_name;
use crate::state::AppState;
use wavelake_write::ingest::{self, UploadFormat};

/// Bodies larger than this are decoded off the async workers.
const INLINE_DECODE_BYTES: usize = 64 * 1024;

/// `?format=`.
#[derive(Debug, Deserialize)]
pub struct RowsQuery {
    format: Option<UploadFormat>,
}

/// Appends the body's rows to the table's write buffer.
pub async fn append_rows(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((namespace, table)): Path<(String, String)>,
    Query(query): Query<RowsQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let namespace = state.namespace_for(&principal, Some(&namespace))?;
    check_name("table", &table)?;
    state.may_write(&principal, &namespace)?;
    let format = super::upload::body_format(
        query.format,
        &headers,
        "say the format: ?format=json|csv|arrow, or a Content-Type of \
         application/x-ndjson, text/csv or application/vnd.apache.arrow.stream",
    )?;
    if body.is_empty() {
        return Err(ApiError::bad_request("the body holds no rows"));
    }
    let buffer = state.buffer(&namespace, &table).await?;
    let schema = buffer.decode_schema().clone();
    let batch = if body.len() <= INLINE_DECODE_BYTES {
        decode(&body, format, schema)?
    } else {
        tokio::task::spawn_blocking(move || decode(&body, format, schema))
            .await
            .map_err(ApiError::internal)??
    };
    let appended = buffer.append(&batch).await?;
    metrics::counter!("wavelake_buffered_rows_total").increment(appended.rows as u64);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "rows": appended.rows,
            "sequence": appended.sequence,
            "buffered": true,
        })),
    ))
}

/// The body's rows (decoded as `schema`, the table's with every column
/// nullable) as one batch, so that they are appended whole.
fn decode(
    body: &Bytes,
    format: UploadFormat,
    schema: arrow::datatypes::SchemaRef,
) -> wavelake_engine::Result<RecordBatch> {
    let mut batches: Vec<RecordBatch> =
        ingest::decode(body, format, schema.clone())?.collect::<wavelake_engine::Result<_>>()?;
    if batches.len() == 1
        && let Some(batch) = batches.pop()
    {
        return Ok(batch);
    }
    let schema = batches.first().map_or(schema, RecordBatch::schema);
    arrow::compute::concat_batches(&schema, &batches)
        .map_err(|e| wavelake_engine::Error::Arrow(Arc::new(e)))
}
