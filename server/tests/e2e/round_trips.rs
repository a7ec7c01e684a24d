//! SQL and table round trips in every result format, on a local directory, on S3
//! (moto) and on Azure Blob Storage (Azurite), uploads, and a store without
//! exclusive commits.

use crate::common::ADMIN;
use crate::common::count_and_version;
use crate::common::upload;
use crate::common::upload_batch;

use crate::common::Server;
use crate::common::local_config;
use reqwest::StatusCode;
use serde_json::json;
use wavelake_tests::AzuriteServer;
use wavelake_tests::MotoServer;

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

/// A repeated query is answered from hot data: its second run decodes no
/// chunk and fetches no byte, and `/metrics` counts what hot data served.
fn repeated_queries_come_from_hot_data(server: &Server) {
    let sql = "EXPLAIN ANALYZE SELECT count(*), sum(total), max(day) FROM acme.orders";
    let (status, first) = server.sql(ADMIN, sql);
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, second) = server.sql(ADMIN, sql);
    assert_eq!(status, StatusCode::OK, "{second}");
    let plan = second.to_string();
    assert!(plan.contains("HotScanExec"), "{plan}");
    assert!(plan.contains("hot_chunks_missed=0"), "{plan}");
    assert!(!plan.contains("hot_chunks_hit=0"), "{plan}");
    assert!(plan.contains("bytes_fetched=0"), "{plan}");
    let metrics = server.metrics();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
    };
    assert!(value("wavelake_hot_data_hits_total") >= 1.0, "{metrics}");
    assert!(value("wavelake_hot_data_bytes") > 0.0, "{metrics}");
    assert_eq!(value("wavelake_hot_data_budget_bytes"), (2u64 << 30) as f64);
}

#[test]
fn sql_and_tables_round_trip_on_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &local_config(&dir.path().join("lake")));
    round_trips(&server);
    repeated_queries_come_from_hot_data(&server);
    let metrics = server.metrics();
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
    crate::sharing::sharing_round_trip(&server, test);
}
