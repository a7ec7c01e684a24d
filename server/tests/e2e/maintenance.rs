//! Background maintenance compacts and vacuums the tables that allow it.

use crate::common::ADMIN;
use crate::common::Server;
use reqwest::StatusCode;

#[test]
fn background_maintenance_compacts_and_vacuums_tables_that_allow_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let config = format!(
        "root = {:?}\n[maintenance]\ninterval_secs = 1\n[limits]\nminimum_retention_secs = 0\n",
        root.to_str().unwrap()
    );
    let server = Server::start(dir.path(), &config);
    for sql in [
        "CREATE TABLE acme.busy (id BIGINT) TBLPROPERTIES ('delta.deletedFileRetentionDuration' = 'interval 0 seconds')",
        "CREATE TABLE acme.pinned (id BIGINT) TBLPROPERTIES ('wavelake.autoOptimize' = 'false')",
        "CREATE TABLE acme.foreign (id BIGINT) TBLPROPERTIES ('delta.checkpointInterval' = '4', \
         'wavelake.autoOptimize' = 'false', 'wavelake.autoVacuum' = 'false')",
    ] {
        assert_eq!(server.sql(ADMIN, sql).0, StatusCode::OK, "{sql}");
    }
    for i in 0..5 {
        for table in ["busy", "pinned", "foreign"] {
            let sql = format!("INSERT INTO acme.{table} VALUES ({i})");
            assert_eq!(server.sql(ADMIN, &sql).0, StatusCode::OK);
        }
    }
    let files_on_disk = |table: &str| {
        wavelake_tests::files_under(&root.join("acme").join(table))
            .into_iter()
            .filter(|p| {
                p.extension().is_some_and(|e| e == "parquet")
                    && !p.to_string_lossy().contains("_delta_log")
            })
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, busy) = server.get(Some(ADMIN), "/api/v1/tables/acme/busy");
        if busy["files"] == 1 && files_on_disk("busy") == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not compacted and vacuumed: {busy}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let (_, pinned) = server.get(Some(ADMIN), "/api/v1/tables/acme/pinned");
    assert_eq!(pinned["files"], 5, "autoOptimize = false is left alone");
    // As if another writer had committed without checkpoints: the round
    // writes one for the latest version (5, four commits past none).
    let log = root.join("acme/foreign/_delta_log");
    std::fs::remove_file(log.join("00000000000000000004.checkpoint.parquet")).unwrap();
    std::fs::remove_file(log.join("_last_checkpoint")).unwrap();
    let checkpoint = log.join("00000000000000000005.checkpoint.parquet");
    while !checkpoint.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no background checkpoint"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let (_, rows) = server.sql(ADMIN, "SELECT count(*) AS n FROM acme.foreign");
    assert_eq!(rows["rows"][0]["n"], 5);
    let (_, rows) = server.sql(ADMIN, "SELECT count(*) AS n FROM acme.busy");
    assert_eq!(rows["rows"][0]["n"], 5);
}
