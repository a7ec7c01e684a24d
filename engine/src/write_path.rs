//! The seam between reading and writing: what a session and its table
//! provider ask of the write path, which lives in another crate
//! (`wavelake-write`) and is handed to a session in its options. A session
//! without one only reads: every statement that changes a table is refused
//! as [`Error::NotAllowed`](crate::Error::NotAllowed), and neither the npm
//! package nor the web app links a write path at all.

use std::fmt::Debug;
use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::Expr;

use crate::command::Command;
use crate::session::SqlSession;
use crate::table::Table;
use crate::{Error, Result};

/// Whether an INSERT adds to a table's rows or replaces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertMode {
    /// `INSERT INTO`: keep the rows, add the new ones.
    Append,
    /// `INSERT OVERWRITE`: replace the rows with the new ones.
    Overwrite,
}

/// The write path as the read path reaches it. Each method makes at most
/// one Delta commit and returns what the statement reports.
#[async_trait]
pub trait WritePath: Debug + Send + Sync {
    /// Runs one of Wavelake's own statements (DDL, MERGE, OPTIMIZE,
    /// VACUUM, RESTORE, …) in `session`; its one-row result.
    async fn run_command(&self, session: &SqlSession, command: Command) -> Result<RecordBatch>;

    /// Writes `rows` into `table`; the rows written.
    async fn insert(
        &self,
        table: &Table,
        rows: SendableRecordBatchStream,
        mode: InsertMode,
    ) -> Result<u64>;

    /// Deletes the rows of `table` matching every one of `filters` (all
    /// rows when there are none); the rows deleted.
    async fn delete(&self, table: &Table, state: &SessionState, filters: Vec<Expr>) -> Result<u64>;

    /// Sets `assignments` (column, value) on the rows of `table` matching
    /// every one of `filters`; the rows updated.
    async fn update(
        &self,
        table: &Table,
        state: &SessionState,
        assignments: Vec<(String, Expr)>,
        filters: Vec<Expr>,
    ) -> Result<u64>;
}

/// A session's write path, if it has one.
pub type WritePathRef = Arc<dyn WritePath>;

/// The refusal of a session without a write path.
pub fn read_only_build() -> Error {
    Error::NotAllowed(
        "this build of Wavelake only reads: statements that change tables run on a Wavelake \
         server"
            .into(),
    )
}
