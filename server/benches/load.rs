//! Load: hundreds of concurrent clients (readers running queries, writers
//! appending rows) against one server on loopback for a while, once with
//! the server's limits (admission, memory budget, connection cap,
//! timeouts) and once with them all but lifted, in the same run: requests
//! served, refused (429) and failed, p50/p99 latency and the server's
//! peak RSS. The limits must cost little. `WAVELAKE_LOAD_SECS` (default
//! 60) and `WAVELAKE_LOAD_CLIENTS` (default 200, a fifth of them writers).
//!
//! `cargo bench --profile release -p wavelake-server --bench load`
//! (`scripts/bench.sh load`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{ADMIN, env_or, percentile};

/// Limits that do not bind at this load.
const UNLIMITED: &str = "[limits]\nmax_running_statements = 1000000\n\
    max_running_per_token = 1000000\nmax_connections = 1000000\n\
    server_memory_bytes = 1099511627776\nheader_timeout_secs = 86400\n\
    body_idle_timeout_secs = 86400\n";

fn start(dir: &std::path::Path, limits: &str) -> (std::process::Child, String) {
    let config = dir.join("wavelake.toml");
    std::fs::write(
        &config,
        format!("root = {:?}\n{limits}", dir.join("lake").to_str().unwrap()),
    )
    .unwrap();
    common::start_server(
        env!("CARGO_BIN_EXE_wavelake"),
        &["--config".as_ref(), config.as_os_str()],
        "error",
    )
}

#[derive(Default)]
struct Tally {
    latencies_ms: Vec<f64>,
    ok: u64,
    refused: u64,
    failed: u64,
}

async fn client(url: String, token: String, writer: bool, id: u64, until: Instant) -> Tally {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let mut tally = Tally::default();
    let mut i = 0u64;
    while Instant::now() < until {
        i += 1;
        let sql = if writer {
            format!(
                "INSERT INTO acme.events VALUES ({id}, {i}), ({id}, {})",
                i + 1
            )
        } else {
            format!(
                "SELECT count(*) AS n, sum(part) AS s FROM acme.events WHERE marker % 7 = {}",
                (id + i) % 7
            )
        };
        let started = Instant::now();
        let sent = http
            .post(format!("{url}/api/v1/sql"))
            .bearer_auth(&token)
            .json(&json!({"sql": sql}))
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                let _ = response.bytes().await;
                tally.ok += 1;
                tally
                    .latencies_ms
                    .push(started.elapsed().as_secs_f64() * 1000.0);
            }
            Ok(response) if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS => {
                tally.refused += 1;
                let wait: u64 = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .unwrap_or(1);
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            _ => tally.failed += 1,
        }
    }
    tally
}

/// Runs the load against a server started with `limits`; one table row.
fn run(label: &str, limits: &str, seconds: u64, clients: u64) -> String {
    let dir = wavelake_tests::scratch_dir().join(format!("load-bench-{label}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (mut server, url) = start(&dir, limits);
    let setup = reqwest::blocking::Client::new();
    let admin_sql = |sql: &str| {
        let response = setup
            .post(format!("{url}/api/v1/sql"))
            .bearer_auth(ADMIN)
            .json(&json!({"sql": sql}))
            .send()
            .unwrap();
        assert!(
            response.status().is_success(),
            "{sql}: {}",
            response.text().unwrap()
        );
    };
    admin_sql("CREATE TABLE acme.events (marker BIGINT NOT NULL, part BIGINT NOT NULL)");
    admin_sql("INSERT INTO acme.events SELECT value % 1000, value FROM range(0, 100000)");
    // Four clients per token, as many tokens as that takes.
    let tokens: Vec<String> = (0..clients.div_ceil(4))
        .map(|i| {
            let issued: Value = setup
                .post(format!("{url}/api/v1/tokens"))
                .bearer_auth(ADMIN)
                .json(&json!({"label": format!("load {i}"), "namespace": "acme", "write": true}))
                .send()
                .unwrap()
                .json()
                .unwrap();
            issued["token"].as_str().unwrap().to_owned()
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let until = Instant::now() + Duration::from_secs(seconds);
    let tokens = Arc::new(tokens);
    let tallies: Vec<Tally> = runtime.block_on(async {
        let tasks: Vec<_> = (0..clients)
            .map(|id| {
                let token = tokens[(id / 4) as usize].clone();
                tokio::spawn(client(url.clone(), token, id % 5 == 0, id, until))
            })
            .collect();
        let mut tallies = Vec::new();
        for task in tasks {
            tallies.push(task.await.unwrap());
        }
        tallies
    });
    let rss = common::peak_rss_mb(server.id());
    let _ = server.kill();
    let _ = server.wait();
    let mut latencies: Vec<f64> = tallies
        .iter()
        .flat_map(|t| t.latencies_ms.clone())
        .collect();
    let ok: u64 = tallies.iter().map(|t| t.ok).sum();
    let refused: u64 = tallies.iter().map(|t| t.refused).sum();
    let failed: u64 = tallies.iter().map(|t| t.failed).sum();
    let p50 = percentile(&mut latencies, 0.50);
    let p99 = percentile(&mut latencies, 0.99);
    format!(
        "| {label} | {ok} ({:.0}/s) | {refused} | {failed} | {p50:.0} ms | {p99:.0} ms | {rss:.0} MB |",
        ok as f64 / seconds as f64
    )
}

fn main() {
    let seconds = env_or("WAVELAKE_LOAD_SECS", 60);
    let clients = env_or("WAVELAKE_LOAD_CLIENTS", 200);
    println!(
        "## Load: {clients} clients ({} writers) for {seconds} s on loopback",
        clients / 5
    );
    println!();
    println!("| server | served | refused (429) | failed | p50 | p99 | peak RSS |");
    println!("|---|---|---|---|---|---|---|");
    println!("{}", run("with limits", "", seconds, clients));
    println!("{}", run("limits lifted", UNLIMITED, seconds, clients));
}
