//! # Wavelake engine
//!
//! SQL over Delta Lake tables with DataFusion, on native targets and in
//! WebAssembly. The protocol itself (actions, log replay, snapshots,
//! deletion vectors, the storage trait) is `wavelake-kernel` and the storage
//! backends are `wavelake-storage`, both re-exported here under the same
//! module names; neither may depend on this crate.
//!
//! - [`scan`]: the DataFusion `TableProvider` that prunes files and applies
//!   deletion vectors while reading.
//! - [`session`]: the SQL session ([`SqlSession`]) with Delta tables
//!   registered, including time travel (`VERSION AS OF`, `TIMESTAMP AS
//!   OF`), and [`metadata_tables`]: history, files, schema, protocol and
//!   properties as SQL table functions, over the [`versions`] of each table
//!   (its own log, or a Delta Sharing server's answers); [`profile`]: what a
//!   query cost; [`statement`]: the one classifier that parses a statement
//!   with the dialect that runs it and says whether it writes, and which
//!   tables; [`command`]: the statements DataFusion does not plan itself.
//! - [`sharing`]: reading tables from a Delta Sharing server.
//! - [`write_path`]: the one seam to the write path, which lives in the
//!   `wavelake-write` crate (it depends on this one, never the other way).
//!   A session is given one in its options; without one it only reads, as
//!   the npm package and the web app do, which do not link it.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod buffered;
pub mod change_feed;
pub mod command;
mod conjunction;
mod decimal_arithmetic;
#[cfg(feature = "distributed")]
pub mod distributed;
pub mod exchange;
mod filter_order;
pub mod hot_data;
#[cfg(not(target_arch = "wasm32"))]
mod join_build;
pub mod memory;
pub mod metadata_tables;
pub mod profile;
pub mod read_estimate;
pub mod result_cache;
pub mod scan;
mod semi_join_reduction;
#[cfg(feature = "http")]
pub mod server_sql;
pub mod session;
mod shared_subplan;
pub mod sharing;
pub mod statement;
pub mod string_views;
pub mod write_path;

pub use wavelake_kernel::{
    CommitEntry, Error, Result, Snapshot, SnapshotCache, Table, changes, deletion, error, log,
    parquet_guard, partition, protocol, schema, snapshot, snapshot_cache, stats, table, timer,
    versions,
};

/// Storage under one path: the kernel's trait, decorators and in-memory
/// implementation, and the IO backends of `wavelake-storage`.
pub mod storage {
    pub use wavelake_kernel::storage::*;
    pub use wavelake_storage::*;
}

pub use profile::{QueryProfile, QueryProgress, ScanProfile};
pub use read_estimate::ReadEstimate;
pub use session::{PlannedQuery, SqlSession, SqlSessionOptions};
pub use statement::{Access, Statement, TransactionControl, bind_parameters, has_placeholders};

/// Compile-time proof that the engine's futures are `Send` on native
/// targets, so servers can run them on a multi-threaded runtime. Never
/// called; it only has to type-check.
#[cfg(not(target_arch = "wasm32"))]
#[allow(dead_code)]
fn futures_are_send(
    engine: &'static SqlSession,
    table: &'static Table,
    storage: storage::StorageRef,
) {
    fn is_send<T: Send>(_: T) {}
    is_send(engine.register("t", storage));
    is_send(engine.query("SELECT 1"));
    is_send(table.history());
    is_send(table.snapshot_at(None));
    is_send(table.snapshot_at_timestamp(0));
}
