//! The OpenAPI 3.1 description of the API and of the Delta Sharing
//! endpoints, served at `/api/v1/openapi.json`.

use axum::Json;
use serde_json::{Value, json};

fn error_responses() -> Value {
    json!({
        "400": {"$ref": "#/components/responses/Error"},
        "401": {"$ref": "#/components/responses/Error"},
        "403": {"$ref": "#/components/responses/Error"},
        "404": {"$ref": "#/components/responses/Error"},
        "409": {"$ref": "#/components/responses/Error"},
        "413": {"$ref": "#/components/responses/Error"},
        "415": {"$ref": "#/components/responses/Error"},
        "422": {"$ref": "#/components/responses/Error"},
        "429": {"$ref": "#/components/responses/Error"},
        "503": {"$ref": "#/components/responses/Error"}
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
    let mut doc = json!({
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
                "description": "Whether the statement writes, and which tables, is decided by the engine's classifier on the statement as parsed with the dialect that runs it; a token that may not write gets 403 NOT_ALLOWED for any statement that could change a table or the session, and its session refuses any plan with DML, DDL or statements. DELETE and UPDATE with subqueries or FROM get 400 (use MERGE INTO). A statement naming a table the session does not have (it does not exist, or is another namespace's) gets 404 TABLE_NOT_FOUND. A commit that conflicts with a concurrent one gets 409 COMMIT_CONFLICT. More statements than the server or the token may run at once get 429 TOO_MANY_REQUESTS with Retry-After; an input over a limit gets 413 LIMIT_EXCEEDED; writes on a store that does not make commits exclusive get 503 UNSAFE_STORAGE. A Delta Sharing recipient's token reads the tables shared with it, named schema.table as sharing clients name them, and nothing else. A query that reads at least the cluster threshold (after partition and statistics pruning, estimated from the Delta log) runs on the server's Ballista cluster when one is configured; 503 CLUSTER_UNAVAILABLE when its scheduler cannot be reached.",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["sql"],
                    "properties": {"sql": {"type": "string"}, "namespace": {"type": "string"}, "transaction": {"type": "string", "description": "The id BEGIN answered: the statement runs in that transaction"}}}}}},
                "responses": with_errors(json!({
                    "200": {"description": "The result; up to 8 MiB sent whole with x-wavelake-row-count and x-wavelake-truncated headers, larger ones streamed (JSON ends with row_count and truncated)",
                        "headers": {
                            "wavelake-ran-on": {"description": "Where the statement ran: server or cluster", "schema": {"type": "string", "enum": ["server", "cluster"]}},
                            "wavelake-placement-reason": {"description": "Why it ran there", "schema": {"type": "string"}},
                            "wavelake-read-bytes": {"description": "Bytes of the data files the query read after pruning, from the Delta log", "schema": {"type": "integer"}},
                            "wavelake-read-files": {"description": "Data files the query read after pruning", "schema": {"type": "integer"}},
                            "x-wavelake-result-cache": {"description": "What the result cache did for a query: hit (answered from the kept result of the same statement over the same table versions), miss (ran; its result may be kept) or bypass (its answer may change with nothing committed: now(), random(), metadata tables, buffered rows); absent for statements that write", "schema": {"type": "string", "enum": ["hit", "miss", "bypass"]}}},
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
                    {"name": "create", "in": "query", "schema": {"type": "boolean"},
                     "description": "Create the table when missing, its schema inferred from the file (not with an Idempotency-Key)"},
                    {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"},
                     "description": "A retry with the same key commits nothing"}],
                "requestBody": {"required": true, "content": {"application/octet-stream": {}}},
                "responses": with_errors(json!({"201": {"description": "{version, rows, files}"},
                    "200": {"description": "Already applied under this Idempotency-Key"},
                    "413": {"$ref": "#/components/responses/Error"}}))}},
            "/api/v1/tables/{namespace}/{table}/rows": {"post": {
                "summary": "Buffered append of NDJSON, CSV (with header) or Arrow IPC stream rows, acknowledged from the write-ahead log",
                "description": "The body is checked against the table (columns, types, NOT NULL) and appended whole to the table's write-ahead log on the server's disk; 202 means it is durable. Buffered rows are committed to the Delta table by the next flush, one commit for all of them (every [ingest] flush_interval_ms or flush_rows, or the table properties wavelake.buffer.flushIntervalMs and wavelake.buffer.flushRows); queries through this server's SQL API read acknowledged rows at once (read-your-writes: the table's latest version merged with its buffer), other Delta readers (Delta Sharing, delta-rs, Spark, DuckDB) from the flush's commit on, and a statement that changes the table flushes its buffer before it runs. A full buffer answers 429 with Retry-After and keeps nothing.",
                "parameters": [table_path[0].clone(), table_path[1].clone(),
                    {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["csv", "json", "arrow"]}}],
                "requestBody": {"required": true, "content": {"application/x-ndjson": {}, "text/csv": {}, "application/vnd.apache.arrow.stream": {}}},
                "responses": with_errors(json!({"202": {"description": "{rows, sequence, buffered: true}"}}))}},
            "/api/v1/tables/{namespace}/{table}/events": {"get": {
                "summary": "Subscribe to the table's commits (Server-Sent Events)",
                "description": "One `commit` event per new commit, in order: `id` is the version, `data` is {version, timestamp, operation, parameters, metrics} and, with ?changes=true, `changes` (the commit's rows from the change data feed, at most 10,000, with `changes_truncated`). Starts after the latest version, at ?from_version=, or after the Last-Event-ID a reconnecting client sends, so no commit is missed. An `error` event ({code, message}) ends the stream. Keep-alive comments every 15 s. Recipients subscribe to shared tables at /delta-sharing/shares/{share}/schemas/{schema}/tables/{table}/events.",
                "parameters": [table_path[0].clone(), table_path[1].clone(),
                    {"name": "changes", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "from_version", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}}],
                "responses": with_errors(json!({"200": {"description": "An endless event stream", "content": {"text/event-stream": {}}}}))}},
            "/api/v1/me": {"get": {"summary": "What the caller's token may do",
                "responses": with_errors(json!({"200": {"description": "{admin, namespaces: [{name, write}], recipient}"}}))}},
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
    });
    if let (Some(paths), Value::Object(more)) = (
        doc.get_mut("paths").and_then(Value::as_object_mut),
        sharing_paths(),
    ) {
        paths.extend(more);
    }
    Json(doc)
}

