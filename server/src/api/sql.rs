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
use datafusion::sql::sqlparser::dialect::SparkSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;

use super::ApiError;
use crate::auth::Principal;
use crate::state::AppState;

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

/// Statements that change tables or the session, by first keyword.
const WRITE_KEYWORDS: &[&str] = &[
    "INSERT", "UPDATE", "DELETE", "MERGE", "CREATE", "DROP", "ALTER", "OPTIMIZE", "VACUUM",
    "RESTORE", "SET", "TRUNCATE", "COPY", "REPLACE",
];

/// What a statement is, from its words (comments and case ignored).
#[derive(Debug, PartialEq, Eq)]
pub enum StatementKind {
    /// Only reads.
    Read,
    /// Changes something.
    Write,
}

/// Classifies one statement; more than one is an error.
pub fn classify(sql: &str) -> Result<StatementKind, ApiError> {
    let tokens = Tokenizer::new(&SparkSqlDialect {}, sql)
        .tokenize()
        .map_err(|e| ApiError::bad_request(format!("SQL syntax error: {e}")))?;
    let significant: Vec<&Token> = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let last = significant
        .iter()
        .rposition(|t| !matches!(t, Token::SemiColon))
        .map_or(0, |i| i + 1);
    if significant[..last]
        .iter()
        .any(|t| matches!(t, Token::SemiColon))
    {
        return Err(ApiError::bad_request("send one statement per request"));
    }
    let words: Vec<String> = significant
        .iter()
        .take(4)
        .filter_map(|t| match t {
            Token::Word(w) => Some(w.value.to_ascii_uppercase()),
            _ => None,
        })
        .collect();
    let mut rest = words.as_slice();
    let mut analyze = false;
    if rest.first().is_some_and(|w| w == "EXPLAIN") {
        rest = &rest[1..];
        while let Some(flag) = rest.first() {
            if flag == "ANALYZE" {
                analyze = true;
            } else if flag != "VERBOSE" {
                break;
            }
            rest = &rest[1..];
        }
        if !analyze {
            return Ok(StatementKind::Read);
        }
    }
    let Some(first) = rest.first() else {
        return Err(ApiError::bad_request("the statement is empty"));
    };
    Ok(if WRITE_KEYWORDS.contains(&first.as_str()) {
        StatementKind::Write
    } else {
        StatementKind::Read
    })
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
    let kind = classify(&request.sql)?;
    if kind == StatementKind::Write && !principal.can_write(&namespace) {
        return Err(ApiError::forbidden(format!(
            "this token may only read namespace {namespace}"
        )));
    }
    let engine = state.session(&principal, &namespace).await?;
    let limits = state.config.limits.clone();
    let started = Instant::now();
    let work = async {
        let frame = engine.sql(&request.sql).await?;
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
    if kind == StatementKind::Write {
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
                writer.write(batch).map_err(ApiError::internal)?;
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

    #[test]
    fn writes_are_recognised_behind_comments_and_explain_analyze() {
        for (sql, kind) in [
            ("SELECT 1", StatementKind::Read),
            ("  select * from t", StatementKind::Read),
            ("WITH x AS (SELECT 1) SELECT * FROM x", StatementKind::Read),
            ("EXPLAIN INSERT INTO t VALUES (1)", StatementKind::Read),
            (
                "EXPLAIN ANALYZE INSERT INTO t VALUES (1)",
                StatementKind::Write,
            ),
            ("/* hi */ INSERT INTO t VALUES (1)", StatementKind::Write),
            ("-- note\nDELETE FROM t", StatementKind::Write),
            (
                "merge into t using s on t.k = s.k when matched then delete",
                StatementKind::Write,
            ),
            ("OPTIMIZE t", StatementKind::Write),
            ("SELECT 1;", StatementKind::Read),
        ] {
            assert_eq!(classify(sql).unwrap(), kind, "{sql}");
        }
        assert!(classify("SELECT 1; DROP TABLE t").is_err());
        assert!(classify("   ").is_err());
    }
}
