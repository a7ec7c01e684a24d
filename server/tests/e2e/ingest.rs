//! Buffered ingest through `POST …/rows`: appends acknowledged from the
//! write-ahead log, committed by flushes, kept across a killed server
//! exactly once, refused with `429` when the buffer is full, and bad rows
//! refused before anything is kept.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{ADMIN, Server, count_and_version, upload_batch};

fn config(root: &std::path::Path, ingest: &str) -> String {
    format!(
        "root = {:?}\n[limits]\nmax_result_rows = 50\n[ingest]\n{ingest}\n",
        root.to_str().unwrap()
    )
}

/// A server with `[ingest]` settings `ingest` and `acme.orders` created:
/// its directory (kept while the guard lives) and a token that writes acme.
fn server_with_orders(ingest: &str) -> (tempfile::TempDir, Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &config(&dir.path().join("lake"), ingest));
    create_orders(&server);
    let writer = server.token("acme", true);
    (dir, server, writer)
}

fn create_orders(server: &Server) {
    let (status, body) = server.sql(
        ADMIN,
        "CREATE TABLE acme.orders (id BIGINT NOT NULL, day DATE, total DOUBLE)",
    );
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// POSTs `body` as `content_type` to the table's rows; the status, the
/// `Retry-After` header and the answer.
fn post_rows(
    server: &Server,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Option<String>, Value) {
    let response = server
        .client
        .post(format!("{}/api/v1/tables/acme/orders/rows", server.url))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, response.json().unwrap_or(Value::Null))
}

/// JSON lines for ids `start..start + count`.
fn json_rows(start: i64, count: i64) -> Vec<u8> {
    (start..start + count)
        .map(|id| format!("{{\"id\": {id}, \"day\": \"2024-01-01\", \"total\": {id}.5}}\n"))
        .collect::<String>()
        .into_bytes()
}

fn arrow_rows(start: i64, count: i64) -> Vec<u8> {
    let batch = upload_batch(start, count);
    let mut out = Vec::new();
    let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut out, &batch.schema()).unwrap();
    writer.write(&batch).unwrap();
    writer.finish().unwrap();
    drop(writer);
    out
}

/// Waits until the table's latest version is `version` (a flush's
/// commit); its row count then. Buffered rows count in queries through the
/// server before they are committed, so the version is what tells.
fn wait_for_version(server: &Server, version: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (count, latest) = count_and_version(server, "acme.orders");
        if latest == version {
            return count;
        }
        assert!(latest < version, "version {latest}, past {version}");
        assert!(
            Instant::now() < deadline,
            "still at version {latest} after a minute"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every id in the table, sorted.
fn ids(server: &Server) -> Vec<i64> {
    let (status, body) = server.sql(
        ADMIN,
        "SELECT string_agg(CAST(id AS VARCHAR), ',' ORDER BY id) AS ids FROM acme.orders",
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    body["rows"][0]["ids"]
        .as_str()
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect()
}

#[test]
fn appends_are_acknowledged_then_committed_by_one_flush() {
    let (_dir, server, writer) = server_with_orders("flush_interval_ms = 600000\nflush_rows = 30");
    let mut sequences = Vec::new();
    for start in [0, 5, 10] {
        let (status, _, body) = post_rows(
            &server,
            &writer,
            "application/x-ndjson",
            json_rows(start, 5),
        );
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["rows"], 5, "{body}");
        assert_eq!(body["buffered"], true, "{body}");
        sequences.push(body["sequence"].as_u64().unwrap());
    }
    assert_eq!(sequences, [0, 1, 2]);
    let csv = "id,day,total\n15,2024-01-02,1.0\n16,,2.0\n"
        .as_bytes()
        .to_vec();
    let (status, _, body) = post_rows(&server, &writer, "text/csv", csv);
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // Not committed yet, and read by queries through the server already.
    assert_eq!(count_and_version(&server, "acme.orders"), (17, 0));
    let (status, body) = server.sql(
        &writer,
        "SELECT count(*) AS n, sum(total) AS s FROM orders WHERE id >= 15",
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["rows"][0]["n"].as_i64(), body["rows"][0]["s"].as_f64()),
        (Some(2), Some(3.0))
    );
    let (_, at_zero) = server.sql(
        ADMIN,
        "SELECT count(*) AS n FROM acme.orders VERSION AS OF 0",
    );
    assert_eq!(
        at_zero["rows"][0]["n"], 0,
        "time travel reads commits only: {at_zero}"
    );
    // 17 + 13 rows reach flush_rows: one flush commits all 30.
    let (status, _, body) = post_rows(
        &server,
        &writer,
        "application/vnd.apache.arrow.stream",
        arrow_rows(17, 13),
    );
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        wait_for_version(&server, 1),
        30,
        "one commit for every buffered row"
    );
    assert_eq!(ids(&server), (0..30).collect::<Vec<i64>>());
    let (_, history) = server.sql(
        ADMIN,
        "SELECT operation FROM delta_history('acme.orders') WHERE version = 1",
    );
    assert_eq!(history["rows"][0]["operation"], "WRITE", "{history}");
}

