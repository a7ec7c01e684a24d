//! Delta Sharing end to end: the Python client, the engine and the npm
//! package as recipients, change data feeds, presigned and refreshed URLs,
//! shares from the configuration, and the SQL API for recipients.

use crate::common::ADMIN;
use crate::common::count_and_version;

use crate::common::Server;
use crate::common::local_config;
use reqwest::StatusCode;
use serde_json::Value;
use serde_json::json;
use wavelake_tests::MotoServer;

/// Time travel and history on a shared table through the engine's Delta
/// Sharing catalog (what the npm package and the web app run): `VERSION AS
/// OF`, `TIMESTAMP AS OF`, `delta_history` and `delta_files` by version
/// reach the server's versions of exactly the table named. `table` is
/// `schema.table`, `server_table` the same table on the server.
fn engine_time_travels_shared(server: &Server, profile: &str, table: &str, server_table: &str) {
    use arrow::array::{Array, AsArray};
    use wavelake_engine::sharing::{SharedCatalog, SharingProfile};
    // The server's own answers first (its client blocks: not inside the
    // runtime below).
    let (_, server_history) = server.sql(
        ADMIN,
        &format!("SELECT version FROM delta_history('{server_table}') ORDER BY version"),
    );
    let server_versions: Vec<i64> = server_history["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["version"].as_i64().unwrap())
        .collect();
    assert!(server_versions.len() >= 3, "{server_versions:?}");
    let expected: Vec<(i64, i64, i64)> = server_versions
        .iter()
        .map(|version| {
            let (_, answer) = server.sql(
                ADMIN,
                &format!(
                    "SELECT (SELECT count(*) FROM {server_table} VERSION AS OF {version}) AS n, \
                     (SELECT count(*) FROM delta_files('{server_table}', {version})) AS f"
                ),
            );
            let row = &answer["rows"][0];
            (
                *version,
                row["n"].as_i64().unwrap(),
                row["f"].as_i64().unwrap(),
            )
        })
        .collect();
    let count = |batches: &[arrow::array::RecordBatch]| -> i64 {
        batches[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0)
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let catalog = SharedCatalog::connect(&SharingProfile::parse(profile).unwrap())
            .await
            .unwrap();
        let engine = wavelake_write::session_with(wavelake_engine::SqlSessionOptions {
            read_only: true,
            ..Default::default()
        });
        catalog.register_versions(&engine).unwrap();
        let query = |sql: String| {
            let engine = engine.clone();
            let catalog = catalog.clone();
            async move {
                catalog.open_referenced(&engine, &sql).await?;
                engine.query(&sql).await
            }
        };
        let history = query(format!(
            "SELECT version, CAST(timestamp AS BIGINT) AS millis, operation \
             FROM delta_history('{table}') ORDER BY version"
        ))
        .await
        .unwrap();
        let history = arrow::compute::concat_batches(&history[0].schema(), &history).unwrap();
        let versions = history
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>();
        let millis = history
            .column(1)
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(versions.null_count() + millis.null_count(), 0);
        let shared_versions: Vec<i64> = versions.iter().map(Option::unwrap).collect();
        assert_eq!(shared_versions, server_versions, "{table}'s history");
        for (version, rows, files) in &expected {
            let read = query(format!(
                "SELECT count(*) FROM {table} VERSION AS OF {version}"
            ))
            .await
            .unwrap();
            assert_eq!(count(&read), *rows, "{table} VERSION AS OF {version}");
            let listed = query(format!(
                "SELECT count(*) FROM delta_files('{table}', {version})"
            ))
            .await
            .unwrap();
            assert_eq!(count(&listed), *files, "delta_files('{table}', {version})");
        }
        // TIMESTAMP AS OF the first data commit's time: the newest version
        // committed by then.
        let at = millis.value(1);
        let newest = (0..history.num_rows())
            .filter(|&i| millis.value(i) <= at)
            .map(|i| versions.value(i))
            .max()
            .unwrap();
        let stamp = chrono::DateTime::from_timestamp_millis(at)
            .unwrap()
            .format("%Y-%m-%d %H:%M:%S%.3f");
        let by_time = query(format!(
            "SELECT count(*) FROM {table} TIMESTAMP AS OF '{stamp}'"
        ))
        .await
        .unwrap();
        let by_version = query(format!(
            "SELECT count(*) FROM {table} VERSION AS OF {newest}"
        ))
        .await
        .unwrap();
        assert_eq!(
            count(&by_time),
            count(&by_version),
            "{table} TIMESTAMP AS OF {stamp}"
        );
        // A name that is not shared is refused, never another table's.
        let (schema, _) = table.split_once('.').unwrap();
        for sql in [
            format!("SELECT * FROM delta_history('{schema}.no_such_table')"),
            format!("SELECT * FROM {schema}.no_such_table VERSION AS OF 0"),
        ] {
            assert!(query(sql.clone()).await.is_err(), "{sql} is refused");
        }
    });
    eprintln!(
        "same    {table}: VERSION AS OF, TIMESTAMP AS OF, delta_history and delta_files of {} versions through the engine's sharing catalog",
        expected.len()
    );
}

