//! Buffered ingest against direct commits: 64 concurrent clients
//! (`WAVELAKE_INGEST_CLIENTS`) append rows to one table for
//! `WAVELAKE_INGEST_SECS` (20) each, through `POST …/rows` (the write-ahead
//! log and buffer), through `INSERT … VALUES` on `/api/v1/sql` with
//! `buffer_inserts` (the same buffer) and without (one Delta commit per
//! statement, as every write was before), with 1 and with
//! 100 rows per request, in one run against one server per case:
//! acknowledged rows per second, p50 and p99 acknowledgement latency, and
//! the rows the table holds afterwards (checked equal to those
//! acknowledged). `GET /health` under the same load is the ceiling: what
//! one request costs this client and server on this machine with no work.
//! The clients are lean HTTP/1.1 connections (hyper's client, one
//! keep-alive connection each), since they share the server's cores.
//!
//! `cargo bench --profile release -p wavelake-server --bench ingest`
//! (`scripts/bench.sh ingest`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode};
use serde_json::json;

mod common;
use common::{ADMIN, env_or, percentile};

/// Limits that do not bind at this load (admission would otherwise queue
/// the SQL path and not the buffered one).
const UNLIMITED: &str = "[limits]\nmax_running_statements = 1000000\n\
    max_running_per_token = 1000000\nmax_connections = 1000000\n\
    server_memory_bytes = 1099511627776\n";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    /// `POST …/rows`.
    Buffered,
    /// `INSERT … VALUES` with `[ingest] buffer_inserts = true`.
    BufferedInsert,
    /// `INSERT … VALUES`, one commit each.
    Direct,
    /// `GET /health`: no work at all, the ceiling this client and server
    /// reach for one request on this machine.
    Health,
}

#[derive(Default)]
struct Tally {
    latencies_ms: Vec<f64>,
    rows: u64,
    refused: u64,
    failed: u64,
}

/// One connection of a lean HTTP/1.1 client (hyper's, with requests built
/// from prepared parts, as load generators do), so that the client's own
/// CPU time, on the same cores as the server, is as small as it can be.
type Connection = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(address: &str) -> Option<Connection> {
    let stream = tokio::net::TcpStream::connect(address).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(connection);
    Some(sender)
}

