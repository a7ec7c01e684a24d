//! The file lines of a `query` answer, signed and serialized while the
//! body is sent: a table of hundreds of thousands of files is answered
//! [`FILES_PER_CHUNK`] files at a time instead of as one string built
//! before the first byte leaves. A signing or copying failure midway
//! breaks the body, so a client never takes a cut answer for a whole one.

use std::sync::Arc;

use bytes::Bytes;
use wavelake_engine::{Snapshot, Table};
use wavelake_sharing::ResponseLine;

use super::predicate::JsonPredicate;
use super::{Format, SharingError, file_line, logical_partition_values};
use crate::shares::SharedTable;
use crate::state::AppState;

/// Files signed and serialized per chunk of the body.
pub const FILES_PER_CHUNK: usize = 256;

/// Which files a query answers with, and where the walk through them is.
pub struct FileLines {
    /// The server's state, for signing.
    pub state: Arc<AppState>,
    /// The share's entry for the table.
    pub shared: SharedTable,
    /// The table.
    pub table: Table,
    /// The version answered.
    pub snapshot: Snapshot,
    /// The response format.
    pub format: Format,
    /// Files whose partition values cannot match are left out.
    pub hint: Option<JsonPredicate>,
    /// Rows after which no more files are needed.
    pub limit_hint: Option<i64>,
    /// The last line (`endStreamAction`), if any.
    pub end: Option<String>,
    /// The next file to look at.
    pub next: usize,
    /// Rows in the files answered so far.
    pub rows_so_far: u64,
    /// Whether the body has ended.
    pub done: bool,
}

impl FileLines {
    /// The next chunk of the body: lines of up to [`FILES_PER_CHUNK`]
    /// files, then the end line.
    pub async fn next_chunk(mut self) -> Option<(Result<Bytes, SharingError>, Self)> {
        if self.done {
            return None;
        }
        let mut body = String::new();
        let mut taken = 0;
        let files = self.snapshot.files();
        while taken < FILES_PER_CHUNK && self.next < files.len() {
            let add = &files[self.next];
            self.next += 1;
            if let Some(hint) = &self.hint
                && !hint.may_match(&logical_partition_values(&self.snapshot, add))
            {
                continue;
            }
            if let Some(limit) = self.limit_hint
                && self.rows_so_far >= u64::try_from(limit).unwrap_or(0)
            {
                self.next = files.len();
                break;
            }
            self.rows_so_far += wavelake_engine::stats::FileStats::of(add)
                .and_then(|s| s.num_records)
                .unwrap_or(0);
            let line = file_line(
                &self.state,
                &self.shared,
                &self.table,
                &self.snapshot,
                add,
                self.format,
            )
            .await;
            match line {
                Ok(line) => {
                    body.push_str(&line);
                    body.push('\n');
                    taken += 1;
                }
                Err(error) => {
                    self.done = true;
                    return Some((Err(error), self));
                }
            }
        }
        if self.next >= files.len() {
            self.done = true;
            if let Some(end) = self.end.take() {
                body.push_str(&end);
                body.push('\n');
            }
        }
        Some((Ok(Bytes::from(body)), self))
    }
}

/// Lines as one NDJSON chunk (an answer's protocol and metadata).
pub fn head(lines: &[ResponseLine<'_>]) -> serde_json::Result<Bytes> {
    let mut text = String::new();
    for line in lines {
        text.push_str(&line.to_json()?);
        text.push('\n');
    }
    Ok(Bytes::from(text))
}