/// Every row of a shared table, read by the engine's Delta Sharing client.
fn engine_reads_shared(profile: &str, table: &str) -> Vec<arrow::array::RecordBatch> {
    use wavelake_engine::sharing::{
        QueryOptions, SharedTableName, SharingClient, SharingProfile, open_shared_table,
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = SharingClient::new(&SharingProfile::parse(profile).unwrap()).unwrap();
        let name = SharedTableName::parse(table).unwrap();
        let listed = client.all_tables().await.unwrap();
        assert!(listed.contains(&name), "{listed:?}");
        let (snapshot, storage) = open_shared_table(&client, &name, &QueryOptions::default())
            .await
            .unwrap();
        let engine = wavelake_write::session();
        engine.register_snapshot("t", snapshot, storage).unwrap();
        engine.query("SELECT * FROM t").await.unwrap()
    })
}

/// The rows of `sql` as the server answers them (Arrow IPC).
fn server_rows(server: &Server, sql: &str) -> Vec<arrow::array::RecordBatch> {
    let response = server
        .client
        .post(format!("{}/api/v1/sql", server.url))
        .bearer_auth(ADMIN)
        .header("accept", "application/vnd.apache.arrow.stream")
        .json(&json!({"sql": sql}))
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().unwrap();
    arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

/// Shares two tables (one with deletion vectors) with a recipient, reads
/// them with the PyPI `delta-sharing` client in both response formats, and
/// checks what recipients without a grant, and tampered URLs, get.
/// A recipient's token on the SQL API: reads of its shared tables by the
/// names sharing clients give them, nothing else, with where the query ran.
fn recipient_runs_sql_over_its_shares(server: &Server, token: &str) {
    let run = |sql: &str| {
        let response = server
            .client
            .post(format!("{}/api/v1/sql", server.url))
            .bearer_auth(token)
            .json(&json!({ "sql": sql }))
            .send()
            .unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (
            status,
            headers,
            response.json::<Value>().unwrap_or(Value::Null),
        )
    };
    let (status, headers, body) = run("SELECT count(*) AS n, sum(id) AS s FROM feeds.events");
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, expected) = server.sql(ADMIN, "SELECT count(*) AS n, sum(id) AS s FROM acme.events");
    assert_eq!(body["rows"], expected["rows"]);
    assert_eq!(headers["wavelake-ran-on"], "server");
    let reason = headers["wavelake-placement-reason"].to_str().unwrap();
    assert!(reason.ends_with("and no cluster is configured"), "{reason}");
    let read: u64 = headers["wavelake-read-bytes"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(read > 0, "the events table's files have bytes");
    let (_, files) = server.sql(
        ADMIN,
        "SELECT count(*) AS n FROM delta_files('acme.events')",
    );
    assert_eq!(
        headers["wavelake-read-files"].to_str().unwrap(),
        files["rows"][0]["n"].to_string(),
        "every active file of the table"
    );

    let (status, _, body) = run("SELECT count(*) AS n FROM feeds.events VERSION AS OF 1");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["rows"][0]["n"], 500,
        "time travel to before the delete"
    );
    let (status, _, body) =
        run("SELECT count(*) AS n FROM acme.sales WHERE day = DATE '2024-03-02'");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"][0]["n"], 100);

    for write in [
        "DELETE FROM feeds.events",
        "INSERT INTO acme.sales (id) VALUES (1)",
        "/* x */ UPDATE feeds.events SET kind = 'y'",
        "CREATE TABLE feeds.mine (id BIGINT)",
    ] {
        let (status, _, body) = run(write);
        assert_eq!(status, StatusCode::FORBIDDEN, "{write}: {body}");
        assert_eq!(body["error"]["code"], "NOT_ALLOWED", "{write}: {body}");
    }
    // The table under its namespace name is not what the share calls it.
    let (status, _, body) = run("SELECT count(*) FROM acme.events");
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "TABLE_NOT_FOUND", "{body}");
    let (_, after) = server.sql(ADMIN, "SELECT count(*) AS n, sum(id) AS s FROM acme.events");
    assert_eq!(after["rows"], expected["rows"], "nothing changed");
}

