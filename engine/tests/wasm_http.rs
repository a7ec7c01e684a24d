//! The engine compiled to wasm32, reading the golden tables over HTTP under
//! `wasm-bindgen-test` in Node: deletion vectors, column mapping,
//! checkpoints (classic, multi-part, v2), time travel, invalid tables.
//!
//! `scripts/test.sh` starts `golden-http-server` (tests crate), which serves
//! the unpacked tables and a `manifest.json` of cases with Spark's expected
//! rows, and passes its URL in `WAVELAKE_TEST_HTTP_URL`.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../../tests/canonical.rs"]
#[allow(dead_code)]
mod canonical;

use std::sync::Arc;

use serde::Deserialize;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::{console_log, wasm_bindgen_test};
use wavelake_engine::SqlSession;
use wavelake_engine::storage::{HttpStorage, Storage};

/// One case of the manifest (`wavelake_tests::golden_cases::HttpCase`).
#[derive(Debug, Deserialize)]
struct HttpCase {
    name: String,
    table: String,
    sql: String,
    columns: Vec<String>,
    rows: Vec<String>,
    error_code: Option<String>,
    error_contains: Option<String>,
}

/// `process.env.WAVELAKE_TEST_HTTP_URL` in Node.
fn base_url() -> Option<String> {
    let get = |target: &JsValue, key: &str| {
        js_sys::Reflect::get(target, &JsValue::from_str(key))
            .ok()
            .filter(|v| !v.is_undefined())
    };
    let process = get(&js_sys::global(), "process")?;
    let env = get(&process, "env")?;
    get(&env, "WAVELAKE_TEST_HTTP_URL")?.as_string()
}

async fn check(base: &str, case: &HttpCase) -> Result<(), String> {
    let engine = SqlSession::new();
    let storage =
        HttpStorage::new(&format!("{base}/{}/", case.table)).map_err(|e| e.to_string())?;
    let result = match engine.register("t", Arc::new(storage)).await {
        Ok(_) => engine.query(&case.sql).await,
        Err(e) => Err(e),
    };
    match (result, &case.error_code) {
        (Err(e), Some(code)) => {
            let phrase = case.error_contains.as_deref().unwrap_or_default();
            if e.code() == code && e.to_string().contains(phrase) {
                Ok(())
            } else {
                Err(format!(
                    "expected {code} ({phrase:?}), got {}: {e}",
                    e.code()
                ))
            }
        }
        (Ok(_), Some(code)) => Err(format!("expected {code}, but the query succeeded")),
        (Err(e), None) => Err(format!("failed: {e}")),
        (Ok(batches), None) => {
            let rows = canonical::canonical_rows(&batches, &case.columns)?;
            if rows == case.rows {
                Ok(())
            } else {
                Err(format!(
                    "expected {} rows, got {}; first expected {:?}, first got {:?}",
                    case.rows.len(),
                    rows.len(),
                    case.rows.first(),
                    rows.first()
                ))
            }
        }
    }
}

#[wasm_bindgen_test]
async fn golden_tables_read_over_http_in_wasm() {
    let Some(base) = base_url() else {
        // Visible in the runner's output; scripts/test.sh always sets it.
        console_log!("SKIPPED golden_tables_read_over_http_in_wasm: WAVELAKE_TEST_HTTP_URL unset");
        return;
    };
    let manifest = HttpStorage::new(&format!("{base}/"))
        .expect("base url")
        .get("manifest.json")
        .await
        .expect("manifest.json from golden-http-server");
    let cases: Vec<HttpCase> = serde_json::from_slice(&manifest).expect("manifest");
    for needed in [
        "dv-",
        "columnmapping",
        "multi-part-checkpoint",
        "v2-checkpoint",
        "time-travel",
    ] {
        assert!(
            cases.iter().any(|c| c.name.contains(needed)),
            "the manifest has no {needed} case"
        );
    }
    let mut failures = Vec::new();
    for case in &cases {
        match check(&base, case).await {
            Ok(()) => console_log!("ok      {}", case.name),
            Err(why) => {
                console_log!("FAILED  {}: {why}", case.name);
                failures.push(case.name.clone());
            }
        }
    }
    console_log!(
        "wasm32 over HTTP: {} cases, {} failed",
        cases.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "failed over HTTP in wasm32: {failures:?}"
    );
}

/// A session without a write path (as in the npm package and the web app,
/// which do not link `wavelake-write`): one that is not even read-only
/// still refuses what only the write path runs, and still reads.
#[wasm_bindgen_test]
async fn a_build_without_the_write_path_refuses_writes_and_still_reads() {
    let engine = SqlSession::new();
    for statement in [
        "CREATE TABLE t (id BIGINT) LOCATION 'memory:///t'",
        "OPTIMIZE t",
        "VACUUM t",
        "ALTER TABLE t SET TBLPROPERTIES ('a' = 'b')",
    ] {
        match engine.sql(statement).await {
            Err(wavelake_engine::Error::NotAllowed(message)) => {
                assert!(message.contains("only reads"), "{statement}: {message}");
            }
            Err(other) => panic!("{statement}: {other:?}"),
            Ok(_) => panic!("{statement} ran without a write path"),
        }
    }
    let rows = engine.query("SELECT 40 + 2 AS n").await.expect("a query");
    assert_eq!(rows[0].num_rows(), 1);
}
