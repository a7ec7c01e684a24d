//! Buffered ingest: small appends to a table go to a write-ahead log on
//! local disk and an in-memory buffer, are acknowledged once durable, and
//! reach the Delta table in batches, as one commit per flush.
//!
//! A flush commits every buffered row up to a sequence number `s` with the
//! Delta application transaction ([`APP_ID`], `s`), so a crash between the
//! commit and the removal of the flushed segments never writes a row twice:
//! on restart, records at or below the table's recorded version for
//! [`APP_ID`] are already in the table and are dropped.

mod segments;
pub mod wal;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use tokio::sync::Notify;

use self::segments::SegmentLog;
use crate::conform::conform;
use crate::{Error, Result, SaveMode, Table, WriteOptions, write};

/// The Delta application id under which flushes record the last sequence
/// number they committed.
pub const APP_ID: &str = "wavelake-buffer";

/// Rows per batch handed to the Parquet writer by a flush.
const FLUSH_BATCH_ROWS: usize = 64 * 1024;

/// When a table's buffer is flushed, and how much it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferSettings {
    /// Flush at least this often while rows are buffered.
    pub flush_interval: Duration,
    /// Flush as soon as this many rows are buffered.
    pub flush_rows: usize,
    /// Refuse appends (`BufferFull`) beyond this many buffered rows.
    pub max_rows: usize,
}

impl Default for BufferSettings {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_millis(1000),
            flush_rows: 100_000,
            max_rows: 1_000_000,
        }
    }
}

/// The table property that sets a table's flush interval, in milliseconds.
pub const FLUSH_INTERVAL_PROPERTY: &str = "wavelake.buffer.flushIntervalMs";

/// The table property that sets how many buffered rows start a flush.
pub const FLUSH_ROWS_PROPERTY: &str = "wavelake.buffer.flushRows";

impl BufferSettings {
    /// These settings with a table's own ([`FLUSH_INTERVAL_PROPERTY`],
    /// [`FLUSH_ROWS_PROPERTY`]) in place of the server's; a value that is
    /// not a positive whole number is an error naming the property.
    pub fn with_table_properties<'a>(
        mut self,
        property: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Self> {
        let positive = |name: &str| -> Result<Option<u64>> {
            property(name)
                .map(|value| {
                    value.trim().parse::<u64>().ok().filter(|v| *v > 0).ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "table property {name} must be a positive whole number, not {value:?}"
                        ))
                    })
                })
                .transpose()
        };
        if let Some(ms) = positive(FLUSH_INTERVAL_PROPERTY)? {
            self.flush_interval = Duration::from_millis(ms);
        }
        if let Some(rows) = positive(FLUSH_ROWS_PROPERTY)? {
            self.flush_rows = usize::try_from(rows).unwrap_or(usize::MAX);
        }
        Ok(self)
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Its sequence number in the table's log; `None` for no rows.
    pub sequence: Option<u64>,
    /// Rows appended.
    pub rows: usize,
}

/// What a flush did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flushed {
    /// The table version it committed; `None` when nothing was left to
    /// commit.
    pub version: Option<i64>,
    /// Rows committed.
    pub rows: usize,
}

/// Records acknowledged and not yet flushed, and the closed segment files
/// that hold them.
#[derive(Debug, Default)]
struct Pending {
    records: VecDeque<(u64, RecordBatch)>,
    closed_segments: Vec<PathBuf>,
    /// The sequence number the table has recorded for [`APP_ID`]: every
    /// record up to it is committed (`-1` before the first flush).
    committed_through: i64,
}

/// The buffer of one table: its write-ahead log, its acknowledged rows and
/// the task that flushes them.
#[derive(Debug)]
pub struct TableBuffer {
    name: String,
    table: Table,
    schema: SchemaRef,
    /// [`Self::schema`] with every column nullable, for decoding bodies.
    decode_schema: SchemaRef,
    /// Checked at append, so that no row is acknowledged that the flush
    /// could not commit.
    constraints: crate::constraints::CheckConstraints,
    dir: PathBuf,
    settings: BufferSettings,
    log: SegmentLog,
    pending: Arc<Mutex<Pending>>,
    /// Rows acknowledged or being appended, not yet flushed.
    buffered_rows: AtomicUsize,
    flushing: tokio::sync::Mutex<()>,
    wake: Notify,
    closed: AtomicBool,
}

