//! Table subscriptions over Server-Sent Events: every commit arrives once,
//! in order, with its change rows when asked; a client that reconnects
//! with `Last-Event-ID` misses nothing; reads are authorized as reads, for
//! namespace tokens and for sharing recipients alike.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{ADMIN, Server};

/// How long a test waits for an event before it fails.
const EVENT_WAIT: Duration = Duration::from_secs(60);

/// One SSE event.
#[derive(Debug, Clone)]
struct SseEvent {
    id: Option<String>,
    kind: String,
    data: Value,
}

/// An open subscription: its events, read by a thread as they come.
struct Subscription {
    events: mpsc::Receiver<SseEvent>,
}

impl Subscription {
    fn open(url: &str, token: &str, last_event_id: Option<&str>) -> Self {
        let client = reqwest::blocking::Client::builder()
            .timeout(None)
            .build()
            .unwrap();
        let mut request = client.get(url).bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let (sender, events) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(response);
            let (mut id, mut kind, mut data) = (None, String::new(), String::new());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                let text = line.trim_end_matches(['\r', '\n']).to_owned();
                line.clear();
                if text.is_empty() {
                    if !data.is_empty() {
                        let event = SseEvent {
                            id: id.take(),
                            kind: std::mem::take(&mut kind),
                            data: serde_json::from_str(&data).unwrap(),
                        };
                        data.clear();
                        if sender.send(event).is_err() {
                            return;
                        }
                    }
                    continue;
                }
                if let Some(value) = text.strip_prefix("id:") {
                    id = Some(value.trim().to_owned());
                } else if let Some(value) = text.strip_prefix("event:") {
                    kind = value.trim().to_owned();
                } else if let Some(value) = text.strip_prefix("data:") {
                    data.push_str(value.trim_start());
                }
            }
        });
        Self { events }
    }

    fn next(&self) -> SseEvent {
        self.events
            .recv_timeout(EVENT_WAIT)
            .expect("an event within the wait")
    }
}

fn sql_ok(server: &Server, sql: &str) -> Value {
    let (status, body) = server.sql(ADMIN, sql);
    assert_eq!(status, StatusCode::OK, "{sql}: {body}");
    body
}

#[test]
fn subscribers_get_every_commit_in_order_with_changes_and_resume_without_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let server = Server::start(
        dir.path(),
        &format!(
            "root = {:?}\n[events]\npoll_interval_ms = 50\n",
            root.to_str().unwrap()
        ),
    );
    sql_ok(
        &server,
        "CREATE TABLE live (id BIGINT, name STRING) TBLPROPERTIES \
         ('delta.enableChangeDataFeed' = 'true')",
    );
    sql_ok(&server, "INSERT INTO live VALUES (1, 'ann'), (2, 'bob')");
    let url = format!(
        "{}/api/v1/tables/default/live/events?changes=true",
        server.url
    );
    let subscription = Subscription::open(&url, ADMIN, None);
    // Only commits made after subscribing arrive, each once, in order.
    sql_ok(&server, "UPDATE live SET name = 'anne' WHERE id = 1");
    sql_ok(&server, "DELETE FROM live WHERE id = 2");
    let update = subscription.next();
    assert_eq!(update.kind, "commit");
    assert_eq!(update.id.as_deref(), Some("2"));
    assert_eq!(update.data["version"], 2);
    assert_eq!(update.data["operation"], "UPDATE");
    assert_eq!(update.data["metrics"]["numUpdatedRows"], "1");
    let mut kinds: Vec<(String, String)> = update.data["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["_change_type"].as_str().unwrap().to_owned(),
                row["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("update_postimage".to_owned(), "anne".to_owned()),
            ("update_preimage".to_owned(), "ann".to_owned())
        ]
    );
    let delete = subscription.next();
    assert_eq!(delete.id.as_deref(), Some("3"));
    assert_eq!(delete.data["operation"], "DELETE");
    assert_eq!(delete.data["changes"][0]["_change_type"], "delete");
    assert_eq!(delete.data["changes"][0]["id"], 2);
    drop(subscription);

    // Commits made while disconnected arrive after a reconnect with the
    // last id seen, none missing, none twice.
    sql_ok(&server, "INSERT INTO live VALUES (3, 'cy')");
    sql_ok(&server, "INSERT INTO live VALUES (4, 'di')");
    let resumed = Subscription::open(&url, ADMIN, Some("3"));
    let versions: Vec<Value> = (0..2)
        .map(|_| resumed.next().data["version"].clone())
        .collect();
    assert_eq!(versions, [4, 5]);
    sql_ok(&server, "INSERT INTO live VALUES (5, 'eve')");
    let next = resumed.next();
    assert_eq!(next.data["version"], 6);
    assert_eq!(next.data["changes"][0]["_change_type"], "insert");
    assert_eq!(next.data["changes"][0]["name"], "eve");

    // From a version: the table's history first, then what comes.
    let history = Subscription::open(
        &format!(
            "{}/api/v1/tables/default/live/events?from_version=0",
            server.url
        ),
        ADMIN,
        None,
    );
    let operations: Vec<Value> = (0..7)
        .map(|_| history.next().data["operation"].clone())
        .collect();
    assert_eq!(operations[0], "CREATE TABLE");
    assert_eq!(
        &operations[1..],
        ["WRITE", "UPDATE", "DELETE", "WRITE", "WRITE", "WRITE"]
    );
    sql_ok(&server, "INSERT INTO live VALUES (6, 'fay')");
    let latest = history.next();
    assert_eq!(latest.data["version"], 7);
    assert!(latest.data.get("changes").is_none(), "not asked for");
}

