//! Native TPC-H against the engines a user would pick instead: the 22
//! queries at `WAVELAKE_TPCH_SF` (1 by default; tables written by PyPI
//! `deltalake` from `tpchgen-cli`'s data, once, into the scratch dir)
//! through `wavelake serve`'s SQL API (warm) and through `wavelake sql`
//! (one process per query, as a one-off query from the shell runs),
//! against DuckDB 1.5.5 with its delta extension, `deltalake`'s
//! QueryBuilder and PyPI `datafusion` over the same Parquet files (no
//! Delta log: what DataFusion alone costs), in one run. Every answer of
//! both Wavelake paths is checked equal to DuckDB's. Per query the median
//! of `WAVELAKE_BENCH_RUNS` (3) runs after a warm-up, each as a ratio to
//! DuckDB's time, and the geometric means. `wavelake serve` runs three
//! times: without hot data (every query decodes its Parquet pages, as a
//! first query does), with it (a repeated query, served from decoded
//! column chunks in memory), and with the result cache besides (a
//! repeated query over unchanged tables, answered from its kept result).
//!
//! `cargo bench --profile release -p wavelake-server --bench tpch`
//! (`scripts/bench.sh tpch`); `WAVELAKE_TPCH_QUERIES=q1,q17` runs some.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};

mod common;
use common::env_or;

const BINARY: &str = env!("CARGO_BIN_EXE_wavelake");

/// The median of `runs` timings of `run` after one warm-up run, whose
/// answer is returned.
fn timed<T>(runs: u64, run: impl FnMut() -> T) -> (T, f64) {
    let (answer, _, median) = timed_with_first(runs, run);
    (answer, median)
}

/// [`timed`], with the warm-up run's time too: `(answer, first, median)`.
fn timed_with_first<T>(runs: u64, mut run: impl FnMut() -> T) -> (T, f64, f64) {
    let started = Instant::now();
    let answer = run();
    let first = started.elapsed().as_secs_f64();
    let mut seconds: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed().as_secs_f64()
        })
        .collect();
    (answer, first, common::percentile(&mut seconds, 0.5))
}

/// One answer row as a comparable list: its values (numbers as `f64`,
/// dates and text as text) in a canonical order, since JSON objects do not
/// keep their columns' order.
fn canonical_row(values: impl Iterator<Item = Value>) -> Vec<Value> {
    let mut row: Vec<Value> = values
        .map(|value| match &value {
            Value::String(text) => text
                .parse::<f64>()
                .ok()
                .filter(|_| !text.contains('-'))
                .map_or(value.clone(), |n| json!(n)),
            _ => value,
        })
        .collect();
    row.sort_by(compare_values);
    row
}

fn compare_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.to_string().cmp(&b.to_string()),
    }
}

fn canonical(rows: Vec<Vec<Value>>) -> Vec<Vec<Value>> {
    let mut rows = rows;
    rows.sort_by(|a, b| {
        a.iter()
            .zip(b)
            .map(|(x, y)| compare_values(x, y))
            .find(|o| o.is_ne())
            .unwrap_or(a.len().cmp(&b.len()))
    });
    rows
}

/// Whether two canonical answers are equal, numbers to a relative 1e-6.
fn same_answer(ours: &[Vec<Value>], theirs: &[Vec<Value>]) -> Result<(), String> {
    if ours.len() != theirs.len() {
        return Err(format!("{} rows, DuckDB {}", ours.len(), theirs.len()));
    }
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        let equal = a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| match (x.as_f64(), y.as_f64()) {
                    (Some(x), Some(y)) => (x - y).abs() <= 1e-6 * x.abs().max(y.abs()).max(1.0),
                    _ => x == y,
                });
        if !equal {
            return Err(format!("row {i}: {a:?}, DuckDB {b:?}"));
        }
    }
    Ok(())
}

fn object_rows(rows: &[Value]) -> Vec<Vec<Value>> {
    let rows = rows.iter().map(|row| {
        canonical_row(
            row.as_object()
                .expect("a row object")
                .values()
                .cloned()
                .collect::<Vec<_>>()
                .into_iter(),
        )
    });
    canonical(rows.collect())
}

/// `wavelake sql --root DELTA -f json SQL`: its rows.
fn run_cli(delta: &Path, sql: &str) -> Vec<Value> {
    let output = Command::new(BINARY)
        .args(["sql", "--root", delta.to_str().unwrap(), "-f", "json", sql])
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "wavelake sql: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn geometric_mean(ratios: &[f64]) -> f64 {
    (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len().max(1) as f64).exp()
}

