//! The Delta scan on the wire: a `DeltaScanExec` serialized as a
//! DataFusion protobuf extension node that embeds its Parquet scan.
//!
//! The Parquet scan (files, sizes, partition values, statistics,
//! projection, predicate, limit) is DataFusion's own `ParquetScan` node,
//! with its object store URL replaced by one derived from the table
//! location; around it travel the table's location and version, the
//! deletion-vector descriptors of the kept files, the scan's figures and
//! its logical schema. The receiver opens the location itself, registers it
//! under that URL, decodes the Parquet scan, gives it Wavelake's reader
//! (typed errors, page-size checks) and reads deletion vectors per
//! partition when it runs.

use std::sync::Arc;

use arrow::datatypes::Schema;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::proto::ExecutionPlanEncodeCtx;
use datafusion_datasource::file_scan_config::FileScanConfigBuilder;
use datafusion_datasource::source::DataSourceExec;
use datafusion_datasource_parquet::source::ParquetSource;
use datafusion_proto::physical_plan::{
    PhysicalExtensionCodec, PhysicalPlanDecodeContext, PhysicalProtoConverterExtension,
};
use datafusion_proto::protobuf::physical_plan_node::PhysicalPlanType;
use datafusion_proto::protobuf::{PhysicalExtensionNode, PhysicalPlanNode};
use prost::Message;
use sha2::{Digest, Sha256};

use super::AllowedLocations;
use crate::scan::{DeltaParquetReaderFactory, DeltaScanExec, ScanFigures, ScanSource};
use crate::storage::{MeteredStorage, StorageRef, as_object_store};

/// What an extension node holding a Delta scan starts with.
pub(super) const SCAN_MAGIC: &[u8] = b"wavelake.delta-scan.1\0";

/// The object store scheme under which receivers register table locations.
const STORE_SCHEME: &str = "wavelake-delta";

/// A Delta scan as it travels.
#[derive(Clone, PartialEq, Message)]
struct DeltaScanNode {
    /// The [`ScanSource`], as JSON.
    #[prost(bytes = "vec", tag = "1")]
    source: Vec<u8>,
    /// The [`ScanFigures`], as JSON.
    #[prost(bytes = "vec", tag = "2")]
    figures: Vec<u8>,
    /// The logical schema the scan presents.
    #[prost(message, optional, tag = "3")]
    schema: Option<datafusion_proto::protobuf::Schema>,
    /// The Parquet scan underneath.
    #[prost(message, optional, tag = "4")]
    input: Option<PhysicalPlanNode>,
}

/// The object store URL a receiver registers `location` under: one per
/// location, the same in every process.
pub(super) fn store_url(location: &str) -> DfResult<ObjectStoreUrl> {
    let digest = Sha256::digest(location.as_bytes());
    let host: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    ObjectStoreUrl::parse(format!("{STORE_SCHEME}://{host}/"))
}

fn refused(reason: impl Into<String>) -> DataFusionError {
    DataFusionError::Plan(format!(
        "a Delta scan cannot cross the wire: {}",
        reason.into()
    ))
}

fn malformed(reason: impl Into<String>) -> DataFusionError {
    DataFusionError::Plan(format!(
        "a received Delta scan is malformed: {}",
        reason.into()
    ))
}

/// `scan` as an extension node, for [`ExecutionPlan::try_to_proto`].
pub(crate) fn encode_scan(
    scan: &DeltaScanExec,
    ctx: &ExecutionPlanEncodeCtx<'_>,
) -> DfResult<PhysicalPlanNode> {
    let source = scan
        .source()
        .ok_or_else(|| refused("it does not know its table (a shared table?)"))?;
    let mut input = ctx.encode_child(scan.input())?;
    match &mut input.physical_plan_type {
        Some(PhysicalPlanType::ParquetScan(parquet)) => match &mut parquet.base_conf {
            Some(base) => base.object_store_url = store_url(&source.location)?.to_string(),
            None => return Err(refused("its Parquet scan has no configuration")),
        },
        _ => return Err(refused("its input is not a Parquet scan")),
    }
    let node = DeltaScanNode {
        source: to_json(source.as_ref())?,
        figures: to_json(&scan.figures())?,
        schema: Some(scan.output_schema().as_ref().try_into()?),
        input: Some(input),
    };
    let mut buf = SCAN_MAGIC.to_vec();
    node.encode(&mut buf)
        .map_err(|e| refused(format!("cannot encode it: {e}")))?;
    Ok(PhysicalPlanNode {
        physical_plan_type: Some(PhysicalPlanType::Extension(PhysicalExtensionNode {
            node: buf,
            inputs: Vec::new(),
        })),
    })
}

/// Decodes a Delta scan (the bytes after [`SCAN_MAGIC`]) for `ctx`,
/// opening its table through `locations`.
pub(super) fn decode_scan(
    bytes: &[u8],
    ctx: &TaskContext,
    codec: &dyn PhysicalExtensionCodec,
    converter: &dyn PhysicalProtoConverterExtension,
    locations: &AllowedLocations,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    let node = DeltaScanNode::decode(bytes).map_err(|e| malformed(e.to_string()))?;
    let source: ScanSource =
        serde_json::from_slice(&node.source).map_err(|e| malformed(format!("source: {e}")))?;
    let figures: ScanFigures =
        serde_json::from_slice(&node.figures).map_err(|e| malformed(format!("figures: {e}")))?;
    let schema: Schema = node
        .schema
        .as_ref()
        .ok_or_else(|| malformed("no schema"))?
        .try_into()?;
    let input = node.input.ok_or_else(|| malformed("no Parquet scan"))?;
    let url = store_url(&source.location)?;
    match &input.physical_plan_type {
        Some(PhysicalPlanType::ParquetScan(parquet))
            if parquet
                .base_conf
                .as_ref()
                .is_some_and(|base| base.object_store_url == url.to_string()) => {}
        _ => {
            return Err(malformed(
                "its input is not a Parquet scan of its own table",
            ));
        }
    }

    let storage = locations.open(&source.location)?;
    ctx.runtime_env()
        .register_object_store(url.as_ref(), as_object_store(storage.clone()));
    let parquet =
        converter.proto_to_execution_plan(&input, &PhysicalPlanDecodeContext::new(ctx, codec))?;
    let metered = MeteredStorage::new(storage);
    let meter = metered.meter();
    let metered: StorageRef = Arc::new(metered);
    let parquet = with_delta_reader(&parquet, metered.clone(), ctx)?;
    Ok(Arc::new(
        DeltaScanExec::new(parquet, Arc::new(schema), figures, meter)
            .with_source(Arc::new(source), Some(metered)),
    ))
}

/// `parquet` (a decoded Parquet scan) reading through Wavelake's reader
/// over `storage`.
fn with_delta_reader(
    parquet: &Arc<dyn ExecutionPlan>,
    storage: StorageRef,
    ctx: &TaskContext,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    let config = crate::scan::file_scan_config(parquet)?;
    let source = config
        .file_source()
        .downcast_ref::<ParquetSource>()
        .ok_or_else(|| malformed("its input does not read Parquet"))?;
    let metadata_cache = ctx.runtime_env().cache_manager.get_file_metadata_cache();
    let source =
        source
            .clone()
            .with_parquet_file_reader_factory(Arc::new(DeltaParquetReaderFactory::new(
                as_object_store(storage),
                metadata_cache,
            )));
    let config = FileScanConfigBuilder::from(config.clone())
        .with_source(Arc::new(source))
        .build();
    Ok(DataSourceExec::from_data_source(config))
}

fn to_json<T: serde::Serialize>(value: &T) -> DfResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| refused(e.to_string()))
}