#[test]
fn rows_a_killed_server_acknowledged_are_committed_once_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let settings = "flush_interval_ms = 600000\nflush_rows = 1000000";
    let mut server = Server::start(dir.path(), &config(&root, settings));
    create_orders(&server);
    let writer = server.token("acme", true);
    for start in (0..40).step_by(4) {
        let (status, _, body) = post_rows(
            &server,
            &writer,
            "application/x-ndjson",
            json_rows(start, 4),
        );
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    server.kill();
    let server = Server::start(dir.path(), &config(&root, settings));
    // Rows recovered at start are flushed at once, not after the interval.
    assert_eq!(wait_for_version(&server, 1), 40);
    assert_eq!(ids(&server), (0..40).collect::<Vec<i64>>());
    let (status, _, body) = post_rows(&server, &writer, "application/x-ndjson", json_rows(40, 1));
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["sequence"], 10, "numbering goes on: {body}");
}

#[test]
fn a_full_buffer_refuses_with_429_and_retry_after() {
    let (_dir, server, writer) =
        server_with_orders("flush_interval_ms = 600000\nflush_rows = 1000\nmax_buffered_rows = 10");
    let (status, _, body) = post_rows(&server, &writer, "application/x-ndjson", json_rows(0, 8));
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, retry_after, body) =
        post_rows(&server, &writer, "application/x-ndjson", json_rows(8, 5));
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "BUFFER_FULL", "{body}");
    assert_eq!(retry_after.as_deref(), Some("600"));
    let (status, _, body) = post_rows(&server, &writer, "application/x-ndjson", json_rows(8, 2));
    assert_eq!(status, StatusCode::ACCEPTED, "what fits is taken: {body}");
}

#[test]
fn bad_rows_and_callers_are_refused_and_nothing_is_kept() {
    let (_dir, server, writer) = server_with_orders("flush_interval_ms = 200\nflush_rows = 1");
    let reader = server.token("acme", false);
    let refusals: Vec<(&str, &str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "a null id",
            "application/x-ndjson",
            b"{\"id\": 1}\n{\"id\": null}\n".to_vec(),
            StatusCode::BAD_REQUEST,
            "CONSTRAINT_VIOLATION",
        ),
        (
            "text for a number",
            "application/x-ndjson",
            b"{\"id\": \"seven\"}\n".to_vec(),
            StatusCode::BAD_REQUEST,
            "INVALID_UPLOAD",
        ),
        (
            "a CSV row with a column too many",
            "text/csv",
            b"id,day,total\n1,2024-01-01,1.0,extra\n".to_vec(),
            StatusCode::BAD_REQUEST,
            "INVALID_UPLOAD",
        ),
        (
            "no format",
            "application/octet-stream",
            json_rows(0, 1),
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
        ),
        (
            "no rows",
            "application/x-ndjson",
            Vec::new(),
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
        ),
    ];
    for (what, content_type, body, status, code) in refusals {
        let (got, _, answer) = post_rows(&server, &writer, content_type, body);
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{what}: {answer}"
        );
    }
    let (status, _, answer) = post_rows(&server, &reader, "application/x-ndjson", json_rows(0, 1));
    assert_eq!(status, StatusCode::FORBIDDEN, "a read-only token: {answer}");
    let (status, _, answer) = post_rows(
        &server,
        "not-a-token",
        "application/x-ndjson",
        json_rows(0, 1),
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    let response = server
        .client
        .post(format!("{}/api/v1/tables/acme/missing/rows", server.url))
        .bearer_auth(&writer)
        .header("content-type", "application/x-ndjson")
        .body(json_rows(0, 1))
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    // The good rows after the refusals are the only ones kept.
    let (status, _, body) = post_rows(&server, &writer, "application/x-ndjson", json_rows(100, 2));
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(wait_for_version(&server, 1), 2);
    assert_eq!(ids(&server), [100, 101]);
}

