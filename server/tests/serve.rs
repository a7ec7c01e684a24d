//! `wavelake serve` end to end: the real server process on loopback, on a
//! local directory and on S3 (moto): SQL and table round trips in every
//! result format, limits, the authorization matrix, and a kill -9 during a
//! stream of commits followed by a restart that still has every
//! acknowledged commit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use wavelake_tests::{AzuriteServer, MotoServer};

mod common;
use common::{ADMIN, Server, local_config};

fn upload(
    server: &Server,
    token: &str,
    format: &str,
    key: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut request = server
        .client
        .post(format!(
            "{}/api/v1/tables/acme/orders/upload?format={format}",
            server.url
        ))
        .bearer_auth(token)
        .body(body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().unwrap();
    let status = response.status();
    (status, response.json().unwrap_or(Value::Null))
}

/// Rows for uploads: ids from `start`, `count` of them.
fn upload_batch(start: i64, count: i64) -> arrow::array::RecordBatch {
    use std::sync::Arc;
    let schema = Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int64, false),
        arrow::datatypes::Field::new("day", arrow::datatypes::DataType::Date32, true),
        arrow::datatypes::Field::new("total", arrow::datatypes::DataType::Float64, true),
    ]));
    arrow::array::RecordBatch::try_new(
        schema,
        vec![
            Arc::new(arrow::array::Int64Array::from_iter_values(
                start..start + count,
            )),
            Arc::new(arrow::array::Date32Array::from_iter_values(
                (0..count).map(|_| 19_723),
            )),
            Arc::new(arrow::array::Float64Array::from_iter_values(
                (0..count).map(|i| i as f64),
            )),
        ],
    )
    .unwrap()
}

/// Every upload format, idempotency, and refused uploads.
fn uploads(server: &Server) {
    let (_, before) = server.sql(ADMIN, "SELECT count(*) AS n FROM acme.orders");
    let before = before["rows"][0]["n"].as_u64().unwrap();
    let csv = b"id,day,total\n1000,2024-01-05,1.5\n1001,2024-01-05,2.5\n".to_vec();
    let (status, body) = upload(server, ADMIN, "csv", Some("batch-1"), csv.clone());
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["rows"], 2);
    let (status, body) = upload(server, ADMIN, "csv", Some("batch-1"), csv);
    assert_eq!(status, StatusCode::OK, "a retry is applied once: {body}");
    let json_lines =
        b"{\"id\": 2000, \"day\": \"2024-01-06\", \"total\": 3}\n{\"id\": 2001}\n".to_vec();
    let (status, body) = upload(server, ADMIN, "json", None, json_lines);
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut parquet = Vec::new();
    {
        let batch = upload_batch(3000, 100);
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(&mut parquet, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }
    let (status, body) = upload(server, ADMIN, "parquet", None, parquet);
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut ipc = Vec::new();
    {
        let batch = upload_batch(4000, 10);
        let mut writer =
            arrow::ipc::writer::StreamWriter::try_new(&mut ipc, &batch.schema()).unwrap();
        writer.write(&batch).unwrap();
        writer.finish().unwrap();
    }
    let (status, body) = upload(server, ADMIN, "arrow", None, ipc);
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, after) = server.sql(ADMIN, "SELECT count(*) AS n FROM acme.orders");
    assert_eq!(
        after["rows"][0]["n"].as_u64().unwrap(),
        before + 2 + 2 + 100 + 10
    );
    // Refused: wrong types, missing NOT NULL values, not the format, too big.
    for (format, body, expected) in [
        (
            "csv",
            b"id,day,total\nabc,2024-01-01,1\n".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "json",
            b"{\"day\": \"2024-01-01\"}\n".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "parquet",
            b"not parquet at all".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        ("csv", vec![b'1'; 200_000], StatusCode::PAYLOAD_TOO_LARGE),
    ] {
        let (status, answer) = upload(server, ADMIN, format, None, body);
        assert_eq!(status, expected, "{format}: {answer}");
        assert!(answer["error"]["message"].is_string(), "{answer}");
    }
    // Parquet files the parquet crate's decoders panic on (found by
    // fuzzing): refused by name, nothing of them committed (a panic in the
    // decoding thread used to end the writer's input early: a 500, after
    // committing what had been decoded).
    let regressions = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../engine/fuzz/regressions/checkpoint");
    for entry in std::fs::read_dir(regressions).unwrap() {
        let path = entry.unwrap().path();
        let (status, answer) = upload(
            server,
            ADMIN,
            "parquet",
            None,
            std::fs::read(&path).unwrap(),
        );
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{}: {answer}",
            path.display()
        );
        let code = answer["error"]["code"].as_str().unwrap_or_default();
        assert!(
            ["INVALID_UPLOAD", "SCHEMA_MISMATCH"].contains(&code),
            "{answer}"
        );
    }
    let (_, unchanged) = server.sql(ADMIN, "SELECT count(*) AS n FROM acme.orders");
    assert_eq!(unchanged["rows"][0]["n"], after["rows"][0]["n"]);
    let reader = server.token("acme", false);
    let (status, _) = upload(server, &reader, "csv", None, b"id\n1\n".to_vec());
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Tables and SQL through the API, in every format.
fn round_trips(server: &Server) {
    let created = server
        .client
        .post(format!("{}/api/v1/tables", server.url))
        .bearer_auth(ADMIN)
        .json(&json!({
            "namespace": "acme", "name": "orders",
            "columns": [{"name": "id", "type": "BIGINT", "nullable": false},
                        {"name": "day", "type": "DATE"}, {"name": "total", "type": "DOUBLE"}],
            "partition_columns": ["day"]}))
        .send()
        .unwrap();
    assert_eq!(
        created.status(),
        StatusCode::CREATED,
        "{:?}",
        created.text()
    );
    let (status, body) = server.sql(
        ADMIN,
        "INSERT INTO acme.orders SELECT value, DATE '2024-01-01' + CAST(value % 3 AS INT), \
         value * 1.5 FROM range(0, 100)",
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"][0]["count"], 100);
    let (status, body) = server.sql_in(ADMIN, "DELETE FROM orders WHERE id < 10", Some("acme"));
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = server.sql(ADMIN, "SELECT count(*) AS n, sum(id) AS s FROM acme.orders");
    assert_eq!(body["rows"][0]["n"], 90);
    assert_eq!(body["rows"][0]["s"], 4905);

    // The row cap: 90 rows, 50 returned, and the response says so.
    let (_, body) = server.sql(ADMIN, "SELECT * FROM acme.orders");
    assert_eq!(body["row_count"], 50);
    assert_eq!(body["truncated"], true);

    let csv = server
        .client
        .post(format!("{}/api/v1/sql", server.url))
        .bearer_auth(ADMIN)
        .header("accept", "text/csv")
        .json(&json!({"sql": "SELECT id, total FROM acme.orders WHERE id = 42"}))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(csv, "id,total\n42,63.0\n");
    let arrow = server
        .client
        .post(format!("{}/api/v1/sql", server.url))
        .bearer_auth(ADMIN)
        .header("accept", "application/vnd.apache.arrow.stream")
        .json(&json!({"sql": "SELECT id FROM acme.orders ORDER BY id LIMIT 5"}))
        .send()
        .unwrap();
    assert_eq!(arrow.headers()["x-wavelake-row-count"], "5");
    let bytes = arrow.bytes().unwrap();
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 5);

    let (status, described) = server.get(Some(ADMIN), "/api/v1/tables/acme/orders");
    assert_eq!(status, StatusCode::OK, "{described}");
    assert_eq!(described["partition_columns"], json!(["day"]));
    assert_eq!(described["version"], 2);
    let (_, history) = server.get(Some(ADMIN), "/api/v1/tables/acme/orders/history");
    assert_eq!(history["rows"][0]["operation"], "DELETE");
    let (_, listed) = server.get(Some(ADMIN), "/api/v1/tables");
    assert_eq!(
        listed["tables"],
        json!([{"namespace": "acme", "name": "orders"}])
    );
    let (status, doc) = server.get(None, "/api/v1/openapi.json");
    assert_eq!(status, StatusCode::OK);
    assert!(doc["paths"]["/api/v1/sql"].is_object());
    assert!(
        doc["paths"]["/delta-sharing/shares/{share}/schemas/{schema}/tables/{table}/query"]["post"]
            .is_object()
    );
    let (status, _) = server.get(None, "/health/ready");
    assert_eq!(status, StatusCode::OK);
    uploads(server);
}

