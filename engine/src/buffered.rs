//! Rows a table's writer has acknowledged and not yet committed (a
//! server's write buffer): the seam through which a session's queries of
//! a table's latest version read them too, merged with the snapshot. The
//! write path provides the rows; this crate only reads them.

use std::fmt::Debug;

use arrow::array::RecordBatch;

/// A table's buffered rows as of one moment.
#[derive(Debug, Clone, Default)]
pub struct BufferedBatches {
    /// The rows, in the table's logical schema.
    pub batches: Vec<RecordBatch>,
    /// The application transaction (id, version) the buffer's last flush
    /// committed: a snapshot that has not recorded it lacks rows that are
    /// no longer buffered, and a newer one must be read with these rows.
    pub flushed: Option<(String, i64)>,
}

/// Acknowledged rows not yet in their tables, by table location.
pub trait BufferedRows: Send + Sync + Debug {
    /// The rows buffered for the table at `location` (as its storage names
    /// it); none for a table without a buffer.
    fn rows(&self, location: &str) -> BufferedBatches;
}

/// A shared [`BufferedRows`].
pub type BufferedRowsRef = std::sync::Arc<dyn BufferedRows>;