pub(crate) fn sharing_round_trip(server: &Server, test: &str) {
    for sql in [
        "CREATE TABLE acme.sales (id BIGINT NOT NULL, day DATE, amount DOUBLE, note STRING) PARTITIONED BY (day)",
        "INSERT INTO acme.sales SELECT value, DATE '2024-03-01' + CAST(value % 3 AS INT), value * 0.25, 'n' || value FROM range(0, 300)",
        "CREATE TABLE acme.events (id BIGINT, kind STRING)",
        "INSERT INTO acme.events SELECT value, 'k' || (value % 4) FROM range(0, 500)",
        "DELETE FROM acme.events WHERE id % 7 = 0",
        "UPDATE acme.events SET kind = 'changed' WHERE id BETWEEN 100 AND 120",
        "CREATE SHARE partners",
        "ALTER SHARE partners ADD TABLE acme.sales",
        "ALTER SHARE partners ADD TABLE acme.events AS feeds.events",
        "CREATE RECIPIENT eve",
    ] {
        let (status, body) = server.sql(ADMIN, sql);
        assert_eq!(status, StatusCode::OK, "{sql}: {body}");
    }
    let profile = server.recipient("bob", "partners");
    let bob: Value = serde_json::from_str(&profile).unwrap();
    let bob_token = bob["bearerToken"].as_str().unwrap().to_owned();
    assert_eq!(bob["endpoint"], format!("{}/delta-sharing/", server.url));
    recipient_runs_sql_over_its_shares(server, &bob_token);

    // The REST protocol directly.
    let (status, shares) = server.get(Some(&bob_token), "/delta-sharing/shares");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shares["items"], json!([{"name": "partners"}]));
    let (_, tables) = server.get(
        Some(&bob_token),
        "/delta-sharing/shares/partners/all-tables",
    );
    assert_eq!(tables["items"].as_array().unwrap().len(), 2);
    let version = server
        .client
        .get(format!(
            "{}/delta-sharing/shares/partners/schemas/feeds/tables/events/version",
            server.url
        ))
        .bearer_auth(&bob_token)
        .send()
        .unwrap();
    assert_eq!(version.headers()["delta-table-version"], "3");
    let query = server
        .client
        .post(format!(
            "{}/delta-sharing/shares/partners/schemas/acme/tables/sales/query",
            server.url
        ))
        .bearer_auth(&bob_token)
        .json(&json!({"limitHint": 1}))
        .send()
        .unwrap();
    assert_eq!(query.status(), StatusCode::OK);
    let lines: Vec<Value> = query
        .text()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let url = lines[2]["file"]["url"].as_str().unwrap().to_owned();
    let size = lines[2]["file"]["size"].as_u64().unwrap();
    // A JSON predicate hint on the partition column leaves other days out.
    let hint = json!({"op": "equal", "children": [
        {"op": "column", "name": "day", "valueType": "date"},
        {"op": "literal", "value": "2024-03-02", "valueType": "date"}]});
    let hinted: Vec<Value> = server
        .client
        .post(format!(
            "{}/delta-sharing/shares/partners/schemas/acme/tables/sales/query",
            server.url
        ))
        .bearer_auth(&bob_token)
        .json(&json!({"jsonPredicateHints": hint.to_string()}))
        .send()
        .unwrap()
        .text()
        .unwrap()
        .lines()
        .skip(2)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!hinted.is_empty());
    for line in &hinted {
        assert_eq!(
            line["file"]["partitionValues"]["day"], "2024-03-02",
            "{line}"
        );
    }
    // An explicit range: Azure Blob Storage has no suffix ranges.
    let ranged = server
        .client
        .get(&url)
        .header("range", format!("bytes={}-{}", size - 8, size - 1))
        .send()
        .unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        ranged.headers()["content-range"],
        format!("bytes {}-{}/{size}", size - 8, size - 1).as_str()
    );
    assert!(ranged.bytes().unwrap().ends_with(b"PAR1"));
    if url.contains("/files/") {
        let tampered = url.replace("/sales/", "/events/");
        assert_eq!(
            server.client.get(&tampered).send().unwrap().status(),
            StatusCode::FORBIDDEN
        );
        let forged = format!("{}0", url.trim_end_matches(|c: char| c.is_ascii_hexdigit()));
        assert_eq!(
            server.client.get(&forged).send().unwrap().status(),
            StatusCode::FORBIDDEN
        );
    }
    let (_, eve) = server.sql(ADMIN, "SHOW RECIPIENTS");
    assert_eq!(eve["row_count"], 2);
    let reader = server.token("acme", false);
    let (status, listed) = server.get(Some(&reader), "/delta-sharing/shares");
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(
        listed["items"],
        json!([{"name": "namespace-acme"}]),
        "a namespace token is no recipient: it sees its namespace, not the shares"
    );
    let (status, _) = server.get(
        Some(&reader),
        "/delta-sharing/shares/namespace-globex/all-tables",
    );
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another namespace stays hidden"
    );
    let (status, _) = server.get(None, "/delta-sharing/shares");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = server.get(
        Some(&bob_token),
        "/delta-sharing/shares/partners/schemas/acme/tables/nope/metadata",
    );
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["errorCode"], "RESOURCE_DOES_NOT_EXIST");
    let (status, body) = server.get(
        Some(&bob_token),
        "/delta-sharing/shares/partners/schemas/acme/tables/sales/changes?startingVersion=0",
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("delta.enableChangeDataFeed is not true"),
        "{body}"
    );

    let expected = [
        (
            "partners.acme.sales",
            server_rows(server, "SELECT * FROM acme.sales"),
        ),
        (
            "partners.feeds.events",
            server_rows(server, "SELECT * FROM acme.events"),
        ),
    ];

    // Wavelake's own sharing client (what the browser package runs),
    // deletion vectors applied from the presigned URLs.
    for (table, rows) in &expected {
        let read = engine_reads_shared(&profile, table);
        let compared = wavelake_tests::compare_rows(rows, &read, "server")
            .unwrap_or_else(|why| panic!("{table} by the engine's client: {why}"));
        eprintln!("same    {table} by the engine's sharing client ({compared} rows)");
    }

    engine_time_travels_shared(server, &profile, "feeds.events", "acme.events");

    // A table of more files than one chunk of a streamed answer holds.
    for sql in [
        "CREATE TABLE acme.wide (id BIGINT, p BIGINT) PARTITIONED BY (p)",
        "INSERT INTO acme.wide SELECT value, value % 700 FROM range(0, 1400)",
        "ALTER SHARE partners ADD TABLE acme.wide",
    ] {
        let (status, body) = server.sql(ADMIN, sql);
        assert_eq!(status, StatusCode::OK, "{sql}: {body}");
    }
    let wide = engine_reads_shared(&profile, "partners.acme.wide");
    let compared = wavelake_tests::compare_rows(
        &server_rows(server, "SELECT * FROM acme.wide"),
        &wide,
        "server",
    )
    .unwrap_or_else(|why| panic!("partners.acme.wide by the engine's client: {why}"));
    assert_eq!(compared, 1400);
    let (status, lines) = server.post_text(
        &bob_token,
        "/delta-sharing/shares/partners/schemas/acme/tables/wide/query",
        "{}",
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        lines.lines().filter(|l| l.starts_with("{\"file\"")).count(),
        700,
        "one line a file, over several chunks"
    );
    eprintln!("same    partners.acme.wide: 700 files answered in chunks");

    let dir = tempfile::tempdir().unwrap();
    let profile_path = dir.path().join("bob.share");
    std::fs::write(&profile_path, &profile).unwrap();

    // The npm package in Node, when scripts/build-pkg.sh has built it.
    if wavelake_tests::npm_package_built() {
        let rows = |batches: &[arrow::array::RecordBatch]| -> usize {
            batches.iter().map(|b| b.num_rows()).sum()
        };
        let stdout = wavelake_tests::run_node(
            &wavelake_tests::package_dir().join("tests/sharing.mjs"),
            &[
                profile_path.display().to_string(),
                format!("acme.sales={}", rows(&expected[0].1)),
                format!("feeds.events={}", rows(&expected[1].1)),
                format!(
                    "feeds.events@1={}",
                    rows(&server_rows(
                        server,
                        "SELECT * FROM acme.events VERSION AS OF 1"
                    ))
                ),
                format!(
                    "feeds.events#history={}",
                    count_and_version(server, "acme.events").1 + 1
                ),
            ],
        );
        eprintln!("{}", stdout.trim());
    } else {
        eprintln!("SKIPPED the npm package part of {test}: scripts/build-pkg.sh builds it");
    }

    // The PyPI client, both formats, compared row for row with the server.
    let Some(python) = wavelake_tests::venv_python_with(test, "delta_sharing") else {
        return;
    };
    for format in ["parquet", "delta"] {
        let out = dir.path().join(format);
        let mut args = vec![
            profile_path.to_str().unwrap(),
            out.to_str().unwrap(),
            format,
        ];
        args.extend(expected.iter().map(|(t, _)| *t));
        eprintln!(
            "{}",
            wavelake_tests::run_python(&python, "sharing_client.py", &args).trim()
        );
        let results: Value =
            serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
        for (table, rows) in &expected {
            assert_eq!(
                results[table], "ok",
                "{table} in {format}: {}",
                results[table]
            );
            let read = wavelake_tests::read_parquet_file(&out.join(format!("{table}.parquet")));
            let compared = wavelake_tests::compare_rows(rows, &read, "server")
                .unwrap_or_else(|why| panic!("{table} in {format}: {why}"));
            eprintln!("same    {table} by delta-sharing ({format}, {compared} rows)");
        }
    }
}