#[test]
fn subscriptions_are_authorized_as_reads_and_bad_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let server = Server::start(
        dir.path(),
        &format!(
            "root = {:?}\n[events]\npoll_interval_ms = 50\n",
            root.to_str().unwrap()
        ),
    );
    sql_ok(&server, "CREATE TABLE plain (id BIGINT)");
    let url = |table: &str, query: &str| {
        format!("{}/api/v1/tables/default/{table}/events{query}", server.url)
    };
    let status = |url: &str, token: Option<&str>, last: Option<&str>| {
        let mut request = server.client.get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(last) = last {
            request = request.header("last-event-id", last);
        }
        let response = request.send().unwrap();
        let status = response.status();
        let body: Value = response.json().unwrap_or(Value::Null);
        (status, body)
    };
    assert_eq!(
        status(&url("plain", ""), None, None).0,
        StatusCode::UNAUTHORIZED
    );
    let other = server.token("elsewhere", true);
    assert_eq!(
        status(&url("plain", ""), Some(&other), None).0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&url("missing", ""), Some(ADMIN), None).0,
        StatusCode::NOT_FOUND
    );
    let (code, body) = status(&url("plain", "?changes=true"), Some(ADMIN), None);
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "CHANGE_DATA_NOT_RECORDED", "{body}");
    let (code, body) = status(&url("plain", ""), Some(ADMIN), Some("soon"));
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    let (code, _) = status(&url("plain", "?from_version=-2"), Some(ADMIN), None);
    assert_eq!(code, StatusCode::BAD_REQUEST);

    // A read-only token of the namespace subscribes.
    let reader = server.token("default", false);
    let subscription = Subscription::open(&url("plain", ""), &reader, None);
    sql_ok(&server, "INSERT INTO plain VALUES (1)");
    assert_eq!(subscription.next().data["version"], 1);

    // A recipient subscribes to a shared table through Delta Sharing.
    sql_ok(&server, "CREATE SHARE feed");
    sql_ok(&server, "ALTER SHARE feed ADD TABLE default.plain");
    let profile: Value = serde_json::from_str(&server.recipient("rita", "feed")).unwrap();
    let token = profile["bearerToken"].as_str().unwrap();
    let shared = Subscription::open(
        &format!(
            "{}/delta-sharing/shares/feed/schemas/default/tables/plain/events",
            server.url
        ),
        token,
        None,
    );
    sql_ok(&server, "INSERT INTO plain VALUES (2)");
    let event = shared.next();
    assert_eq!(event.data["version"], 2);
    assert_eq!(event.data["operation"], "WRITE");
    // Not a table of the share: refused like any other read.
    sql_ok(&server, "CREATE TABLE secret (id BIGINT)");
    assert_eq!(
        status(
            &format!(
                "{}/delta-sharing/shares/feed/schemas/default/tables/secret/events",
                server.url
            ),
            Some(token),
            None
        )
        .0,
        StatusCode::NOT_FOUND
    );
}

