//! Acknowledged commits survive a `kill -9` and a restart, and SIGTERM lets
//! a commit in flight finish.

use crate::common::ADMIN;
use crate::common::Server;
use crate::common::local_config;
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::json;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

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
