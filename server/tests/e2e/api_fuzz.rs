//! API fuzzing: PyPI `schemathesis` generates requests from
//! `/api/v1/openapi.json` against the real server (with tables, a share
//! and a recipient to find): no response is a server error, every status,
//! content type and body is the one the document describes, and the
//! server keeps serving. `WAVELAKE_API_FUZZ_EXAMPLES` sets the examples
//! per operation (scripts/bench.sh runs many more).

use std::process::Command;

use reqwest::StatusCode;

use crate::common::{ADMIN, Server, local_config};

#[test]
fn schemathesis_finds_no_server_error_and_no_undocumented_response() {
    let test = "schemathesis_finds_no_server_error_and_no_undocumented_response";
    let Some(python) = wavelake_tests::venv_python_with(test, "schemathesis") else {
        return;
    };
    let examples = std::env::var("WAVELAKE_API_FUZZ_EXAMPLES").unwrap_or_else(|_| "15".into());
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &local_config(&dir.path().join("lake")));
    for sql in [
        "CREATE TABLE acme.t (id BIGINT, name STRING)",
        "INSERT INTO acme.t VALUES (1, 'a'), (2, 'b')",
        "CREATE SHARE s",
        "ALTER SHARE s ADD TABLE acme.t",
    ] {
        let (status, body) = server.sql(ADMIN, sql);
        assert_eq!(status, StatusCode::OK, "{sql}: {body}");
    }
    let report = dir.path().join("schemathesis");
    let out = Command::new(python.with_file_name("schemathesis"))
        .arg("run")
        .arg(format!("{}/api/v1/openapi.json", server.url))
        .args(["--header", &format!("Authorization: Bearer {ADMIN}")])
        .args(["--max-examples", &examples, "--seed", "20261202"])
        // Subscriptions stream until the client leaves: tested on their own.
        .args(["--exclude-path-regex", "/events$"])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance",
        ])
        .arg("--report-dir")
        .arg(&report)
        // Its cache goes to the working directory: keep it out of the tree.
        .current_dir(dir.path())
        .output()
        .expect("schemathesis runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let summary: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("generated") || l.contains("passed") || l.contains("failures"))
        .collect();
    eprintln!("schemathesis: {}", summary.join(" | "));
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.get(None, "/health").0, StatusCode::OK);
}
