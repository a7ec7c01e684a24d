//! Arrow Flight SQL (`flight_listen`) with a real client: the ADBC Flight
//! SQL driver from PyPI runs DDL, bulk ingest, queries, prepared
//! statements, updates and catalog calls, and is refused with a wrong or
//! read-only token; what it wrote is then read back through the HTTP API.
//! A query repeated over an unchanged table is answered by the result
//! cache.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{ADMIN, Server};

#[test]
fn adbc_flight_sql_client_reads_writes_and_is_refused_where_it_must_be() {
    let test = "adbc_flight_sql_client_reads_writes_and_is_refused_where_it_must_be";
    let Some(python) = wavelake_tests::venv_python_with(test, "adbc_driver_flightsql") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    // Buffered rows stay buffered for the whole test unless a statement
    // flushes them: what the client reads back comes from the buffer.
    let server = Server::start(
        dir.path(),
        &format!(
            "root = {:?}\nflight_listen = \"127.0.0.1:0\"\n[limits]\nmax_upload_bytes = 200000\nmax_result_rows = 10\n\
             [ingest]\nflush_interval_ms = 600000\nflush_rows = 10\n",
            root.to_str().unwrap()
        ),
    );
    let flight_url = server.flight_url.clone().expect("the Flight SQL address");
    let reader = server.token("default", false);
    let out = dir.path().join("flight.json");
    wavelake_tests::run_python(
        &python,
        "flight_sql.py",
        &[
            &flight_url,
            ADMIN,
            &reader,
            out.to_str().unwrap(),
            &server.url,
        ],
    );
    let results: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let expected = json!([
        {"id": 1, "name": "ann", "score": 1.5},
        {"id": 2, "name": "bob", "score": 0.0},
    ]);
    assert_eq!(results["rows"], expected);
    assert_eq!(results["count"], 2);
    assert_eq!(
        results["cache_hits"], 1.0,
        "a repeated query over Flight SQL"
    );
    // Kept through Flight SQL (no row cap), answered over HTTP: cut at
    // the API's cap as if it had run.
    let (status, body, cache) = server.sql_cached(ADMIN, "SELECT n FROM bulk ORDER BY n");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(cache.as_deref(), Some("hit"));
    assert_eq!(body["rows"].as_array().map(Vec::len), Some(10), "{body}");
    assert_eq!(body["truncated"], true, "{body}");
    assert_eq!(results["bulk"], 23, "the refused ingest left nothing");
    assert_eq!(results["sales"], 3, "ingested into the header's namespace");
    assert_eq!(
        results["parameters"], 3,
        "the parameter checks ran to the end"
    );
    // The 20-row append was a commit of its own (version 1 after the
    // create), visible to any reader, not buffered.
    let (status, body) = server.sql(
        ADMIN,
        "SELECT max(version) AS v, count(*) AS commits FROM delta_history('bulk')",
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"][0]["v"], 1, "{body}");

    // The HTTP API sees what Flight SQL wrote.
    let (status, body) = server.sql(ADMIN, "SELECT id, name, score FROM flights ORDER BY id");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"], expected, "{body}");
    let (status, body) = server.sql(ADMIN, "SELECT k, v FROM made");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"], json!([{"k": 30, "v": "w"}]), "{body}");
}
