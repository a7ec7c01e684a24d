//! Queries on a DataFusion Ballista cluster.
//!
//! `wavelake scheduler` and `wavelake executor` run Ballista's scheduler
//! and executors with Wavelake's codecs: Delta tables travel as location
//! and version, Delta scans with their deletion-vector descriptors, and
//! every process opens only the tables under its own root, with its own
//! credentials ([`wavelake_engine::distributed`]). `serve --cluster` and
//! `sql --cluster` send the queries that would read much data there
//! ([`Cluster`]). The cluster's ports are for a private network: they
//! carry no authentication, and bind to loopback unless told otherwise.

mod client;
mod process;

use std::sync::Arc;

use anyhow::Result;
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use wavelake_engine::distributed::{AllowedLocations, DeltaLogicalCodec, DeltaPhysicalCodec};

pub use client::Cluster;
pub use process::{ExecutorArgs, SchedulerArgs, run_executor, run_scheduler};

use crate::config::ServerConfig;

/// The tables a cluster process may read: those under the configured root,
/// opened with the configured storage options.
fn allowed_locations(config: &ServerConfig) -> Result<Arc<AllowedLocations>> {
    let opener = crate::state::storage_opener(config.storage.clone().into_iter().collect());
    Ok(Arc::new(AllowedLocations::new(
        [config.root.as_str()],
        opener,
    )?))
}

/// The logical and physical codecs of a process that decodes plans (the
/// scheduler, the executors): Wavelake's around Ballista's.
fn codecs(locations: Arc<AllowedLocations>) -> (Arc<DeltaLogicalCodec>, Arc<DeltaPhysicalCodec>) {
    let logical = DeltaLogicalCodec::new(Arc::new(
        ballista_core::serde::BallistaLogicalExtensionCodec::default(),
    ))
    .with_locations(locations.clone(), None);
    let physical = DeltaPhysicalCodec::new(Arc::new(
        ballista_core::serde::BallistaPhysicalExtensionCodec::default(),
    ))
    .with_locations(locations);
    (Arc::new(logical), Arc::new(physical))
}

/// An object store registry with nothing in it: a cluster process reads
/// only the table locations its codecs register, never a `file://` path or
/// bucket a plan names.
fn registry_without_defaults() -> Arc<dyn ObjectStoreRegistry> {
    let registry = DefaultObjectStoreRegistry::new();
    if let Ok(url) = url::Url::parse("file:///") {
        let _ = registry.deregister_store(&url);
    }
    Arc::new(registry)
}

/// The DataFusion setting every cluster session carries: a Ballista task
/// runs one partition of a scan, so partitions must not take each other's
/// files (work stealing needs all of them polled in one process).
const NO_WORK_STEALING: (&str, &str) = (
    "datafusion.execution.enable_file_stream_work_stealing",
    "false",
);

/// Ballista's static planner. With it (and tasks spread round-robin, and
/// executors declared dead after `--executor-timeout-secs` without a
/// heartbeat), a query whose executor is killed midway has the lost tasks
/// and shuffle outputs run again elsewhere and answers right; with the
/// adaptive planner such a query was seen to hang.
const STATIC_PLANNER: (&str, &str) = ("ballista.planner.adaptive.enabled", "false");

/// The largest gRPC message the cluster's processes and clients send or
/// accept: a scan stage carries about 175 bytes per data file
/// (`scripts/bench.sh distributed`), so Ballista's 16 MiB default would
/// refuse tables of about 100,000 files; 512 MiB holds about 3 million.
const MAX_MESSAGE_BYTES: u32 = 512 << 20;
