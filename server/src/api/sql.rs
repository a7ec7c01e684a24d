//! `POST /api/v1/sql`: one statement, any the engine runs (queries, DDL,
//! DML, maintenance), in a sandboxed session of the caller's namespace.
//! Results as JSON (default), CSV or an Arrow IPC stream by `Accept`, cut
//! at the row cap, within the time and memory limits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;

use super::ApiError;
use crate::auth::Principal;
use crate::state::AppState;
use wavelake_engine::{Access, Statement};

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    /// One SQL statement.
    pub sql: String,
    /// The namespace unqualified names resolve in.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// The media type of an Arrow IPC stream.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// Whether `statement` may run in `namespace`: a write needs `may_write`
/// (the caller's right, the store's safety) for the session's namespace
/// and the namespace of every table it names. The session of a principal that may not write is
/// read-only besides, so the plan that runs is checked again.
fn authorize(
    namespace: &str,
    statement: &Statement,
    may_write: impl Fn(&str) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    if statement.access() == Access::Read {
        return Ok(());
    }
    let namespaces = std::iter::once(namespace).chain(
        statement
            .writes()
            .iter()
            .map(|table| table.split_once('.').map_or(namespace, |(ns, _)| ns)),
    );
    for namespace in namespaces {
        may_write(namespace)?;
    }
    Ok(())
}

/// Runs the statement.
pub async fn run_sql(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
    Json(request): Json<SqlRequest>,
) -> Result<Response, ApiError> {
    if let Some(statement) = crate::sharing::sql::parse(&request.sql) {
        let batch = crate::sharing::sql::run(&state, &principal, statement?).await?;
        return respond(&headers, &batch.schema(), &[batch], false);
    }
    let namespace = state.namespace_for(&principal, request.namespace.as_deref())?;
    let statement = Statement::parse(&request.sql)?;
    authorize(&namespace, &statement, |ns| state.may_write(&principal, ns))?;
    let writes = statement.access() == Access::Write;
    let engine = state.session(&principal, &namespace).await?;
    let limits = state.config.limits.clone();
    let started = Instant::now();
    let work = async {
        let frame = engine.execute(statement).await?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let mut stream = frame.execute_stream().await?;
        let mut batches = Vec::new();
        let mut rows = 0usize;
        let mut truncated = false;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(wavelake_engine::Error::from)?;
            let room = limits.max_result_rows - rows;
            if batch.num_rows() > room {
                batches.push(batch.slice(0, room));
                truncated = true;
                break;
            }
            rows += batch.num_rows();
            batches.push(batch);
        }
        Ok::<_, wavelake_engine::Error>((schema, batches, truncated))
    };
    let outcome = tokio::time::timeout(Duration::from_secs(limits.query_timeout_secs), work).await;
    metrics::histogram!("wavelake_query_duration_seconds").record(started.elapsed().as_secs_f64());
    let (schema, batches, truncated) = match outcome {
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "QUERY_TIMEOUT",
                format!(
                    "the statement ran longer than the limit of {} s",
                    limits.query_timeout_secs
                ),
            ));
        }
        Ok(Err(e)) => {
            if matches!(e, wavelake_engine::Error::CommitConflict { .. }) {
                metrics::counter!("wavelake_commit_conflicts_total").increment(1);
            }
            return Err(e.into());
        }
        Ok(Ok(result)) => result,
    };
    if writes {
        metrics::counter!("wavelake_commits_total").increment(1);
    }
    respond(&headers, &schema, &batches, truncated)
}

/// The result in the format `Accept` asks for.
pub fn respond(
    headers: &HeaderMap,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    truncated: bool,
) -> Result<Response, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let extra = [
        ("x-wavelake-row-count", rows.to_string()),
        ("x-wavelake-truncated", truncated.to_string()),
    ];
    if accept.contains(ARROW_STREAM) {
        let mut buffer = Vec::new();
        {
            let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut buffer, schema)
                .map_err(ApiError::internal)?;
            for batch in batches {
                writer.write(batch).map_err(ApiError::internal)?;
            }
            writer.finish().map_err(ApiError::internal)?;
        }
        return Ok(with_headers(
            ([(header::CONTENT_TYPE, ARROW_STREAM.to_owned())], buffer).into_response(),
            &extra,
        ));
    }
    if accept.contains("text/csv") {
        let mut buffer = Vec::new();
        {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut buffer);
            if batches.is_empty() {
                writer
                    .write(&RecordBatch::new_empty(schema.clone()))
                    .map_err(ApiError::internal)?;
            }
            for batch in batches {
                writer
                    .write(&spreadsheet_safe(batch)?)
                    .map_err(ApiError::internal)?;
            }
        }
        return Ok(with_headers(
            (
                [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned())],
                buffer,
            )
                .into_response(),
            &extra,
        ));
    }
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    for batch in batches {
        writer.write(batch).map_err(ApiError::internal)?;
    }
    writer.finish().map_err(ApiError::internal)?;
    let body = writer.into_inner();
    let rows_json: serde_json::Value = if body.is_empty() {
        json!([])
    } else {
        serde_json::from_slice(&body).map_err(ApiError::internal)?
    };
    let columns: Vec<serde_json::Value> = schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string(), "nullable": f.is_nullable()}))
        .collect();
    Ok(with_headers(
        Json(json!({
            "columns": columns,
            "rows": rows_json,
            "row_count": rows,
            "truncated": truncated,
        }))
        .into_response(),
        &extra,
    ))
}

/// The batch with text a spreadsheet would run as a formula (starting with
/// `=`, `+`, `-`, `@`, a tab or a carriage return) prefixed with `'`, as
/// OWASP advises for CSV downloads: opened in a spreadsheet, a cell shows
/// the value instead of running it. Numbers are left alone.
fn spreadsheet_safe(batch: &RecordBatch) -> Result<RecordBatch, ApiError> {
    use arrow::array::{Array, ArrayRef, AsArray, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
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

fn with_headers(mut response: Response, extra: &[(&'static str, String)]) -> Response {
    for (name, value) in extra {
        if let Ok(value) = value.parse() {
            response.headers_mut().insert(*name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader() -> Principal {
        let mut principal = Principal::default();
        principal.namespaces.insert("acme".into(), false);
        principal.namespaces.insert("mine".into(), true);
        principal
    }

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

    #[test]
    fn writes_need_the_right_to_write_every_namespace_they_name() {
        let principal = reader();
        let check = |namespace: &str, sql: &str| {
            authorize(namespace, &Statement::parse(sql).unwrap(), |ns| {
                if principal.can_write(ns) {
                    Ok(())
                } else {
                    Err(ApiError::forbidden(ns))
                }
            })
        };
        assert!(check("acme", "SELECT * FROM t").is_ok());
        assert!(check("acme", "/* hi */ INSERT INTO t VALUES (1)").is_err());
        assert!(check("acme", "EXPLAIN ANALYZE DELETE FROM t").is_err());
        assert!(check("acme", "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x").is_err());
        assert!(check("mine", "INSERT INTO t VALUES (1)").is_ok());
        assert!(check("mine", "INSERT INTO acme.t VALUES (1)").is_err());
        assert!(
            check(
                "mine",
                "MERGE INTO acme.t USING s ON t.k = s.k WHEN MATCHED THEN DELETE"
            )
            .is_err()
        );
    }
}