#[test]
fn delta_sharing_serves_tables_to_the_python_client() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let server = Server::start(
        dir.path(),
        &format!("root = {:?}\n", root.to_str().unwrap()),
    );
    sharing_round_trip(&server, "delta_sharing_serves_tables_to_the_python_client");
}

/// Change data feeds of tables Spark wrote (change files, deletion vectors,
/// partitions, column mapping) and of tables Wavelake wrote (DELETE, UPDATE
/// and MERGE, with and without deletion vectors), read by the
/// `delta-sharing` client in both formats, by Wavelake's `table_changes`,
/// and by `deltalake`'s own reader where it can read them: all agree.
#[test]
fn delta_sharing_serves_change_data_feeds() {
    let test = "delta_sharing_serves_change_data_feeds";
    let Some(golden) = wavelake_tests::golden_or_skip(test) else {
        return;
    };
    let Some(python) = wavelake_tests::venv_python_with(test, "delta_sharing") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    // Tables deltalake reads changes of, then ones it cannot (escaped file
    // names, column mapping), where the two formats must agree.
    let with_oracle = [
        "cdf-table",
        "cdf-table-non-partitioned",
        "cdf-table-with-dv",
        "cdf-table-with-cdc-and-dvs",
    ];
    let without_oracle = [
        "cdf-table-partitioned",
        "cdf-table-data-change",
        "cdf-table-update-ops",
        "cdf-table-delete-conditional-two-rows",
        "cdf-column-mapping-name-mode@1",
    ];
    let mut specs = Vec::new();
    let mut statements = vec!["CREATE SHARE changes".to_owned()];
    for spec in with_oracle.iter().chain(&without_oracle) {
        // NAME@START: the version the table began recording changes at.
        let (name, start) = spec.split_once('@').unwrap_or((spec, ""));
        let unpacked = wavelake_tests::unpack(&golden.join(format!("kernel-data/{name}.tar.zst")));
        let table = name.replace('-', "_");
        let location = root.join("cdf").join(&table);
        wavelake_tests::copy_dir(&unpacked, &location);
        statements.push(format!("ALTER SHARE changes ADD TABLE cdf.{table}"));
        let oracle = if with_oracle.contains(spec) {
            format!("={}", location.to_str().unwrap())
        } else {
            String::new()
        };
        let start = if start.is_empty() {
            String::new()
        } else {
            format!("@{start}")
        };
        specs.push(format!("changes.cdf.{table}{start}{oracle}"));
    }
    let server = Server::start(
        dir.path(),
        &format!("root = {:?}\n", root.to_str().unwrap()),
    );
    // Tables Wavelake writes, merge-on-read and copy-on-write.
    for (table, deletion_vectors) in [("written", true), ("rewritten", false)] {
        statements.extend([
            format!(
                "CREATE TABLE acme.{table} (id BIGINT, name STRING, part STRING) PARTITIONED BY \
                 (part) TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true', \
                 'delta.enableDeletionVectors' = '{deletion_vectors}')"
            ),
            format!(
                "INSERT INTO acme.{table} VALUES (1, 'ann', 'a'), (2, 'bob', 'a'), (3, 'cy', 'b'), \
                 (5, 'eve', 'b')"
            ),
            format!("DELETE FROM acme.{table} WHERE id = 2"),
            format!("UPDATE acme.{table} SET name = upper(name) WHERE part = 'b'"),
            format!(
                "MERGE INTO acme.{table} t USING (SELECT 1 AS id, 'x' AS name UNION ALL SELECT 3, \
                 'cyril' UNION ALL SELECT 4, 'di') s ON t.id = s.id WHEN MATCHED AND s.name = 'x' \
                 THEN DELETE WHEN MATCHED THEN UPDATE SET name = s.name WHEN NOT MATCHED THEN \
                 INSERT (id, name, part) VALUES (s.id, s.name, 'c')"
            ),
            format!("INSERT INTO acme.{table} VALUES (6, 'fay', 'a')"),
            format!("ALTER SHARE changes ADD TABLE acme.{table}"),
        ]);
        let location = root.join("acme").join(table);
        specs.push(format!(
            "changes.acme.{table}={}",
            location.to_str().unwrap()
        ));
    }
    statements.push("CREATE TABLE acme.plain (id BIGINT)".into());
    statements.push("INSERT INTO acme.plain VALUES (1)".into());
    statements.push("ALTER SHARE changes ADD TABLE acme.plain".into());
    for sql in &statements {
        let (status, body) = server.sql(ADMIN, sql);
        assert_eq!(status, StatusCode::OK, "{sql}: {body}");
    }
    let profile = server.recipient("carol", "changes");
    let profile_path = dir.path().join("carol.share");
    std::fs::write(&profile_path, &profile).unwrap();
    let out = dir.path().join("changes.json");
    let mut args = vec![
        profile_path.to_str().unwrap().to_owned(),
        out.to_str().unwrap().to_owned(),
    ];
    args.extend(specs.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    wavelake_tests::run_python_with_env(
        &python,
        "sharing_changes.py",
        &args,
        &[("WAVELAKE_URL", &server.url), ("WAVELAKE_TOKEN", ADMIN)],
    );
    let results: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    for spec in &specs {
        let table = spec.split('=').next().unwrap();
        let methods = &results[table];
        let parquet = &methods["parquet"];
        assert!(parquet.is_array(), "{table} (parquet format): {parquet}");
        assert!(
            !parquet.as_array().unwrap().is_empty(),
            "{table} has changes"
        );
        assert_eq!(
            parquet, &methods["delta"],
            "{table}: the parquet and delta formats disagree"
        );
        assert_eq!(
            parquet, &methods["wavelake"],
            "{table}: table_changes disagrees with the sharing client"
        );
        if spec.contains('=') {
            assert_eq!(
                parquet, &methods["deltalake"],
                "{table}: deltalake disagrees"
            );
        }
    }

    // Ranges, and tables that do not record changes.
    let changes = |path: &str| {
        server.get(
            Some(ADMIN),
            &format!("/delta-sharing/shares/changes/schemas/{path}"),
        )
    };
    let (status, body) = changes("acme/tables/plain/changes?startingVersion=0");
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("delta.enableChangeDataFeed"),
        "{body}"
    );
    let (status, body) = changes("cdf/tables/cdf_table/changes");
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("startingVersion")
    );
    let (status, body) = changes("cdf/tables/cdf_table/changes?startingVersion=99");
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) =
        changes("cdf/tables/cdf_column_mapping_name_mode/changes?startingVersion=0");
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[test]
fn delta_sharing_on_s3_hands_out_presigned_urls() {
    let Some(moto) = MotoServer::start("delta_sharing_on_s3_hands_out_presigned_urls") else {
        return;
    };
    moto.create_bucket("shared");
    let dir = tempfile::tempdir().unwrap();
    let mut config = "root = \"s3://shared/lake\"\n[storage]\n".to_owned();
    for (key, value) in moto.options() {
        config.push_str(&format!("{key} = {value:?}\n"));
    }
    let server = Server::start(dir.path(), &config);
    sharing_round_trip(&server, "delta_sharing_on_s3_hands_out_presigned_urls");
}

