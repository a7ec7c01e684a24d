//! Plans that cross the wire to a Ballista cluster (the engine's
//! `distributed` codecs): a scan with deletion vectors goes client to
//! scheduler to executor and answers the same; plans naming tables outside
//! the served roots are refused; plans over other tables do not cross.

use std::sync::Arc;

use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::bytes::{
    logical_plan_from_bytes_with_extension_codec, logical_plan_to_bytes_with_extension_codec,
    physical_plan_from_bytes_with_extension_codec, physical_plan_to_bytes_with_extension_codec,
};
use datafusion_proto::logical_plan::DefaultLogicalExtensionCodec;
use datafusion_proto::physical_plan::DefaultPhysicalExtensionCodec;
use wavelake_engine::SqlSession;
use wavelake_engine::distributed::{AllowedLocations, DeltaLogicalCodec, DeltaPhysicalCodec};
use wavelake_engine::session::StorageOpener;

fn opener() -> StorageOpener {
    Arc::new(|location: &str| wavelake_engine::storage::open(location))
}

fn codecs(root: &str) -> (DeltaLogicalCodec, DeltaPhysicalCodec) {
    let locations = Arc::new(AllowedLocations::new([root], opener()).unwrap());
    (
        DeltaLogicalCodec::new(Arc::new(DefaultLogicalExtensionCodec {}))
            .with_locations(locations.clone(), None),
        DeltaPhysicalCodec::new(Arc::new(DefaultPhysicalExtensionCodec {}))
            .with_locations(locations),
    )
}

/// A table under `root` with deletion vectors: ids 0..100 but those
/// divisible by 3, in two files.
async fn table_with_deletion_vectors(root: &str) -> SqlSession {
    let engine = wavelake_write::session().with_storage_opener(opener());
    engine.register_root(root).await.unwrap();
    for sql in [
        "CREATE TABLE t (id BIGINT, part STRING) PARTITIONED BY (part) \
         TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')",
        "INSERT INTO t SELECT value, CAST(value % 2 AS STRING) FROM range(100)",
        "DELETE FROM t WHERE id % 3 = 0",
    ] {
        engine.query(sql).await.unwrap();
    }
    engine
}

/// A process of the cluster: reads only what its codecs register.
fn cluster_process() -> SessionContext {
    let registry = datafusion::execution::object_store::DefaultObjectStoreRegistry::new();
    let runtime = RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(registry))
        .build_arc()
        .unwrap();
    SessionContext::new_with_config_rt(SessionConfig::new(), runtime)
}

/// `sql` run as a cluster runs it: the client's logical plan to a
/// scheduler (the bytes sent are returned), planned there, then the
/// physical plan to an executor, run in a runtime of its own (as Ballista
/// runs each task); its answer pretty-printed.
async fn across_the_cluster(engine: &SqlSession, root: &str, sql: &str) -> (bytes::Bytes, String) {
    let (logical, physical) = codecs(root);
    let frame = engine.sql(sql).await.unwrap();
    let sent = logical_plan_to_bytes_with_extension_codec(frame.logical_plan(), &logical).unwrap();
    let scheduler = cluster_process();
    let received =
        logical_plan_from_bytes_with_extension_codec(&sent, &scheduler.task_ctx(), &logical)
            .unwrap();
    let plan = scheduler
        .state()
        .create_physical_plan(&received)
        .await
        .unwrap();
    let bytes = physical_plan_to_bytes_with_extension_codec(plan, &physical).unwrap();
    let executor = cluster_process();
    let received =
        physical_plan_from_bytes_with_extension_codec(&bytes, &executor.task_ctx(), &physical)
            .unwrap();
    let batches = datafusion::physical_plan::collect(received, cluster_process().task_ctx())
        .await
        .unwrap();
    (sent, pretty_format_batches(&batches).unwrap().to_string())
}