async fn client(
    url: String,
    path: Path,
    rows_per_request: i64,
    next_id: Arc<AtomicI64>,
    until: Instant,
) -> Tally {
    let address = url.trim_start_matches("http://").to_owned();
    let host = HeaderValue::from_str(&address).unwrap();
    let bearer = HeaderValue::from_str(&format!("Bearer {ADMIN}")).unwrap();
    let mut tally = Tally::default();
    let mut connection: Option<Connection> = None;
    while Instant::now() < until {
        let usable = match &mut connection {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !usable {
            connection = connect(&address).await;
        }
        let Some(sender) = connection.as_mut() else {
            tally.failed += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let first = next_id.fetch_add(rows_per_request, Ordering::Relaxed);
        let ids = first..first + rows_per_request;
        let (method, target, content_type, body) = match path {
            Path::Buffered => {
                let body: String = ids
                    .map(|id| format!("{{\"id\":{id},\"v\":{}}}\n", id % 1000))
                    .collect();
                (
                    Method::POST,
                    "/api/v1/tables/acme/events/rows",
                    "application/x-ndjson",
                    body,
                )
            }
            Path::Health => (Method::GET, "/health", "text/plain", String::new()),
            Path::Direct | Path::BufferedInsert => {
                let values: Vec<String> = ids.map(|id| format!("({id}, {})", id % 1000)).collect();
                let sql = format!("INSERT INTO acme.events VALUES {}", values.join(", "));
                let body = json!({"sql": sql}).to_string();
                (Method::POST, "/api/v1/sql", "application/json", body)
            }
        };
        let request = Request::builder()
            .method(method)
            .uri(target)
            .header(header::HOST, host.clone())
            .header(header::AUTHORIZATION, bearer.clone())
            .header(header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let started = Instant::now();
        let answered = match sender.send_request(request).await {
            Ok(response) => {
                let status = response.status();
                response
                    .into_body()
                    .collect()
                    .await
                    .is_ok()
                    .then_some(status)
            }
            Err(_) => None,
        };
        match answered {
            Some(status) if status.is_success() => {
                tally.rows += rows_per_request as u64;
                tally
                    .latencies_ms
                    .push(started.elapsed().as_secs_f64() * 1000.0);
            }
            Some(StatusCode::TOO_MANY_REQUESTS) => {
                tally.refused += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            _ => {
                tally.failed += 1;
                connection = None;
            }
        }
    }
    tally
}

struct Outcome {
    rows_per_sec: f64,
    line: String,
}

fn run(path: Path, rows_per_request: i64, seconds: u64, clients: u64) -> Outcome {
    let (label, buffer_inserts) = match path {
        Path::Buffered => ("buffered rows", false),
        Path::BufferedInsert => ("buffered INSERT", true),
        Path::Direct => ("direct INSERT", false),
        Path::Health => ("GET /health (no work)", false),
    };
    let dir =
        wavelake_tests::scratch_dir().join(format!("ingest-bench-{label}-{rows_per_request}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("wavelake.toml");
    std::fs::write(
        &config,
        format!(
            "root = {:?}\n{UNLIMITED}[ingest]\nmax_buffered_rows = 5000000\nbuffer_inserts = {buffer_inserts}\n",
            dir.join("lake").to_str().unwrap()
        ),
    )
    .unwrap();
    let (mut server, url) = common::start_server(
        env!("CARGO_BIN_EXE_wavelake"),
        &["--config".as_ref(), config.as_os_str()],
        "error",
    );
    let setup = reqwest::blocking::Client::new();
    let admin_sql = |sql: &str| -> serde_json::Value {
        let response = setup
            .post(format!("{url}/api/v1/sql"))
            .bearer_auth(ADMIN)
            .json(&json!({"sql": sql}))
            .send()
            .unwrap();
        assert!(response.status().is_success(), "{sql}");
        response.json().unwrap()
    };
    admin_sql("CREATE TABLE acme.events (id BIGINT NOT NULL, v BIGINT)");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let next_id = Arc::new(AtomicI64::new(0));
    let cpu_before = cpu_seconds(server.id());
    let client_cpu_before = cpu_seconds(std::process::id());
    let idle_before = idle_cpu_seconds();
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let tallies: Vec<Tally> = runtime.block_on(async {
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                tokio::spawn(client(
                    url.clone(),
                    path,
                    rows_per_request,
                    next_id.clone(),
                    until,
                ))
            })
            .collect();
        let mut tallies = Vec::new();
        for task in tasks {
            tallies.push(task.await.unwrap());
        }
        tallies
    });
    let elapsed = started.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(server.id()) - cpu_before;
    let client_cpu = cpu_seconds(std::process::id()) - client_cpu_before;
    let idle_share = (idle_cpu_seconds() - idle_before) / (elapsed * cores());
    let rows: u64 = tallies.iter().map(|t| t.rows).sum();
    let cpu_us_per_row = server_cpu * 1e6 / rows.max(1) as f64;
    let requests = (rows / rows_per_request as u64).max(1) as f64;
    let client_us_per_request = client_cpu * 1e6 / requests;
    let refused: u64 = tallies.iter().map(|t| t.refused).sum();
    let failed: u64 = tallies.iter().map(|t| t.failed).sum();
    let mut latencies: Vec<f64> = tallies
        .iter()
        .flat_map(|t| t.latencies_ms.iter().copied())
        .collect();
    let (p50, p99) = (
        percentile(&mut latencies, 0.50),
        percentile(&mut latencies, 0.99),
    );
    // Every acknowledged row is in the table (buffered ones through the
    // server's read-your-writes); a flush then commits the rest.
    let counted = admin_sql("SELECT count(*) AS n FROM acme.events")["rows"][0]["n"]
        .as_u64()
        .unwrap();
    assert!(
        counted >= rows || path == Path::Health,
        "{label}: {counted} rows in the table, {rows} acknowledged"
    );
    let commits =
        admin_sql("SELECT count(*) AS n FROM delta_history('acme.events')")["rows"][0]["n"]
            .as_u64()
            .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let rows_per_sec = rows as f64 / elapsed;
    Outcome {
        rows_per_sec,
        line: format!(
            "| {label} | {rows_per_request} | {rows_per_sec:.0} | {p50:.1} ms | {p99:.1} ms | {refused} | {failed} | {commits} | {cpu_us_per_row:.1} | {client_us_per_request:.1} | {:.0}% |",
            idle_share * 100.0
        ),
    }
}

/// Seconds all cores of the machine have been idle (or waiting for the
/// disk) so far, from `/proc/stat` (Linux); 0 where it cannot be read.
fn idle_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = stat.lines().next() else {
        return 0.0;
    };
    // `cpu user nice system idle iowait ...`, in ticks of 1/100 s.
    line.split_whitespace()
        .skip(4)
        .take(2)
        .filter_map(|f| f.parse::<f64>().ok())
        .sum::<f64>()
        / 100.0
}

/// The cores this machine has.
fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}

/// CPU seconds (user and system) the process `pid` has used so far, from
/// `/proc` (Linux); 0 where it cannot be read.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) in parentheses.
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 11 and 12 here;
    // Linux counts them in ticks of 1/100 s.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let seconds = env_or("WAVELAKE_INGEST_SECS", 20);
    let clients = env_or("WAVELAKE_INGEST_CLIENTS", 64);
    // `WAVELAKE_INGEST_CASES=health,rows,insert,direct` (all by default)
    // runs some cases only, e.g. one to profile the server under it.
    let cases = std::env::var("WAVELAKE_INGEST_CASES")
        .unwrap_or_else(|_| "health,rows,insert,direct".into());
    let selected = |name: &str| cases.split(',').any(|c| c.trim() == name);
    let case = |path: Path, rows_per_request: i64| {
        let name = match path {
            Path::Health => "health",
            Path::Buffered => "rows",
            Path::BufferedInsert => "insert",
            Path::Direct => "direct",
        };
        selected(name).then(|| run(path, rows_per_request, seconds, clients))
    };
    println!("## Ingest: {clients} concurrent clients, {seconds} s per case, loopback");
    println!();
    println!(
        "| path | rows per request | acknowledged rows/s | p50 | p99 | refused (429) | failed | commits | server CPU µs per row | client CPU µs per request | machine idle |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    if let Some(health) = case(Path::Health, 1) {
        println!("{}", health.line);
    }
    let mut ratios = Vec::new();
    for rows_per_request in [1, 100] {
        let buffered = case(Path::Buffered, rows_per_request);
        let insert = case(Path::BufferedInsert, rows_per_request);
        let direct = case(Path::Direct, rows_per_request);
        for outcome in [&buffered, &insert, &direct].into_iter().flatten() {
            println!("{}", outcome.line);
        }
        if let Some(direct) = &direct {
            let ratio =
                |o: &Option<Outcome>| o.as_ref().map(|o| o.rows_per_sec / direct.rows_per_sec);
            ratios.push((rows_per_request, ratio(&buffered), ratio(&insert)));
        }
    }
    println!();
    println!(
        "(the GET /health row counts requests: the most one-row requests/s this client and server reach here; \
         the clients run on the server's cores, so client CPU per request is what the server cannot have)"
    );
    for (rows_per_request, rows, insert) in ratios {
        let shown = |r: Option<f64>| r.map_or("-".into(), |r| format!("{r:.1}x"));
        println!(
            "{rows_per_request} row(s) per request: buffered rows {}, buffered INSERT {} the rows/s of direct INSERTs",
            shown(rows),
            shown(insert)
        );
    }
}