/// The npm package in Node follows a shared table with `for await`,
/// while commits are made through the SQL API.
#[test]
fn the_npm_package_follows_a_shared_table_in_node() {
    let test = "the_npm_package_follows_a_shared_table_in_node";
    if !wavelake_tests::npm_package_built() {
        eprintln!("SKIPPED {test}: scripts/build-pkg.sh builds the npm package");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let server = Server::start(
        dir.path(),
        &format!(
            "root = {:?}\n[events]\npoll_interval_ms = 50\n",
            root.to_str().unwrap()
        ),
    );
    for sql in [
        "CREATE TABLE acme.orders (id BIGINT, total DOUBLE) TBLPROPERTIES \
         ('delta.enableChangeDataFeed' = 'true')",
        "INSERT INTO acme.orders VALUES (1, 9.5)",
        "CREATE SHARE shop",
        "ALTER SHARE shop ADD TABLE acme.orders",
    ] {
        sql_ok(&server, sql);
    }
    let profile_path = dir.path().join("shop.share");
    std::fs::write(&profile_path, server.recipient("paula", "shop")).unwrap();
    let mut node = std::process::Command::new("node")
        .arg(wavelake_tests::package_dir().join("tests/subscribe.mjs"))
        .args([profile_path.to_str().unwrap(), "acme.orders", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("node runs");
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut next_line = || {
        lines
            .next()
            .expect("node printed a line")
            .expect("node's output is text")
    };
    assert_eq!(next_line(), "subscribed");
    sql_ok(&server, "UPDATE acme.orders SET total = 10.0 WHERE id = 1");
    sql_ok(&server, "INSERT INTO acme.orders VALUES (2, 3.25)");
    let update: Value = serde_json::from_str(&next_line()).unwrap();
    assert_eq!(update["version"], 2);
    assert_eq!(update["operation"], "UPDATE");
    let types: Vec<&str> = update["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["_change_type"].as_str().unwrap())
        .collect();
    assert_eq!(types.len(), 2, "{update}");
    assert!(types.contains(&"update_preimage") && types.contains(&"update_postimage"));
    let insert: Value = serde_json::from_str(&next_line()).unwrap();
    assert_eq!(insert["version"], 3);
    assert_eq!(insert["changes"][0]["total"], 3.25);
    assert_eq!(next_line(), "done");
    assert!(node.wait().unwrap().success());
}

/// A proxy in front of the server whose connections can be cut, to drop a
/// subscription in the middle.
struct CuttableProxy {
    url: String,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl CuttableProxy {
    fn start(target: &str) -> Self {
        let target = target.trim_start_matches("http://").to_owned();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let tracked = open.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                tracked.lock().unwrap().push(client.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self { url, open }
    }

    /// Closes every connection open now.
    fn cut(&self) {
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// The engine's subscription client (what the npm package and the web app
/// run) gets every commit once, across a dropped connection.
#[test]
fn the_engine_client_resumes_a_dropped_subscription_without_gaps() {
    use wavelake_engine::sharing::subscription::SubscribeOptions;
    use wavelake_engine::sharing::{SharedCatalog, SharingProfile};

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let server = Server::start(
        dir.path(),
        &format!(
            "root = {:?}\n[events]\npoll_interval_ms = 50\n",
            root.to_str().unwrap()
        ),
    );
    for sql in [
        "CREATE TABLE acme.ticks (n BIGINT)",
        "CREATE SHARE clock",
        "ALTER SHARE clock ADD TABLE acme.ticks",
    ] {
        sql_ok(&server, sql);
    }
    let proxy = CuttableProxy::start(&server.url);
    let mut profile: Value = serde_json::from_str(&server.recipient("tom", "clock")).unwrap();
    profile["endpoint"] = Value::String(format!("{}/delta-sharing/", proxy.url));
    let profile = SharingProfile::parse(&profile.to_string()).unwrap();
    // The blocking HTTP client of `server.sql` runs between the awaits.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let catalog = runtime.block_on(SharedCatalog::connect(&profile)).unwrap();
    let mut subscription = runtime
        .block_on(catalog.subscribe("acme.ticks", &SubscribeOptions::default()))
        .unwrap();
    let err = runtime
        .block_on(catalog.subscribe("acme.nothing", &SubscribeOptions::default()))
        .unwrap_err();
    assert_eq!(err.code(), "TABLE_NOT_FOUND");
    let commit = |n: i64| sql_ok(&server, &format!("INSERT INTO acme.ticks VALUES ({n})"));
    let mut next_version = || {
        runtime
            .block_on(subscription.next())
            .unwrap()
            .map(|commit| commit.version)
    };
    commit(1);
    assert_eq!(next_version(), Some(1));
    // Dropped: the next two commits happen while it is down.
    proxy.cut();
    commit(2);
    commit(3);
    assert_eq!([next_version(), next_version()], [Some(2), Some(3)]);
    commit(4);
    assert_eq!(next_version(), Some(4));
    subscription.close();
    assert_eq!(runtime.block_on(subscription.next()).unwrap(), None);
}

/// A subscription that asks for a version the log no longer holds ends
/// with an `error` event that says so, instead of skipping it.
#[test]
fn a_version_gone_from_the_log_ends_the_subscription_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let server = Server::start(
        dir.path(),
        &format!(
            "root = {:?}\n[events]\npoll_interval_ms = 50\n",
            root.to_str().unwrap()
        ),
    );
    sql_ok(&server, "CREATE TABLE old (id BIGINT)");
    for i in 0..10 {
        sql_ok(&server, &format!("INSERT INTO old VALUES ({i})"));
    }
    // Version 10 has a checkpoint: the first commit can go, as log
    // retention would take it.
    let log = root.join("default/old/_delta_log");
    assert!(log.join("00000000000000000010.checkpoint.parquet").exists());
    std::fs::remove_file(log.join("00000000000000000000.json")).unwrap();
    let subscription = Subscription::open(
        &format!(
            "{}/api/v1/tables/default/old/events?from_version=0",
            server.url
        ),
        ADMIN,
        None,
    );
    let event = subscription.next();
    assert_eq!(event.kind, "error", "{event:?}");
    assert_eq!(event.data["code"], "VERSION_NOT_FOUND", "{event:?}");
    // From a version still there, commits arrive.
    let subscription = Subscription::open(
        &format!(
            "{}/api/v1/tables/default/old/events?from_version=9",
            server.url
        ),
        ADMIN,
        None,
    );
    assert_eq!(subscription.next().data["version"], 9);
    assert_eq!(subscription.next().data["version"], 10);
}
