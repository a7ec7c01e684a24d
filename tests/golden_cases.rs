//! What each golden table must give, shared by the native conformance test
//! and by the manifest that the wasm32 tests read over HTTP.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{canonical_rows, column_names, read_parquet_dir, unpack};

/// A golden table that must be refused: its name, the error code
/// (`wavelake_engine::Error::code`) and a phrase the message must contain.
pub struct InvalidTable {
    pub name: &'static str,
    pub code: &'static str,
    pub message_contains: &'static str,
}

/// The tables the protocol says no reader may read, and the error each gives.
pub const INVALID: &[InvalidTable] = &[
    InvalidTable {
        name: "deltalog-invalid-protocol-version",
        code: "UNSUPPORTED_FEATURE",
        message_contains: "",
    },
    InvalidTable {
        name: "deltalog-state-reconstruction-from-checkpoint-missing-metadata",
        code: "INVALID_TABLE",
        message_contains: "metaData",
    },
    InvalidTable {
        name: "deltalog-state-reconstruction-from-checkpoint-missing-protocol",
        code: "INVALID_TABLE",
        message_contains: "protocol",
    },
    InvalidTable {
        name: "deltalog-state-reconstruction-without-metadata",
        code: "INVALID_TABLE",
        message_contains: "metaData",
    },
    InvalidTable {
        name: "deltalog-state-reconstruction-without-protocol",
        code: "INVALID_TABLE",
        message_contains: "protocol",
    },
    InvalidTable {
        name: "no-delta-log-folder",
        code: "TABLE_NOT_FOUND",
        message_contains: "",
    },
    InvalidTable {
        name: "versions-not-contiguous",
        code: "INVALID_TABLE",
        message_contains: "contiguous",
    },
];

/// The invalid-table entry for `name`, if it is one.
pub fn invalid(name: &str) -> Option<&'static InvalidTable> {
    INVALID.iter().find(|t| t.name == name)
}

/// The table whose timestamp partition value Spark wrote in a
/// America/Los_Angeles session; its expected rows carry that zone, while the
/// protocol gives such values no zone (they are read as UTC, as
/// delta-kernel does). Its `as_timestamp` column is checked on its own.
pub const ZONED_PARTITION_TABLE: &str = "data-reader-partition-values";

/// The golden archives (`kernel-golden/*.tar.zst`) by table name, sorted.
pub fn archives(golden_root: &Path) -> Vec<(String, PathBuf)> {
    let mut archives: Vec<(String, PathBuf)> = std::fs::read_dir(golden_root.join("kernel-golden"))
        .expect("kernel-golden")
        .filter_map(|e| {
            let path = e.expect("entry").path();
            let name = path
                .file_name()?
                .to_str()?
                .strip_suffix(".tar.zst")?
                .to_owned();
            Some((name, path))
        })
        .collect();
    archives.sort();
    archives
}

/// One query over a golden table and what it must return, as the wasm32
/// tests read it from `manifest.json` next to the unpacked tables.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HttpCase {
    /// The golden table's name.
    pub name: String,
    /// The table root relative to the server's base URL.
    pub table: String,
    /// The query, over the table registered as `t`.
    pub sql: String,
    /// The columns compared, in order.
    pub columns: Vec<String>,
    /// The expected rows (see `canonical_rows`), when the query succeeds.
    pub rows: Vec<String>,
    /// The expected error code, when the query must fail.
    pub error_code: Option<String>,
    /// A phrase the error message must contain.
    pub error_contains: Option<String>,
}

