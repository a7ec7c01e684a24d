//! # Wavelake kernel
//!
//! The Delta Lake protocol without a query engine: what a table is, read
//! through one [`storage::Storage`] trait and nothing else. The storage
//! backends (`wavelake-storage`), the SQL session (`wavelake-engine`) and
//! the server build on it; it must not depend on them, on an IO backend
//! (`object_store`, HTTP clients), on DataFusion's planner or operators
//! (only `datafusion-common`'s values and error type), or on the write path.
//!
//! - [`protocol`], [`schema`], [`partition`], [`stats`]: actions, table
//!   features and properties, deletion vector descriptors, schemas,
//!   partition values and file statistics. Pure, no IO.
//! - [`log`]: finds the log files of a version and replays them (JSON
//!   commits, Parquet checkpoints) into table state.
//! - [`storage`]: the trait, its decorators (range cache, metering, whole
//!   small files), an in-memory implementation and the check that a store
//!   makes commits exclusive; the backends that do IO are
//!   `wavelake-storage`.
//! - [`table`], [`snapshot`], [`snapshot_cache`], [`versions`]: a table, one
//!   version of it, the versions a session has seen.
//! - [`deletion`]: loading deletion vectors and turning them into the
//!   Parquet reader's row selections; [`changes`]: the change data feed.
//! - [`decode_pool`]: where large log files are parsed (natively off the
//!   async thread).
//! - [`parquet_guard`]: checks a Parquet file's layout and page headers
//!   before decoding, and contains decoder panics.
//! - [`error`]: the one error enum every Wavelake crate returns.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod changes;
pub mod decode_pool;
pub mod deletion;
pub mod error;
pub mod log;
pub mod parquet_guard;
pub mod partition;
pub mod protocol;
pub mod schema;
pub mod snapshot;
pub mod snapshot_cache;
pub mod stats;
pub mod storage;
pub mod table;
pub mod timer;
pub mod versions;

pub use error::{Error, Result};
pub use snapshot::Snapshot;
pub use snapshot_cache::SnapshotCache;
pub use table::{CommitEntry, Table};