#[test]
fn sql_and_tables_round_trip_on_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &local_config(&dir.path().join("lake")));
    round_trips(&server);
    let metrics = server
        .client
        .get(format!("{}/metrics", server.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("wavelake_http_requests_total"),
        "{metrics}"
    );
    assert!(metrics.contains("wavelake_commits_total"), "{metrics}");
    let drop = server
        .client
        .delete(format!("{}/api/v1/tables/acme/orders", server.url))
        .bearer_auth(ADMIN)
        .send()
        .unwrap();
    assert_eq!(drop.status(), StatusCode::NO_CONTENT);
    let left = wavelake_tests::files_under(&dir.path().join("lake/acme/orders"));
    assert!(left.is_empty(), "dropped table's files remain: {left:?}");
}

#[test]
fn sql_and_tables_round_trip_on_s3() {
    let Some(moto) = MotoServer::start("sql_and_tables_round_trip_on_s3") else {
        return;
    };
    moto.create_bucket("lake");
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        "root = \"s3://lake/tables\"\n[limits]\nmax_result_rows = 50\nmax_upload_bytes = 100000\n[storage]\n".to_owned();
    for (key, value) in moto.options() {
        config.push_str(&format!("{key} = {value:?}\n"));
    }
    let server = Server::start(dir.path(), &config);
    round_trips(&server);
}

/// A store that does not refuse a second put-if-absent (here S3 with
/// conditional writes turned off) could let two commits take one version:
/// the server finds out at start, serves reads and refuses every write.
#[test]
fn a_store_without_exclusive_commits_serves_reads_and_refuses_writes() {
    let Some(moto) = MotoServer::start("a_store_without_exclusive_commits") else {
        return;
    };
    moto.create_bucket("lake");
    let dir = tempfile::tempdir().unwrap();
    let mut storage = "[storage]\n".to_owned();
    for (key, value) in moto.options() {
        storage.push_str(&format!("{key} = {value:?}\n"));
    }
    let config = format!("root = \"s3://lake/tables\"\n{storage}");
    let mut server = Server::start(dir.path(), &config);
    for sql in [
        "CREATE TABLE acme.t (id BIGINT)",
        "INSERT INTO acme.t VALUES (1), (2)",
    ] {
        let (status, body) = server.sql(ADMIN, sql);
        assert_eq!(status, StatusCode::OK, "{sql}: {body}");
    }
    server.kill();
    let config = format!("{config}aws_conditional_put = \"disabled\"\n");
    let server = Server::start(dir.path(), &config);
    assert_eq!(count_and_version(&server, "acme.t"), (2, 1));
    for sql in [
        "INSERT INTO acme.t VALUES (3)",
        "DELETE FROM acme.t",
        "CREATE TABLE acme.u (id BIGINT)",
    ] {
        let (status, body) = server.sql(ADMIN, sql);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{sql}: {body}");
        assert_eq!(body["error"]["code"], "UNSAFE_STORAGE", "{sql}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("does not make commits exclusive"),
            "{message}"
        );
        assert!(!message.contains("s3://lake"), "leaks the root: {message}");
    }
    let csv = b"id,day,total\n1,2024-01-05,1.5\n".to_vec();
    let (status, body) = upload(&server, ADMIN, "csv", None, csv);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(count_and_version(&server, "acme.t"), (2, 1));
}

#[test]
fn sql_uploads_and_sharing_on_azure_blob_storage() {
    let test = "sql_uploads_and_sharing_on_azure_blob_storage";
    let Some(azurite) = AzuriteServer::start(test) else {
        return;
    };
    azurite.create_container("lake");
    let mut storage = "[storage]\n".to_owned();
    for (key, value) in azurite.options() {
        storage.push_str(&format!("{key} = {value:?}\n"));
    }
    let environment = [azurite.environment()];
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "root = \"az://lake/tables\"\n[limits]\nmax_result_rows = 50\nmax_upload_bytes = 100000\n{storage}"
    );
    round_trips(&Server::start_with(dir.path(), &config, &environment));
    let shared = tempfile::tempdir().unwrap();
    let config = format!("root = \"az://lake/shared\"\n{storage}");
    let server = Server::start_with(shared.path(), &config, &environment);
    sharing_round_trip(&server, test);
}

