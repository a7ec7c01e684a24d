//! Bounded resources on the real server: statements running at once per
//! token and in all (`429` with `Retry-After`), connections open at once,
//! clients that send headers or bodies too slowly, and which pages may call
//! the server from other origins (CORS).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{ADMIN, Server};

fn config(root: &std::path::Path, limits: &str) -> String {
    format!("root = {:?}\n[limits]\n{limits}\n", root.to_str().unwrap())
}

fn address(server: &Server) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

/// An upload whose headers and first bytes are sent and whose rest is
/// held back: a statement that keeps running until the stream is closed.
fn upload_in_progress(server: &Server, token: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address(server)).unwrap();
    write!(
        stream,
        "POST /api/v1/tables/acme/slow/upload?format=csv HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {token}\r\nContent-Length: 1000\r\n\r\nid\n1\n"
    )
    .unwrap();
    stream.flush().unwrap();
    stream
}

/// Waits until the server says (`/metrics`) that `count` statements run.
fn wait_running(server: &Server, count: usize) {
    let expected = format!("wavelake_running_statements {count}\n");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = server.metrics();
        if metrics.contains(&expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never {count} running:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn statements_are_capped_per_token_and_in_all() {
    let dir = tempfile::tempdir().unwrap();
    let limits = "max_running_per_token = 1\nmax_running_statements = 2";
    let server = Server::start(dir.path(), &config(&dir.path().join("lake"), limits));
    let (status, body) = server.sql(ADMIN, "CREATE TABLE acme.slow (id BIGINT)");
    assert_eq!(status, StatusCode::OK, "{body}");
    let writer = server.token("acme", true);
    let reader = server.token("acme", false);
    let sql = |token: &str| {
        server
            .client
            .post(format!("{}/api/v1/sql", server.url))
            .bearer_auth(token)
            .json(&serde_json::json!({"sql": "SELECT count(*) AS n FROM acme.slow"}))
            .send()
            .unwrap()
    };

    let held = upload_in_progress(&server, &writer);
    wait_running(&server, 1);
    let response = sql(&writer);
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().unwrap();
    assert_eq!(body["error"]["code"], "TOO_MANY_REQUESTS", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit of 1"),
        "{body}"
    );
    // Another token still runs, and the limit applies to sharing queries.
    assert_eq!(sql(&reader).status(), StatusCode::OK);
    let share = format!(
        "{}/delta-sharing/shares/namespace-acme/schemas/acme/tables/slow/query",
        server.url
    );
    let sharing = server
        .client
        .post(&share)
        .bearer_auth(&writer)
        .json(&serde_json::json!({}))
        .send()
        .unwrap();
    assert_eq!(sharing.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = sharing.json().unwrap();
    assert_eq!(body["errorCode"], "RESOURCE_EXHAUSTED", "{body}");

    // Two running in all: the admin's is one too many.
    let other_writer = server.token("acme", true);
    let also_held = upload_in_progress(&server, &other_writer);
    wait_running(&server, 2);
    let response = sql(ADMIN);
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = response.json().unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the server is running"),
        "{body}"
    );

    // Closing the held uploads frees their places.
    drop((held, also_held));
    wait_running(&server, 0);
    assert_eq!(sql(&writer).status(), StatusCode::OK);
    let (status, body) = server.sql(ADMIN, "SELECT count(*) AS n FROM acme.slow");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["rows"][0]["n"], 0,
        "a cut-off upload wrote nothing: {body}"
    );
}

/// Whether the server closes `stream` within `within` (reading nothing,
/// or an error status, before the end).
fn closed_within(stream: &mut TcpStream, within: Duration) -> (bool, String) {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut answer = Vec::new();
    let closed = match stream.read_to_end(&mut answer) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    (closed, String::from_utf8_lossy(&answer).into_owned())
}

#[test]
fn slow_clients_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let limits = "header_timeout_secs = 1\nbody_idle_timeout_secs = 1";
    let server = Server::start(dir.path(), &config(&dir.path().join("lake"), limits));
    let (status, body) = server.sql(ADMIN, "CREATE TABLE acme.slow (id BIGINT)");
    assert_eq!(status, StatusCode::OK, "{body}");

    // Headers that never end.
    let mut trickle = TcpStream::connect(address(&server)).unwrap();
    trickle
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let (closed, answer) = closed_within(&mut trickle, Duration::from_secs(10));
    assert!(
        closed,
        "a client that never finishes its headers is cut off"
    );
    assert!(!answer.contains("200 OK"), "{answer}");

    // A body that stops coming.
    let mut stalled = upload_in_progress(&server, ADMIN);
    let (closed, answer) = closed_within(&mut stalled, Duration::from_secs(10));
    assert!(closed, "a stalled body is cut off: {answer}");
    assert!(!answer.contains(" 201 "), "{answer}");
    let (_, body) = server.sql(ADMIN, "SELECT count(*) AS n FROM acme.slow");
    assert_eq!(body["rows"][0]["n"], 0, "{body}");
}

#[test]
fn connections_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &config(&dir.path().join("lake"), "max_connections = 3"),
    );
    // Three connections at once: a fourth waits until one closes.
    let quick = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(700))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let health = format!("{}/health", server.url);
    let mut open: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut stream = TcpStream::connect(address(&server)).unwrap();
            stream
                .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut first = [0u8; 12];
            stream.read_exact(&mut first).unwrap();
            assert_eq!(&first, b"HTTP/1.1 200");
            stream
        })
        .collect();
    assert!(
        quick.get(&health).send().is_err(),
        "a fourth connection is served while three are open"
    );
    open.pop();
    let deadline = Instant::now() + Duration::from_secs(10);
    while quick.get(&health).send().map(|r| r.status()).ok() != Some(StatusCode::OK) {
        assert!(Instant::now() < deadline, "closing one never made room");
    }
}

/// The `Access-Control-Allow-Origin` a preflight from `origin` gets.
fn preflight(server: &Server, path: &str, origin: &str) -> Option<String> {
    let response = server
        .client
        .request(reqwest::Method::OPTIONS, format!("{}{path}", server.url))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type",
        )
        .send()
        .unwrap();
    response
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned())
}

#[test]
fn only_configured_origins_may_call_the_api_while_sharing_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &config(&dir.path().join("lake"), ""));
    let stranger = "https://elsewhere.example";
    assert_eq!(preflight(&server, "/api/v1/sql", stranger), None);
    assert_eq!(
        preflight(&server, "/delta-sharing/shares", stranger).as_deref(),
        Some("*")
    );
    assert_eq!(
        preflight(&server, "/files/some/file.parquet", stranger).as_deref(),
        Some("*")
    );
    drop(server);
    let dir = tempfile::tempdir().unwrap();
    let mut text = config(&dir.path().join("lake"), "");
    text.insert_str(0, "cors_origins = [\"https://app.example\"]\n");
    let server = Server::start(dir.path(), &text);
    assert_eq!(
        preflight(&server, "/api/v1/sql", "https://app.example").as_deref(),
        Some("https://app.example")
    );
    assert_eq!(preflight(&server, "/api/v1/sql", stranger), None);
}