#[test]
fn a_statement_that_changes_the_table_flushes_its_buffer_first() {
    let (_dir, server, writer) =
        server_with_orders("flush_interval_ms = 600000\nflush_rows = 1000000");
    let (status, _, body) = post_rows(&server, &writer, "application/x-ndjson", json_rows(0, 10));
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = server.sql(&writer, "DELETE FROM orders WHERE id < 3");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&server), (3..10).collect::<Vec<i64>>());
    let (_, history) = server.sql(
        ADMIN,
        "SELECT operation FROM delta_history('acme.orders') ORDER BY version",
    );
    let operations: Vec<&str> = history["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["operation"].as_str().unwrap())
        .collect();
    assert_eq!(operations, ["CREATE TABLE", "WRITE", "DELETE"], "{history}");
    let (status, body) = server.sql(
        &writer,
        "INSERT INTO orders SELECT id + 100, day, total FROM orders",
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(count_and_version(&server, "acme.orders"), (14, 3));
}

/// Every id committed to `acme.orders` under `root`, as a reader of the
/// Delta table alone (no buffer) sees them, duplicates included, sorted.
async fn committed_ids(root: &std::path::Path) -> Vec<i64> {
    let engine = wavelake_tests::engine_at(&root.join("acme")).await;
    let batches = engine
        .query("SELECT id FROM orders ORDER BY id")
        .await
        .unwrap();
    batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect()
}

/// Appends of 1 to 20 rows with ids no one else sends, until the server
/// stops answering; the ids acknowledged and all ids sent.
fn ingest_client(url: String, token: String, first_id: i64, seed: u64) -> (Vec<i64>, Vec<i64>) {
    use rand::{Rng, SeedableRng};
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut acknowledged, mut sent) = (Vec::new(), Vec::new());
    let mut next = first_id;
    loop {
        let count = rng.random_range(1..=20);
        let ids: Vec<i64> = (next..next + count).collect();
        next += count;
        sent.extend(&ids);
        let body: String = ids
            .iter()
            .map(|id| format!("{{\"id\": {id}, \"total\": 1.0}}\n"))
            .collect();
        let response = http
            .post(format!("{url}/api/v1/tables/acme/orders/rows"))
            .bearer_auth(&token)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send();
        match response {
            Ok(r) if r.status() == StatusCode::ACCEPTED => acknowledged.extend(ids),
            Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(r) => panic!("{} {}", r.status(), r.text().unwrap_or_default()),
            // Killed: whether these rows were kept is unknown.
            Err(_) => return (acknowledged, sent),
        }
    }
}