#[test]
fn every_unauthorized_request_is_refused_with_the_right_status() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &local_config(&dir.path().join("lake")));
    for sql in [
        "CREATE TABLE acme.orders (id BIGINT)",
        "CREATE TABLE globex.secrets (id BIGINT)",
        "INSERT INTO acme.orders VALUES (1)",
        "INSERT INTO globex.secrets VALUES (42)",
    ] {
        let (status, body) = server.sql(ADMIN, sql);
        assert_eq!(status, StatusCode::OK, "{sql}: {body}");
    }
    let reader = server.token("acme", false);
    let writer = server.token("acme", true);
    let cases: Vec<(Option<&str>, &str, Option<&str>, StatusCode)> = vec![
        (None, "SELECT 1", None, StatusCode::UNAUTHORIZED),
        (
            Some("wl_not_a_token"),
            "SELECT 1",
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            Some(&reader),
            "INSERT INTO orders VALUES (2)",
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            Some(&reader),
            "/* sneaky */ DELETE FROM orders",
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            Some(&reader),
            "EXPLAIN ANALYZE INSERT INTO orders VALUES (2)",
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            Some(&reader),
            "SELECT * FROM secrets",
            Some("globex"),
            StatusCode::FORBIDDEN,
        ),
        // Another namespace's table is not in the session: not found, as a
        // table that does not exist anywhere (its existence does not leak).
        (
            Some(&reader),
            "SELECT * FROM globex.secrets",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Some(&writer),
            "CREATE TABLE globex.more (id BIGINT)",
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            Some(&writer),
            "CREATE TABLE x (id INT) LOCATION '/tmp/x'",
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            Some(&writer),
            "CREATE EXTERNAL TABLE e STORED AS CSV LOCATION '/etc/passwd'",
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            Some(&writer),
            "COPY (SELECT 1) TO '/tmp/wavelake-copy.csv'",
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            Some(ADMIN),
            "SELECT 1; DROP TABLE acme.orders",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Some(ADMIN),
            "SELEKT nonsense",
            None,
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (token, sql, namespace, expected) in cases {
        let mut request = server
            .client
            .post(format!("{}/api/v1/sql", server.url))
            .json(&json!({"sql": sql, "namespace": namespace}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().unwrap();
        let status = response.status();
        let body: Value = response.json().unwrap_or(Value::Null);
        assert_eq!(status, expected, "{sql} with {token:?}: {body}");
        assert!(body["error"]["code"].is_string(), "{sql}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains(dir.path().to_str().unwrap()),
            "leaks a path: {message}"
        );
    }
    assert!(!std::path::Path::new("/tmp/wavelake-copy.csv").exists());
    // What a namespace token sees, and what it can do.
    let (status, body) = server.sql(&reader, "SELECT count(*) AS n FROM orders");
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server.sql(&writer, "INSERT INTO orders VALUES (2)");
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, listed) = server.get(Some(&reader), "/api/v1/tables");
    assert_eq!(
        listed["tables"],
        json!([{"namespace": "acme", "name": "orders"}])
    );
    for (token, path, expected) in [
        (
            Some(reader.as_str()),
            "/api/v1/tables/globex/secrets",
            StatusCode::FORBIDDEN,
        ),
        (
            Some(reader.as_str()),
            "/api/v1/tables/acme/..%2F..%2Fglobex",
            StatusCode::BAD_REQUEST,
        ),
        (
            Some(reader.as_str()),
            "/api/v1/tables/acme/nope",
            StatusCode::NOT_FOUND,
        ),
        (
            Some(reader.as_str()),
            "/api/v1/tokens",
            StatusCode::FORBIDDEN,
        ),
        (None, "/api/v1/tables", StatusCode::UNAUTHORIZED),
    ] {
        let (status, body) = server.get(token, path);
        assert_eq!(status, expected, "{path}: {body}");
    }
    let revoke = server
        .client
        .delete(format!("{}/api/v1/tokens/nope", server.url))
        .bearer_auth(&writer)
        .send()
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::FORBIDDEN);
}

/// The table's row count and latest version, as the admin sees them.
fn count_and_version(server: &Server, table: &str) -> (i64, i64) {
    let (status, body) = server.sql(
        ADMIN,
        &format!("SELECT (SELECT count(*) FROM {table}) AS n, (SELECT max(version) FROM delta_history('{table}')) AS v"),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        body["rows"][0]["n"].as_i64().unwrap(),
        body["rows"][0]["v"].as_i64().unwrap(),
    )
}

/// What runs decides: a read-only token cannot change a table however the
/// statement is disguised, a writer's DELETE never loses its condition, a
/// qualified name reads exactly that table, and a forged Arrow upload is
/// refused without taking the server down.
#[test]
fn statements_are_authorized_on_what_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &local_config(&dir.path().join("lake")));
    for sql in [
        "CREATE TABLE acme.orders (id BIGINT)",
        "INSERT INTO acme.orders VALUES (1), (2), (3)",
        "CREATE TABLE acme.keep (id BIGINT)",
        "INSERT INTO acme.keep VALUES (2)",
        "CREATE TABLE orders (id BIGINT)",
        "INSERT INTO orders VALUES (10)",
        "INSERT INTO orders VALUES (11)",
    ] {
        let (status, body) = server.sql(ADMIN, sql);
        assert_eq!(status, StatusCode::OK, "{sql}: {body}");
    }
    let before = count_and_version(&server, "acme.orders");
    assert_eq!(before, (3, 1));
    let reader = server.token("acme", false);
    // MySQL's hint comments are comments: what is left reads, or is no
    // statement at all.
    for sql in [
        "/*!DELETE FROM*/ orders",
        "/*!INSERT INTO orders*/ VALUES (4)",
        "/*! DELETE FROM orders */ SELECT 1",
    ] {
        let (status, body) = server.sql(&reader, sql);
        assert!(status != StatusCode::INTERNAL_SERVER_ERROR, "{sql}: {body}");
    }
    for sql in [
        "WITH x AS (SELECT 1 AS id) INSERT INTO orders SELECT * FROM x",
        "EXPLAIN ANALYZE DELETE FROM orders",
        "EXPLAIN ANALYZE INSERT INTO orders VALUES (4)",
        "-- c\n/* d */ DELETE FROM orders",
        "/* x */ UPDATE orders SET id = 0",
        "/* x */ MERGE INTO orders USING (SELECT 1 AS id) s ON orders.id = s.id WHEN MATCHED THEN DELETE",
        "/* x */ OPTIMIZE orders",
        "/* x */ TRUNCATE TABLE orders",
        "/* x */ DROP TABLE orders",
        "INSERT INTO acme.orders VALUES (4)",
    ] {
        let (status, body) = server.sql(&reader, sql);
        assert_ne!(status, StatusCode::OK, "{sql} ran for a reader: {body}");
        assert!(status.is_client_error(), "{sql}: {status} {body}");
    }
    assert_eq!(count_and_version(&server, "acme.orders"), before);
    // A writer's DELETE with a subquery is refused whatever precedes it,
    // instead of deleting every row.
    let writer = server.token("acme", true);
    for sql in [
        "/* c */ DELETE FROM orders WHERE id IN (SELECT id FROM keep)",
        "-- c\nDELETE FROM orders WHERE EXISTS (SELECT 1 FROM keep WHERE keep.id = orders.id)",
        "/* c */ UPDATE orders SET id = 0 WHERE id = (SELECT max(id) FROM keep)",
        "UPDATE orders SET id = keep.id FROM keep WHERE orders.id = keep.id",
    ] {
        let (status, body) = server.sql(&writer, sql);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{sql}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("MERGE") || message.contains("not supported"),
            "{sql}: {body}"
        );
    }
    assert_eq!(count_and_version(&server, "acme.orders"), before);
    let (status, body) = server.sql(&writer, "/* one */ DELETE FROM orders WHERE id = 2");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(count_and_version(&server, "acme.orders"), (2, 2));
    // Qualified names resolve exactly that table, in time travel and in
    // metadata functions (the admin's session is in `default`).
    let (status, body) = server.sql(
        ADMIN,
        "SELECT count(*) AS n FROM acme.orders VERSION AS OF 1",
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"][0]["n"], 3);
    let (status, body) = server.sql(
        ADMIN,
        "SELECT count(*) AS n FROM default.orders VERSION AS OF 1",
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"][0]["n"], 1);
    let (_, body) = server.sql(
        ADMIN,
        "SELECT count(*) AS n FROM delta_history('acme.orders')",
    );
    assert_eq!(body["rows"][0]["n"], 3);
    let (status, body) = server.sql(ADMIN, "SELECT * FROM nowhere.orders VERSION AS OF 0");
    assert!(status.is_client_error(), "{body}");
    // A 400-byte Arrow stream declaring a 1 TiB body: refused, server up.
    let mut forged = Vec::new();
    {
        let batch = upload_batch(0, 2);
        let mut writer =
            arrow::ipc::writer::StreamWriter::try_new(&mut forged, &batch.schema()).unwrap();
        writer.write(&batch).unwrap();
        writer.finish().unwrap();
    }
    let body_length = |bytes: &[u8], at: usize| {
        let len = i32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let message = arrow::ipc::root_as_message(&bytes[at + 8..at + 8 + len]).unwrap();
        (len, message.bodyLength())
    };
    let (schema_len, schema_body) = body_length(&forged, 0);
    let batch_at = 8 + schema_len + schema_body as usize;
    let (batch_len, body) = body_length(&forged, batch_at);
    let metadata = batch_at + 8..batch_at + 8 + batch_len;
    let position = forged[metadata.clone()]
        .windows(8)
        .position(|w| w == body.to_le_bytes())
        .unwrap();
    let field = metadata.start + position;
    forged[field..field + 8].copy_from_slice(&(1i64 << 40).to_le_bytes());
    forged.truncate(metadata.end);
    assert!(forged.len() < 600, "{}", forged.len());
    let (status, body) = upload(&server, &writer, "arrow", None, forged);
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1099511627776"),
        "{body}"
    );
    let health = server
        .client
        .get(format!("{}/health/ready", server.url))
        .send()
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.headers()["x-content-type-options"], "nosniff");
    assert_eq!(count_and_version(&server, "acme.orders"), (2, 2));
    // Token hashes and the signing key are the server user's alone.
    use std::os::unix::fs::PermissionsExt;
    let secrets = dir.path().join("lake/_wavelake");
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&secrets), 0o700);
    let tokens = secrets.join("tokens");
    assert_eq!(mode(&tokens), 0o700);
    let versions = wavelake_tests::files_under(&tokens);
    assert!(!versions.is_empty());
    for version in versions {
        assert_eq!(mode(&version), 0o600, "{}", version.display());
    }
    assert_eq!(mode(&secrets.join("signing.key")), 0o600);
}