impl TableBuffer {
    /// Opens the buffer of `table` (named `name` in messages) with its log
    /// in `dir`, recovering rows a previous run acknowledged and did not
    /// flush, and starts flushing in the background (on the current Tokio
    /// runtime).
    pub async fn open(
        name: impl Into<String>,
        table: Table,
        dir: &Path,
        settings: BufferSettings,
    ) -> Result<Arc<Self>> {
        let name = name.into();
        let snapshot = table.snapshot().await?;
        std::fs::create_dir_all(dir).map_err(|e| Error::Storage {
            path: dir.display().to_string(),
            message: format!("cannot create the write-ahead log's directory: {e}"),
        })?;
        crate::protocol::features::ensure_writable(snapshot.protocol(), snapshot.metadata())?;
        let settings = settings.with_table_properties(|key| snapshot.metadata().property(key))?;
        let schema = snapshot.arrow_schema();
        let constraints = crate::constraints::CheckConstraints::of(snapshot.metadata(), &schema)?;
        let committed = snapshot.txn(APP_ID).map_or(-1, |t| t.version);
        let recovered = recover(dir, &schema, committed)?;
        let buffered_rows = recovered.records.iter().map(|(_, b)| b.num_rows()).sum();
        let pending = Arc::new(Mutex::new(Pending {
            records: recovered.records,
            closed_segments: recovered.segments,
            committed_through: committed,
        }));
        let log = SegmentLog::start(dir, &schema, recovered.next_sequence, pending.clone())?;
        let buffer = Arc::new(Self {
            name,
            table,
            decode_schema: all_nullable(&schema),
            schema,
            constraints,
            dir: dir.to_owned(),
            settings,
            log,
            pending,
            buffered_rows: AtomicUsize::new(buffered_rows),
            flushing: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(flush_in_background(buffer.clone()));
        if buffered_rows > 0 {
            buffer.wake.notify_one();
        }
        Ok(buffer)
    }

    /// The table's location, as its storage names it.
    pub fn location(&self) -> String {
        self.table.storage().location()
    }

    /// The table's schema, which appended rows must fit.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The table's schema with every column nullable: what bodies are
    /// decoded as, so that a null in a NOT NULL column reaches
    /// [`Self::append`]'s check, which names the column and the row.
    pub fn decode_schema(&self) -> &SchemaRef {
        &self.decode_schema
    }

    /// Rows acknowledged and not yet in the table.
    pub fn buffered_rows(&self) -> usize {
        self.buffered_rows.load(Ordering::SeqCst)
    }

    /// The acknowledged rows not yet in the table, and the sequence number
    /// every row up to which the table holds (recorded under [`APP_ID`]),
    /// read at one moment: a snapshot recording that number, merged with
    /// these rows, holds every acknowledged row once.
    pub fn pending_since_flush(&self) -> (Vec<(i64, RecordBatch)>, i64) {
        let pending = lock(&self.pending);
        let batches = pending
            .records
            .iter()
            .filter(|(sequence, _)| *sequence as i64 > pending.committed_through)
            .map(|(sequence, batch)| (*sequence as i64, batch.clone()))
            .collect();
        (batches, pending.committed_through)
    }

    /// [`Self::pending_since_flush`] as a session reads it.
    pub fn buffered_batches(&self) -> wavelake_engine::buffered::BufferedBatches {
        let (records, through) = self.pending_since_flush();
        let (sequences, batches) = records.into_iter().unzip();
        wavelake_engine::buffered::BufferedBatches {
            batches,
            flushed: (through >= 0).then(|| (APP_ID.to_owned(), through)),
            sequences: Some((APP_ID.to_owned(), sequences)),
        }
    }

    /// Appends `batch` once it fits the table (columns, types, NOT NULL):
    /// returns when it is on disk. A full buffer refuses it with
    /// [`Error::BufferFull`] and keeps nothing.
    pub async fn append(&self, batch: &RecordBatch) -> Result<Appended> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::NotAllowed(format!(
                "the write buffer of {} is closing",
                self.name
            )));
        }
        let batch = conform(batch, &self.schema)?;
        self.constraints.check(&batch)?;
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(Appended {
                sequence: None,
                rows: 0,
            });
        }
        if rows > self.settings.max_rows {
            return Err(Error::LimitExceeded {
                what: "one buffered append".into(),
                limit: format!("{} rows", self.settings.max_rows),
                detail: format!("{rows} rows; send them as an upload instead"),
            });
        }
        let before = self.buffered_rows.fetch_add(rows, Ordering::SeqCst);
        if before + rows > self.settings.max_rows {
            self.buffered_rows.fetch_sub(rows, Ordering::SeqCst);
            self.wake.notify_one();
            return Err(Error::BufferFull {
                table: self.name.clone(),
                detail: format!("{before} of {} rows", self.settings.max_rows),
                retry_after_ms: self.settings.flush_interval.as_millis() as u64,
            });
        }
        let appended = match wal::encode_batch(&batch) {
            Ok(messages) => self.log.append(messages, batch).await,
            Err(e) => Err(e),
        };
        let sequence = appended.inspect_err(|_| {
            self.buffered_rows.fetch_sub(rows, Ordering::SeqCst);
        })?;
        if before + rows >= self.settings.flush_rows {
            self.wake.notify_one();
        }
        Ok(Appended {
            sequence: Some(sequence),
            rows,
        })
    }

    /// Commits every row acknowledged so far to the table, as one commit,
    /// and removes the log segments that held them.
    pub async fn flush(&self) -> Result<Flushed> {
        let _flushing = self.flushing.lock().await;
        let idle = {
            let pending = lock(&self.pending);
            pending.records.is_empty() && pending.closed_segments.is_empty()
        };
        if idle {
            return Ok(Flushed::default());
        }
        let last = self.log.rotate().await?;
        let snapshot = self.table.snapshot().await?;
        let committed = snapshot.txn(APP_ID).map_or(-1, |t| t.version);
        let batches: Vec<RecordBatch> = lock(&self.pending)
            .records
            .iter()
            .filter(|(sequence, _)| *sequence as i64 > committed && *sequence <= last)
            .map(|(_, batch)| batch.clone())
            .collect();
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let mut version = None;
        if rows > 0 {
            let merged = merge_batches(&self.schema, batches)?;
            let options = WriteOptions {
                mode: SaveMode::Append,
                app_transaction: Some((APP_ID.to_owned(), last as i64)),
            };
            let stream = futures::stream::iter(merged.into_iter().map(Ok));
            version = write(&self.table, stream, &options).await?.version;
        }
        let (removed_rows, closed) = {
            let mut pending = lock(&self.pending);
            pending.committed_through = pending.committed_through.max(last as i64);
            let mut removed = 0;
            while pending.records.front().is_some_and(|(s, _)| *s <= last) {
                if let Some((_, batch)) = pending.records.pop_front() {
                    removed += batch.num_rows();
                }
            }
            (removed, std::mem::take(&mut pending.closed_segments))
        };
        self.buffered_rows.fetch_sub(removed_rows, Ordering::SeqCst);
        for path in &closed {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a flushed write-ahead log segment");
            }
        }
        if !closed.is_empty() {
            segments::sync_directory(&self.dir)?;
        }
        Ok(Flushed { version, rows })
    }

    /// Stops taking appends and flushes what is buffered (server shutdown).
    pub async fn close(&self) -> Result<Flushed> {
        self.closed.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        self.flush().await
    }
}

