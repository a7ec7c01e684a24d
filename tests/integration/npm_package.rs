//! The built `wavelake` npm package (pkg/dist, from scripts/build-pkg.sh)
//! in Node gives, on every golden case over HTTP, the rows Spark expects
//! and the error codes the native engine gives: the Node script writes each
//! result as Arrow IPC, and it is compared here exactly as native results
//! are.

use std::path::PathBuf;

use wavelake_tests::golden_cases::{HttpCase, http_cases};
use wavelake_tests::http_server::TestHttpServer;
use wavelake_tests::{canonical_rows, golden_or_skip, scratch_dir, tests_dir};

fn package_dir() -> PathBuf {
    tests_dir().join("../pkg")
}

#[tokio::test]
async fn the_npm_package_in_node_reads_every_golden_case() {
    let test = "the_npm_package_in_node_reads_every_golden_case";
    let Some(golden) = golden_or_skip(test) else {
        return;
    };
    let pkg = package_dir();
    if !pkg.join("dist/wavelake_bg.wasm").exists() || !pkg.join("node_modules").is_dir() {
        eprintln!("SKIPPED {test}: the package is not built (scripts/build-pkg.sh builds it)");
        return;
    }
    let cases = http_cases(&golden);
    let root = scratch_dir().join("golden");
    std::fs::write(
        root.join("manifest.json"),
        serde_json::to_vec(&cases).unwrap(),
    )
    .unwrap();
    let server = TestHttpServer::start(&root).await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut node = std::process::Command::new("node");
    node.arg(pkg.join("tests/golden.mjs"))
        .arg(&server.url)
        .arg(out.path());
    let output = tokio::task::spawn_blocking(move || node.output())
        .await
        .unwrap()
        .expect("node runs");
    assert!(
        output.status.success(),
        "the Node script failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        if let Err(why) = check(out.path(), index, case) {
            failures.push(format!("{}: {why}", case.name));
        }
    }
    assert!(failures.is_empty(), "in Node: {failures:#?}");
    eprintln!(
        "same    {} golden cases through the npm package in Node",
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
