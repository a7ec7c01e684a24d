//! BEGIN … COMMIT through the SQL API: several statements on one table
//! become one Delta commit that nobody sees before it lands; ROLLBACK
//! leaves no trace; a concurrent change to what the transaction read makes
//! COMMIT fail with a conflict; what may not be in a transaction is
//! refused.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{ADMIN, Server};

/// Runs `sql` in transaction `transaction` (none: outside any).
fn sql_in(
    server: &Server,
    token: &str,
    sql: &str,
    transaction: Option<&str>,
) -> (StatusCode, Value) {
    let mut body = json!({"sql": sql});
    if let Some(id) = transaction {
        body["transaction"] = json!(id);
    }
    let response = server
        .client
        .post(format!("{}/api/v1/sql", server.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .unwrap();
    let status = response.status();
    (status, response.json().unwrap_or(Value::Null))
}

fn ok(server: &Server, sql: &str, transaction: Option<&str>) -> Value {
    let (status, body) = sql_in(server, ADMIN, sql, transaction);
    assert_eq!(status, StatusCode::OK, "{sql}: {body}");
    body
}

fn begin(server: &Server, token: &str) -> String {
    let (status, body) = sql_in(server, token, "BEGIN", None);
    assert_eq!(status, StatusCode::OK, "{body}");
    body["rows"][0]["transaction"].as_str().unwrap().to_owned()
}

fn balances(server: &Server) -> Value {
    ok(server, "SELECT id, balance FROM accounts ORDER BY id", None)["rows"].clone()
}

fn latest_version(server: &Server) -> i64 {
    ok(
        server,
        "SELECT max(version) AS v FROM delta_history('accounts')",
        None,
    )["rows"][0]["v"]
        .as_i64()
        .unwrap()
}

fn data_files(root: &std::path::Path) -> usize {
    std::fs::read_dir(root.join("default/accounts"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
        .count()
}

/// A server on a new root (kept while the returned directory lives) with
/// the table `create` makes.
fn server_with(create: &str) -> (tempfile::TempDir, std::path::PathBuf, Server) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let server = Server::start(
        dir.path(),
        &format!("root = {:?}\n", root.to_str().unwrap()),
    );
    ok(&server, create, None);
    (dir, root, server)
}

#[test]
fn statements_in_a_transaction_commit_once_and_are_seen_only_then() {
    let (_dir, root, server) = server_with("CREATE TABLE accounts (id BIGINT, balance DOUBLE)");
    ok(
        &server,
        "INSERT INTO accounts VALUES (1, 100.0), (2, 50.0)",
        None,
    );
    let before = latest_version(&server);

    let id = begin(&server, ADMIN);
    let moved = ok(
        &server,
        "UPDATE accounts SET balance = balance - 30 WHERE id = 1",
        Some(&id),
    );
    assert_eq!(moved["rows"][0]["count"], 1);
    ok(
        &server,
        "UPDATE accounts SET balance = balance + 30 WHERE id = 2",
        Some(&id),
    );
    ok(&server, "INSERT INTO accounts VALUES (3, 5.0)", Some(&id));
    ok(
        &server,
        "DELETE FROM accounts WHERE balance < 10",
        Some(&id),
    );
    // Inside, the transaction reads its own changes; outside, nothing yet.
    let inside = ok(
        &server,
        "SELECT id, balance FROM accounts ORDER BY id",
        Some(&id),
    );
    assert_eq!(
        inside["rows"],
        json!([{"id": 1, "balance": 70.0}, {"id": 2, "balance": 80.0}])
    );
    assert_eq!(
        balances(&server),
        json!([{"id": 1, "balance": 100.0}, {"id": 2, "balance": 50.0}])
    );
    assert_eq!(latest_version(&server), before);

    let committed = ok(&server, "COMMIT", Some(&id));
    assert_eq!(committed["rows"][0]["version"], before + 1, "{committed}");
    assert_eq!(
        latest_version(&server),
        before + 1,
        "one commit for four statements"
    );
    assert_eq!(
        balances(&server),
        json!([{"id": 1, "balance": 70.0}, {"id": 2, "balance": 80.0}])
    );
    let history = ok(
        &server,
        "SELECT operation FROM delta_history('accounts') ORDER BY version DESC LIMIT 1",
        None,
    );
    assert_eq!(history["rows"][0]["operation"], "TRANSACTION");
    // The transaction is gone.
    let (status, _) = sql_in(&server, ADMIN, "SELECT 1", Some(&id));
    assert_eq!(status, StatusCode::NOT_FOUND);

    // ROLLBACK: the table as it was, the files written gone.
    let files = data_files(&root);
    let id = begin(&server, ADMIN);
    ok(&server, "DELETE FROM accounts WHERE id = 1", Some(&id));
    ok(&server, "INSERT INTO accounts VALUES (9, 9.0)", Some(&id));
    assert!(data_files(&root) > files, "the transaction wrote files");
    ok(&server, "ROLLBACK", Some(&id));
    assert_eq!(data_files(&root), files, "rolled back files are deleted");
    assert_eq!(latest_version(&server), before + 1);
    assert_eq!(
        balances(&server),
        json!([{"id": 1, "balance": 70.0}, {"id": 2, "balance": 80.0}])
    );

    // A concurrent commit that changes rows the transaction read: COMMIT
    // is refused and nothing of the transaction lands.
    let id = begin(&server, ADMIN);
    ok(
        &server,
        "UPDATE accounts SET balance = 0 WHERE id = 1",
        Some(&id),
    );
    ok(&server, "DELETE FROM accounts WHERE id = 1", None);
    let (status, body) = sql_in(&server, ADMIN, "COMMIT", Some(&id));
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "COMMIT_CONFLICT", "{body}");
    assert_eq!(balances(&server), json!([{"id": 2, "balance": 80.0}]));
}

/// COMMIT checks what each statement read, not the whole table: a
/// concurrent change elsewhere in the table lets it land, and a query in
/// the transaction counts as reading the whole table (what the
/// transaction writes may rest on it), also a query before its first
/// change.
#[test]
fn a_transaction_conflicts_only_with_changes_to_what_it_read() {
    // Deletion vectors from the start: the first change that writes one
    // would otherwise change the protocol, which conflicts with everything.
    let (_dir, _root, server) = server_with(
        "CREATE TABLE accounts (id BIGINT, balance DOUBLE) \
         TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')",
    );
    // Two files whose id ranges do not overlap.
    ok(
        &server,
        "INSERT INTO accounts VALUES (1, 100.0), (2, 50.0)",
        None,
    );
    ok(
        &server,
        "INSERT INTO accounts VALUES (101, 10.0), (102, 20.0)",
        None,
    );

    // The UPDATE reads the first file only; the concurrent DELETE changes
    // the second.
    let id = begin(&server, ADMIN);
    ok(
        &server,
        "UPDATE accounts SET balance = 0 WHERE id = 1",
        Some(&id),
    );
    ok(&server, "DELETE FROM accounts WHERE id = 102", None);
    let committed = ok(&server, "COMMIT", Some(&id));
    assert!(committed["rows"][0]["version"].is_i64(), "{committed}");
    assert_eq!(
        balances(&server),
        json!([
            {"id": 1, "balance": 0.0},
            {"id": 2, "balance": 50.0},
            {"id": 101, "balance": 10.0}
        ])
    );

    // A query, then a blind INSERT: a concurrent DELETE changed what the
    // query read.
    let id = begin(&server, ADMIN);
    ok(&server, "INSERT INTO accounts VALUES (3, 1.0)", Some(&id));
    ok(
        &server,
        "SELECT sum(balance) AS total FROM accounts",
        Some(&id),
    );
    ok(&server, "INSERT INTO accounts VALUES (4, 1.0)", Some(&id));
    ok(&server, "DELETE FROM accounts WHERE id = 101", None);
    let (status, body) = sql_in(&server, ADMIN, "COMMIT", Some(&id));
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // The same, the query before the transaction's first change: the
    // change since BEGIN is found at that first change.
    let id = begin(&server, ADMIN);
    ok(
        &server,
        "SELECT sum(balance) AS total FROM accounts",
        Some(&id),
    );
    ok(&server, "DELETE FROM accounts WHERE id = 2", None);
    let (status, body) = sql_in(
        &server,
        ADMIN,
        "INSERT INTO accounts VALUES (5, 1.0)",
        Some(&id),
    );
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "COMMIT_CONFLICT", "{body}");
    ok(&server, "ROLLBACK", Some(&id));

    // Blind appends alone still land beside a concurrent DELETE.
    let id = begin(&server, ADMIN);
    ok(&server, "INSERT INTO accounts VALUES (6, 1.0)", Some(&id));
    ok(&server, "DELETE FROM accounts WHERE id = 1", None);
    ok(&server, "COMMIT", Some(&id));
    assert_eq!(balances(&server), json!([{"id": 6, "balance": 1.0}]));
}

#[test]
fn what_a_transaction_may_not_hold_is_refused() {
    let (_dir, _root, server) = server_with("CREATE TABLE accounts (id BIGINT, balance DOUBLE)");
    ok(&server, "CREATE TABLE other (id BIGINT)", None);
    let id = begin(&server, ADMIN);
    ok(&server, "INSERT INTO accounts VALUES (1, 1.0)", Some(&id));
    for (sql, status) in [
        ("INSERT INTO other VALUES (1)", StatusCode::BAD_REQUEST),
        (
            "ALTER TABLE accounts ADD COLUMN note STRING",
            StatusCode::BAD_REQUEST,
        ),
        ("BEGIN", StatusCode::BAD_REQUEST),
    ] {
        let (got, body) = sql_in(&server, ADMIN, sql, Some(&id));
        assert_eq!(got, status, "{sql}: {body}");
    }
    // Still open after refusals.
    let inside = ok(&server, "SELECT count(*) AS n FROM accounts", Some(&id));
    assert_eq!(inside["rows"][0]["n"], 1);
    // Another token cannot use it; COMMIT without one is an error.
    let writer = server.token("default", true);
    let (status, _) = sql_in(&server, &writer, "SELECT 1", Some(&id));
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = sql_in(&server, ADMIN, "COMMIT", None);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = sql_in(&server, ADMIN, "COMMIT", Some("no-such-transaction"));
    assert_eq!(status, StatusCode::NOT_FOUND);
    ok(&server, "COMMIT", Some(&id));
    // A read-only token may read in a transaction, not write.
    let reader = server.token("default", false);
    let id = begin(&server, &reader);
    let (status, body) = sql_in(&server, &reader, "DELETE FROM accounts", Some(&id));
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = sql_in(
        &server,
        &reader,
        "SELECT count(*) AS n FROM accounts",
        Some(&id),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"][0]["n"], 1);
}

/// A transaction on a table that records its change data feed commits
/// the feed of every statement: its appends as inserts too.
#[test]
fn a_transaction_records_the_change_data_feed_of_all_its_statements() {
    let (_dir, _root, server) = server_with(
        "CREATE TABLE accounts (id BIGINT, balance DOUBLE) TBLPROPERTIES \
         ('delta.enableChangeDataFeed' = 'true')",
    );
    ok(&server, "INSERT INTO accounts VALUES (1, 10.0)", None);
    let id = begin(&server, ADMIN);
    ok(&server, "INSERT INTO accounts VALUES (2, 20.0)", Some(&id));
    ok(
        &server,
        "UPDATE accounts SET balance = 11.0 WHERE id = 1",
        Some(&id),
    );
    let committed = ok(&server, "COMMIT", Some(&id));
    let version = committed["rows"][0]["version"].as_i64().unwrap();
    let feed = ok(
        &server,
        &format!(
            "SELECT id, balance, _change_type FROM table_changes('accounts', {version}) \
             ORDER BY _change_type, id"
        ),
        None,
    );
    assert_eq!(
        feed["rows"],
        json!([
            {"id": 2, "balance": 20.0, "_change_type": "insert"},
            {"id": 1, "balance": 11.0, "_change_type": "update_postimage"},
            {"id": 1, "balance": 10.0, "_change_type": "update_preimage"},
        ])
    );
}