#[test]
fn expired_file_urls_are_refused_and_refreshed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let config = format!(
        "root = {:?}\n[limits]\nfile_url_lifetime_secs = 2\n",
        root.to_str().unwrap()
    );
    let server = Server::start(dir.path(), &config);
    for sql in [
        "CREATE TABLE acme.t (id BIGINT)",
        "INSERT INTO acme.t VALUES (1)",
        "INSERT INTO acme.t VALUES (2)",
        "CREATE SHARE s",
        "ALTER SHARE s ADD TABLE acme.t",
    ] {
        assert_eq!(server.sql(ADMIN, sql).0, StatusCode::OK, "{sql}");
    }
    let query = |body: Value| {
        let response = server
            .client
            .post(format!(
                "{}/delta-sharing/shares/s/schemas/acme/tables/t/query",
                server.url
            ))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .unwrap();
        let status = response.status();
        let version = response
            .headers()
            .get("delta-table-version")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, version, response.text().unwrap())
    };
    let (_, first_version, answer) = query(json!({"includeRefreshToken": true}));
    let lines: Vec<Value> = answer
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let url = lines[2]["file"]["url"].as_str().unwrap().to_owned();
    let end = &lines.last().unwrap()["endStreamAction"];
    let token = end["refreshToken"].as_str().unwrap().to_owned();
    assert!(
        end["minUrlExpirationTimestamp"].as_i64().unwrap() > 0,
        "{end}"
    );
    assert_eq!(
        server.client.get(&url).send().unwrap().status(),
        StatusCode::OK
    );
    // A commit after the token was handed out does not change what it
    // refreshes.
    assert_eq!(
        server.sql(ADMIN, "INSERT INTO acme.t VALUES (3)").0,
        StatusCode::OK
    );
    std::thread::sleep(std::time::Duration::from_millis(3100));
    let expired = server.client.get(&url).send().unwrap();
    assert_eq!(expired.status(), StatusCode::FORBIDDEN);
    assert!(expired.text().unwrap().contains("expired"));

    let (status, version, refreshed) = query(json!({"refreshToken": token}));
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_eq!(version, first_version, "a refresh answers the same version");
    let files = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter_map(|v| v["file"]["url"].as_str().map(str::to_owned))
            .collect()
    };
    let fresh = files(&refreshed);
    assert_eq!(fresh.len(), files(&answer).len(), "the same files");
    assert!(!fresh.contains(&url), "with fresh URLs");
    assert_eq!(
        server.client.get(&fresh[0]).send().unwrap().status(),
        StatusCode::OK
    );
    let (status, _, _) = query(json!({"refreshToken": format!("9{token}")}));
    assert_eq!(status, StatusCode::BAD_REQUEST, "a forged token is refused");

    // The npm package refreshes on its own, and says EXPIRED_URL when it
    // cannot.
    if !wavelake_tests::npm_package_built() {
        eprintln!("SKIPPED the npm package part: scripts/build-pkg.sh builds it");
        return;
    }
    // A recipient of `s` (an admin would still see the table through its
    // namespace once it leaves the share).
    let profile = server.recipient("dana", "s");
    let profile_path = dir.path().join("dana.share");
    std::fs::write(&profile_path, profile).unwrap();
    let stdout = wavelake_tests::run_node(
        &wavelake_tests::package_dir().join("tests/refresh.mjs"),
        &[
            profile_path.display().to_string(),
            server.url.clone(),
            ADMIN.to_owned(),
        ],
    );
    eprintln!("{}", stdout.trim());
}

