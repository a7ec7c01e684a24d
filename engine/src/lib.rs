//! # Wavelake engine
//!
//! The lakehouse core of Wavelake: it reads Delta Lake tables and answers
//! SQL over them with DataFusion, on native targets and in WebAssembly.
//!
//! The crate is layered so that the protocol does no IO:
//!
//! - [`protocol`], [`schema`], [`partition`], [`stats`]: pure Delta
//!   protocol: actions, table features, deletion vectors, schemas.
//! - [`log`]: finds the log files of a version and replays them into state;
//!   all IO goes through one [`storage::Storage`] trait.
//! - [`storage`]: the trait and its backends (`object_store` for local
//!   directories, memory and S3; HTTP base URLs; maps of presigned URLs).
//! - [`table`], [`snapshot`]: a table and one version of it.
//! - [`scan`]: the DataFusion `TableProvider` that prunes files and applies
//!   deletion vectors while reading.
//! - [`session`]: the SQL session ([`SqlSession`]) with Delta tables registered, including
//!   time travel (`VERSION AS OF`, `TIMESTAMP AS OF`), and
//!   [`metadata_tables`]: history, files, schema, protocol and properties
//!   as SQL table functions, over the [`versions`] of each table (its own
//!   log, or a Delta Sharing server's answers); [`profile`]: what a query cost;
//!   [`statement`]: the one classifier that parses a statement with the
//!   dialect that runs it and says whether it writes, and which tables.
//! - [`parquet_guard`]: checks a Parquet file's layout and page headers
//!   before decoding, and contains decoder panics.
//! - The write path, only with the `write` feature (the server has it; the
//!   npm package and the web app do not link it): `transaction` (commits
//!   with put-if-absent, conflict detection and rebasing), `data_file`
//!   (Parquet data files with Delta statistics) and `write` (DML, MERGE,
//!   DDL, OPTIMIZE, VACUUM, RESTORE, checkpoints). The read path never
//!   calls into it but through the table provider's DML methods and the
//!   session's statement handler, which a read-only build leaves out.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod changes;
pub mod command;
#[cfg(feature = "write")]
pub mod data_file;
#[cfg(feature = "distributed")]
pub mod distributed;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
#[cfg(feature = "ingest")]
pub mod ingest;
pub mod log;
pub mod memory;
pub mod metadata_tables;
pub mod parquet_guard;
pub mod partition;
pub mod profile;
pub mod protocol;
pub mod read_estimate;
pub mod scan;
pub mod schema;
#[cfg(feature = "http")]
pub mod server_sql;
pub mod session;
pub mod sharing;
pub mod snapshot;
pub mod snapshot_cache;
pub mod statement;
pub mod stats;
pub mod storage;
pub mod table;
pub mod timer;
#[cfg(feature = "write")]
pub mod transaction;
pub mod versions;
#[cfg(feature = "write")]
pub mod write;

pub use error::{Error, Result};
pub use profile::{QueryProfile, QueryProgress, ScanProfile};
pub use read_estimate::ReadEstimate;
pub use session::{PlannedQuery, SqlSession, SqlSessionOptions};
pub use snapshot::Snapshot;
pub use snapshot_cache::SnapshotCache;
pub use statement::{Access, Statement};
pub use table::{CommitEntry, Table};

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
