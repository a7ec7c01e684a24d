//! Several servers on one root: tokens issued or revoked and shares made
//! on one hold on the others within seconds, and changes made on two
//! servers at once are all kept.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{ADMIN, Server};

fn pair(root: &std::path::Path) -> (tempfile::TempDir, Server, tempfile::TempDir, Server) {
    let config = format!(
        "root = {:?}\nsync_interval_secs = 1\n",
        root.to_str().unwrap()
    );
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start(a_dir.path(), &config);
    let b = Server::start(b_dir.path(), &config);
    (a_dir, a, b_dir, b)
}

/// The status `/api/v1/me` gives `token` on `server`.
fn me(server: &Server, token: &str) -> StatusCode {
    server.get(Some(token), "/api/v1/me").0
}

/// Waits (at most 10 s) until `check` holds.
fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn issue(server: &Server, label: &str) -> (String, String) {
    let response: Value = server
        .client
        .post(format!("{}/api/v1/tokens", server.url))
        .bearer_auth(ADMIN)
        .json(&json!({"label": label, "namespace": "acme", "write": false}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    (
        response["id"].as_str().unwrap().to_owned(),
        response["token"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn tokens_and_shares_changed_on_one_server_hold_on_all() {
    let root = tempfile::tempdir().unwrap();
    let (_a_dir, a, _b_dir, b) = pair(&root.path().join("lake"));

    let (id, token) = issue(&a, "first");
    assert_eq!(me(&a, &token), StatusCode::OK);
    eventually("B accepts a token A issued", || {
        me(&b, &token) == StatusCode::OK
    });
    let revoked = b
        .client
        .delete(format!("{}/api/v1/tokens/{id}", b.url))
        .bearer_auth(ADMIN)
        .send()
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert_eq!(me(&b, &token), StatusCode::UNAUTHORIZED);
    eventually("A refuses a token B revoked", || {
        me(&a, &token) == StatusCode::UNAUTHORIZED
    });

    // Both servers issue at once: every token is kept, on both.
    let issued: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let server = if i % 2 == 0 { &a } else { &b };
                scope.spawn(move || issue(server, &format!("racing {i}")).1)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for token in &issued {
        eventually("both servers accept every token", || {
            me(&a, token) == StatusCode::OK && me(&b, token) == StatusCode::OK
        });
    }
    let (_, listed) = a.get(Some(ADMIN), "/api/v1/tokens");
    let racing = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["label"].as_str().unwrap().starts_with("racing "))
        .count();
    assert_eq!(racing, 16, "{listed}");

    // Shares made on both at once are all kept and seen by both.
    std::thread::scope(|scope| {
        for i in 0..6 {
            let server = if i % 2 == 0 { &a } else { &b };
            scope.spawn(move || {
                let (status, body) = server.sql(ADMIN, &format!("CREATE SHARE s{i}"));
                assert_eq!(status, StatusCode::OK, "{body}");
            });
        }
    });
    let shares = |server: &Server| -> Vec<String> {
        let (_, body) = server.sql(ADMIN, "SHOW SHARES");
        let mut names: Vec<String> = body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["share"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    let expected: Vec<String> = (0..6).map(|i| format!("s{i}")).collect();
    eventually("both servers list every share", || {
        shares(&a) == expected && shares(&b) == expected
    });
}
