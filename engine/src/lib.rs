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
//! - [`engine`]: a SQL session with Delta tables registered, including
//!   time travel (`VERSION AS OF`, `TIMESTAMP AS OF`).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod engine;
pub mod error;
pub mod log;
pub mod partition;
pub mod protocol;
pub mod scan;
pub mod schema;
pub mod snapshot;
pub mod stats;
pub mod storage;
pub mod table;

pub use engine::Engine;
pub use error::{Error, Result};
pub use snapshot::Snapshot;
pub use table::{CommitEntry, Table};