#[test]
fn shares_and_recipients_can_come_from_the_configuration_file() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let token = "partner-token-from-the-config-file";
    let hash: String = sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let config = format!(
        "root = {:?}\n[[sharing.shares]]\nname = \"catalog\"\ntables = [\"acme.items as shop.items\"]\n\
         [[sharing.recipients]]\nname = \"partner\"\nshares = [\"catalog\"]\ntoken_sha256 = \"{hash}\"\n",
        root.to_str().unwrap()
    );
    std::fs::create_dir_all(&root).unwrap();
    let server = Server::start(dir.path(), &config);
    for sql in [
        "CREATE TABLE acme.items (id BIGINT)",
        "INSERT INTO acme.items VALUES (1), (2)",
    ] {
        assert_eq!(server.sql(ADMIN, sql).0, StatusCode::OK);
    }
    let (status, tables) = server.get(Some(token), "/delta-sharing/shares/catalog/all-tables");
    assert_eq!(status, StatusCode::OK, "{tables}");
    assert_eq!(
        tables["items"],
        json!([{"name": "items", "schema": "shop", "share": "catalog"}])
    );
    let config_text = std::fs::read_to_string(dir.path().join("wavelake.toml")).unwrap();
    assert!(!config_text.contains(token), "the file holds only the hash");
}

