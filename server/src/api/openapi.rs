//! The OpenAPI 3.1 description of the API, served at
//! `/api/v1/openapi.json`.

use axum::Json;
use serde_json::{Value, json};

fn error_responses() -> Value {
    json!({
        "400": {"$ref": "#/components/responses/Error"},
        "401": {"$ref": "#/components/responses/Error"},
        "403": {"$ref": "#/components/responses/Error"},
        "404": {"$ref": "#/components/responses/Error"},
        "409": {"$ref": "#/components/responses/Error"}
    })
}

fn with_errors(mut ok: Value) -> Value {
    if let (Some(map), Value::Object(errors)) = (ok.as_object_mut(), error_responses()) {
        map.extend(errors);
    }
    ok
}

/// The document.
pub async fn document() -> Json<Value> {
    let table_path = [
        json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}}),
        json!({"name": "table", "in": "path", "required": true, "schema": {"type": "string"}}),
    ];
    Json(json!({
        "openapi": "3.1.0",
        "info": {"title": "Wavelake", "version": env!("CARGO_PKG_VERSION"),
                 "description": "SQL, tables and tokens of a Wavelake server. Every /api/v1 endpoint takes Authorization: Bearer <token>."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": {"description": "What went wrong",
                "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "error": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}}}}}
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/sql": {"post": {
                "summary": "Run one SQL statement (query, DDL, DML or maintenance)",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["sql"],
                    "properties": {"sql": {"type": "string"}, "namespace": {"type": "string"}}}}}},
                "responses": with_errors(json!({
                    "200": {"description": "The result; x-wavelake-row-count and x-wavelake-truncated headers say how much",
                        "content": {"application/json": {}, "text/csv": {}, "application/vnd.apache.arrow.stream": {}}},
                    "408": {"$ref": "#/components/responses/Error"},
                    "507": {"$ref": "#/components/responses/Error"}}))}},
            "/api/v1/tables": {
                "get": {"summary": "List the tables the token can see",
                    "parameters": [{"name": "namespace", "in": "query", "schema": {"type": "string"}}],
                    "responses": with_errors(json!({"200": {"description": "{\"tables\": [{namespace, name}]}"}}))},
                "post": {"summary": "Create a table",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["name", "columns"],
                        "properties": {"namespace": {"type": "string"}, "name": {"type": "string"},
                            "columns": {"type": "array", "items": {"type": "object", "required": ["name", "type"],
                                "properties": {"name": {"type": "string"}, "type": {"type": "string"},
                                    "nullable": {"type": "boolean"}, "comment": {"type": "string"}}}},
                            "partition_columns": {"type": "array", "items": {"type": "string"}},
                            "properties": {"type": "object", "additionalProperties": {"type": "string"}},
                            "comment": {"type": "string"}}}}}},
                    "responses": with_errors(json!({"201": {"description": "Created"}}))}},
            "/api/v1/tables/{namespace}/{table}": {
                "get": {"summary": "Describe a table", "parameters": table_path,
                    "responses": with_errors(json!({"200": {"description": "Schema, partitioning, properties, version, size"}}))},
                "delete": {"summary": "Drop a table", "parameters": table_path,
                    "responses": with_errors(json!({"204": {"description": "Dropped"}}))}},
            "/api/v1/tables/{namespace}/{table}/history": {
                "get": {"summary": "The table's commits, newest first", "parameters": table_path,
                    "responses": with_errors(json!({"200": {"description": "History rows",
                        "content": {"application/json": {}, "text/csv": {}, "application/vnd.apache.arrow.stream": {}}}}))}},
            "/api/v1/tables/{namespace}/{table}/upload": {"post": {
                "summary": "Append a Parquet, CSV (with header), NDJSON or Arrow IPC stream upload in one commit",
                "parameters": [table_path[0].clone(), table_path[1].clone(),
                    {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["parquet", "csv", "json", "arrow"]}},
                    {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"},
                     "description": "A retry with the same key commits nothing"}],
                "requestBody": {"required": true, "content": {"application/octet-stream": {}}},
                "responses": with_errors(json!({"201": {"description": "{version, rows, files}"},
                    "200": {"description": "Already applied under this Idempotency-Key"},
                    "413": {"$ref": "#/components/responses/Error"}}))}},
            "/api/v1/tokens": {
                "get": {"summary": "List tokens (admin)", "responses": with_errors(json!({"200": {"description": "Ids, labels, scopes"}}))},
                "post": {"summary": "Issue a token (admin); shown once",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["label"],
                        "properties": {"label": {"type": "string"}, "namespace": {"type": "string"},
                            "write": {"type": "boolean"}, "admin": {"type": "boolean"}}}}}},
                    "responses": with_errors(json!({"201": {"description": "{id, token}"}}))}},
            "/api/v1/tokens/{id}": {"delete": {"summary": "Revoke a token (admin)",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": with_errors(json!({"204": {"description": "Revoked"}}))}},
            "/health": {"get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "ok"}}}},
            "/health/ready": {"get": {"summary": "Readiness: storage reachable", "security": [],
                "responses": {"200": {"description": "ready"}, "503": {"description": "storage unreachable"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "security": [], "responses": {"200": {"description": "text"}}}}
        }
    }))
}
