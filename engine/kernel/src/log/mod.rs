//! The Delta log: finding its files, reading checkpoints, and replaying
//! actions into table state.

pub mod checkpoint;
pub mod files;
pub mod replay;
pub mod segment;
pub mod tombstones;

pub use files::{LOG_DIR, LastCheckpoint, LogFile, LogFileKind, commit_path};
pub use replay::{TableState, commit_timestamp, reconcile, replay};
pub use segment::{CommitFile, LogSegment};
pub use tombstones::tombstones;