/// The Delta Sharing protocol endpoints and the signed file URLs they hand
/// out.
fn sharing_paths() -> Value {
    let path = |name: &str| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}});
    let paging = [
        json!({"name": "maxResults", "in": "query", "schema": {"type": "integer"}}),
        json!({"name": "pageToken", "in": "query", "schema": {"type": "string"}}),
    ];
    let table = [path("share"), path("schema"), path("table")];
    let ndjson = |what: &str| {
        json!({"200": {"description": what,
        "headers": {"Delta-Table-Version": {"schema": {"type": "integer"}}},
        "content": {"application/x-ndjson": {}}}})
    };
    let format = json!({"name": "delta-sharing-capabilities", "in": "header",
        "description": "responseformat=parquet (default) or delta; readerfeatures=deletionvectors,…",
        "schema": {"type": "string"}});
    let prefix = "/delta-sharing/shares/{share}/schemas/{schema}/tables/{table}";
    let mut paths = serde_json::Map::new();
    paths.insert("/delta-sharing/shares".into(), json!({"get": {
        "summary": "Delta Sharing: the shares granted to the recipient", "tags": ["Delta Sharing"],
        "parameters": paging, "responses": with_errors(json!({"200": {"description": "{items: [{name, id}], nextPageToken}"}}))}}));
    paths.insert("/delta-sharing/shares/{share}".into(), json!({"get": {
        "summary": "Delta Sharing: one share", "tags": ["Delta Sharing"],
        "parameters": [path("share")], "responses": with_errors(json!({"200": {"description": "{share: {name, id}}"}}))}}));
    paths.insert("/delta-sharing/shares/{share}/schemas".into(), json!({"get": {
        "summary": "Delta Sharing: schemas in a share", "tags": ["Delta Sharing"],
        "parameters": [path("share"), paging[0].clone(), paging[1].clone()],
        "responses": with_errors(json!({"200": {"description": "{items: [{name, share}], nextPageToken}"}}))}}));
    paths.insert("/delta-sharing/shares/{share}/schemas/{schema}/tables".into(), json!({"get": {
        "summary": "Delta Sharing: tables in a schema", "tags": ["Delta Sharing"],
        "parameters": [path("share"), path("schema"), paging[0].clone(), paging[1].clone()],
        "responses": with_errors(json!({"200": {"description": "{items: [{name, schema, share, shareId, id}], nextPageToken}"}}))}}));
    paths.insert("/delta-sharing/shares/{share}/all-tables".into(), json!({"get": {
        "summary": "Delta Sharing: every table in a share", "tags": ["Delta Sharing"],
        "parameters": [path("share"), paging[0].clone(), paging[1].clone()],
        "responses": with_errors(json!({"200": {"description": "{items: [...], nextPageToken}"}}))}}));
    paths.insert(format!("{prefix}/version"), json!({"get": {
        "summary": "Delta Sharing: the table's version (latest, or at startingTimestamp)", "tags": ["Delta Sharing"],
        "parameters": [table[0].clone(), table[1].clone(), table[2].clone(),
            {"name": "startingTimestamp", "in": "query", "schema": {"type": "string"}}],
        "responses": with_errors(json!({"200": {"description": "Empty; the version is in Delta-Table-Version",
            "headers": {"Delta-Table-Version": {"schema": {"type": "integer"}}}}}))}}));
    paths.insert(
        format!("{prefix}/metadata"),
        json!({"get": {
        "summary": "Delta Sharing: protocol and metadata", "tags": ["Delta Sharing"],
        "parameters": [table[0].clone(), table[1].clone(), table[2].clone(), format.clone()],
        "responses": with_errors(ndjson("protocol and metadata lines"))}}),
    );
    paths.insert(format!("{prefix}/query"), json!({"post": {
        "summary": "Delta Sharing: the table's files, as presigned URLs", "tags": ["Delta Sharing"],
        "parameters": [table[0].clone(), table[1].clone(), table[2].clone(), format.clone()],
        "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
            "predicateHints": {"type": "array", "items": {"type": "string"}},
            "jsonPredicateHints": {"type": "string"},
            "limitHint": {"type": "integer"},
            "version": {"type": "integer"},
            "timestamp": {"type": "string"},
            "includeRefreshToken": {"type": "boolean"},
            "refreshToken": {"type": "string"}}}}}},
        "responses": with_errors(ndjson(
            "protocol, metadata, one line per file, and with includeRefreshToken an endStreamAction"))}}));
    paths.insert(format!("{prefix}/changes"), json!({"get": {
        "summary": "Delta Sharing: the change data feed between two versions or timestamps", "tags": ["Delta Sharing"],
        "parameters": [table[0].clone(), table[1].clone(), table[2].clone(), format,
            {"name": "startingVersion", "in": "query", "schema": {"type": "integer"}},
            {"name": "endingVersion", "in": "query", "schema": {"type": "integer"}},
            {"name": "startingTimestamp", "in": "query", "schema": {"type": "string"}},
            {"name": "endingTimestamp", "in": "query", "schema": {"type": "string"}}],
        "responses": with_errors(ndjson("protocol, metadata, then one line per change file"))}}));
    paths.insert(format!("{prefix}/history"), json!({"get": {
        "summary": "Wavelake extension: the shared table's commits, oldest first", "tags": ["Delta Sharing"],
        "parameters": [table[0].clone(), table[1].clone(), table[2].clone()],
        "responses": with_errors(json!({"200": {"description":
            "{items: [{version, timestamp, operation, operationParameters, operationMetrics, engineInfo}]}"}}))}}));
    paths.insert("/files/{resource}".into(), json!({"get": {
        "summary": "A file of a shared table, by the signed URL a sharing response handed out (local roots)",
        "tags": ["Delta Sharing"], "security": [],
        "parameters": [path("resource"),
            {"name": "Range", "in": "header", "schema": {"type": "string"}}],
        "responses": {"200": {"description": "The file"}, "206": {"description": "The range"},
            "400": {"$ref": "#/components/responses/Error"},
            "403": {"description": "A tampered or expired URL"}, "416": {"description": "Range not satisfiable"}}}}));
    Value::Object(paths)
}
