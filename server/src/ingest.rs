//! The write buffers of buffered ingest, one per table, opened on a
//! table's first buffered append and at start-up for every table whose
//! write-ahead log holds rows a previous run acknowledged and did not
//! flush. Tables are handed in already opened, so this module depends on
//! no other of the server's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use wavelake_engine::buffered::{BufferedBatches, BufferedRows};
use wavelake_engine::{Error, Result, Table};
use wavelake_write::buffer::{BufferSettings, TableBuffer};

/// The open buffers, by `namespace.table`.
#[derive(Debug)]
pub struct Buffers {
    dir: PathBuf,
    settings: BufferSettings,
    open: Mutex<HashMap<String, Arc<TableBuffer>>>,
    /// Held while a buffer is opened, so a table's is opened once.
    opening: tokio::sync::Mutex<()>,
}

impl Buffers {
    /// Buffers whose logs live under `dir` (`dir/<namespace>/<table>/`).
    pub fn new(dir: PathBuf, settings: BufferSettings) -> Self {
        Self {
            dir,
            settings,
            open: Mutex::new(HashMap::new()),
            opening: tokio::sync::Mutex::new(()),
        }
    }

    fn open(&self) -> MutexGuard<'_, HashMap<String, Arc<TableBuffer>>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The buffer of `namespace.table`, opened (with `open_table`) on
    /// first use.
    pub async fn buffer(
        &self,
        namespace: &str,
        table: &str,
        open_table: impl FnOnce() -> Result<Table>,
    ) -> Result<Arc<TableBuffer>> {
        let name = format!("{namespace}.{table}");
        if let Some(buffer) = self.open().get(&name) {
            return Ok(buffer.clone());
        }
        let _opening = self.opening.lock().await;
        if let Some(buffer) = self.open().get(&name) {
            return Ok(buffer.clone());
        }
        let dir = self.dir.join(namespace).join(table);
        let buffer = TableBuffer::open(name.clone(), open_table()?, &dir, self.settings).await?;
        self.open().insert(name, buffer.clone());
        Ok(buffer)
    }

    /// Commits what the buffer of `namespace.table` holds, when it has one.
    pub async fn flush(&self, namespace: &str, table: &str) -> Result<()> {
        let buffer = self.open().get(&format!("{namespace}.{table}")).cloned();
        if let Some(buffer) = buffer {
            buffer.flush().await?;
        }
        Ok(())
    }

    /// Commits and closes the buffer of `namespace.table`, when it has one,
    /// so that the next append opens it again from the table as it is now:
    /// after a statement that changed the table's schema or constraints,
    /// rows are checked against those.
    pub async fn retire(&self, namespace: &str, table: &str) -> Result<()> {
        let buffer = self.open().remove(&format!("{namespace}.{table}"));
        match buffer {
            Some(buffer) => buffer.close().await.map(drop),
            None => Ok(()),
        }
    }

    /// The `(namespace, table)` pairs whose logs hold segments.
    pub fn logged_tables(&self) -> Result<Vec<(String, String)>> {
        let mut found = Vec::new();
        let namespaces = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
            Err(e) => return Err(io_error(&self.dir, &e)),
        };
        for namespace in namespaces.filter_map(std::result::Result::ok) {
            let Ok(tables) = std::fs::read_dir(namespace.path()) else {
                continue;
            };
            for table in tables.filter_map(std::result::Result::ok) {
                let has_segments = std::fs::read_dir(table.path()).is_ok_and(|mut files| {
                    files.any(|f| {
                        f.is_ok_and(|f| f.path().extension().is_some_and(|ext| ext == "wal"))
                    })
                });
                if has_segments {
                    found.push((
                        namespace.file_name().to_string_lossy().into_owned(),
                        table.file_name().to_string_lossy().into_owned(),
                    ));
                }
            }
        }
        found.sort();
        Ok(found)
    }

    /// Stops every buffer and flushes what it holds (shutdown).
    pub async fn close(&self) {
        let open: Vec<_> = self.open().values().cloned().collect();
        for buffer in open {
            if let Err(e) = buffer.close().await {
                tracing::warn!(error = %e, "a write buffer could not be flushed at shutdown; its rows stay in the write-ahead log");
            }
        }
    }
}

impl BufferedRows for Buffers {
    fn rows(&self, location: &str) -> BufferedBatches {
        let location = location.trim_end_matches('/');
        let buffer = self
            .open()
            .values()
            .find(|buffer| buffer.location().trim_end_matches('/') == location)
            .cloned();
        let Some(buffer) = buffer else {
            return BufferedBatches::default();
        };
        buffer.buffered_batches()
    }
}

fn io_error(path: &Path, e: &std::io::Error) -> Error {
    Error::Storage {
        path: path.display().to_string(),
        message: format!("the write-ahead log: {e}"),
    }
}