/// Uploads create tables (schema inferred from the file), and a
/// namespace's own tokens read its tables over Delta Sharing, history
/// included: what the web app does after a token sign-in.
#[test]
fn uploads_create_tables_that_namespace_tokens_read_over_sharing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &local_config(&dir.path().join("lake")));
    let writer = server.token("lab", true);
    let (status, me) = server.get(Some(&writer), "/api/v1/me");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me,
        json!({"admin": false, "namespaces": [{"name": "lab", "write": true}], "recipient": null})
    );
    let post = |table: &str, query: &str, key: Option<&str>, body: &[u8]| {
        let mut request = server
            .client
            .post(format!(
                "{}/api/v1/tables/lab/{table}/upload?format=csv{query}",
                server.url
            ))
            .bearer_auth(&writer)
            .body(body.to_vec());
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().unwrap();
        let status = response.status();
        (status, response.json::<Value>().unwrap_or(Value::Null))
    };
    let csv = b"city,visits,rate,day\nOslo,3,0.5,2026-11-01\nLima,7,1.25,2026-11-02\n";
    let (status, body) = post("visits", "", None, csv);
    assert_eq!(status, StatusCode::NOT_FOUND, "no create, no table: {body}");
    let (status, body) = post("visits", "&create=true", Some("k1"), csv);
    assert_eq!(status, StatusCode::BAD_REQUEST, "a key on a create: {body}");
    let (status, body) = post("broken", "&create=true", None, b"a,b\n1,2\n1,2,3\n");
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = server.get(Some(&writer), "/api/v1/tables/lab/broken");
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a failed create leaves no table"
    );
    let (status, body) = post("visits", "&create=true", None, csv);
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["rows"], 2);
    let (status, body) = post(
        "visits",
        "&create=true",
        Some("k2"),
        b"city,visits,rate,day\nRome,1,2.0,2026-11-03\n",
    );
    assert_eq!(
        status,
        StatusCode::CREATED,
        "an append once it exists: {body}"
    );
    let (status, body) = server.sql_in(
        &writer,
        "SELECT city, visits, rate, CAST(day AS STRING) AS day FROM visits ORDER BY city",
        Some("lab"),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["rows"],
        json!([
            {"city": "Lima", "visits": 7, "rate": 1.25, "day": "2026-11-02"},
            {"city": "Oslo", "visits": 3, "rate": 0.5, "day": "2026-11-01"},
            {"city": "Rome", "visits": 1, "rate": 2.0, "day": "2026-11-03"},
        ])
    );
    let (status, listed) = server.get(Some(&writer), "/delta-sharing/shares");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["items"], json!([{"name": "namespace-lab"}]));
    let table = "/delta-sharing/shares/namespace-lab/schemas/lab/tables/visits";
    let (status, history) = server.get(Some(&writer), &format!("{table}/history"));
    assert_eq!(status, StatusCode::OK, "{history}");
    let operations: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["operation"].as_str().unwrap())
        .collect();
    assert_eq!(operations, ["CREATE TABLE AS SELECT", "WRITE"]);
    assert_eq!(history["items"][1]["version"], 1);
    let outsider = server.token("other", true);
    let (status, _) = server.get(Some(&outsider), &format!("{table}/history"));
    assert_eq!(status, StatusCode::NOT_FOUND);
    let profile = json!({"shareCredentialsVersion": 1,
        "endpoint": format!("{}/delta-sharing/", server.url), "bearerToken": writer})
    .to_string();
    let rows: usize = engine_reads_shared(&profile, "namespace-lab.lab.visits")
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, 3);
}