#[test]
fn a_killed_server_restarts_with_every_acknowledged_commit() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let mut server = Server::start(dir.path(), &local_config(&root));
    let (status, _) = server.sql(ADMIN, "CREATE TABLE acme.events (id BIGINT, batch BIGINT)");
    assert_eq!(status, StatusCode::OK);
    let url = server.url.clone();
    let acknowledged = Arc::new(AtomicU64::new(0));
    let counted = acknowledged.clone();
    let writer = std::thread::spawn(move || {
        let client = Client::new();
        for batch in 0..10_000u64 {
            let sent = client
                .post(format!("{url}/api/v1/sql"))
                .bearer_auth(ADMIN)
                .json(&json!({"sql": format!(
                    "INSERT INTO acme.events SELECT value, {batch} FROM range(0, 1000)")}))
                .send();
            match sent {
                Ok(response) if response.status() == StatusCode::OK => {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                _ => break,
            }
        }
    });
    // Kill while commits are in flight: after a few were acknowledged,
    // however slow the machine.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while acknowledged.load(Ordering::SeqCst) < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    server.kill();
    writer.join().unwrap();
    let acknowledged = acknowledged.load(Ordering::SeqCst);
    assert!(
        acknowledged >= 3,
        "some commits were acknowledged before the kill"
    );
    let restarted = Server::start(dir.path(), &local_config(&root));
    let (status, body) = restarted.sql(
        ADMIN,
        "SELECT count(*) AS n, count(DISTINCT batch) AS b FROM acme.events",
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let batches = body["rows"][0]["b"].as_u64().unwrap();
    assert!(
        batches == acknowledged || batches == acknowledged + 1,
        "{acknowledged} acknowledged, {batches} in the table"
    );
    assert_eq!(body["rows"][0]["n"].as_u64().unwrap(), batches * 1000);
    eprintln!("{acknowledged} commits acknowledged before kill -9, {batches} after restart");
}

/// Time travel and history on a shared table through the engine's Delta
/// Sharing catalog (what the npm package and the web app run): `VERSION AS
/// OF`, `TIMESTAMP AS OF`, `delta_history` and `delta_files` by version
/// reach the server's versions of exactly the table named. `table` is
/// `schema.table`, `server_table` the same table on the server.
fn engine_time_travels_shared(server: &Server, profile: &str, table: &str, server_table: &str) {
    use arrow::array::{Array, AsArray};
    use wavelake_engine::sharing::{SharedCatalog, SharingProfile};
    // The server's own answers first (its client blocks: not inside the
    // runtime below).
    let (_, server_history) = server.sql(
        ADMIN,
        &format!("SELECT version FROM delta_history('{server_table}') ORDER BY version"),
    );
    let server_versions: Vec<i64> = server_history["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["version"].as_i64().unwrap())
        .collect();
    assert!(server_versions.len() >= 3, "{server_versions:?}");
    let expected: Vec<(i64, i64, i64)> = server_versions
        .iter()
        .map(|version| {
            let (_, answer) = server.sql(
                ADMIN,
                &format!(
                    "SELECT (SELECT count(*) FROM {server_table} VERSION AS OF {version}) AS n, \
                     (SELECT count(*) FROM delta_files('{server_table}', {version})) AS f"
                ),
            );
            let row = &answer["rows"][0];
            (
                *version,
                row["n"].as_i64().unwrap(),
                row["f"].as_i64().unwrap(),
            )
        })
        .collect();
    let count = |batches: &[arrow::array::RecordBatch]| -> i64 {
        batches[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0)
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let catalog = SharedCatalog::connect(&SharingProfile::parse(profile).unwrap())
            .await
            .unwrap();
        let engine = wavelake_engine::Engine::with_options(wavelake_engine::EngineOptions {
            read_only: true,
            ..Default::default()
        });
        catalog.register_versions(&engine).unwrap();
        let query = |sql: String| {
            let engine = engine.clone();
            let catalog = catalog.clone();
            async move {
                catalog.open_referenced(&engine, &sql).await?;
                engine.query(&sql).await
            }
        };
        let history = query(format!(
            "SELECT version, CAST(timestamp AS BIGINT) AS millis, operation \
             FROM delta_history('{table}') ORDER BY version"
        ))
        .await
        .unwrap();
        let history = arrow::compute::concat_batches(&history[0].schema(), &history).unwrap();
        let versions = history
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>();
        let millis = history
            .column(1)
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(versions.null_count() + millis.null_count(), 0);
        let shared_versions: Vec<i64> = versions.iter().map(Option::unwrap).collect();
        assert_eq!(shared_versions, server_versions, "{table}'s history");
        for (version, rows, files) in &expected {
            let read = query(format!(
                "SELECT count(*) FROM {table} VERSION AS OF {version}"
            ))
            .await
            .unwrap();
            assert_eq!(count(&read), *rows, "{table} VERSION AS OF {version}");
            let listed = query(format!(
                "SELECT count(*) FROM delta_files('{table}', {version})"
            ))
            .await
            .unwrap();
            assert_eq!(count(&listed), *files, "delta_files('{table}', {version})");
        }
        // TIMESTAMP AS OF the first data commit's time: the newest version
        // committed by then.
        let at = millis.value(1);
        let newest = (0..history.num_rows())
            .filter(|&i| millis.value(i) <= at)
            .map(|i| versions.value(i))
            .max()
            .unwrap();
        let stamp = chrono::DateTime::from_timestamp_millis(at)
            .unwrap()
            .format("%Y-%m-%d %H:%M:%S%.3f");
        let by_time = query(format!(
            "SELECT count(*) FROM {table} TIMESTAMP AS OF '{stamp}'"
        ))
        .await
        .unwrap();
        let by_version = query(format!(
            "SELECT count(*) FROM {table} VERSION AS OF {newest}"
        ))
        .await
        .unwrap();
        assert_eq!(
            count(&by_time),
            count(&by_version),
            "{table} TIMESTAMP AS OF {stamp}"
        );
        // A name that is not shared is refused, never another table's.
        let (schema, _) = table.split_once('.').unwrap();
        for sql in [
            format!("SELECT * FROM delta_history('{schema}.no_such_table')"),
            format!("SELECT * FROM {schema}.no_such_table VERSION AS OF 0"),
        ] {
            assert!(query(sql.clone()).await.is_err(), "{sql} is refused");
        }
    });
    eprintln!(
        "same    {table}: VERSION AS OF, TIMESTAMP AS OF, delta_history and delta_files of {} versions through the engine's sharing catalog",
        expected.len()
    );
}

/// Every row of a shared table, read by the engine's Delta Sharing client.
fn engine_reads_shared(profile: &str, table: &str) -> Vec<arrow::array::RecordBatch> {
    use wavelake_engine::sharing::{
        QueryOptions, SharedTableName, SharingClient, SharingProfile, open_shared_table,
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = SharingClient::new(&SharingProfile::parse(profile).unwrap()).unwrap();
        let name = SharedTableName::parse(table).unwrap();
        let listed = client.all_tables().await.unwrap();
        assert!(listed.contains(&name), "{listed:?}");
        let (snapshot, storage) = open_shared_table(&client, &name, &QueryOptions::default())
            .await
            .unwrap();
        let engine = wavelake_engine::Engine::new();
        engine.register_snapshot("t", snapshot, storage).unwrap();
        engine.query("SELECT * FROM t").await.unwrap()
    })
}

/// The rows of `sql` as the server answers them (Arrow IPC).
fn server_rows(server: &Server, sql: &str) -> Vec<arrow::array::RecordBatch> {
    let response = server
        .client
        .post(format!("{}/api/v1/sql", server.url))
        .bearer_auth(ADMIN)
        .header("accept", "application/vnd.apache.arrow.stream")
        .json(&json!({"sql": sql}))
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().unwrap();
    arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

/// Shares two tables (one with deletion vectors) with a recipient, reads
/// them with the PyPI `delta-sharing` client in both response formats, and
/// checks what recipients without a grant, and tampered URLs, get.
/// A recipient's token on the SQL API: reads of its shared tables by the
/// names sharing clients give them, nothing else, with where the query ran.
fn recipient_runs_sql_over_its_shares(server: &Server, token: &str) {
    let run = |sql: &str| {
        let response = server
            .client
            .post(format!("{}/api/v1/sql", server.url))
            .bearer_auth(token)
            .json(&json!({ "sql": sql }))
            .send()
            .unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (
            status,
            headers,
            response.json::<Value>().unwrap_or(Value::Null),
        )
    };
    let (status, headers, body) = run("SELECT count(*) AS n, sum(id) AS s FROM feeds.events");
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, expected) = server.sql(ADMIN, "SELECT count(*) AS n, sum(id) AS s FROM acme.events");
    assert_eq!(body["rows"], expected["rows"]);
    assert_eq!(headers["wavelake-ran-on"], "server");
    let reason = headers["wavelake-placement-reason"].to_str().unwrap();
    assert!(reason.ends_with("and no cluster is configured"), "{reason}");
    let read: u64 = headers["wavelake-read-bytes"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(read > 0, "the events table's files have bytes");
    let (_, files) = server.sql(
        ADMIN,
        "SELECT count(*) AS n FROM delta_files('acme.events')",
    );
    assert_eq!(
        headers["wavelake-read-files"].to_str().unwrap(),
        files["rows"][0]["n"].to_string(),
        "every active file of the table"
    );

    let (status, _, body) = run("SELECT count(*) AS n FROM feeds.events VERSION AS OF 1");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["rows"][0]["n"], 500,
        "time travel to before the delete"
    );
    let (status, _, body) =
        run("SELECT count(*) AS n FROM acme.sales WHERE day = DATE '2024-03-02'");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"][0]["n"], 100);

    for write in [
        "DELETE FROM feeds.events",
        "INSERT INTO acme.sales (id) VALUES (1)",
        "/* x */ UPDATE feeds.events SET kind = 'y'",
        "CREATE TABLE feeds.mine (id BIGINT)",
    ] {
        let (status, _, body) = run(write);
        assert_eq!(status, StatusCode::FORBIDDEN, "{write}: {body}");
        assert_eq!(body["error"]["code"], "NOT_ALLOWED", "{write}: {body}");
    }
    // The table under its namespace name is not what the share calls it.
    let (status, _, body) = run("SELECT count(*) FROM acme.events");
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "TABLE_NOT_FOUND", "{body}");
    let (_, after) = server.sql(ADMIN, "SELECT count(*) AS n, sum(id) AS s FROM acme.events");
    assert_eq!(after["rows"], expected["rows"], "nothing changed");
}

