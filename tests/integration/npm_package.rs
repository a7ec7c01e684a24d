//! The built `wavelake` npm package (pkg/dist, from scripts/build-pkg.sh),
//! in Node, in a page of headless Chromium and in the example edge worker
//! under Cloudflare's workerd, gives, on every golden case
//! over HTTP, the rows Spark expects
//! and the error codes the native engine gives: the scripts write each
//! result as Arrow IPC, and it is compared here exactly as native results
//! are. The browser run leaves a screenshot of its page in the scratch
//! directory (`npm-browser/page.png`).

use wavelake_tests::golden_cases::{HttpCase, http_cases};
use wavelake_tests::http_server::TestHttpServer;
use wavelake_tests::{
    canonical_rows, golden_or_skip, npm_package_built, package_dir, run_node, scratch_dir,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_npm_package_in_node_reads_every_golden_case() {
    run_golden_cases(
        "the_npm_package_in_node_reads_every_golden_case",
        "golden.mjs",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_npm_package_in_a_chromium_page_reads_every_golden_case() {
    let test = "the_npm_package_in_a_chromium_page_reads_every_golden_case";
    if !has_chromium(test) {
        return;
    }
    run_golden_cases(test, "browser.mjs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_edge_worker_in_workerd_reads_every_golden_case() {
    let test = "the_example_edge_worker_in_workerd_reads_every_golden_case";
    if !package_dir().join("node_modules/.bin/workerd").exists() {
        eprintln!("SKIPPED {test}: workerd is not installed (npm ci in pkg/ installs it)");
        return;
    }
    run_golden_cases(test, "workerd.mjs").await;
}

#[test]
fn the_package_types_are_documented_and_check_with_typescript() {
    let test = "the_package_types_are_documented_and_check_with_typescript";
    let pkg = package_dir();
    let tsc = pkg.join("node_modules/.bin/tsc");
    if !pkg.join("dist/wavelake.d.ts").exists() || !tsc.exists() {
        eprintln!("SKIPPED {test}: the package or TypeScript is not installed");
        return;
    }
    // Every member of the Wavelake class carries a doc comment.
    let types = std::fs::read_to_string(pkg.join("dist/wavelake.d.ts")).unwrap();
    let class = types
        .split("export class Wavelake {")
        .nth(1)
        .and_then(|rest| rest.split("\n}").next())
        .expect("the Wavelake class");
    let lines: Vec<&str> = class.lines().map(str::trim).collect();
    let mut undocumented = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let member = line.contains('(')
            && !line.starts_with('*')
            && !line.starts_with("/**")
            && !line.starts_with("private constructor")
            && !line.starts_with("free()")
            && !line.starts_with("[Symbol.dispose]");
        if member && !lines[..index].last().is_some_and(|l| l.ends_with("*/")) {
            undocumented.push(*line);
        }
    }
    assert!(undocumented.is_empty(), "undocumented: {undocumented:#?}");
    // The README's uses of the API type-check under --strict.
    let output = std::process::Command::new(&tsc)
        .args([
            "--noEmit",
            "--strict",
            "--target",
            "es2022",
            "--module",
            "esnext",
            "--moduleResolution",
            "bundler",
            "--lib",
            "es2022,dom",
        ])
        .arg(pkg.join("tests/types.ts"))
        .current_dir(&pkg)
        .output()
        .expect("tsc runs");
    assert!(
        output.status.success(),
        "tsc:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Whether Debian's Chromium is installed; says the test is skipped if not.
fn has_chromium(test: &str) -> bool {
    let installed = std::path::Path::new("/usr/bin/chromium").exists();
    if !installed {
        eprintln!("SKIPPED {test}: no /usr/bin/chromium (scripts/test.sh installs it)");
    }
    installed
}

/// Runs every golden HTTP case through `pkg/tests/SCRIPT` and compares what
/// it wrote with the expected rows and error codes.
async fn run_golden_cases(test: &str, script: &str) {
    let Some(golden) = golden_or_skip(test) else {
        return;
    };
    if !npm_package_built() {
        eprintln!("SKIPPED {test}: the package is not built (scripts/build-pkg.sh builds it)");
        return;
    }
    let cases = http_cases(&golden);
    let root = scratch_dir().join("golden");
    // The tests that run the package's scripts run at once and serve this
    // one manifest: it is replaced whole (a rename), never truncated while
    // another test's page reads it (which cut a read of its 47 MB short).
    let partial = root.join(format!("manifest.json.{script}.partial"));
    std::fs::write(&partial, serde_json::to_vec(&cases).unwrap()).unwrap();
    std::fs::rename(&partial, root.join("manifest.json")).unwrap();
    let server = TestHttpServer::start(&root).await.unwrap();
    let out = scratch_dir().join(format!("npm-{}", script.trim_end_matches(".mjs")));
    let _ = std::fs::remove_dir_all(&out);
    let path = package_dir().join("tests").join(script);
    let args = [server.url.clone(), out.display().to_string()];
    let stdout = tokio::task::spawn_blocking(move || run_node(&path, &args))
        .await
        .unwrap();
    eprintln!("{}", stdout.trim());
    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        if let Err(why) = check(&out, index, case) {
            failures.push(format!("{}: {why}", case.name));
        }
    }
    assert!(failures.is_empty(), "{script}: {failures:#?}");
    eprintln!(
        "same    {} golden cases through the npm package ({script})",
        cases.len()
    );
}

fn check(out: &std::path::Path, index: usize, case: &HttpCase) -> Result<(), String> {
    let error = out.join(format!("{index}.error.json"));
    if let Some(code) = &case.error_code {
        let text = std::fs::read_to_string(&error).map_err(|_| "no error".to_owned())?;
        let error: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        if error["code"] != code.as_str() {
            return Err(format!("error {error} is not {code}"));
        }
        let contains = case.error_contains.as_deref().unwrap_or("");
        if !error["message"].as_str().unwrap_or("").contains(contains) {
            return Err(format!("error {error} does not say {contains:?}"));
        }
        return Ok(());
    }
    if error.exists() {
        return Err(std::fs::read_to_string(&error).unwrap_or_default());
    }
    let bytes = std::fs::read(out.join(format!("{index}.arrows"))).map_err(|e| e.to_string())?;
    let batches: Vec<_> =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
            .map_err(|e| e.to_string())?
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
    let rows = canonical_rows(&batches, &case.columns)?;
    if rows != case.rows {
        return Err(format!(
            "{} rows, expected {}; first difference: {:?}",
            rows.len(),
            case.rows.len(),
            rows.iter().zip(&case.rows).find(|(a, b)| a != b)
        ));
    }
    Ok(())
}

/// In a Chromium page, a table's immutable files (data, deletion vectors,
/// commits, checkpoint) are kept in the origin private file system: after
/// a reload a repeated query asks the table's host only for
/// `_last_checkpoint` and the versions after the last it saw (which do not
/// exist), and
/// returns the same rows; after `clearPersistentCache` everything is
/// fetched again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_npm_package_in_a_chromium_page_keeps_table_files_across_reloads() {
    let test = "the_npm_package_in_a_chromium_page_keeps_table_files_across_reloads";
    if !has_chromium(test) {
        return;
    }
    if !npm_package_built() {
        eprintln!("SKIPPED {test}: the package is not built (scripts/build-pkg.sh builds it)");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let writer = wavelake_tests::engine_at(root.path()).await;
    writer
        .query(
            "CREATE TABLE t (id BIGINT, name STRING) \
             TBLPROPERTIES ('delta.checkpointInterval' = '3')",
        )
        .await
        .unwrap();
    for part in 0..4 {
        let insert = format!(
            "INSERT INTO t SELECT value + {part} * 1000, concat('n', CAST(value AS STRING)) \
             FROM range(0, 1000)"
        );
        writer.query(&insert).await.unwrap();
    }
    writer
        .query("DELETE FROM t WHERE id % 7 = 0")
        .await
        .unwrap();
    let log: Vec<String> = std::fs::read_dir(root.path().join("t/_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        log.iter().any(|name| name.ends_with(".checkpoint.parquet")),
        "{log:?}"
    );
    let latest = log
        .iter()
        .filter_map(|name| name.strip_suffix(".json")?.parse::<i64>().ok())
        .max()
        .unwrap();
    let sql = "SELECT count(*) AS n, sum(id) AS s, max(name) AS m FROM t";

    let server = TestHttpServer::start(root.path()).await.unwrap();
    let table_url = format!("{}/t", server.url);
    let script = package_dir().join("tests/persistent.mjs");
    let args = [table_url, sql.to_owned()];
    let stdout = tokio::task::spawn_blocking(move || run_node(&script, &args))
        .await
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    let rows: serde_json::Value = serde_json::from_str(runs[0]["rows"].as_str().unwrap()).unwrap();
    assert_eq!(
        rows,
        serde_json::json!([{"n": "3428", "s": "6854858", "m": "n999"}]),
        "4000 rows less the 572 multiples of 7"
    );
    for run in runs {
        assert_eq!(run["rows"], runs[0]["rows"], "the same rows in every run");
    }

    // Split the host's request log at the page's phase markers.
    let requests = server.requests();
    let marker = |phase: &str| {
        requests
            .iter()
            .position(|r| r.path.ends_with(&format!("/__phase-{phase}")))
            .unwrap_or_else(|| panic!("no {phase} marker in {requests:?}"))
    };
    let (reload, cleared) = (marker("reload"), marker("cleared"));
    let fetched = |range: &[wavelake_tests::http_server::RequestRecord]| -> Vec<String> {
        range
            .iter()
            .map(|r| format!("{} {}", r.status, r.path))
            .collect()
    };
    let first = fetched(&requests[..reload]);
    let after_reload = fetched(&requests[reload + 1..cleared]);
    let after_clear = fetched(&requests[cleared + 1..]);
    let reads_data = |paths: &[String]| paths.iter().any(|p| p.ends_with(".parquet"));
    assert!(reads_data(&first), "{first:#?}");
    assert!(
        first.iter().any(|p| p.contains("deletion_vector_")),
        "{first:#?}"
    );
    // `_last_checkpoint` (revalidated by the browser's HTTP cache: 200 or
    // 304), then the probes for versions after the last one seen, which do
    // not exist; no data file, deletion vector, checkpoint or known commit.
    let (hint, probes) = after_reload.split_first().expect("a request");
    assert!(
        ["200", "304"]
            .map(|s| format!("{s} /t/_delta_log/_last_checkpoint"))
            .contains(hint),
        "{after_reload:#?}"
    );
    // The probes run concurrently: they arrive in any order.
    let mut probes = probes.to_vec();
    probes.sort();
    let expected: Vec<String> = (latest + 1..)
        .take(probes.len())
        .map(|version| format!("404 /t/_delta_log/{version:020}.json"))
        .collect();
    assert!(!probes.is_empty(), "the next version is asked for");
    assert_eq!(probes, expected, "{after_reload:#?}");
    assert!(reads_data(&after_clear), "{after_clear:#?}");

    let figures = |run: usize, name: &str| runs[run]["figures"][name].as_u64().unwrap();
    assert_eq!(figures(0, "hits"), 0);
    assert!(figures(0, "bytesWritten") > 0);
    assert_eq!(figures(1, "misses"), 0, "{}", runs[1]);
    assert!(
        figures(1, "hits") > 0 && figures(1, "bytesServed") > 0,
        "{}",
        runs[1]
    );
    assert_eq!(figures(1, "bytesHeld"), figures(0, "bytesHeld"));
    assert_eq!(figures(2, "hits"), 0, "{}", runs[2]);
    assert_eq!(figures(2, "budget"), 256 << 20);
}
