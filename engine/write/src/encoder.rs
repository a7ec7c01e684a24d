//! Parquet encoding off the async workers: each data file being written is
//! encoded (and its statistics gathered) by a blocking task of its own,
//! fed through a short queue, so that the files of one write encode at
//! once on as many cores while the writer prepares the next rows.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::data_file::{DataFileOptions, DataFileWriter, WrittenFile};
use crate::{Error, Result};

/// Batches waiting for one file's encoder, at most.
const QUEUE: usize = 2;

/// One data file being encoded by a task of its own.
pub struct FileEncoder {
    queue: Option<mpsc::Sender<RecordBatch>>,
    task: Option<JoinHandle<Result<WrittenFile>>>,
    /// The file's size so far, as the encoder last saw it.
    size: Arc<AtomicUsize>,
    /// Bytes sent and not yet encoded (their in-memory size).
    queued: Arc<AtomicUsize>,
    rows: u64,
}

impl std::fmt::Debug for FileEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileEncoder")
            .field("rows", &self.rows)
            .field("bytes", &self.estimated_size())
            .finish()
    }
}

impl FileEncoder {
    /// Starts encoding a file of `schema` (on the current Tokio runtime).
    pub fn start(schema: &SchemaRef, options: &DataFileOptions) -> Result<Self> {
        let mut writer = DataFileWriter::try_new(schema, options)?;
        let (sender, mut receiver) = mpsc::channel::<RecordBatch>(QUEUE);
        let size = Arc::new(AtomicUsize::new(0));
        let queued = Arc::new(AtomicUsize::new(0));
        let (seen_size, seen_queued) = (size.clone(), queued.clone());
        let task = tokio::task::spawn_blocking(move || {
            while let Some(batch) = receiver.blocking_recv() {
                let bytes = batch.get_array_memory_size();
                let written = writer.write(&batch);
                seen_queued.fetch_sub(bytes, Ordering::Relaxed);
                written?;
                seen_size.store(writer.estimated_size(), Ordering::Relaxed);
            }
            writer.finish()
        });
        Ok(Self {
            queue: Some(sender),
            task: Some(task),
            size,
            queued,
            rows: 0,
        })
    }

    /// Queues `batch` (the file's physical columns) for encoding; waits
    /// while the queue is full. An encoding error surfaces here or at
    /// [`Self::finish`].
    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        let rows = batch.num_rows() as u64;
        let bytes = batch.get_array_memory_size();
        let Some(queue) = &self.queue else {
            return Err(encoder_gone());
        };
        self.queued.fetch_add(bytes, Ordering::Relaxed);
        if queue.send(batch).await.is_err() {
            // The encoder stopped: its error says why.
            self.queue = None;
            return Err(match self.task.take() {
                Some(task) => match task.await {
                    Ok(Err(e)) => e,
                    _ => encoder_gone(),
                },
                None => encoder_gone(),
            });
        }
        self.rows += rows;
        Ok(())
    }

    /// Rows queued so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes the file has so far, counting rows still queued at their
    /// in-memory size (an upper bound of their encoded size).
    pub fn estimated_size(&self) -> usize {
        self.size.load(Ordering::Relaxed) + self.queued.load(Ordering::Relaxed)
    }

    /// Waits for every queued row to be encoded; the finished file.
    pub async fn finish(mut self) -> Result<WrittenFile> {
        self.queue = None;
        match self.task.take() {
            Some(task) => task.await.map_err(|e| {
                Error::InvalidArgument(format!("cannot write Parquet: the encoder stopped ({e})"))
            })?,
            None => Err(encoder_gone()),
        }
    }
}

fn encoder_gone() -> Error {
    Error::InvalidArgument("cannot write Parquet: the encoder stopped".into())
}
