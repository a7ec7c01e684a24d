//! The web app: served at the root, and driven in headless Chromium against
//! the server and against a static host.

use crate::common::ADMIN;
use crate::common::Server;
use reqwest::StatusCode;

#[test]
fn the_web_app_is_served_at_the_root_and_the_api_keeps_its_404s() {
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir_all(www.join("generated")).unwrap();
    std::fs::write(
        www.join("index.html"),
        "<!doctype html><div id=\"main\"></div>",
    )
    .unwrap();
    std::fs::write(www.join("generated/app.js"), "export {};").unwrap();
    let config = format!(
        "root = {:?}\nweb_dir = {:?}\n",
        dir.path().join("lake").to_str().unwrap(),
        www.to_str().unwrap()
    );
    let server = Server::start(dir.path(), &config);
    let page = server
        .client
        .get(format!("{}/", server.url))
        .send()
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().unwrap().contains("id=\"main\""));
    let script = server
        .client
        .get(format!("{}/generated/app.js", server.url))
        .send()
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    for missing in ["/nope.html", "/api/v1/nope"] {
        let (status, body) = server.get(Some(ADMIN), missing);
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(body["error"]["code"], "NOT_FOUND", "{missing}: {body}");
    }
}

/// The repository, when the built app, Chromium and playwright-core are
/// there for `test` (which skips, saying why, otherwise; under the test
/// command, which builds them, it fails instead).
fn web_app_for(test: &str) -> Option<std::path::PathBuf> {
    let repo = wavelake_tests::tests_dir().join("..");
    let ready = repo.join("www/generated/wavelake_web_bg.wasm").exists()
        && std::path::Path::new("/usr/bin/chromium").exists()
        && repo.join("pkg/node_modules/playwright-core").is_dir();
    if ready {
        return Some(repo);
    }
    let why = "needs the built app (scripts/build-web.sh), Chromium and pkg/node_modules";
    assert!(
        std::env::var_os("WAVELAKE_REQUIRE_WEB_E2E").is_none(),
        "{test} {why}, and the test command built them"
    );
    eprintln!("SKIPPED {test}: {why}");
    None
}

/// The app's files from a static host (the server's web directory: plain
/// files, with Range) reading a table from a static host: no Delta
/// Sharing, no API. Deletion vectors are applied in the page.
#[test]
fn the_web_app_reads_a_table_on_a_static_host_in_chromium() {
    let Some(repo) = web_app_for("the_web_app_reads_a_table_on_a_static_host_in_chromium") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    wavelake_tests::copy_dir(&repo.join("www/generated"), &www.join("generated"));
    for file in ["index.html", "style.css"] {
        std::fs::copy(repo.join("www").join(file), www.join(file)).unwrap();
    }
    let root = dir.path().join("lake");
    let config = format!(
        "root = {:?}\nweb_dir = {:?}\n",
        root.to_str().unwrap(),
        www.to_str().unwrap()
    );
    let server = Server::start(dir.path(), &config);
    for sql in [
        "CREATE TABLE demo.trips (trip_id BIGINT NOT NULL, city STRING)",
        "INSERT INTO demo.trips SELECT value, 'c' || (value % 7) FROM generate_series(1, 300)",
        "DELETE FROM demo.trips WHERE trip_id % 3 = 0",
    ] {
        assert_eq!(server.sql(ADMIN, sql).0, StatusCode::OK, "{sql}");
    }
    wavelake_tests::copy_dir(&root.join("demo/trips"), &www.join("tables/trips"));
    let stdout = wavelake_tests::run_node(
        &repo.join("web/tests/static-host.mjs"),
        &[
            format!("{}/", server.url),
            format!("{}/tables/trips/", server.url),
            wavelake_tests::scratch_dir()
                .join("web-e2e")
                .display()
                .to_string(),
            "200".to_owned(),
        ],
    );
    eprintln!("{}", stdout.trim());
}

#[test]
fn the_web_app_signs_in_and_runs_a_query_in_chromium() {
    let Some(repo) = web_app_for("the_web_app_signs_in_and_runs_a_query_in_chromium") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "root = {:?}\n[[sharing.shares]]\nname = \"demo\"\ntables = [\"demo.trips\"]\n",
        dir.path().join("lake").to_str().unwrap()
    );
    let server = Server::start(dir.path(), &config);
    for sql in [
        "CREATE TABLE demo.trips (trip_id BIGINT NOT NULL, city STRING, fare DOUBLE)",
        "INSERT INTO demo.trips SELECT value, CASE value % 3 WHEN 0 THEN 'Lima' WHEN 1 THEN 'Oslo' \
         ELSE 'Accra' END, value * 0.5 FROM generate_series(1, 500)",
        "DELETE FROM demo.trips WHERE trip_id % 10 = 0",
        "CREATE TABLE demo.events (id BIGINT)",
        "INSERT INTO demo.events SELECT value FROM generate_series(1, 100)",
    ] {
        assert_eq!(server.sql(ADMIN, sql).0, StatusCode::OK, "{sql}");
    }
    let out = wavelake_tests::scratch_dir().join("web-e2e");
    let stdout = wavelake_tests::run_node(
        &repo.join("web/tests/e2e.mjs"),
        &[
            server.url.clone(),
            ADMIN.to_owned(),
            out.display().to_string(),
            // Version 1 has 500 rows; version 2 deletes every tenth as a
            // deletion vector the page applies.
            "demo.trips".to_owned(),
            "demo.events".to_owned(),
        ],
    );
    eprintln!("{}", stdout.trim());
}
