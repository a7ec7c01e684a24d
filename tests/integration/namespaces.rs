//! Namespaces (`namespace.table` under `root/namespace/table`), a default
//! namespace for unqualified names, and the sandbox for SQL from clients.

use std::sync::Arc;

use wavelake_engine::SqlSessionOptions;
use wavelake_engine::storage::ObjectStoreStorage;

fn opener() -> wavelake_engine::session::StorageOpener {
    Arc::new(|location: &str| Ok(Arc::new(ObjectStoreStorage::open(location)?) as _))
}

#[tokio::test]
async fn namespaces_keep_tenants_apart_and_the_sandbox_holds() {
    let root = tempfile::tempdir().unwrap();
    let root_path = root.path().to_str().unwrap();
    let admin = wavelake_write::session().with_storage_opener(opener());
    admin
        .register_namespaced_root(root_path, None)
        .await
        .unwrap();
    admin
        .query("CREATE TABLE acme.orders (id BIGINT, total DOUBLE)")
        .await
        .unwrap();
    admin
        .query("CREATE TABLE globex.orders (id BIGINT, total DOUBLE)")
        .await
        .unwrap();
    admin
        .query("INSERT INTO acme.orders VALUES (1, 9.5), (2, 1.0)")
        .await
        .unwrap();
    admin
        .query("INSERT INTO globex.orders VALUES (7, 100.0)")
        .await
        .unwrap();
    assert!(root.path().join("acme/orders/_delta_log").is_dir());
    assert_eq!(admin.table_names(), vec!["acme.orders", "globex.orders"]);

    // A tenant's session: its namespace only, unqualified names resolve there.
    let tenant = wavelake_write::session_with(SqlSessionOptions {
        default_schema: Some("acme".into()),
        sandboxed: true,
        memory_limit: Some(64 << 20),
        shared_memory: None,
        confined: true,
        snapshot_cache: None,
        range_cache: None,
        persistent_cache: None,
        late_materialization: false,
        hot_data: None,
        read_only: false,
        minimum_retention_ms: None,
        write_path: None,
        buffered_rows: None,
        worker_group: None,
    })
    .with_storage_opener(opener());
    let names = tenant
        .register_namespaced_root(root_path, Some("acme"))
        .await
        .unwrap();
    assert_eq!(names, vec!["acme.orders"]);
    let rows = tenant.query("SELECT count(*) FROM orders").await.unwrap();
    assert_eq!(rows[0].num_rows(), 1);
    tenant
        .query("UPDATE orders SET total = 2.0 WHERE id = 2")
        .await
        .unwrap();
    tenant
        .query("CREATE TABLE refunds (id BIGINT)")
        .await
        .unwrap();
    assert!(root.path().join("acme/refunds/_delta_log").is_dir());
    let err = tenant
        .query("SELECT * FROM globex.orders")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("globex"), "{err}");
    for (sql, words) in [
        (
            "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/etc'",
            "not allowed",
        ),
        (
            "CREATE TABLE x (id INT) LOCATION '/tmp/x'",
            "LOCATION is not allowed",
        ),
        ("COPY (SELECT 1) TO '/tmp/out.parquet'", "not allowed"),
        ("CREATE VIEW v AS SELECT 1", "not allowed"),
        ("SET datafusion.execution.batch_size = 1", "not allowed"),
        ("CREATE TABLE globex.stolen (id INT)", "not open"),
    ] {
        let err = tenant.query(sql).await.expect_err(sql);
        assert!(err.to_string().contains(words), "{sql}: {err}");
    }
    assert!(!std::path::Path::new("/tmp/out.parquet").exists());
    let totals = admin.query("SELECT sum(total) FROM acme.orders").await;
    assert!(totals.is_ok());
}
