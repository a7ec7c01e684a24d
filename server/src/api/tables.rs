//! Tables: list, create, describe, history, drop. Names are checked (letters,
//! digits, `_`) before they reach SQL or a path.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::results::respond;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::names::check_name;
use crate::state::AppState;

/// `?namespace=` filter of the listing.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    namespace: Option<String>,
}

/// `GET /api/v1/tables`: the tables the token can see.
pub async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Query(query): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let namespaces: Vec<String> = match &query.namespace {
        Some(namespace) => vec![state.namespace_for(&principal, Some(namespace))?],
        None => state.readable_namespaces(&principal).await?,
    };
    let mut tables = Vec::new();
    for namespace in namespaces {
        for table in state.namespace_tables(&namespace).await? {
            tables.push(json!({"namespace": namespace, "name": table}));
        }
    }
    Ok(Json(json!({"tables": tables})))
}

/// A column of a table to create.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
    #[serde(default = "yes")]
    nullable: bool,
    #[serde(default)]
    comment: Option<String>,
}

fn yes() -> bool {
    true
}

/// `POST /api/v1/tables` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTable {
    #[serde(default)]
    namespace: Option<String>,
    name: String,
    columns: Vec<ColumnSpec>,
    #[serde(default)]
    partition_columns: Vec<String>,
    #[serde(default)]
    properties: BTreeMap<String, String>,
    #[serde(default)]
    comment: Option<String>,
}

fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `POST /api/v1/tables`: creates a table.
pub async fn create(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Json(request): Json<CreateTable>,
) -> Result<Response, ApiError> {
    let namespace = state.namespace_for(&principal, request.namespace.as_deref())?;
    check_name("table", &request.name)?;
    state.may_write(&principal, &namespace)?;
    if request.columns.is_empty() {
        return Err(ApiError::bad_request("a table needs columns"));
    }
    let mut columns = Vec::new();
    for column in &request.columns {
        let type_ok = !column.data_type.is_empty()
            && column
                .data_type
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " _<>(),:".contains(c));
        if !type_ok {
            return Err(ApiError::bad_request(format!(
                "column {}: {:?} is not a type",
                column.name, column.data_type
            )));
        }
        let mut definition = format!("{} {}", quote_ident(&column.name), column.data_type);
        if !column.nullable {
            definition.push_str(" NOT NULL");
        }
        if let Some(comment) = &column.comment {
            definition.push_str(&format!(" COMMENT {}", quote_literal(comment)));
        }
        columns.push(definition);
    }
    let mut sql = format!(
        "CREATE TABLE {namespace}.{} ({}) USING DELTA",
        request.name,
        columns.join(", ")
    );
    if !request.partition_columns.is_empty() {
        let names: Vec<String> = request
            .partition_columns
            .iter()
            .map(|c| quote_ident(c))
            .collect();
        sql.push_str(&format!(" PARTITIONED BY ({})", names.join(", ")));
    }
    if let Some(comment) = &request.comment {
        sql.push_str(&format!(" COMMENT {}", quote_literal(comment)));
    }
    if !request.properties.is_empty() {
        let pairs: Vec<String> = request
            .properties
            .iter()
            .map(|(k, v)| format!("{} = {}", quote_literal(k), quote_literal(v)))
            .collect();
        sql.push_str(&format!(" TBLPROPERTIES ({})", pairs.join(", ")));
    }
    let engine = state.session(&principal, &namespace).await?;
    engine.query(&sql).await?;
    metrics::counter!("wavelake_commits_total").increment(1);
    Ok((
        StatusCode::CREATED,
        Json(json!({"namespace": namespace, "name": request.name})),
    )
        .into_response())
}

async fn open_table(
    state: &AppState,
    principal: &Principal,
    namespace: &str,
    table: &str,
) -> Result<(wavelake_engine::SqlSession, String), ApiError> {
    let namespace = state.namespace_for(principal, Some(namespace))?;
    check_name("table", table)?;
    let engine = state.session(principal, &namespace).await?;
    let name = format!("{namespace}.{table}");
    if engine.table(&name).is_none() {
        return Err(ApiError::not_found(format!("table {name} does not exist")));
    }
    Ok((engine, name))
}

/// `GET /api/v1/tables/{namespace}/{table}`: schema, partitioning,
/// properties, version and size.
pub async fn describe(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((namespace, table)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (engine, name) = open_table(&state, &principal, &namespace, &table).await?;
    let snapshot = engine.refresh(&name).await?;
    let rows = |batches: Vec<arrow::array::RecordBatch>| -> Result<serde_json::Value, ApiError> {
        let mut writer = arrow::json::ArrayWriter::new(Vec::new());
        for batch in &batches {
            writer.write(batch).map_err(ApiError::internal)?;
        }
        writer.finish().map_err(ApiError::internal)?;
        let body = writer.into_inner();
        if body.is_empty() {
            return Ok(json!([]));
        }
        serde_json::from_slice(&body).map_err(ApiError::internal)
    };
    let schema = rows(
        engine
            .query(&format!("SELECT * FROM delta_schema('{name}')"))
            .await?,
    )?;
    let properties = rows(
        engine
            .query(&format!("SELECT * FROM delta_properties('{name}')"))
            .await?,
    )?;
    let size: i64 = snapshot.files().iter().map(|f| f.size).sum();
    Ok(Json(json!({
        "namespace": namespace,
        "name": table,
        "version": snapshot.version(),
        "columns": schema,
        "partition_columns": snapshot.metadata().partition_columns,
        "description": snapshot.metadata().description,
        "properties": properties,
        "files": snapshot.files().len(),
        "size_bytes": size,
        "protocol": snapshot.protocol(),
    })))
}

/// `GET /api/v1/tables/{namespace}/{table}/history`, newest first, as JSON,
/// CSV or Arrow by `Accept`.
pub async fn history(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
    Path((namespace, table)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (engine, name) = open_table(&state, &principal, &namespace, &table).await?;
    let frame = engine
        .sql(&format!(
            "SELECT * FROM delta_history('{name}') ORDER BY version DESC"
        ))
        .await?;
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame
        .collect()
        .await
        .map_err(wavelake_engine::Error::from)?;
    respond(&headers, &schema, &batches, false)
}

/// `DELETE /api/v1/tables/{namespace}/{table}`.
pub async fn drop(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((namespace, table)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (engine, name) = open_table(&state, &principal, &namespace, &table).await?;
    state.may_write(&principal, &namespace)?;
    engine.query(&format!("DROP TABLE {name}")).await?;
    Ok(StatusCode::NO_CONTENT)
}
