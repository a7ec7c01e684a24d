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
    /// The application id the buffer's flushes record, and each batch's
    /// sequence number (as many as `batches`): a batch whose number a
    /// snapshot's transaction for that id has reached is in the snapshot
    /// already (a flush committed it and has not yet let go of it), so a
    /// scan of that snapshot leaves it out.
    pub sequences: Option<(String, Vec<i64>)>,
}

impl BufferedBatches {
    /// The batches a snapshot whose transaction for the buffer's
    /// application id is at `recorded` (-1: none) does not hold yet.
    pub fn not_recorded_by(&self, recorded: impl Fn(&str) -> i64) -> Vec<RecordBatch> {
        match &self.sequences {
            Some((app_id, sequences)) if sequences.len() == self.batches.len() => {
                let through = recorded(app_id);
                self.batches
                    .iter()
                    .zip(sequences)
                    .filter(|(_, sequence)| **sequence > through)
                    .map(|(batch, _)| batch.clone())
                    .collect()
            }
            _ => self.batches.clone(),
        }
    }
}

/// Acknowledged rows not yet in their tables, by table location.
pub trait BufferedRows: Send + Sync + Debug {
    /// The rows buffered for the table at `location` (as its storage names
    /// it); none for a table without a buffer.
    fn rows(&self, location: &str) -> BufferedBatches;
}

/// A shared [`BufferedRows`].
pub type BufferedRowsRef = std::sync::Arc<dyn BufferedRows>;
