//! Names of the files in `_delta_log/` and the `_last_checkpoint` hint.

use serde::Deserialize;

use crate::storage::FileMeta;

/// Directory of the log, relative to the table root.
pub const LOG_DIR: &str = "_delta_log/";

/// What a file in the log directory is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFileKind {
    /// `N.json`: a commit.
    Commit,
    /// `N.checkpoint.parquet`: a classic single-file checkpoint.
    SingleCheckpoint,
    /// `N.checkpoint.P.T.parquet`: part `part` of `parts`.
    MultiPartCheckpoint {
        /// This file's part number, from 1.
        part: u32,
        /// The number of parts.
        parts: u32,
    },
    /// `N.checkpoint.UUID.(json|parquet)`: a v2 checkpoint.
    V2Checkpoint,
}

/// A commit or checkpoint file of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    /// The table version the file belongs to.
    pub version: i64,
    /// What kind of file it is.
    pub kind: LogFileKind,
    /// Path relative to the table root.
    pub path: String,
    /// Size in bytes, when known from a listing.
    pub size: Option<u64>,
    /// Modification time in milliseconds, when known from a listing.
    pub last_modified: Option<i64>,
}

impl LogFile {
    /// Recognises a listed file; `None` for anything that is not a commit
    /// or checkpoint (CRC files, compacted logs, temporary files, ...).
    pub fn parse(meta: &FileMeta) -> Option<Self> {
        let name = meta.path.strip_prefix(LOG_DIR)?;
        if name.contains('/') || name.len() < 21 {
            return None;
        }
        let (digits, rest) = name.split_at(20);
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let version: i64 = digits.parse().ok()?;
        let kind = match rest {
            ".json" => LogFileKind::Commit,
            ".checkpoint.parquet" => LogFileKind::SingleCheckpoint,
            _ => {
                let middle = rest.strip_prefix(".checkpoint.")?;
                let pieces: Vec<&str> = middle.split('.').collect();
                match pieces.as_slice() {
                    [part, parts, "parquet"] if part.len() == 10 && parts.len() == 10 => {
                        LogFileKind::MultiPartCheckpoint {
                            part: part.parse().ok()?,
                            parts: parts.parse().ok()?,
                        }
                    }
                    [uuid, "json" | "parquet"] if uuid.len() == 36 => LogFileKind::V2Checkpoint,
                    _ => return None,
                }
            }
        };
        Some(Self {
            version,
            kind,
            path: meta.path.clone(),
            size: Some(meta.size),
            last_modified: Some(meta.last_modified),
        })
    }

    /// A file known only by name (no listing).
    pub fn unlisted(version: i64, kind: LogFileKind, path: String) -> Self {
        Self {
            version,
            kind,
            path,
            size: None,
            last_modified: None,
        }
    }

    /// Whether this file is a checkpoint of any kind.
    pub fn is_checkpoint(&self) -> bool {
        !matches!(self.kind, LogFileKind::Commit)
    }
}

/// Path of the commit file for `version`.
pub fn commit_path(version: i64) -> String {
    format!("{LOG_DIR}{version:020}.json")
}

/// The `_last_checkpoint` file: a hint to where the newest checkpoint is.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastCheckpoint {
    /// Version of the checkpoint.
    pub version: i64,
    /// Number of actions in it.
    #[serde(default)]
    pub size: Option<i64>,
    /// Number of parts of a multi-part checkpoint.
    #[serde(default)]
    pub parts: Option<u32>,
    /// The v2 checkpoint file, for readers that cannot list.
    #[serde(default)]
    pub v2_checkpoint: Option<LastCheckpointV2>,
}

/// The v2 checkpoint named by `_last_checkpoint`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastCheckpointV2 {
    /// Path of the checkpoint, relative to `_delta_log/`.
    pub path: String,
    /// Size in bytes.
    #[serde(default)]
    pub size_in_bytes: Option<i64>,
}

impl LastCheckpoint {
    /// The checkpoint files the hint names, for readers that cannot list.
    pub fn files(&self) -> Vec<LogFile> {
        let v = self.version;
        if let Some(v2) = &self.v2_checkpoint {
            let path = format!("{LOG_DIR}{}", v2.path);
            return vec![LogFile::unlisted(v, LogFileKind::V2Checkpoint, path)];
        }
        match self.parts {
            Some(parts) if parts > 1 => (1..=parts)
                .map(|part| {
                    LogFile::unlisted(
                        v,
                        LogFileKind::MultiPartCheckpoint { part, parts },
                        format!("{LOG_DIR}{v:020}.checkpoint.{part:010}.{parts:010}.parquet"),
                    )
                })
                .collect(),
            _ => vec![LogFile::unlisted(
                v,
                LogFileKind::SingleCheckpoint,
                format!("{LOG_DIR}{v:020}.checkpoint.parquet"),
            )],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str) -> FileMeta {
        FileMeta {
            path: format!("{LOG_DIR}{name}"),
            size: 1,
            last_modified: 0,
        }
    }

    #[test]
    fn recognises_every_log_file_name() {
        let kind = |n: &str| LogFile::parse(&meta(n)).map(|f| (f.version, f.kind));
        assert_eq!(
            kind("00000000000000000007.json"),
            Some((7, LogFileKind::Commit))
        );
        assert_eq!(
            kind("00000000000000000010.checkpoint.parquet"),
            Some((10, LogFileKind::SingleCheckpoint))
        );
        assert_eq!(
            kind("00000000000000000010.checkpoint.0000000002.0000000003.parquet"),
            Some((10, LogFileKind::MultiPartCheckpoint { part: 2, parts: 3 }))
        );
        assert_eq!(
            kind("00000000000000000002.checkpoint.80a083e8-7026-4e79-81be-64bd76c43a11.json"),
            Some((2, LogFileKind::V2Checkpoint))
        );
        assert_eq!(kind("00000000000000000002.crc"), None);
        assert_eq!(
            kind("00000000000000000000.00000000000000000003.compacted.json"),
            None
        );
        assert_eq!(kind("_last_checkpoint"), None);
        assert_eq!(kind(".00000000000000000002.json.tmp"), None);
    }
}