fn all_nullable(schema: &SchemaRef) -> SchemaRef {
    Arc::new(arrow::datatypes::Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ))
}

/// Locks `mutex`, also after a panic elsewhere (every update under these
/// locks leaves the data whole).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Buffered batches as fewer, larger ones for the Parquet writer.
fn merge_batches(schema: &SchemaRef, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
    let mut merged = Vec::new();
    let mut group = Vec::new();
    let mut rows = 0;
    for batch in batches {
        rows += batch.num_rows();
        group.push(batch);
        if rows >= FLUSH_BATCH_ROWS {
            merged.push(concat(schema, &group)?);
            group.clear();
            rows = 0;
        }
    }
    if !group.is_empty() {
        merged.push(concat(schema, &group)?);
    }
    Ok(merged)
}

fn concat(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch> {
    arrow::compute::concat_batches(schema, batches).map_err(|e| Error::Arrow(Arc::new(e)))
}

/// Flushes every `flush_interval`, or at once when woken (enough rows, a
/// full buffer), until the buffer is closed. A failed flush keeps its rows
/// and is tried again after a pause.
async fn flush_in_background(buffer: Arc<TableBuffer>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(buffer.settings.flush_interval) => {}
            () = buffer.wake.notified() => {}
        }
        if buffer.closed.load(Ordering::SeqCst) {
            return;
        }
        if buffer.buffered_rows() == 0 {
            continue;
        }
        if let Err(e) = buffer.flush().await {
            tracing::warn!(table = %buffer.name, error = %e, "flushing the write buffer failed; its rows stay buffered");
            tokio::time::sleep(buffer.settings.flush_interval).await;
        }
    }
}

