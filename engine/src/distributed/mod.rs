//! Plans that cross the wire to a DataFusion Ballista cluster.
//!
//! A query sent to a cluster travels twice: its logical plan from the
//! client to the scheduler, then each stage's physical plan from the
//! scheduler to the executors. Delta tables travel as what they are, never
//! with credentials:
//! - in the logical plan, a table is its location and snapshot version
//!   ([`DeltaLogicalCodec`]); the scheduler replays the log itself and
//!   plans a scan whose deletion vectors are read later;
//! - in a stage, a scan is its Parquet scan (files, sizes, partition
//!   values, projection, predicate) plus the table's location, version and
//!   the deletion-vector descriptors of the kept files
//!   ([`DeltaPhysicalCodec`]); each executor opens the location with its
//!   own configuration and reads the deletion vectors of the files it
//!   scans.
//!
//! Every process opens only locations under its own roots
//! ([`AllowedLocations`]).

mod codec;
mod locations;
mod scan_node;
mod table;

pub use codec::{DeltaLogicalCodec, DeltaPhysicalCodec};
pub use locations::AllowedLocations;
pub use table::DeltaTableAtVersion;

pub(crate) use scan_node::encode_scan;