#[test]
fn a_server_killed_during_ingest_again_and_again_keeps_every_acknowledged_row_once() {
    use rand::{Rng, SeedableRng};
    let rounds = wavelake_tests::markers::env_or("WAVELAKE_CRASH_ROUNDS", 6);
    let seed = wavelake_tests::markers::env_or("WAVELAKE_CRASH_SEED", 20261206);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    // Flushes every 50 ms or 200 rows: kills land in appends, in flushes
    // and between a flush's commit and the removal of its segments.
    let settings = "flush_interval_ms = 50\nflush_rows = 200\nmax_buffered_rows = 5000";
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut acknowledged, mut sent) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let mut server = Server::start(dir.path(), &config(&root, settings));
        if round == 0 {
            create_orders(&server);
        }
        let clients: Vec<_> = (0..4)
            .map(|c| {
                let url = server.url.clone();
                let first = (round as i64 * 4 + c) * 10_000_000;
                let seed = seed + round * 10 + c as u64;
                std::thread::spawn(move || ingest_client(url, ADMIN.to_owned(), first, seed))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.random_range(200..1200)));
        server.kill();
        for client in clients {
            let (acked, tried) = client.join().unwrap();
            acknowledged.extend(acked);
            sent.extend(tried);
        }
    }
    // A last start commits what the killed servers acknowledged.
    let _server = Server::start(dir.path(), &config(&root, settings));
    acknowledged.sort_unstable();
    sent.sort_unstable();
    assert!(
        acknowledged.len() > 100,
        "{} rows acknowledged",
        acknowledged.len()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let committed = loop {
        let committed = runtime.block_on(committed_ids(&root));
        let missing = acknowledged
            .iter()
            .filter(|id| committed.binary_search(id).is_err())
            .count();
        if missing == 0 {
            break committed;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} acknowledged rows still missing after a minute"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut unique = committed.clone();
    unique.dedup();
    assert_eq!(unique.len(), committed.len(), "a row was committed twice");
    assert!(
        committed.iter().all(|id| sent.binary_search(id).is_ok()),
        "a row no one sent"
    );
    eprintln!(
        "{rounds} kills: {} rows acknowledged, {} sent, {} committed",
        acknowledged.len(),
        sent.len(),
        committed.len()
    );
}

#[test]
fn insert_values_go_to_the_buffer_when_configured() {
    let (_dir, server, writer) = server_with_orders(
        "flush_interval_ms = 600000\nflush_rows = 1000000\nbuffer_inserts = true",
    );
    let (status, body) = server.sql(
        &writer,
        "INSERT INTO orders VALUES (1, DATE '2024-01-01', 1.5), (2, NULL, NULL)",
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"][0]["count"], 2, "{body}");
    assert_eq!(
        count_and_version(&server, "acme.orders"),
        (2, 0),
        "acknowledged, read through the server, not committed"
    );
    let (status, body) = server.sql(&writer, "INSERT INTO orders (id) VALUES (7)");
    assert_eq!(
        (status, &body["rows"][0]["count"]),
        (StatusCode::OK, &Value::from(1)),
        "{body}"
    );
    let (status, body) = server.sql(&writer, "INSERT INTO orders VALUES (NULL, NULL, NULL)");
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "CONSTRAINT_VIOLATION", "{body}");
    let reader = server.token("acme", false);
    let (status, body) = server.sql(&reader, "INSERT INTO orders VALUES (9, NULL, NULL)");
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // An INSERT that reads a table commits, after the buffer's flush.
    let (status, body) = server.sql(
        &writer,
        "INSERT INTO orders SELECT id + 10, day, total FROM orders",
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(count_and_version(&server, "acme.orders"), (6, 2));
    assert_eq!(ids(&server), [1, 2, 7, 11, 12, 17]);
}

/// A CHECK constraint holds for buffered rows, uploads and SQL alike, and
/// one added while a buffer is open holds for the appends after it.
#[test]
fn check_constraints_hold_on_every_write_path_of_the_server() {
    let (_dir, server, writer) = server_with_orders("flush_interval_ms = 600000");
    assert_eq!(
        post_rows(&server, &writer, "application/x-ndjson", json_rows(1, 2)).0,
        StatusCode::ACCEPTED
    );
    // Added with the buffer open (its rows pass): later appends are
    // checked against it.
    let (status, body) = server.sql(
        ADMIN,
        "ALTER TABLE acme.orders ADD CONSTRAINT small CHECK (total < 100)",
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let violating = b"{\"id\": 7, \"day\": \"2024-01-01\", \"total\": 250.0}\n".to_vec();
    let (status, _, body) = post_rows(&server, &writer, "application/x-ndjson", violating);
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "CONSTRAINT_VIOLATION", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("small") && message.contains("total = 250"),
        "{message}"
    );
    assert_eq!(
        post_rows(&server, &writer, "application/x-ndjson", json_rows(3, 1)).0,
        StatusCode::ACCEPTED
    );
    let upload = server
        .client
        .post(format!(
            "{}/api/v1/tables/acme/orders/upload?format=csv",
            server.url
        ))
        .bearer_auth(&writer)
        .body("id,day,total\n8,2024-01-02,5.0\n9,2024-01-02,500.0\n")
        .send()
        .unwrap();
    assert_eq!(upload.status(), StatusCode::BAD_REQUEST);
    let body: Value = upload.json().unwrap();
    assert_eq!(body["error"]["code"], "CONSTRAINT_VIOLATION", "{body}");
    let (status, body) = server.sql(&writer, "INSERT INTO acme.orders VALUES (10, NULL, 1000)");
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "CONSTRAINT_VIOLATION", "{body}");
    // Only the rows that passed are in the table, once.
    assert_eq!(ids(&server), [1, 2, 3]);
}
