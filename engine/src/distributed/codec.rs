//! The extension codecs a cluster's processes share: Delta tables in
//! logical plans, Delta scans in stage plans, everything else left to the
//! codec they wrap (Ballista's own).

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{AggregateUDF, Extension, LogicalPlan, ScalarUDF, WindowUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use serde::{Deserialize, Serialize};

use super::scan_node::{SCAN_MAGIC, decode_scan};
use super::{AllowedLocations, DeltaTableAtVersion};
use crate::scan::DeltaTableProvider;

/// What an encoded Delta table starts with.
const TABLE_MAGIC: &[u8] = b"wavelake.delta-table.1\0";

/// A Delta table in a logical plan: where it is and which version.
#[derive(Debug, Serialize, Deserialize)]
struct TableAtVersion {
    location: String,
    version: i64,
}

/// Encodes Delta tables in logical plans as location and version, and
/// (with [`Self::with_locations`]) decodes them as [`DeltaTableAtVersion`].
/// Other table providers are refused: a cluster reads only Delta tables
/// under its roots, never a file a client names.
#[derive(Debug, Clone)]
pub struct DeltaLogicalCodec {
    inner: Arc<dyn LogicalExtensionCodec>,
    locations: Option<Arc<AllowedLocations>>,
    cache: Option<Arc<crate::SnapshotCache>>,
}

impl DeltaLogicalCodec {
    /// A codec that encodes Delta tables and leaves functions and
    /// extension nodes to `inner`; it decodes no table.
    pub fn new(inner: Arc<dyn LogicalExtensionCodec>) -> Self {
        Self {
            inner,
            locations: None,
            cache: None,
        }
    }

    /// The same codec, decoding tables under `locations`, sharing their
    /// snapshots through `cache`.
    pub fn with_locations(
        mut self,
        locations: Arc<AllowedLocations>,
        cache: Option<Arc<crate::SnapshotCache>>,
    ) -> Self {
        self.locations = Some(locations);
        self.cache = cache;
        self
    }
}

impl LogicalExtensionCodec for DeltaLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> DfResult<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> DfResult<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        _ctx: &TaskContext,
    ) -> DfResult<Arc<dyn TableProvider>> {
        let Some(payload) = buf.strip_prefix(TABLE_MAGIC) else {
            return Err(DataFusionError::Plan(format!(
                "{table_ref} is not a Delta table; the cluster reads only Delta tables"
            )));
        };
        let table: TableAtVersion = serde_json::from_slice(payload).map_err(|e| {
            DataFusionError::Plan(format!("the plan's table {table_ref} is malformed: {e}"))
        })?;
        let locations = self.locations.clone().ok_or_else(|| {
            DataFusionError::Plan("this process does not open tables from plans".into())
        })?;
        locations.check(&table.location)?;
        Ok(Arc::new(DeltaTableAtVersion::new(
            table.location,
            table.version,
            schema,
            locations,
            self.cache.clone(),
        )))
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> DfResult<()> {
        let table = if let Some(delta) = node.downcast_ref::<DeltaTableProvider>() {
            if !delta.is_plain_scan() {
                return Err(DataFusionError::Plan(format!(
                    "{table_ref}: scans for writes run on the server, not the cluster"
                )));
            }
            TableAtVersion {
                location: delta.location(),
                version: delta.snapshot().version(),
            }
        } else if let Some(at) = node.downcast_ref::<DeltaTableAtVersion>() {
            TableAtVersion {
                location: at.location().to_owned(),
                version: at.version(),
            }
        } else {
            return Err(DataFusionError::Plan(format!(
                "{table_ref} is not a Delta table; the cluster reads only Delta tables"
            )));
        };
        buf.extend_from_slice(TABLE_MAGIC);
        serde_json::to_writer(&mut *buf, &table)
            .map_err(|e| DataFusionError::Plan(format!("cannot encode {table_ref}: {e}")))
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<ScalarUDF>> {
        self.inner.try_decode_udf(name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> DfResult<()> {
        self.inner.try_encode_udf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<AggregateUDF>> {
        self.inner.try_decode_udaf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> DfResult<()> {
        self.inner.try_encode_udaf(node, buf)
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<WindowUDF>> {
        self.inner.try_decode_udwf(name, buf)
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> DfResult<()> {
        self.inner.try_encode_udwf(node, buf)
    }
}

/// Decodes Delta scans in stage plans (they encode themselves), opening
/// their tables under `locations`; everything else goes to the codec it
/// wraps.
#[derive(Debug, Clone)]
pub struct DeltaPhysicalCodec {
    inner: Arc<dyn PhysicalExtensionCodec>,
    locations: Option<Arc<AllowedLocations>>,
}

impl DeltaPhysicalCodec {
    /// A codec that leaves everything but Delta scans to `inner`, and
    /// decodes no Delta scan.
    pub fn new(inner: Arc<dyn PhysicalExtensionCodec>) -> Self {
        Self {
            inner,
            locations: None,
        }
    }

    /// The same codec, decoding Delta scans of tables under `locations`.
    pub fn with_locations(mut self, locations: Arc<AllowedLocations>) -> Self {
        self.locations = Some(locations);
        self
    }
}

impl PhysicalExtensionCodec for DeltaPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let Some(scan) = buf.strip_prefix(SCAN_MAGIC) else {
            return self.inner.try_decode(buf, inputs, ctx, converter);
        };
        let locations = self.locations.as_deref().ok_or_else(|| {
            DataFusionError::Plan("this process does not read Delta scans from plans".into())
        })?;
        decode_scan(scan, ctx, self, converter, locations)
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<()> {
        self.inner.try_encode(node, buf, converter)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<ScalarUDF>> {
        self.inner.try_decode_udf(name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> DfResult<()> {
        self.inner.try_encode_udf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<AggregateUDF>> {
        self.inner.try_decode_udaf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> DfResult<()> {
        self.inner.try_encode_udaf(node, buf)
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<WindowUDF>> {
        self.inner.try_decode_udwf(name, buf)
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> DfResult<()> {
        self.inner.try_encode_udwf(node, buf)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};
    use datafusion_proto::bytes::{
        logical_plan_from_bytes_with_extension_codec, logical_plan_to_bytes_with_extension_codec,
        physical_plan_from_bytes_with_extension_codec, physical_plan_to_bytes_with_extension_codec,
    };
    use datafusion_proto::logical_plan::DefaultLogicalExtensionCodec;
    use datafusion_proto::physical_plan::DefaultPhysicalExtensionCodec;

    use super::*;
    use crate::SqlSession;
    use crate::session::StorageOpener;

    fn opener() -> StorageOpener {
        Arc::new(|location: &str| crate::storage::open(location))
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
        let engine = SqlSession::new().with_storage_opener(opener());
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

    #[tokio::test]
    async fn a_query_with_deletion_vectors_crosses_the_wire_twice_and_answers_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        let engine = table_with_deletion_vectors(root).await;
        let sql = "SELECT part, count(*) AS n, sum(id) AS s FROM t WHERE id > 10 GROUP BY part ORDER BY part";
        let expected = pretty_format_batches(&engine.query(sql).await.unwrap())
            .unwrap()
            .to_string();
        assert!(expected.contains("| 0    | 29 | 1610 |"), "{expected}");
        let (logical, physical) = codecs(root);

        // Client to scheduler: the table as location and version.
        let frame = engine.sql(sql).await.unwrap();
        let bytes =
            logical_plan_to_bytes_with_extension_codec(frame.logical_plan(), &logical).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("deletionVector"),
            "the logical plan carries no file list"
        );
        let scheduler = cluster_process();
        let received =
            logical_plan_from_bytes_with_extension_codec(&bytes, &scheduler.task_ctx(), &logical)
                .unwrap();
        let plan = scheduler
            .state()
            .create_physical_plan(&received)
            .await
            .unwrap();

        // Scheduler to executor: the scan with its deletion-vector descriptors.
        let bytes = physical_plan_to_bytes_with_extension_codec(plan, &physical).unwrap();
        let executor = cluster_process();
        let received =
            physical_plan_from_bytes_with_extension_codec(&bytes, &executor.task_ctx(), &physical)
                .unwrap();
        // Ballista runs each task in a runtime of its own, not the one the
        // plan was decoded in.
        let task = cluster_process().task_ctx();
        let batches = datafusion::physical_plan::collect(received, task)
            .await
            .unwrap();
        assert_eq!(
            pretty_format_batches(&batches).unwrap().to_string(),
            expected
        );
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

        let bytes =
            logical_plan_to_bytes_with_extension_codec(frame.logical_plan(), &logical).unwrap();
        let refused = crate::Error::from(
            logical_plan_from_bytes_with_extension_codec(
                &bytes,
                &cluster_process().task_ctx(),
                &logical,
            )
            .unwrap_err(),
        );
        assert!(matches!(refused, crate::Error::NotAllowed(_)), "{refused}");

        let plan = frame.create_physical_plan().await.unwrap();
        let bytes = physical_plan_to_bytes_with_extension_codec(plan, &physical).unwrap();
        let refused = crate::Error::from(
            physical_plan_from_bytes_with_extension_codec(
                &bytes,
                &cluster_process().task_ctx(),
                &physical,
            )
            .unwrap_err(),
        );
        assert!(matches!(refused, crate::Error::NotAllowed(_)), "{refused}");
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
}