/// What a previous run left in the log.
struct Recovered {
    records: VecDeque<(u64, RecordBatch)>,
    segments: Vec<PathBuf>,
    next_sequence: u64,
}

/// Reads every segment in `dir`: records above `committed` (the table's
/// version for [`APP_ID`]) are still to be flushed.
fn recover(dir: &Path, schema: &SchemaRef, committed: i64) -> Result<Recovered> {
    let listing = std::fs::read_dir(dir).map_err(|e| Error::Storage {
        path: dir.display().to_string(),
        message: format!("cannot list the write-ahead log: {e}"),
    })?;
    let mut segments: Vec<PathBuf> = listing
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "wal"))
        .collect();
    segments.sort();
    let header_len = wal::encode_header(schema).len();
    let mut records = VecDeque::new();
    let mut highest = committed;
    let mut kept = Vec::with_capacity(segments.len());
    let last = segments.len().saturating_sub(1);
    for (index, path) in segments.into_iter().enumerate() {
        let shown = path.display().to_string();
        let bytes = std::fs::read(&path).map_err(|e| Error::Storage {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let segment = match wal::decode_segment(&shown, &bytes) {
            Ok(segment) => segment,
            // A crash while the newest segment was being created leaves a
            // header cut short: it never held an acknowledged record.
            Err(Error::Corrupt { .. }) if index == last && bytes.len() < header_len => {
                tracing::warn!(segment = %shown, "removed a write-ahead log segment whose creation was cut short");
                remove_segment(&path)?;
                continue;
            }
            Err(e) => return Err(e),
        };
        if segment.records.is_empty() {
            remove_segment(&path)?;
            continue;
        }
        if segment.torn_bytes > 0 {
            tracing::warn!(segment = %shown, bytes = segment.torn_bytes, "dropped the unacknowledged tail of a write-ahead log segment");
        }
        for (sequence, batch) in segment.records {
            highest = highest.max(sequence as i64);
            if sequence as i64 > committed {
                records.push_back((sequence, conform(&batch, schema)?));
            }
        }
        kept.push(path);
    }
    Ok(Recovered {
        records,
        segments: kept,
        next_sequence: (highest + 1).max(0) as u64,
    })
}

fn remove_segment(path: &Path) -> Result<()> {
    std::fs::remove_file(path).map_err(|e| Error::Storage {
        path: path.display().to_string(),
        message: format!("cannot remove an empty write-ahead log segment: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::storage::{MemoryStorage, StorageRef};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn rows(ids: std::ops::Range<i64>) -> RecordBatch {
        let names: Vec<Option<String>> = ids.clone().map(|i| Some(format!("n{i}"))).collect();
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(ids)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    }

    async fn new_table() -> (StorageRef, Table) {
        let storage: StorageRef = Arc::new(MemoryStorage::new("memory:///t/"));
        let new = crate::NewTable {
            schema: Some(crate::schema::StructType::from_arrow(&schema()).unwrap()),
            ..crate::NewTable::default()
        };
        crate::create_table(
            storage.as_ref(),
            &new,
            None::<futures::stream::Empty<Result<RecordBatch>>>,
        )
        .await
        .unwrap();
        let table = Table::new(storage.clone()).unwrap();
        (storage, table)
    }

    /// Every id in the table, sorted.
    async fn ids_in(storage: &StorageRef) -> Vec<i64> {
        let table = Table::new(storage.clone()).unwrap();
        let snapshot = table.load_latest().await.unwrap();
        let mut ids = Vec::new();
        for add in snapshot.files() {
            let bytes = storage.get(&add.path).await.unwrap();
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
                    .unwrap()
                    .build()
                    .unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                let column = batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap();
                ids.extend(column.values().iter().copied());
            }
        }
        ids.sort_unstable();
        ids
    }

    /// A new table and its buffer, with its log in a directory kept as
    /// long as the returned guard.
    async fn new_buffer(
        settings: BufferSettings,
    ) -> (StorageRef, tempfile::TempDir, Arc<TableBuffer>) {
        let (storage, table) = new_table().await;
        let dir = tempfile::tempdir().unwrap();
        let buffer = TableBuffer::open("t", table, dir.path(), settings)
            .await
            .unwrap();
        (storage, dir, buffer)
    }

    fn quiet() -> BufferSettings {
        BufferSettings {
            flush_interval: Duration::from_secs(3600),
            flush_rows: usize::MAX,
            max_rows: 1_000,
        }
    }

    fn segments_in(dir: &Path) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        found.sort();
        found
    }

    #[tokio::test]
    async fn appends_are_committed_once_by_a_flush_with_the_application_transaction() {
        let (storage, dir, buffer) = new_buffer(quiet()).await;
        let appends = (0..20).map(|i| {
            let buffer = buffer.clone();
            async move { buffer.append(&rows(i * 10..i * 10 + 10)).await.unwrap() }
        });
        let appended = futures::future::join_all(appends).await;
        let mut sequences: Vec<u64> = appended.iter().map(|a| a.sequence.unwrap()).collect();
        sequences.sort_unstable();
        assert_eq!(sequences, (0..20).collect::<Vec<u64>>());
        assert_eq!(buffer.buffered_rows(), 200);
        assert_eq!(
            buffer
                .pending_since_flush()
                .0
                .iter()
                .map(|(_, batch)| batch.num_rows())
                .sum::<usize>(),
            200
        );
        assert!(
            ids_in(&storage).await.is_empty(),
            "nothing committed before a flush"
        );

        let flushed = buffer.flush().await.unwrap();
        assert_eq!(
            flushed,
            Flushed {
                version: Some(1),
                rows: 200
            }
        );
        assert_eq!(ids_in(&storage).await, (0..200).collect::<Vec<i64>>());
        let snapshot = Table::new(storage.clone())
            .unwrap()
            .load_latest()
            .await
            .unwrap();
        assert_eq!(snapshot.txn(APP_ID).unwrap().version, 19);
        assert_eq!(snapshot.files().len(), 1, "one file for the flush");
        assert_eq!(buffer.buffered_rows(), 0);
        assert_eq!(
            segments_in(dir.path()).len(),
            1,
            "only the open segment is left"
        );
        assert_eq!(buffer.flush().await.unwrap(), Flushed::default());
    }

    #[test]
    fn table_properties_set_a_table_s_own_flush_settings() {
        let properties = std::collections::HashMap::from([
            (FLUSH_INTERVAL_PROPERTY.to_owned(), "250".to_owned()),
            (FLUSH_ROWS_PROPERTY.to_owned(), "5000".to_owned()),
        ]);
        let settings = quiet()
            .with_table_properties(|k| properties.get(k).map(String::as_str))
            .unwrap();
        assert_eq!(settings.flush_interval, Duration::from_millis(250));
        assert_eq!(settings.flush_rows, 5000);
        assert_eq!(settings.max_rows, quiet().max_rows);
        let bad =
            std::collections::HashMap::from([(FLUSH_ROWS_PROPERTY.to_owned(), "0".to_owned())]);
        let err = quiet()
            .with_table_properties(|k| bad.get(k).map(String::as_str))
            .unwrap_err();
        assert!(err.to_string().contains(FLUSH_ROWS_PROPERTY), "{err}");
    }

    #[tokio::test]
    async fn rows_that_do_not_fit_the_table_are_refused_and_nothing_is_kept() {
        let (_, _dir, buffer) = new_buffer(quiet()).await;
        let null_id = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, true),
                Field::new("name", DataType::Utf8, true),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(StringArray::from(vec!["a", "b"])),
            ],
        )
        .unwrap();
        let err = buffer.append(&null_id).await.unwrap_err();
        assert!(matches!(err, Error::ConstraintViolation(_)), "{err:?}");
        let other = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)])),
            vec![Arc::new(Int64Array::from(vec![1]))],
        )
        .unwrap();
        let err = buffer.append(&other).await.unwrap_err();
        assert!(matches!(err, Error::SchemaMismatch(_)), "{err:?}");
        assert_eq!(buffer.buffered_rows(), 0);
        assert_eq!(buffer.flush().await.unwrap(), Flushed::default());
    }

    #[tokio::test]
    async fn a_full_buffer_refuses_until_a_flush_makes_room() {
        let settings = BufferSettings {
            max_rows: 25,
            ..quiet()
        };
        let (storage, _dir, buffer) = new_buffer(settings).await;
        buffer.append(&rows(0..20)).await.unwrap();
        let err = buffer.append(&rows(20..30)).await.unwrap_err();
        assert!(
            matches!(&err, Error::BufferFull { table, retry_after_ms, .. }
                if table == "t" && *retry_after_ms == 3_600_000),
            "{err:?}"
        );
        let err = buffer.append(&rows(0..26)).await.unwrap_err();
        assert!(matches!(err, Error::LimitExceeded { .. }), "{err:?}");
        // The refusal woke the background flush, which may have run: what
        // is in the table and the buffer together is the first 20 rows.
        buffer.flush().await.unwrap();
        assert_eq!(buffer.buffered_rows(), 0);
        assert_eq!(ids_in(&storage).await, (0..20).collect::<Vec<i64>>());
        buffer.append(&rows(20..30)).await.unwrap();
        buffer.flush().await.unwrap();
        assert_eq!(ids_in(&storage).await, (0..30).collect::<Vec<i64>>());
    }

    /// Opens a buffer on its own runtime, appends, and drops the runtime
    /// without a flush: what a crash leaves.
    fn append_then_crash(storage: &StorageRef, dir: &Path, batches: &[RecordBatch]) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let table = Table::new(storage.clone()).unwrap();
            let buffer = TableBuffer::open("t", table, dir, quiet()).await.unwrap();
            for batch in batches {
                buffer.append(batch).await.unwrap();
            }
        });
        drop(runtime);
    }

    #[test]
    fn acknowledged_rows_survive_a_crash_and_are_flushed_exactly_once() {
        let storage = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(new_table())
            .0;
        let dir = tempfile::tempdir().unwrap();
        append_then_crash(&storage, dir.path(), &[rows(0..5), rows(5..8)]);
        // A second crash after more appends, before any flush.
        append_then_crash(&storage, dir.path(), &[rows(8..10)]);
        // A torn write at the end of the newest segment.
        let newest = segments_in(dir.path()).pop().unwrap();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&newest)
            .unwrap();
        std::io::Write::write_all(&mut file, &[9, 0, 0, 0, 1, 2]).unwrap();
        drop(file);

        // A copy of the log as the crashes left it: restored after the
        // flush below, it is the log of a server that died after committing
        // and before removing the segments.
        let copies: Vec<(PathBuf, Vec<u8>)> = segments_in(dir.path())
            .into_iter()
            .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
            .collect();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let table = Table::new(storage.clone()).unwrap();
            let buffer = TableBuffer::open("t", table, dir.path(), quiet())
                .await
                .unwrap();
            buffer.flush().await.unwrap();
            assert_eq!(ids_in(&storage).await, (0..10).collect::<Vec<i64>>());
            buffer.append(&rows(10..12)).await.unwrap();
            drop(buffer);
            // The flushed segments come back; the open one kept its appends.
            for (path, bytes) in copies {
                if !path.exists() {
                    std::fs::write(path, bytes).unwrap();
                }
            }
        });
        drop(runtime);

        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let table = Table::new(storage.clone()).unwrap();
            let buffer = TableBuffer::open("t", table, dir.path(), quiet())
                .await
                .unwrap();
            // The restored segments' rows are in the table already: the
            // application transaction keeps them from being written twice.
            assert!(buffer.buffered_rows() <= 2, "{}", buffer.buffered_rows());
            buffer.flush().await.unwrap();
            assert_eq!(ids_in(&storage).await, (0..12).collect::<Vec<i64>>());
            let appended = buffer.append(&rows(12..13)).await.unwrap();
            assert_eq!(
                appended.sequence,
                Some(4),
                "numbers go on after the last one used"
            );
        });
    }

    /// A session's view of one buffer, as the server gives its sessions.
    #[derive(Debug)]
    struct OneBuffer(Arc<TableBuffer>);

    impl wavelake_engine::buffered::BufferedRows for OneBuffer {
        fn rows(&self, _location: &str) -> wavelake_engine::buffered::BufferedBatches {
            self.0.buffered_batches()
        }
    }

    async fn count(session: &wavelake_engine::SqlSession) -> i64 {
        let batches = session.query("SELECT count(*) AS n FROM t").await.unwrap();
        batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0)
    }

    #[tokio::test]
    async fn queries_read_buffered_rows_once_also_across_a_flush() {
        let (storage, _dir, buffer) = new_buffer(quiet()).await;
        let session = crate::session_with(wavelake_engine::SqlSessionOptions {
            buffered_rows: Some(Arc::new(OneBuffer(buffer.clone()))),
            ..wavelake_engine::SqlSessionOptions::default()
        });
        session.register("t", storage.clone()).await.unwrap();
        buffer.append(&rows(0..5)).await.unwrap();
        assert_eq!(count(&session).await, 5, "buffered rows are read");
        // The session registered version 0; the flush commits version 1 and
        // empties the buffer. The rows must not vanish from its queries.
        buffer.flush().await.unwrap();
        assert_eq!(
            count(&session).await,
            5,
            "flushed rows are read from the new version"
        );
        buffer.append(&rows(5..7)).await.unwrap();
        assert_eq!(count(&session).await, 7);
        let batches = session
            .query("SELECT max(id) AS m FROM t WHERE name = 'n6'")
            .await
            .unwrap();
        let max = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(max.value(0), 6, "filters apply to buffered rows");
    }

    /// What a session sees between a flush's commit and the flush letting
    /// go of the rows it committed.
    #[derive(Debug)]
    struct NotYetTrimmed {
        through: i64,
    }

    impl wavelake_engine::buffered::BufferedRows for NotYetTrimmed {
        fn rows(&self, _location: &str) -> wavelake_engine::buffered::BufferedBatches {
            wavelake_engine::buffered::BufferedBatches {
                batches: vec![rows(0..5), rows(5..7)],
                flushed: None,
                sequences: Some((APP_ID.to_owned(), vec![self.through, self.through + 1])),
            }
        }
    }

    #[tokio::test]
    async fn rows_a_flush_committed_are_read_once_before_it_lets_go_of_them() {
        let (storage, _dir, buffer) = new_buffer(quiet()).await;
        buffer.append(&rows(0..5)).await.unwrap();
        buffer.flush().await.unwrap();
        let through = buffer.pending_since_flush().1;
        assert_eq!(through, 0, "the first append (sequence 0) is committed");
        let session = crate::session_with(wavelake_engine::SqlSessionOptions {
            buffered_rows: Some(Arc::new(NotYetTrimmed { through })),
            ..wavelake_engine::SqlSessionOptions::default()
        });
        session.register("t", storage.clone()).await.unwrap();
        assert_eq!(
            count(&session).await,
            7,
            "the committed rows once, the rows after them once"
        );
    }

    #[tokio::test]
    async fn the_background_task_flushes_on_its_interval_and_close_stops_appends() {
        let settings = BufferSettings {
            flush_interval: Duration::from_millis(50),
            flush_rows: 100,
            max_rows: 1_000,
        };
        let (storage, _dir, buffer) = new_buffer(settings).await;
        buffer.append(&rows(0..3)).await.unwrap();
        for _ in 0..200 {
            if buffer.buffered_rows() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(ids_in(&storage).await, (0..3).collect::<Vec<i64>>());
        let flushed = buffer.close().await.unwrap();
        assert_eq!(flushed, Flushed::default());
        let err = buffer.append(&rows(3..4)).await.unwrap_err();
        assert!(matches!(err, Error::NotAllowed(_)), "{err:?}");
    }
}
