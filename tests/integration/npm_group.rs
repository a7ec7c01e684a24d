//! The built npm package's worker group (`wavelake/group`): queries run
//! by two workers at once — Node's worker threads, and a page's Web
//! Workers in headless Chromium — answer as one session of the package
//! does over the same tables on an HTTP server, failures included.

use serde_json::Value;
use wavelake_tests::http_server::TestHttpServer;
use wavelake_tests::{npm_package_built, package_dir, run_node};

const QUERIES: &[&str] = &[
    "SELECT count(*) AS n, sum(id) AS s, min(name) AS lo, max(name) AS hi FROM a",
    "SELECT k, count(*) AS n, sum(id) AS s FROM a GROUP BY k ORDER BY k",
    "SELECT b.label, count(*) AS n FROM a JOIN b ON a.k = b.k WHERE a.id % 7 = 1 GROUP BY b.label ORDER BY n DESC, b.label",
    "SELECT id, name FROM a ORDER BY id DESC LIMIT 25",
    "SELECT b.k, count(a.id) AS n FROM b LEFT JOIN a ON a.k = b.k AND a.id < 50 GROUP BY b.k ORDER BY b.k",
    "SELECT count(*) AS n FROM a WHERE k > (SELECT avg(k) FROM b)",
    "SELECT name, count(DISTINCT k) AS kinds FROM a GROUP BY name ORDER BY name NULLS FIRST",
    "SELECT sum(CAST(name AS BIGINT)) AS broken FROM a",
];

/// Two tables of several files each, one with deletion vectors, under a
/// temporary root.
async fn tables() -> tempfile::TempDir {
    let (dir, _) = wavelake_tests::engine_after(&[
        "CREATE TABLE a (id BIGINT, k BIGINT, name STRING)",
        "INSERT INTO a SELECT value, value % 97, concat('n', CAST(value % 13 AS STRING)) FROM generate_series(1, 30000)",
        "INSERT INTO a SELECT value, value % 89, NULL FROM generate_series(30001, 60000)",
        "INSERT INTO a SELECT value, value % 83, 'z' FROM generate_series(60001, 70000)",
        "CREATE TABLE b (k BIGINT, label STRING)",
        "INSERT INTO b SELECT value, concat('label', CAST(value AS STRING)) FROM generate_series(0, 120)",
        "DELETE FROM a WHERE id % 10 = 3",
    ])
    .await;
    dir
}

/// Runs `pkg/tests/group.mjs` in `host` (node or chromium) with two
/// workers; checks every query answered (or failed) in the group exactly
/// as in one session. The number of queries with rows.
fn check_group(host: &str, base: &str, tables: &[&str], queries: &[String]) -> usize {
    let script = package_dir().join("tests/group.mjs");
    let args = [
        host.to_owned(),
        base.to_owned(),
        "2".to_owned(),
        serde_json::to_string(tables).unwrap(),
        serde_json::to_string(queries).unwrap(),
    ];
    let stdout = run_node(&script, &args);
    let line = stdout.lines().last().expect("the script's result");
    let result: Value = serde_json::from_str(line).unwrap();
    assert_eq!(result["size"], 2, "{host}: {result}");
    let results = result["results"].as_array().unwrap();
    assert_eq!(results.len(), queries.len());
    // Every query has an estimate of the column chunks it fetches; these
    // tables are small, so the sized group ran each on one worker.
    let read: Vec<f64> = results
        .iter()
        .filter_map(|case| case["readBytes"].as_f64())
        .collect();
    assert_eq!(read.len(), results.len(), "{host}: {result}");
    assert!(read.iter().any(|bytes| *bytes > 0.0), "{host}: {read:?}");
    assert!(
        read.iter().all(|bytes| *bytes < 16.0 * 1024.0 * 1024.0),
        "{host}: {read:?}"
    );
    let mut with_rows = 0;
    for case in results {
        let (group, alone) = (&case["group"], &case["alone"]);
        assert_eq!(group["rows"], alone["rows"], "{host}: {}", case["sql"]);
        assert_eq!(group["code"], alone["code"], "{host}: {}", case["sql"]);
        // The group that runs queries under 16 MiB of column chunks on
        // one worker answers the same.
        let sized = &case["sized"];
        assert_eq!(sized["rows"], alone["rows"], "{host}: {}", case["sql"]);
        assert_eq!(sized["code"], alone["code"], "{host}: {}", case["sql"]);
        if alone["rows"]
            .as_array()
            .is_some_and(|rows| !rows.is_empty())
        {
            with_rows += 1;
        }
        eprintln!(
            "{host}: {:>8.1} ms in the group, {:>8.1} ms alone: {}",
            group["ms"].as_f64().unwrap_or(f64::NAN),
            alone["ms"].as_f64().unwrap_or(f64::NAN),
            case["sql"]
                .as_str()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
        );
    }
    with_rows
}

fn ready(test: &str) -> bool {
    if !npm_package_built() || !package_dir().join("dist/group.js").exists() {
        eprintln!("SKIPPED {test}: the package is not built (scripts/build-pkg.sh builds it)");
        return false;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_group_in_node_and_chromium_answers_as_one_session() {
    let test = "the_worker_group_in_node_and_chromium_answers_as_one_session";
    if !ready(test) {
        return;
    }
    let root = tables().await;
    let server = TestHttpServer::start(root.path()).await.unwrap();
    let queries: Vec<String> = QUERIES.iter().map(|q| (*q).to_owned()).collect();
    let base = server.url.clone();
    let hosts: Vec<&str> = if std::path::Path::new("/usr/bin/chromium").exists() {
        vec!["node", "chromium"]
    } else {
        eprintln!("SKIPPED the Chromium half of {test}: no /usr/bin/chromium");
        vec!["node"]
    };
    for host in hosts {
        let (base, queries) = (base.clone(), queries.clone());
        let with_rows =
            tokio::task::spawn_blocking(move || check_group(host, &base, &["a", "b"], &queries))
                .await
                .unwrap();
        // Every query but the failing cast returns rows.
        assert_eq!(with_rows, QUERIES.len() - 1, "{host}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_through_the_worker_group_in_node_answers_as_one_session() {
    let test = "tpch_through_the_worker_group_in_node_answers_as_one_session";
    if !ready(test) {
        return;
    }
    let Some(data) = wavelake_tests::tpch_sf001(test, "tpch-npm-group-sf0.01") else {
        return;
    };
    let server = TestHttpServer::start(&data).await.unwrap();
    let queries: Vec<String> = wavelake_tests::tpch_queries()
        .into_iter()
        .map(|(_, sql)| sql)
        .collect();
    let tables = [
        "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
    ];
    let base = server.url.clone();
    let with_rows =
        tokio::task::spawn_blocking(move || check_group("node", &base, &tables, &queries))
            .await
            .unwrap();
    assert_eq!(with_rows, 22);
}