fn sharing_round_trip(server: &Server, test: &str) {
    for sql in [
        "CREATE TABLE acme.sales (id BIGINT NOT NULL, day DATE, amount DOUBLE, note STRING) PARTITIONED BY (day)",
        "INSERT INTO acme.sales SELECT value, DATE '2024-03-01' + CAST(value % 3 AS INT), value * 0.25, 'n' || value FROM range(0, 300)",
        "CREATE TABLE acme.events (id BIGINT, kind STRING)",
        "INSERT INTO acme.events SELECT value, 'k' || (value % 4) FROM range(0, 500)",
        "DELETE FROM acme.events WHERE id % 7 = 0",
        "UPDATE acme.events SET kind = 'changed' WHERE id BETWEEN 100 AND 120",
        "CREATE SHARE partners",
        "ALTER SHARE partners ADD TABLE acme.sales",
        "ALTER SHARE partners ADD TABLE acme.events AS feeds.events",
        "CREATE RECIPIENT eve",
    ] {
        let (status, body) = server.sql(ADMIN, sql);
        assert_eq!(status, StatusCode::OK, "{sql}: {body}");
    }
    let profile = server.recipient("bob", "partners");
    let bob: Value = serde_json::from_str(&profile).unwrap();
    let bob_token = bob["bearerToken"].as_str().unwrap().to_owned();
    assert_eq!(bob["endpoint"], format!("{}/delta-sharing/", server.url));
    recipient_runs_sql_over_its_shares(server, &bob_token);

    // The REST protocol directly.
    let (status, shares) = server.get(Some(&bob_token), "/delta-sharing/shares");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shares["items"], json!([{"name": "partners"}]));
    let (_, tables) = server.get(
        Some(&bob_token),
        "/delta-sharing/shares/partners/all-tables",
    );
    assert_eq!(tables["items"].as_array().unwrap().len(), 2);
    let version = server
        .client
        .get(format!(
            "{}/delta-sharing/shares/partners/schemas/feeds/tables/events/version",
            server.url
        ))
        .bearer_auth(&bob_token)
        .send()
        .unwrap();
    assert_eq!(version.headers()["delta-table-version"], "3");
    let query = server
        .client
        .post(format!(
            "{}/delta-sharing/shares/partners/schemas/acme/tables/sales/query",
            server.url
        ))
        .bearer_auth(&bob_token)
        .json(&json!({"limitHint": 1}))
        .send()
        .unwrap();
    assert_eq!(query.status(), StatusCode::OK);
    let lines: Vec<Value> = query
        .text()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let url = lines[2]["file"]["url"].as_str().unwrap().to_owned();
    let size = lines[2]["file"]["size"].as_u64().unwrap();
    // A JSON predicate hint on the partition column leaves other days out.
    let hint = json!({"op": "equal", "children": [
        {"op": "column", "name": "day", "valueType": "date"},
        {"op": "literal", "value": "2024-03-02", "valueType": "date"}]});
    let hinted: Vec<Value> = server
        .client
        .post(format!(
            "{}/delta-sharing/shares/partners/schemas/acme/tables/sales/query",
            server.url
        ))
        .bearer_auth(&bob_token)
        .json(&json!({"jsonPredicateHints": hint.to_string()}))
        .send()
        .unwrap()
        .text()
        .unwrap()
        .lines()
        .skip(2)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!hinted.is_empty());
    for line in &hinted {
        assert_eq!(
            line["file"]["partitionValues"]["day"], "2024-03-02",
            "{line}"
        );
    }
    // An explicit range: Azure Blob Storage has no suffix ranges.
    let ranged = server
        .client
        .get(&url)
        .header("range", format!("bytes={}-{}", size - 8, size - 1))
        .send()
        .unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        ranged.headers()["content-range"],
        format!("bytes {}-{}/{size}", size - 8, size - 1).as_str()
    );
    assert!(ranged.bytes().unwrap().ends_with(b"PAR1"));
    if url.contains("/files/") {
        let tampered = url.replace("/sales/", "/events/");
        assert_eq!(
            server.client.get(&tampered).send().unwrap().status(),
            StatusCode::FORBIDDEN
        );
        let forged = format!("{}0", url.trim_end_matches(|c: char| c.is_ascii_hexdigit()));
        assert_eq!(
            server.client.get(&forged).send().unwrap().status(),
            StatusCode::FORBIDDEN
        );
    }
    let (_, eve) = server.sql(ADMIN, "SHOW RECIPIENTS");
    assert_eq!(eve["row_count"], 2);
    let reader = server.token("acme", false);
    let (status, listed) = server.get(Some(&reader), "/delta-sharing/shares");
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(
        listed["items"],
        json!([{"name": "namespace-acme"}]),
        "a namespace token is no recipient: it sees its namespace, not the shares"
    );
    let (status, _) = server.get(
        Some(&reader),
        "/delta-sharing/shares/namespace-globex/all-tables",
    );
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another namespace stays hidden"
    );
    let (status, _) = server.get(None, "/delta-sharing/shares");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = server.get(
        Some(&bob_token),
        "/delta-sharing/shares/partners/schemas/acme/tables/nope/metadata",
    );
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["errorCode"], "RESOURCE_DOES_NOT_EXIST");
    let (status, body) = server.get(
        Some(&bob_token),
        "/delta-sharing/shares/partners/schemas/acme/tables/sales/changes?startingVersion=0",
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("delta.enableChangeDataFeed is not true"),
        "{body}"
    );

    let expected = [
        (
            "partners.acme.sales",
            server_rows(server, "SELECT * FROM acme.sales"),
        ),
        (
            "partners.feeds.events",
            server_rows(server, "SELECT * FROM acme.events"),
        ),
    ];

    // Wavelake's own sharing client (what the browser package runs),
    // deletion vectors applied from the presigned URLs.
    for (table, rows) in &expected {
        let read = engine_reads_shared(&profile, table);
        let compared = wavelake_tests::compare_rows(rows, &read, "server")
            .unwrap_or_else(|why| panic!("{table} by the engine's client: {why}"));
        eprintln!("same    {table} by the engine's sharing client ({compared} rows)");
    }

    engine_time_travels_shared(server, &profile, "feeds.events", "acme.events");

    // A table of more files than one chunk of a streamed answer holds.
    for sql in [
        "CREATE TABLE acme.wide (id BIGINT, p BIGINT) PARTITIONED BY (p)",
        "INSERT INTO acme.wide SELECT value, value % 700 FROM range(0, 1400)",
        "ALTER SHARE partners ADD TABLE acme.wide",
    ] {
        let (status, body) = server.sql(ADMIN, sql);
        assert_eq!(status, StatusCode::OK, "{sql}: {body}");
    }
    let wide = engine_reads_shared(&profile, "partners.acme.wide");
    let compared = wavelake_tests::compare_rows(
        &server_rows(server, "SELECT * FROM acme.wide"),
        &wide,
        "server",
    )
    .unwrap_or_else(|why| panic!("partners.acme.wide by the engine's client: {why}"));
    assert_eq!(compared, 1400);
    let (status, lines) = server.post_text(
        &bob_token,
        "/delta-sharing/shares/partners/schemas/acme/tables/wide/query",
        "{}",
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        lines.lines().filter(|l| l.starts_with("{\"file\"")).count(),
        700,
        "one line a file, over several chunks"
    );
    eprintln!("same    partners.acme.wide: 700 files answered in chunks");

    let dir = tempfile::tempdir().unwrap();
    let profile_path = dir.path().join("bob.share");
    std::fs::write(&profile_path, &profile).unwrap();

    // The npm package in Node, when scripts/build-pkg.sh has built it.
    if wavelake_tests::npm_package_built() {
        let rows = |batches: &[arrow::array::RecordBatch]| -> usize {
            batches.iter().map(|b| b.num_rows()).sum()
        };
        let stdout = wavelake_tests::run_node(
            &wavelake_tests::package_dir().join("tests/sharing.mjs"),
            &[
                profile_path.display().to_string(),
                format!("acme.sales={}", rows(&expected[0].1)),
                format!("feeds.events={}", rows(&expected[1].1)),
                format!(
                    "feeds.events@1={}",
                    rows(&server_rows(
                        server,
                        "SELECT * FROM acme.events VERSION AS OF 1"
                    ))
                ),
                format!(
                    "feeds.events#history={}",
                    count_and_version(server, "acme.events").1 + 1
                ),
            ],
        );
        eprintln!("{}", stdout.trim());
    } else {
        eprintln!("SKIPPED the npm package part of {test}: scripts/build-pkg.sh builds it");
    }

    // The PyPI client, both formats, compared row for row with the server.
    let Some(python) = wavelake_tests::venv_python_with(test, "delta_sharing") else {
        return;
    };
    for format in ["parquet", "delta"] {
        let out = dir.path().join(format);
        let mut args = vec![
            profile_path.to_str().unwrap(),
            out.to_str().unwrap(),
            format,
        ];
        args.extend(expected.iter().map(|(t, _)| *t));
        eprintln!(
            "{}",
            wavelake_tests::run_python(&python, "sharing_client.py", &args).trim()
        );
        let results: Value =
            serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
        for (table, rows) in &expected {
            assert_eq!(
                results[table], "ok",
                "{table} in {format}: {}",
                results[table]
            );
            let read = wavelake_tests::read_parquet_file(&out.join(format!("{table}.parquet")));
            let compared = wavelake_tests::compare_rows(rows, &read, "server")
                .unwrap_or_else(|why| panic!("{table} in {format}: {why}"));
            eprintln!("same    {table} by delta-sharing ({format}, {compared} rows)");
        }
    }
}