/// The geometric mean of the ratios a peer has (one killed for want of
/// memory has none for its later queries), saying how many when not all.
fn mean_of_measured(ratios: &[f64]) -> String {
    let measured: Vec<f64> = ratios.iter().copied().filter(|r| r.is_finite()).collect();
    let mean = geometric_mean(&measured);
    match measured.len() == ratios.len() {
        true => format!("{mean:.2}x"),
        false => format!(
            "{mean:.2}x ({} of {} queries)",
            measured.len(),
            ratios.len()
        ),
    }
}

fn main() {
    let scale = std::env::var("WAVELAKE_TPCH_SF").unwrap_or_else(|_| "1".into());
    let runs = env_or("WAVELAKE_BENCH_RUNS", 3);
    let wanted = std::env::var("WAVELAKE_TPCH_QUERIES").unwrap_or_default();
    let queries: Vec<String> = (1..=22)
        .map(|n| format!("q{n}"))
        .filter(|q| wanted.is_empty() || wanted.split(',').any(|w| w.trim() == q))
        .collect();
    let data = common::tpch_data(&scale);
    let delta = data.join("delta");
    let texts: Vec<(String, PathBuf, String)> = queries
        .iter()
        .map(|q| {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../tests/benches/tpch/{q}.sql"));
            let sql = std::fs::read_to_string(&path).unwrap();
            (q.clone(), path, sql)
        })
        .collect();

    // The peers first, one after another, on an otherwise idle machine.
    let answers_file = data.join("duckdb-answers.jsonl");
    let mut peer_args = vec![
        "tpch-peers".to_owned(),
        delta.to_str().unwrap().to_owned(),
        runs.to_string(),
        answers_file.to_str().unwrap().to_owned(),
    ];
    peer_args.extend(
        texts
            .iter()
            .map(|(_, path, _)| path.to_str().unwrap().to_owned()),
    );
    let peers = common::python_peers(&peer_args);
    let peer_seconds = |peer: &str, query: &str| -> f64 {
        peers
            .iter()
            .find(|p| p["peer"] == peer && p["what"] == query)
            .and_then(|p| p["seconds"].as_f64())
            .unwrap_or(f64::NAN)
    };
    let answers: HashMap<String, Vec<Vec<Value>>> = std::fs::read_to_string(&answers_file)
        .unwrap()
        .lines()
        .map(|line| {
            let answer: Value = serde_json::from_str(line).unwrap();
            let rows = answer["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| canonical_row(row.as_array().unwrap().iter().cloned()))
                .collect();
            (
                answer["query"].as_str().unwrap().to_owned(),
                canonical(rows),
            )
        })
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let config = |hot_data_bytes: u64, result_cache_bytes: u64| {
        format!(
            "root = {:?}\n[limits]\nquery_timeout_secs = 3600\nmax_result_rows = 10000000\n\
             query_memory_bytes = 8589934592\nserver_memory_bytes = 8589934592\n\
             hot_data_bytes = {hot_data_bytes}\nresult_cache_bytes = {result_cache_bytes}\n",
            data.to_str().unwrap()
        )
    };
    let server = common::SqlServer::start(
        BINARY,
        &dir.path().join("wavelake-tpch.toml"),
        &config(0, 0),
    );
    let hot_server = common::SqlServer::start(
        BINARY,
        &dir.path().join("wavelake-tpch-hot.toml"),
        &config(4 << 30, 0),
    );
    let cached_server = common::SqlServer::start(
        BINARY,
        &dir.path().join("wavelake-tpch-results.toml"),
        &config(4 << 30, 256 << 20),
    );
    println!(
        "## TPC-H SF{scale}: Wavelake against DuckDB 1.5.5 (delta extension), deltalake QueryBuilder and PyPI datafusion 55 (Parquet only), median of {runs} warm runs"
    );
    println!();
    println!(
        "| query | DuckDB s | wavelake serve s | ratio | wavelake serve, hot data s | ratio | wavelake serve, result cache s | ratio | wavelake sql s | ratio | deltalake QueryBuilder s | ratio | datafusion (Parquet) s | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut ratios: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut above_two = Vec::new();
    let mut hot_within = Vec::new();
    let mut cached_within = Vec::new();
    // Per query: the server without hot data (median) and the first run
    // of the one with it (decoding whole row groups to keep them).
    let mut first_runs: Vec<(f64, f64)> = Vec::new();
    for (query, _, sql) in &texts {
        let expected = &answers[query];
        // Timed: the request and the client's parse of the response. The
        // canonical order the answers are compared in is not.
        let (served, serve_s) = timed(runs, || server.rows(sql, "delta"));
        let served = object_rows(&served);
        if let Err(why) = same_answer(&served, expected) {
            panic!("{query} through wavelake serve differs from DuckDB: {why}");
        }
        let (hot, hot_first_s, hot_s) = timed_with_first(runs, || hot_server.rows(sql, "delta"));
        let hot = object_rows(&hot);
        first_runs.push((serve_s, hot_first_s));
        if let Err(why) = same_answer(&hot, expected) {
            panic!("{query} through wavelake serve from hot data differs from DuckDB: {why}");
        }
        let (cached, cached_s) = timed(runs, || cached_server.rows(sql, "delta"));
        if let Err(why) = same_answer(&object_rows(&cached), expected) {
            panic!("{query} through wavelake serve's result cache differs from DuckDB: {why}");
        }
        let (cli, cli_s) = timed(runs, || run_cli(&delta, sql));
        let cli = object_rows(&cli);
        if let Err(why) = same_answer(&cli, expected) {
            panic!("{query} through wavelake sql differs from DuckDB: {why}");
        }
        let duckdb = peer_seconds("duckdb", query);
        let querybuilder = peer_seconds("deltalake-querybuilder", query);
        let datafusion = peer_seconds("datafusion", query);
        let mut cells = Vec::new();
        for (name, seconds) in [
            ("serve", serve_s),
            ("hot", hot_s),
            ("cached", cached_s),
            ("sql", cli_s),
            ("querybuilder", querybuilder),
            ("datafusion", datafusion),
        ] {
            let ratio = seconds / duckdb;
            ratios.entry(name).or_default().push(ratio);
            cells.push(format!("{seconds:.3} | {ratio:.2}x"));
        }
        if hot_s / duckdb <= 0.3 {
            hot_within.push(query.clone());
        }
        if cached_s / duckdb <= 0.3 {
            cached_within.push(query.clone());
        }
        if serve_s / duckdb > 2.0 {
            above_two.push(format!("{query} {:.1}x", serve_s / duckdb));
        }
        println!("| {query} | {duckdb:.3} | {} |", cells.join(" | "));
    }
    let mean = |name: &str| mean_of_measured(ratios.get(name).map_or(&[][..], Vec::as_slice));
    println!(
        "| geometric mean | 1.00x | | {} | | {} | | {} | | {} | | {} | | {} |",
        mean("serve"),
        mean("hot"),
        mean("cached"),
        mean("sql"),
        mean("querybuilder"),
        mean("datafusion")
    );
    println!();
    println!(
        "Every answer of wavelake serve and wavelake sql equals DuckDB's. Through wavelake serve above 2x DuckDB: {}.",
        if above_two.is_empty() {
            "none".to_owned()
        } else {
            above_two.join(", ")
        }
    );
    let first_ratios: Vec<f64> = first_runs
        .iter()
        .map(|(plain, first)| first / plain)
        .collect();
    println!(
        "A query's first run on the server with hot data (decoding what the queries before it left out: whole row groups, or each partition its share of one) against the server without: geometric mean {:.2}x, worst {:.2}x.",
        geometric_mean(&first_ratios),
        first_ratios.iter().copied().fold(0.0, f64::max)
    );
    println!(
        "From hot data (a repeated query), at most 0.3x DuckDB's time: {} of {} ({}). \
         Hot data held {:.0} MB at the end; chunks hit {}, missed {}; {:.1} GB of decoded data served from memory.",
        hot_within.len(),
        texts.len(),
        hot_within.join(", "),
        hot_server.metric("wavelake_hot_data_bytes") / 1e6,
        hot_server.metric("wavelake_hot_data_hits_total"),
        hot_server.metric("wavelake_hot_data_misses_total"),
        hot_server.metric("wavelake_hot_data_bytes_saved_total") / 1e9,
    );
    println!(
        "Repeated over unchanged tables, from the result cache, at most 0.3x DuckDB's time: {} of {} ({}). \
         Results hit {}, missed {}, bypassed {}; {:.1} MB of results answered from memory.",
        cached_within.len(),
        texts.len(),
        cached_within.join(", "),
        cached_server.metric("wavelake_result_cache_hits_total"),
        cached_server.metric("wavelake_result_cache_misses_total"),
        cached_server.metric("wavelake_result_cache_bypassed_total"),
        cached_server.metric("wavelake_result_cache_bytes_served_total") / 1e6,
    );
}
