//! The write-ahead log's files on local disk: one thread per table appends
//! records to the open segment with group commit (every append waiting
//! when a write starts goes into it, then one `fdatasync` for all), and
//! acknowledges each append only once it is on disk.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use tokio::sync::oneshot;

use super::wal;
use super::{Pending, lock};
use crate::{Error, Result};

/// Appends held back while a group is written: at most this many go into
/// one write.
const GROUP_LIMIT: usize = 4096;

/// A running segment log.
#[derive(Debug)]
pub(super) struct SegmentLog {
    commands: Sender<Command>,
}

enum Command {
    Append {
        messages: Vec<u8>,
        batch: RecordBatch,
        reply: oneshot::Sender<Result<u64>>,
    },
    Rotate {
        reply: oneshot::Sender<Result<u64>>,
    },
}

impl SegmentLog {
    /// Opens a new segment in `dir` for records from `next_sequence` on and
    /// starts the thread that writes it. Acknowledged records are added to
    /// `pending` before their append returns.
    pub(super) fn start(
        dir: &Path,
        schema: &arrow::datatypes::Schema,
        next_sequence: u64,
        pending: Arc<Mutex<Pending>>,
    ) -> Result<Self> {
        let header = wal::encode_header(schema);
        let segment = OpenSegment::create(dir, next_sequence, &header)?;
        let writer = Writer {
            dir: dir.to_owned(),
            header,
            segment,
            next_sequence,
            pending,
            broken: None,
        };
        let (commands, receiver) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("wavelake-wal".into())
            .spawn(move || writer.run(&receiver))
            .map_err(|e| io_error(dir, &e))?;
        Ok(Self { commands })
    }

    /// Writes one record durably; its sequence number.
    pub(super) async fn append(&self, messages: Vec<u8>, batch: RecordBatch) -> Result<u64> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Append {
            messages,
            batch,
            reply,
        })?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Closes the open segment (when it holds records) and opens the next:
    /// every record up to the returned sequence number is then in closed
    /// segments, listed in `pending`.
    pub(super) async fn rotate(&self) -> Result<u64> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Rotate { reply })?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    fn send(&self, command: Command) -> Result<()> {
        self.commands.send(command).map_err(|_| stopped())
    }
}

fn stopped() -> Error {
    Error::Storage {
        path: "the write-ahead log".into(),
        message: "its writer has stopped".into(),
    }
}

fn io_error(path: &Path, e: &std::io::Error) -> Error {
    Error::Storage {
        path: path.display().to_string(),
        message: format!("the write-ahead log: {e}"),
    }
}

/// Flushes a directory's entries (a new or removed segment's name).
pub(super) fn sync_directory(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, &e))
}

/// The path of the segment whose first record is `sequence`.
fn segment_path(dir: &Path, sequence: u64) -> PathBuf {
    dir.join(format!("{sequence:020}.wal"))
}

struct OpenSegment {
    path: PathBuf,
    file: File,
    /// Bytes known to be on disk.
    len: u64,
    records: usize,
}

impl OpenSegment {
    fn create(dir: &Path, first_sequence: u64, header: &[u8]) -> Result<Self> {
        let path = segment_path(dir, first_sequence);
        let mut file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io_error(&path, &e))?;
        file.write_all(header)
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error(&path, &e))?;
        sync_directory(dir)?;
        Ok(Self {
            path,
            file,
            len: header.len() as u64,
            records: 0,
        })
    }
}

struct Writer {
    dir: PathBuf,
    header: Vec<u8>,
    segment: OpenSegment,
    next_sequence: u64,
    pending: Arc<Mutex<Pending>>,
    /// Why writing stopped working; every later append is refused with it.
    broken: Option<String>,
}

impl Writer {
    fn run(mut self, commands: &Receiver<Command>) {
        while let Ok(first) = commands.recv() {
            let mut group = vec![first];
            while group.len() < GROUP_LIMIT {
                match commands.try_recv() {
                    Ok(command) => group.push(command),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            let mut appends = Vec::with_capacity(group.len());
            for command in group {
                match command {
                    Command::Append {
                        messages,
                        batch,
                        reply,
                    } => appends.push((messages, batch, reply)),
                    Command::Rotate { reply } => {
                        // Appends that came before the rotation go first.
                        self.write_group(std::mem::take(&mut appends));
                        let _ = reply.send(self.rotate());
                    }
                }
            }
            self.write_group(appends);
        }
    }

    fn write_group(&mut self, appends: Vec<(Vec<u8>, RecordBatch, oneshot::Sender<Result<u64>>)>) {
        if appends.is_empty() {
            return;
        }
        if let Some(reason) = &self.broken {
            for (_, _, reply) in appends {
                let _ = reply.send(Err(Error::Storage {
                    path: self.segment.path.display().to_string(),
                    message: reason.clone(),
                }));
            }
            return;
        }
        let first = self.next_sequence;
        let mut bytes = Vec::with_capacity(appends.iter().map(|a| a.0.len() + 16).sum());
        for (offset, (messages, _, _)) in appends.iter().enumerate() {
            wal::frame_record(&mut bytes, first + offset as u64, messages);
        }
        match self.write_durably(&bytes) {
            Ok(()) => {
                self.next_sequence += appends.len() as u64;
                self.segment.records += appends.len();
                let mut replies = Vec::with_capacity(appends.len());
                {
                    let mut pending = lock(&self.pending);
                    for (offset, (_, batch, reply)) in appends.into_iter().enumerate() {
                        let sequence = first + offset as u64;
                        pending.records.push_back((sequence, batch));
                        replies.push((sequence, reply));
                    }
                }
                for (sequence, reply) in replies {
                    let _ = reply.send(Ok(sequence));
                }
            }
            Err(e) => {
                for (_, _, reply) in appends {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Appends `bytes` to the open segment and waits for the disk; on a
    /// failure the segment is cut back to its last durable length, so no
    /// half-written group is left before later ones.
    fn write_durably(&mut self, bytes: &[u8]) -> Result<()> {
        let path = self.segment.path.clone();
        let written = self
            .segment
            .file
            .write_all(bytes)
            .and_then(|()| self.segment.file.sync_data());
        match written {
            Ok(()) => {
                self.segment.len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                let restored = self
                    .segment
                    .file
                    .set_len(self.segment.len)
                    .and_then(|()| self.segment.file.sync_data());
                if let Err(cut) = restored {
                    self.broken = Some(format!(
                        "a write failed ({e}) and the segment could not be cut back ({cut}); \
                         restart the server to recover the acknowledged rows"
                    ));
                }
                Err(io_error(&path, &e))
            }
        }
    }

    fn rotate(&mut self) -> Result<u64> {
        let last = self.next_sequence.saturating_sub(1);
        if self.segment.records == 0 {
            return Ok(last);
        }
        let next = OpenSegment::create(&self.dir, self.next_sequence, &self.header)?;
        let closed = std::mem::replace(&mut self.segment, next);
        lock(&self.pending).closed_segments.push(closed.path);
        Ok(last)
    }
}