#[test]
fn delta_sharing_serves_tables_to_the_python_client() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let server = Server::start(
        dir.path(),
        &format!("root = {:?}\n", root.to_str().unwrap()),
    );
    sharing_round_trip(&server, "delta_sharing_serves_tables_to_the_python_client");
}

/// Change data feeds of tables Spark wrote (change files, deletion vectors,
/// partitions, column mapping), read by the `delta-sharing` client in both
/// formats and checked against `deltalake`'s own reader where it can read
/// them, and the two formats against each other everywhere.
#[test]
fn delta_sharing_serves_change_data_feeds() {
    let test = "delta_sharing_serves_change_data_feeds";
    let Some(golden) = wavelake_tests::golden_or_skip(test) else {
        return;
    };
    let Some(python) = wavelake_tests::venv_python_with(test, "delta_sharing") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    // Tables deltalake reads changes of, then ones it cannot (escaped file
    // names, column mapping), where the two formats must agree.
    let with_oracle = [
        "cdf-table",
        "cdf-table-non-partitioned",
        "cdf-table-with-dv",
        "cdf-table-with-cdc-and-dvs",
    ];
    let without_oracle = [
        "cdf-table-partitioned",
        "cdf-table-data-change",
        "cdf-table-update-ops",
        "cdf-table-delete-conditional-two-rows",
        "cdf-column-mapping-name-mode@1",
    ];
    let mut specs = Vec::new();
    let mut statements = vec!["CREATE SHARE changes".to_owned()];
    for spec in with_oracle.iter().chain(&without_oracle) {
        // NAME@START: the version the table began recording changes at.
        let (name, start) = spec.split_once('@').unwrap_or((spec, ""));
        let unpacked = wavelake_tests::unpack(&golden.join(format!("kernel-data/{name}.tar.zst")));
        let table = name.replace('-', "_");
        let location = root.join("cdf").join(&table);
        wavelake_tests::copy_dir(&unpacked, &location);
        statements.push(format!("ALTER SHARE changes ADD TABLE cdf.{table}"));
        let oracle = if with_oracle.contains(spec) {
            format!("={}", location.to_str().unwrap())
        } else {
            String::new()
        };
        let start = if start.is_empty() {
            String::new()
        } else {
            format!("@{start}")
        };
        specs.push(format!("changes.cdf.{table}{start}{oracle}"));
    }
    let server = Server::start(
        dir.path(),
        &format!("root = {:?}\n", root.to_str().unwrap()),
    );
    statements.push("CREATE TABLE acme.plain (id BIGINT)".into());
    statements.push("INSERT INTO acme.plain VALUES (1)".into());
    statements.push("ALTER SHARE changes ADD TABLE acme.plain".into());
    for sql in &statements {
        let (status, body) = server.sql(ADMIN, sql);
        assert_eq!(status, StatusCode::OK, "{sql}: {body}");
    }
    let profile = server.recipient("carol", "changes");
    let profile_path = dir.path().join("carol.share");
    std::fs::write(&profile_path, &profile).unwrap();
    let out = dir.path().join("changes.json");
    let mut args = vec![
        profile_path.to_str().unwrap().to_owned(),
        out.to_str().unwrap().to_owned(),
    ];
    args.extend(specs.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    wavelake_tests::run_python(&python, "sharing_changes.py", &args);
    let results: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    for spec in &specs {
        let table = spec.split('=').next().unwrap();
        let methods = &results[table];
        let parquet = &methods["parquet"];
        assert!(parquet.is_array(), "{table} (parquet format): {parquet}");
        assert!(
            !parquet.as_array().unwrap().is_empty(),
            "{table} has changes"
        );
        assert_eq!(
            parquet, &methods["delta"],
            "{table}: the parquet and delta formats disagree"
        );
        if spec.contains('=') {
            assert_eq!(
                parquet, &methods["deltalake"],
                "{table}: deltalake disagrees"
            );
        }
    }

    // Ranges, and tables that do not record changes.
    let changes = |path: &str| {
        server.get(
            Some(ADMIN),
            &format!("/delta-sharing/shares/changes/schemas/{path}"),
        )
    };
    let (status, body) = changes("acme/tables/plain/changes?startingVersion=0");
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("delta.enableChangeDataFeed"),
        "{body}"
    );
    let (status, body) = changes("cdf/tables/cdf_table/changes");
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("startingVersion")
    );
    let (status, body) = changes("cdf/tables/cdf_table/changes?startingVersion=99");
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) =
        changes("cdf/tables/cdf_column_mapping_name_mode/changes?startingVersion=0");
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[test]
fn delta_sharing_on_s3_hands_out_presigned_urls() {
    let Some(moto) = MotoServer::start("delta_sharing_on_s3_hands_out_presigned_urls") else {
        return;
    };
    moto.create_bucket("shared");
    let dir = tempfile::tempdir().unwrap();
    let mut config = "root = \"s3://shared/lake\"\n[storage]\n".to_owned();
    for (key, value) in moto.options() {
        config.push_str(&format!("{key} = {value:?}\n"));
    }
    let server = Server::start(dir.path(), &config);
    sharing_round_trip(&server, "delta_sharing_on_s3_hands_out_presigned_urls");
}

