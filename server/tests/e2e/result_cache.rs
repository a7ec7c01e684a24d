//! The result cache through `wavelake serve`: a repeated query is answered
//! from memory (`x-wavelake-result-cache: hit`, counted in `/metrics`)
//! with the same rows, a commit or buffered rows make it run again, a
//! query calling `now()` always runs, and a token that may not read a
//! table gets no kept result of it.

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{ADMIN, Server, local_config};

const TOTALS: &str =
    "SELECT day, count(*) AS n, sum(total) AS total FROM acme.orders GROUP BY day ORDER BY day";

fn rows(body: &Value) -> Value {
    body["rows"].clone()
}

fn metric(server: &Server, name: &str) -> f64 {
    let metrics = server.metrics();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
}

fn ok(server: &Server, token: &str, sql: &str) {
    let (status, body) = server.sql(token, sql);
    assert_eq!(status, StatusCode::OK, "{sql}: {body}");
}

#[test]
fn repeated_queries_are_answered_from_the_result_cache_until_the_table_changes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &local_config(&dir.path().join("lake")));
    ok(
        &server,
        ADMIN,
        "CREATE TABLE acme.orders (id BIGINT, day DATE, total DOUBLE)",
    );
    ok(
        &server,
        ADMIN,
        "INSERT INTO acme.orders VALUES (1, DATE '2024-01-01', 1.5), (2, DATE '2024-01-02', 2.5)",
    );

    let (status, first, cache) = server.sql_cached(ADMIN, TOTALS);
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(cache.as_deref(), Some("miss"));
    let reader = server.token("acme", false);
    let (status, again, cache) = server.sql_cached(&reader, TOTALS);
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(cache.as_deref(), Some("hit"));
    assert_eq!(rows(&again), rows(&first));
    assert_eq!(metric(&server, "wavelake_result_cache_hits_total"), 1.0);
    assert!(metric(&server, "wavelake_result_cache_bytes") > 0.0);

    // A commit: the query runs again and sees it.
    ok(
        &server,
        ADMIN,
        "INSERT INTO acme.orders VALUES (3, DATE '2024-01-01', 4.0)",
    );
    let (_, after, cache) = server.sql_cached(ADMIN, TOTALS);
    assert_eq!(cache.as_deref(), Some("miss"));
    assert_eq!(after["rows"][0]["n"], 2, "{after}");
    assert_eq!(after["rows"][0]["total"], 5.5, "{after}");
    let (_, repeated, cache) = server.sql_cached(ADMIN, TOTALS);
    assert_eq!(cache.as_deref(), Some("hit"));
    assert_eq!(rows(&repeated), rows(&after));

    // An answer that changes with nothing committed always runs.
    for _ in 0..2 {
        let (status, body, cache) =
            server.sql_cached(ADMIN, "SELECT count(*) AS n, now() AS at FROM acme.orders");
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(cache.as_deref(), Some("bypass"));
    }
    // A statement that writes is not the cache's.
    let (_, _, cache) = server.sql_cached(ADMIN, "DELETE FROM acme.orders WHERE id = 3");
    assert_eq!(cache, None);
    let (_, deleted, cache) = server.sql_cached(ADMIN, TOTALS);
    assert_eq!(cache.as_deref(), Some("miss"));
    assert_eq!(rows(&deleted), rows(&first));

    // A token of another namespace gets no kept result of acme's table.
    let stranger = server.token("other", false);
    let (status, body, _) = server.sql_cached(&stranger, TOTALS);
    assert_ne!(status, StatusCode::OK, "{body}");
    assert!(body["rows"].is_null(), "{body}");

    assert_eq!(metric(&server, "wavelake_result_cache_hits_total"), 2.0);
    assert_eq!(metric(&server, "wavelake_result_cache_misses_total"), 3.0);
    assert_eq!(metric(&server, "wavelake_result_cache_bypassed_total"), 2.0);
}

#[test]
fn buffered_rows_are_read_not_a_kept_result() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}[ingest]\nflush_interval_ms = 600000\nflush_rows = 1000000\nbuffer_inserts = true\n",
        local_config(&dir.path().join("lake"))
    );
    let server = Server::start(dir.path(), &config);
    ok(
        &server,
        ADMIN,
        "CREATE TABLE acme.orders (id BIGINT, day DATE, total DOUBLE)",
    );
    let (_, empty, cache) = server.sql_cached(ADMIN, TOTALS);
    assert_eq!(cache.as_deref(), Some("miss"));
    assert_eq!(rows(&empty), Value::Array(vec![]));
    let (_, _, cache) = server.sql_cached(ADMIN, TOTALS);
    assert_eq!(cache.as_deref(), Some("hit"));

    // Buffered, acknowledged, not committed: the query reads them.
    ok(
        &server,
        ADMIN,
        "INSERT INTO acme.orders VALUES (1, DATE '2024-01-01', 1.5)",
    );
    for _ in 0..2 {
        let (_, body, cache) = server.sql_cached(ADMIN, TOTALS);
        assert_eq!(cache.as_deref(), Some("bypass"));
        assert_eq!(body["rows"][0]["n"], 1, "{body}");
    }
}