/// The cases the wasm32 tests check over HTTP: every golden table with
/// expected rows (Spark's, not ours), every invalid table, and time travel.
pub fn http_cases(golden_root: &Path) -> Vec<HttpCase> {
    let mut cases = Vec::new();
    for (name, archive) in archives(golden_root) {
        let unpacked = unpack(&archive);
        let table = format!("{name}/delta");
        let select_all = "SELECT * FROM t".to_owned();
        if let Some(invalid) = invalid(&name) {
            cases.push(HttpCase {
                name,
                table,
                sql: select_all,
                columns: vec![],
                rows: vec![],
                error_code: Some(invalid.code.to_owned()),
                error_contains: Some(invalid.message_contains.to_owned()),
            });
            continue;
        }
        let expected_dir = unpacked.join("expected");
        if !expected_dir.is_dir() {
            continue;
        }
        let expected = read_parquet_dir(&expected_dir);
        let mut columns = column_names(&expected);
        if name == ZONED_PARTITION_TABLE {
            columns.retain(|c| c != "as_timestamp");
        }
        let rows = canonical_rows(&expected, &columns).expect("expected rows");
        cases.push(HttpCase {
            name,
            table,
            sql: select_all,
            columns,
            rows,
            error_code: None,
            error_contains: None,
        });
    }
    cases.extend(time_travel_cases());
    cases.extend(change_feed_cases(golden_root));
    cases
}

/// The change data feed of `cdf-table-with-dv` (kernel-data), which Spark
/// wrote with deletion vectors and no change files: deletes and restores
/// are the rows whose deletion vector changed. The rows are those
/// `deltalake`'s `load_cdf` and the Delta Sharing client read (the
/// sharing test checks the three agree).
fn change_feed_cases(golden_root: &Path) -> Vec<HttpCase> {
    let name = "cdf-table-with-dv";
    unpack(&golden_root.join(format!("kernel-data/{name}.tar.zst")));
    let changes: &[(i64, &str, &[i64])] = &[
        (0, "insert", &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        (1, "delete", &[0, 9]),
        (2, "insert", &[0, 9]),
        (3, "delete", &[0, 1, 4, 5]),
        (4, "insert", &[1, 4]),
        (5, "delete", &[3]),
        (5, "insert", &[0, 5]),
        (6, "insert", &[3]),
    ];
    let rows = |from: i64, to: i64| {
        let mut rows: Vec<String> = changes
            .iter()
            .filter(|(version, _, _)| (from..=to).contains(version))
            .flat_map(|(version, kind, values)| {
                values
                    .iter()
                    .map(move |v| format!("{version} | {kind} | {v}"))
            })
            .collect();
        rows.sort();
        rows
    };
    let case = |range: &str, rows: Vec<String>, error: Option<&str>| HttpCase {
        name: format!("{name} table_changes {range}"),
        table: name.to_owned(),
        sql: format!(
            "SELECT _commit_version, _change_type, value FROM table_changes('t', {range})"
        ),
        columns: ["_commit_version", "_change_type", "value"]
            .map(String::from)
            .to_vec(),
        rows,
        error_code: error.map(String::from),
        error_contains: error.map(|_| "not between".to_owned()),
    };
    vec![
        case("0", rows(0, 6), None),
        case("3, 4", rows(3, 4), None),
        case("99", Vec::new(), Some("INVALID_ARGUMENT")),
    ]
}

/// Spark appended ids 0..10, 10..20 and 20..30 in three commits of
/// `time-travel-start-start20-start40`.
fn time_travel_cases() -> Vec<HttpCase> {
    let name = "time-travel-start-start20-start40";
    let case = |clause: &str, row: Option<&str>, error: Option<&str>| HttpCase {
        name: format!("{name} {clause}"),
        table: format!("{name}/delta"),
        sql: format!("SELECT count(*) AS n, min(id) AS lo, max(id) AS hi FROM t {clause}"),
        columns: ["n", "lo", "hi"].map(String::from).to_vec(),
        rows: row.map(|r| vec![r.to_owned()]).unwrap_or_default(),
        error_code: error.map(String::from),
        error_contains: error.map(|_| String::new()),
    };
    vec![
        case("VERSION AS OF 0", Some("10 | 0 | 9"), None),
        case("VERSION AS OF 1", Some("20 | 0 | 19"), None),
        case("VERSION AS OF 2", Some("30 | 0 | 29"), None),
        case("VERSION AS OF 7", None, Some("VERSION_NOT_FOUND")),
        case(
            "TIMESTAMP AS OF '2999-01-01 00:00:00'",
            Some("30 | 0 | 29"),
            None,
        ),
        case(
            "TIMESTAMP AS OF '1990-01-01'",
            None,
            Some("TIMESTAMP_OUT_OF_RANGE"),
        ),
    ]
}