#[test]
fn expired_file_urls_are_refused_and_refreshed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let config = format!(
        "root = {:?}\n[limits]\nfile_url_lifetime_secs = 2\n",
        root.to_str().unwrap()
    );
    let server = Server::start(dir.path(), &config);
    for sql in [
        "CREATE TABLE acme.t (id BIGINT)",
        "INSERT INTO acme.t VALUES (1)",
        "INSERT INTO acme.t VALUES (2)",
        "CREATE SHARE s",
        "ALTER SHARE s ADD TABLE acme.t",
    ] {
        assert_eq!(server.sql(ADMIN, sql).0, StatusCode::OK, "{sql}");
    }
    let query = |body: Value| {
        let response = server
            .client
            .post(format!(
                "{}/delta-sharing/shares/s/schemas/acme/tables/t/query",
                server.url
            ))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .unwrap();
        let status = response.status();
        let version = response
            .headers()
            .get("delta-table-version")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, version, response.text().unwrap())
    };
    let (_, first_version, answer) = query(json!({"includeRefreshToken": true}));
    let lines: Vec<Value> = answer
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let url = lines[2]["file"]["url"].as_str().unwrap().to_owned();
    let end = &lines.last().unwrap()["endStreamAction"];
    let token = end["refreshToken"].as_str().unwrap().to_owned();
    assert!(
        end["minUrlExpirationTimestamp"].as_i64().unwrap() > 0,
        "{end}"
    );
    assert_eq!(
        server.client.get(&url).send().unwrap().status(),
        StatusCode::OK
    );
    // A commit after the token was handed out does not change what it
    // refreshes.
    assert_eq!(
        server.sql(ADMIN, "INSERT INTO acme.t VALUES (3)").0,
        StatusCode::OK
    );
    std::thread::sleep(std::time::Duration::from_millis(3100));
    let expired = server.client.get(&url).send().unwrap();
    assert_eq!(expired.status(), StatusCode::FORBIDDEN);
    assert!(expired.text().unwrap().contains("expired"));

    let (status, version, refreshed) = query(json!({"refreshToken": token}));
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_eq!(version, first_version, "a refresh answers the same version");
    let files = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter_map(|v| v["file"]["url"].as_str().map(str::to_owned))
            .collect()
    };
    let fresh = files(&refreshed);
    assert_eq!(fresh.len(), files(&answer).len(), "the same files");
    assert!(!fresh.contains(&url), "with fresh URLs");
    assert_eq!(
        server.client.get(&fresh[0]).send().unwrap().status(),
        StatusCode::OK
    );
    let (status, _, _) = query(json!({"refreshToken": format!("9{token}")}));
    assert_eq!(status, StatusCode::BAD_REQUEST, "a forged token is refused");

    // The npm package refreshes on its own, and says EXPIRED_URL when it
    // cannot.
    if !wavelake_tests::npm_package_built() {
        eprintln!("SKIPPED the npm package part: scripts/build-pkg.sh builds it");
        return;
    }
    // A recipient of `s` (an admin would still see the table through its
    // namespace once it leaves the share).
    let profile = server.recipient("dana", "s");
    let profile_path = dir.path().join("dana.share");
    std::fs::write(&profile_path, profile).unwrap();
    let stdout = wavelake_tests::run_node(
        &wavelake_tests::package_dir().join("tests/refresh.mjs"),
        &[
            profile_path.display().to_string(),
            server.url.clone(),
            ADMIN.to_owned(),
        ],
    );
    eprintln!("{}", stdout.trim());
}

#[test]
fn background_maintenance_compacts_and_vacuums_tables_that_allow_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let config = format!(
        "root = {:?}\n[maintenance]\ninterval_secs = 1\n[limits]\nminimum_retention_secs = 0\n",
        root.to_str().unwrap()
    );
    let server = Server::start(dir.path(), &config);
    for sql in [
        "CREATE TABLE acme.busy (id BIGINT) TBLPROPERTIES ('delta.deletedFileRetentionDuration' = 'interval 0 seconds')",
        "CREATE TABLE acme.pinned (id BIGINT) TBLPROPERTIES ('wavelake.autoOptimize' = 'false')",
        "CREATE TABLE acme.foreign (id BIGINT) TBLPROPERTIES ('delta.checkpointInterval' = '4', \
         'wavelake.autoOptimize' = 'false', 'wavelake.autoVacuum' = 'false')",
    ] {
        assert_eq!(server.sql(ADMIN, sql).0, StatusCode::OK, "{sql}");
    }
    for i in 0..5 {
        for table in ["busy", "pinned", "foreign"] {
            let sql = format!("INSERT INTO acme.{table} VALUES ({i})");
            assert_eq!(server.sql(ADMIN, &sql).0, StatusCode::OK);
        }
    }
    let files_on_disk = |table: &str| {
        wavelake_tests::files_under(&root.join("acme").join(table))
            .into_iter()
            .filter(|p| {
                p.extension().is_some_and(|e| e == "parquet")
                    && !p.to_string_lossy().contains("_delta_log")
            })
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, busy) = server.get(Some(ADMIN), "/api/v1/tables/acme/busy");
        if busy["files"] == 1 && files_on_disk("busy") == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not compacted and vacuumed: {busy}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let (_, pinned) = server.get(Some(ADMIN), "/api/v1/tables/acme/pinned");
    assert_eq!(pinned["files"], 5, "autoOptimize = false is left alone");
    // As if another writer had committed without checkpoints: the round
    // writes one for the latest version (5, four commits past none).
    let log = root.join("acme/foreign/_delta_log");
    std::fs::remove_file(log.join("00000000000000000004.checkpoint.parquet")).unwrap();
    std::fs::remove_file(log.join("_last_checkpoint")).unwrap();
    let checkpoint = log.join("00000000000000000005.checkpoint.parquet");
    while !checkpoint.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no background checkpoint"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let (_, rows) = server.sql(ADMIN, "SELECT count(*) AS n FROM acme.foreign");
    assert_eq!(rows["rows"][0]["n"], 5);
    let (_, rows) = server.sql(ADMIN, "SELECT count(*) AS n FROM acme.busy");
    assert_eq!(rows["rows"][0]["n"], 5);
}

#[test]
fn shares_and_recipients_can_come_from_the_configuration_file() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let token = "partner-token-from-the-config-file";
    let hash: String = sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let config = format!(
        "root = {:?}\n[[sharing.shares]]\nname = \"catalog\"\ntables = [\"acme.items as shop.items\"]\n\
         [[sharing.recipients]]\nname = \"partner\"\nshares = [\"catalog\"]\ntoken_sha256 = \"{hash}\"\n",
        root.to_str().unwrap()
    );
    std::fs::create_dir_all(&root).unwrap();
    let server = Server::start(dir.path(), &config);
    for sql in [
        "CREATE TABLE acme.items (id BIGINT)",
        "INSERT INTO acme.items VALUES (1), (2)",
    ] {
        assert_eq!(server.sql(ADMIN, sql).0, StatusCode::OK);
    }
    let (status, tables) = server.get(Some(token), "/delta-sharing/shares/catalog/all-tables");
    assert_eq!(status, StatusCode::OK, "{tables}");
    assert_eq!(
        tables["items"],
        json!([{"name": "items", "schema": "shop", "share": "catalog"}])
    );
    let config_text = std::fs::read_to_string(dir.path().join("wavelake.toml")).unwrap();
    assert!(!config_text.contains(token), "the file holds only the hash");
}

#[test]
fn sigterm_lets_a_commit_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let mut server = Server::start(dir.path(), &local_config(&root));
    assert_eq!(
        server
            .sql(ADMIN, "CREATE TABLE acme.big (id BIGINT, note STRING)")
            .0,
        StatusCode::OK
    );
    let url = server.url.clone();
    let insert = std::thread::spawn(move || {
        Client::builder()
            .timeout(std::time::Duration::from_secs(300))
            .build()
            .unwrap()
            .post(format!("{url}/api/v1/sql"))
            .bearer_auth(ADMIN)
            .json(&json!({"sql": "INSERT INTO acme.big SELECT value, 'note ' || value FROM range(0, 6000000)"}))
            .send()
            .map(|r| r.status())
    });
    std::thread::sleep(std::time::Duration::from_millis(100));
    let signalled_at = std::time::Instant::now();
    let pid = server.child.id().to_string();
    let signalled = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(signalled.success());
    let status = insert
        .join()
        .unwrap()
        .expect("the request in flight is answered");
    eprintln!(
        "the INSERT finished {:?} after SIGTERM",
        signalled_at.elapsed()
    );
    assert_eq!(
        status,
        StatusCode::OK,
        "the INSERT finished before the server stopped"
    );
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "a clean exit after SIGTERM: {exit}");
    let restarted = Server::start(dir.path(), &local_config(&root));
    let (_, body) = restarted.sql(ADMIN, "SELECT count(*) AS n FROM acme.big");
    assert_eq!(body["rows"][0]["n"], 6_000_000);
}

