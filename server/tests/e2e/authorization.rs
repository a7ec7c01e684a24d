//! The authorization matrix: every request without the right token is
//! refused with the right status, and statements are authorized on what
//! runs.

use crate::common::ADMIN;
use crate::common::count_and_version;
use crate::common::upload;
use crate::common::upload_batch;

use crate::common::Server;
use crate::common::local_config;
use reqwest::StatusCode;
use serde_json::Value;
use serde_json::json;

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