#[tokio::test]
async fn a_query_with_deletion_vectors_crosses_the_wire_twice_and_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let engine = table_with_deletion_vectors(root).await;
    let sql =
        "SELECT part, count(*) AS n, sum(id) AS s FROM t WHERE id > 10 GROUP BY part ORDER BY part";
    let expected = pretty_format_batches(&engine.query(sql).await.unwrap())
        .unwrap()
        .to_string();
    assert!(expected.contains("| 0    | 29 | 1610 |"), "{expected}");

    // Client to scheduler: the table as location and version; scheduler to
    // executor: the scan with its deletion-vector descriptors.
    let (sent, answer) = across_the_cluster(&engine, root, sql).await;
    assert!(
        !String::from_utf8_lossy(&sent).contains("deletionVector"),
        "the logical plan carries no file list"
    );
    assert_eq!(answer, expected);
}

#[tokio::test]
async fn a_table_of_one_file_with_strings_crosses_the_wire_and_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let engine = wavelake_write::session().with_storage_opener(opener());
    engine.register_root(root).await.unwrap();
    for sql in [
        "CREATE TABLE names (id BIGINT, name STRING)",
        "INSERT INTO names SELECT value, concat('n', CAST(value % 7 AS STRING)) FROM range(100)",
    ] {
        engine.query(sql).await.unwrap();
    }
    let sql = "SELECT name, count(*) AS n FROM names WHERE id > 10 GROUP BY name ORDER BY name";
    let expected = pretty_format_batches(&engine.query(sql).await.unwrap())
        .unwrap()
        .to_string();
    assert!(expected.contains("| n0   | 13 |"), "{expected}");

    // One file, fewer than the partitions: the scheduler spreads rows
    // above the Delta scan, not between it and the file scan it encodes.
    // The client's session reads the strings as views: the scheduler opens
    // the table with the schema the plan was made with.
    let (_, answer) = across_the_cluster(&engine, root, sql).await;
    assert_eq!(answer, expected);
}

#[tokio::test]
async fn plans_naming_tables_outside_the_roots_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("served");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&root).unwrap();
    let engine = table_with_deletion_vectors(elsewhere.to_str().unwrap()).await;
    let (logical, physical) = codecs(root.to_str().unwrap());
    let frame = engine.sql("SELECT * FROM t").await.unwrap();

    let bytes = logical_plan_to_bytes_with_extension_codec(frame.logical_plan(), &logical).unwrap();
    let refused = wavelake_engine::Error::from(
        logical_plan_from_bytes_with_extension_codec(
            &bytes,
            &cluster_process().task_ctx(),
            &logical,
        )
        .unwrap_err(),
    );
    assert!(
        matches!(refused, wavelake_engine::Error::NotAllowed(_)),
        "{refused}"
    );

    let plan = frame.create_physical_plan().await.unwrap();
    let bytes = physical_plan_to_bytes_with_extension_codec(plan, &physical).unwrap();
    let refused = wavelake_engine::Error::from(
        physical_plan_from_bytes_with_extension_codec(
            &bytes,
            &cluster_process().task_ctx(),
            &physical,
        )
        .unwrap_err(),
    );
    assert!(
        matches!(refused, wavelake_engine::Error::NotAllowed(_)),
        "{refused}"
    );
}

#[tokio::test]
async fn only_delta_tables_cross_the_wire() {
    let ctx = SessionContext::new();
    ctx.register_batch(
        "m",
        datafusion::arrow::array::RecordBatch::new_empty(Arc::new(
            datafusion::arrow::datatypes::Schema::empty(),
        )),
    )
    .unwrap();
    let frame = ctx.sql("SELECT * FROM m").await.unwrap();
    let (logical, _) = codecs("/nowhere");
    let refused =
        logical_plan_to_bytes_with_extension_codec(frame.logical_plan(), &logical).unwrap_err();
    assert!(
        refused.to_string().contains("not a Delta table"),
        "{refused}"
    );
}