/// Uploads create tables (schema inferred from the file), and a
/// namespace's own tokens read its tables over Delta Sharing, history
/// included: what the web app does after a token sign-in.
#[test]
fn uploads_create_tables_that_namespace_tokens_read_over_sharing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &local_config(&dir.path().join("lake")));
    let writer = server.token("lab", true);
    let (status, me) = server.get(Some(&writer), "/api/v1/me");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me,
        json!({"admin": false, "namespaces": [{"name": "lab", "write": true}], "recipient": null})
    );
    let post = |table: &str, query: &str, key: Option<&str>, body: &[u8]| {
        let mut request = server
            .client
            .post(format!(
                "{}/api/v1/tables/lab/{table}/upload?format=csv{query}",
                server.url
            ))
            .bearer_auth(&writer)
            .body(body.to_vec());
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().unwrap();
        let status = response.status();
        (status, response.json::<Value>().unwrap_or(Value::Null))
    };
    let csv = b"city,visits,rate,day\nOslo,3,0.5,2026-11-01\nLima,7,1.25,2026-11-02\n";
    let (status, body) = post("visits", "", None, csv);
    assert_eq!(status, StatusCode::NOT_FOUND, "no create, no table: {body}");
    let (status, body) = post("visits", "&create=true", Some("k1"), csv);
    assert_eq!(status, StatusCode::BAD_REQUEST, "a key on a create: {body}");
    let (status, body) = post("broken", "&create=true", None, b"a,b\n1,2\n1,2,3\n");
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = server.get(Some(&writer), "/api/v1/tables/lab/broken");
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a failed create leaves no table"
    );
    let (status, body) = post("visits", "&create=true", None, csv);
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["rows"], 2);
    let (status, body) = post(
        "visits",
        "&create=true",
        Some("k2"),
        b"city,visits,rate,day\nRome,1,2.0,2026-11-03\n",
    );
    assert_eq!(
        status,
        StatusCode::CREATED,
        "an append once it exists: {body}"
    );
    let (status, body) = server.sql_in(
        &writer,
        "SELECT city, visits, rate, CAST(day AS STRING) AS day FROM visits ORDER BY city",
        Some("lab"),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["rows"],
        json!([
            {"city": "Lima", "visits": 7, "rate": 1.25, "day": "2026-11-02"},
            {"city": "Oslo", "visits": 3, "rate": 0.5, "day": "2026-11-01"},
            {"city": "Rome", "visits": 1, "rate": 2.0, "day": "2026-11-03"},
        ])
    );
    let (status, listed) = server.get(Some(&writer), "/delta-sharing/shares");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["items"], json!([{"name": "namespace-lab"}]));
    let table = "/delta-sharing/shares/namespace-lab/schemas/lab/tables/visits";
    let (status, history) = server.get(Some(&writer), &format!("{table}/history"));
    assert_eq!(status, StatusCode::OK, "{history}");
    let operations: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["operation"].as_str().unwrap())
        .collect();
    assert_eq!(operations, ["CREATE TABLE AS SELECT", "WRITE"]);
    assert_eq!(history["items"][1]["version"], 1);
    let outsider = server.token("other", true);
    let (status, _) = server.get(Some(&outsider), &format!("{table}/history"));
    assert_eq!(status, StatusCode::NOT_FOUND);
    let profile = json!({"shareCredentialsVersion": 1,
        "endpoint": format!("{}/delta-sharing/", server.url), "bearerToken": writer})
    .to_string();
    let rows: usize = engine_reads_shared(&profile, "namespace-lab.lab.visits")
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, 3);
}

#[test]
fn the_web_app_is_served_at_the_root_and_the_api_keeps_its_404s() {
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir_all(www.join("generated")).unwrap();
    std::fs::write(
        www.join("index.html"),
        "<!doctype html><div id=\"main\"></div>",
    )
    .unwrap();
    std::fs::write(www.join("generated/app.js"), "export {};").unwrap();
    let config = format!(
        "root = {:?}\nweb_dir = {:?}\n",
        dir.path().join("lake").to_str().unwrap(),
        www.to_str().unwrap()
    );
    let server = Server::start(dir.path(), &config);
    let page = server
        .client
        .get(format!("{}/", server.url))
        .send()
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().unwrap().contains("id=\"main\""));
    let script = server
        .client
        .get(format!("{}/generated/app.js", server.url))
        .send()
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    for missing in ["/nope.html", "/api/v1/nope"] {
        let (status, body) = server.get(Some(ADMIN), missing);
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(body["error"]["code"], "NOT_FOUND", "{missing}: {body}");
    }
}

/// The repository, when the built app, Chromium and playwright-core are
/// there for `test` (which skips, saying why, otherwise; under the test
/// command, which builds them, it fails instead).
fn web_app_for(test: &str) -> Option<std::path::PathBuf> {
    let repo = wavelake_tests::tests_dir().join("..");
    let ready = repo.join("www/generated/wavelake_web_bg.wasm").exists()
        && std::path::Path::new("/usr/bin/chromium").exists()
        && repo.join("pkg/node_modules/playwright-core").is_dir();
    if ready {
        return Some(repo);
    }
    let why = "needs the built app (scripts/build-web.sh), Chromium and pkg/node_modules";
    assert!(
        std::env::var_os("WAVELAKE_REQUIRE_WEB_E2E").is_none(),
        "{test} {why}, and the test command built them"
    );
    eprintln!("SKIPPED {test}: {why}");
    None
}

/// Copies the directory `from` to `to`, recursively.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The app's files from a static host (the server's web directory: plain
/// files, with Range) reading a table from a static host: no Delta
/// Sharing, no API. Deletion vectors are applied in the page.
#[test]
fn the_web_app_reads_a_table_on_a_static_host_in_chromium() {
    let Some(repo) = web_app_for("the_web_app_reads_a_table_on_a_static_host_in_chromium") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    copy_dir(&repo.join("www/generated"), &www.join("generated"));
    for file in ["index.html", "style.css"] {
        std::fs::copy(repo.join("www").join(file), www.join(file)).unwrap();
    }
    let root = dir.path().join("lake");
    let config = format!(
        "root = {:?}\nweb_dir = {:?}\n",
        root.to_str().unwrap(),
        www.to_str().unwrap()
    );
    let server = Server::start(dir.path(), &config);
    for sql in [
        "CREATE TABLE demo.trips (trip_id BIGINT NOT NULL, city STRING)",
        "INSERT INTO demo.trips SELECT value, 'c' || (value % 7) FROM generate_series(1, 300)",
        "DELETE FROM demo.trips WHERE trip_id % 3 = 0",
    ] {
        assert_eq!(server.sql(ADMIN, sql).0, StatusCode::OK, "{sql}");
    }
    copy_dir(&root.join("demo/trips"), &www.join("tables/trips"));
    let stdout = wavelake_tests::run_node(
        &repo.join("web/tests/static-host.mjs"),
        &[
            format!("{}/", server.url),
            format!("{}/tables/trips/", server.url),
            wavelake_tests::scratch_dir()
                .join("web-e2e")
                .display()
                .to_string(),
            "200".to_owned(),
        ],
    );
    eprintln!("{}", stdout.trim());
}

#[test]
fn the_web_app_signs_in_and_runs_a_query_in_chromium() {
    let Some(repo) = web_app_for("the_web_app_signs_in_and_runs_a_query_in_chromium") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "root = {:?}\n[[sharing.shares]]\nname = \"demo\"\ntables = [\"demo.trips\"]\n",
        dir.path().join("lake").to_str().unwrap()
    );
    let server = Server::start(dir.path(), &config);
    for sql in [
        "CREATE TABLE demo.trips (trip_id BIGINT NOT NULL, city STRING, fare DOUBLE)",
        "INSERT INTO demo.trips SELECT value, CASE value % 3 WHEN 0 THEN 'Lima' WHEN 1 THEN 'Oslo' \
         ELSE 'Accra' END, value * 0.5 FROM generate_series(1, 500)",
        "DELETE FROM demo.trips WHERE trip_id % 10 = 0",
        "CREATE TABLE demo.events (id BIGINT)",
        "INSERT INTO demo.events SELECT value FROM generate_series(1, 100)",
    ] {
        assert_eq!(server.sql(ADMIN, sql).0, StatusCode::OK, "{sql}");
    }
    let out = wavelake_tests::scratch_dir().join("web-e2e");
    let stdout = wavelake_tests::run_node(
        &repo.join("web/tests/e2e.mjs"),
        &[
            server.url.clone(),
            ADMIN.to_owned(),
            out.display().to_string(),
            // Version 1 has 500 rows; version 2 deletes every tenth as a
            // deletion vector the page applies.
            "demo.trips".to_owned(),
            "demo.events".to_owned(),
        ],
    );
    eprintln!("{}", stdout.trim());
}
