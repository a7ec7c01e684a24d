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
