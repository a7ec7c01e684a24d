//! Finding the files that make up one version of a table: the newest
//! complete checkpoint at or before it, and the commits after it.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::future::join_all;

use super::files::{LOG_DIR, LastCheckpoint, LogFile, LogFileKind, commit_path};
use crate::storage::Storage;
use crate::{Error, Result};

/// How many commits a reader that cannot list fetches at once while probing.
const PROBE_BATCH: i64 = 8;

/// A commit file, with its bytes when probing already fetched them.
#[derive(Debug, Clone)]
pub struct CommitFile {
    /// The file.
    pub file: LogFile,
    /// Its contents, if already read.
    pub bytes: Option<Bytes>,
}

/// The files of one table version.
#[derive(Debug, Clone)]
pub struct LogSegment {
    /// The version these files describe.
    pub version: i64,
    /// The checkpoint parts to start from (empty: replay from commit 0).
    pub checkpoint: Vec<LogFile>,
    /// Commits after the checkpoint, in ascending version order.
    pub commits: Vec<CommitFile>,
}

impl LogSegment {
    /// Version of the checkpoint the segment starts from, if any.
    pub fn checkpoint_version(&self) -> Option<i64> {
        self.checkpoint.first().map(|f| f.version)
    }

    /// Finds the files for `version` (the latest when `None`).
    pub async fn load(storage: &dyn Storage, version: Option<i64>) -> Result<Self> {
        if let Some(v) = version
            && v < 0
        {
            return Err(Error::VersionNotFound {
                version: v,
                reason: "versions start at 0".into(),
            });
        }
        let hint = read_last_checkpoint(storage).await?;
        let usable_hint = hint.filter(|h| version.is_none_or(|v| h.version <= v));
        let start = usable_hint.as_ref().map(|h| h.version);
        match list_log(storage, start).await? {
            Some(files) => {
                let segment = Self::from_listing(storage, files, version).await;
                match (segment, start) {
                    // The hint may point at a checkpoint that is gone or
                    // incomplete: list the whole log before giving up.
                    (Err(_), Some(_)) => {
                        let all = list_log(storage, None).await?.unwrap_or_default();
                        Self::from_listing(storage, all, version).await
                    }
                    (result, _) => result,
                }
            }
            None => Self::probe(storage, usable_hint, version).await,
        }
    }

    /// The commits after `version`, in ascending order, listed (or probed
    /// for where storage cannot list). `None` when a listing shows that
    /// commit `version` itself is gone (the table was replaced). A gap is an
    /// error.
    pub async fn commits_after(
        storage: &dyn Storage,
        version: i64,
    ) -> Result<Option<Vec<CommitFile>>> {
        let first = version + 1;
        let commits: Vec<CommitFile> = match list_log(storage, Some(version)).await? {
            Some(files) => {
                let still_there = files
                    .iter()
                    .any(|f| f.kind == LogFileKind::Commit && f.version == version);
                if !still_there {
                    return Ok(None);
                }
                files
                    .into_iter()
                    .filter(|f| f.kind == LogFileKind::Commit && f.version >= first)
                    .map(|file| CommitFile { file, bytes: None })
                    .collect()
            }
            None => probe_commits(storage, first, None).await?,
        };
        let commits = fill_listing_gaps(storage, first, commits).await?;
        check_contiguous(first, &commits, None)?;
        Ok(Some(commits))
    }

    async fn from_listing(
        storage: &dyn Storage,
        files: Vec<LogFile>,
        version: Option<i64>,
    ) -> Result<Self> {
        let mut commits: BTreeMap<i64, LogFile> = BTreeMap::new();
        let mut checkpoints: BTreeMap<i64, Vec<LogFile>> = BTreeMap::new();
        let mut max_seen: Option<i64> = None;
        for file in files {
            max_seen = max_seen.max(Some(file.version));
            if version.is_some_and(|v| file.version > v) {
                continue;
            }
            if file.is_checkpoint() {
                checkpoints.entry(file.version).or_default().push(file);
            } else {
                commits.insert(file.version, file);
            }
        }
        let Some(max_seen) = max_seen else {
            return Err(Error::TableNotFound {
                location: storage.location(),
                reason: "no commits or checkpoints in _delta_log".into(),
            });
        };
        let checkpoint = checkpoints
            .into_iter()
            .rev()
            .find_map(|(_, parts)| complete_checkpoint(parts));
        let checkpoint_version = checkpoint
            .as_ref()
            .and_then(|c| c.first())
            .map(|f| f.version);
        let newest = commits
            .keys()
            .next_back()
            .copied()
            .max(checkpoint_version)
            .ok_or_else(|| match version {
                Some(v) => Error::VersionNotFound {
                    version: v,
                    reason: format!("the log starts after it (latest is {max_seen})"),
                },
                None => Error::TableNotFound {
                    location: storage.location(),
                    reason: "no commits or checkpoints in _delta_log".into(),
                },
            })?;
        if let Some(v) = version
            && newest < v
        {
            return Err(Error::VersionNotFound {
                version: v,
                reason: format!("the latest version is {newest}"),
            });
        }
        let after = checkpoint_version.map_or(0, |c| c + 1);
        let commits: Vec<CommitFile> = commits
            .into_iter()
            .filter(|(v, _)| *v >= after)
            .map(|(_, file)| CommitFile { file, bytes: None })
            .collect();
        let commits = fill_listing_gaps(storage, after, commits).await?;
        check_contiguous(after, &commits, version)?;
        Ok(Self {
            version: newest,
            checkpoint: checkpoint.unwrap_or_default(),
            commits,
        })
    }

    /// Builds a segment without listing: the checkpoint named by
    /// `_last_checkpoint`, then GETs of `N.json` until one is missing.
    async fn probe(
        storage: &dyn Storage,
        hint: Option<LastCheckpoint>,
        version: Option<i64>,
    ) -> Result<Self> {
        let checkpoint = hint.as_ref().map(LastCheckpoint::files).unwrap_or_default();
        let first = hint.as_ref().map_or(0, |h| h.version + 1);
        let commits = probe_commits(storage, first, version).await?;
        let newest = commits
            .last()
            .map(|c| c.file.version)
            .or(hint.as_ref().map(|h| h.version));
        let Some(newest) = newest else {
            return Err(match version {
                Some(v) if v > 0 => Error::VersionNotFound {
                    version: v,
                    reason: "commit 0 is missing and there is no checkpoint".into(),
                },
                _ => Error::TableNotFound {
                    location: storage.location(),
                    reason: "no _last_checkpoint and no 00000000000000000000.json".into(),
                },
            });
        };
        if let Some(v) = version
            && newest < v
        {
            return Err(Error::VersionNotFound {
                version: v,
                reason: format!("the latest version is {newest}"),
            });
        }
        Ok(Self {
            version: newest,
            checkpoint,
            commits,
        })
    }
}

/// GETs `N.json` from `first` on (up to `version`) until one is missing,
/// a batch at a time.
async fn probe_commits(
    storage: &dyn Storage,
    first: i64,
    version: Option<i64>,
) -> Result<Vec<CommitFile>> {
    let mut next = first;
    let mut commits = Vec::new();
    loop {
        let last = version.map_or(next + PROBE_BATCH - 1, |v| v.min(next + PROBE_BATCH - 1));
        if last < next {
            return Ok(commits);
        }
        let fetches = (next..=last).map(|v| async move {
            let path = commit_path(v);
            (v, storage.get(&path).await, path)
        });
        let mut missing = None;
        for (v, result, path) in join_all(fetches).await {
            match (result, missing) {
                (Ok(_), Some(gap)) => {
                    // The batch saw a later commit past a missing one.
                    return Err(Error::invalid_table(format!(
                        "log versions are not contiguous: {gap} is missing but {v} exists"
                    )));
                }
                (Ok(bytes), None) => commits.push(CommitFile {
                    file: LogFile::unlisted(v, LogFileKind::Commit, path),
                    bytes: Some(bytes),
                }),
                (Err(e), _) if e.is_not_found() => {
                    missing.get_or_insert(v);
                }
                (Err(e), _) => return Err(e),
            }
            if missing.is_none() {
                next = v + 1;
            }
        }
        if missing.is_some() {
            return Ok(commits);
        }
    }
}

/// Keeps a checkpoint only if all its parts are there.
fn complete_checkpoint(mut parts: Vec<LogFile>) -> Option<Vec<LogFile>> {
    // Prefer a v2 or single-file checkpoint over a multi-part one.
    if let Some(single) = parts.iter().find(|f| {
        matches!(
            f.kind,
            LogFileKind::V2Checkpoint | LogFileKind::SingleCheckpoint
        )
    }) {
        return Some(vec![single.clone()]);
    }
    let expected = parts.iter().find_map(|f| match f.kind {
        LogFileKind::MultiPartCheckpoint { parts, .. } => Some(parts),
        _ => None,
    })?;
    parts.retain(
        |f| matches!(f.kind, LogFileKind::MultiPartCheckpoint { parts, .. } if parts == expected),
    );
    parts.sort_by_key(|f| match f.kind {
        LogFileKind::MultiPartCheckpoint { part, .. } => part,
        _ => 0,
    });
    parts.dedup_by_key(|f| f.path.clone());
    (parts.len() == expected as usize).then_some(parts)
}

/// A listing taken while other writers commit can miss a commit that was
/// created during it and show a later one (a directory is not listed
/// atomically): each version missing between `first` and the last one
/// listed is asked for directly, and kept when it is there. Only a commit
/// that is really gone leaves a gap.
async fn fill_listing_gaps(
    storage: &dyn Storage,
    first: i64,
    mut commits: Vec<CommitFile>,
) -> Result<Vec<CommitFile>> {
    let Some(last) = commits.last().map(|c| c.file.version) else {
        return Ok(commits);
    };
    let listed: std::collections::HashSet<i64> = commits.iter().map(|c| c.file.version).collect();
    if listed.len() as i64 == last - first + 1 {
        return Ok(commits);
    }
    for version in first..last {
        if listed.contains(&version) {
            continue;
        }
        let path = commit_path(version);
        match storage.get(&path).await {
            Ok(bytes) => commits.push(CommitFile {
                file: LogFile::unlisted(version, LogFileKind::Commit, path),
                bytes: Some(bytes),
            }),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    commits.sort_by_key(|c| c.file.version);
    Ok(commits)
}

fn check_contiguous(first: i64, commits: &[CommitFile], version: Option<i64>) -> Result<()> {
    for (expected, commit) in (first..).zip(commits) {
        if commit.file.version != expected {
            return Err(if first == 0 && expected == 0 {
                Error::invalid_table(format!(
                    "commit 0 is missing and no checkpoint covers the log (first commit is {})",
                    commit.file.version
                ))
            } else {
                Error::invalid_table(format!(
                    "versions are not contiguous: commit {expected} is missing before {}",
                    commit.file.version
                ))
            });
        }
    }
    if commits.is_empty()
        && first == 0
        && let Some(v) = version
    {
        return Err(Error::VersionNotFound {
            version: v,
            reason: "commit 0 is missing".into(),
        });
    }
    Ok(())
}

/// Lists the log from `start` (inclusive); `None` when storage cannot list.
async fn list_log(storage: &dyn Storage, start: Option<i64>) -> Result<Option<Vec<LogFile>>> {
    let offset = start.map(|v| format!("{LOG_DIR}{v:020}"));
    let Some(listed) = storage.list(LOG_DIR, offset.as_deref()).await? else {
        return Ok(None);
    };
    let mut files: Vec<LogFile> = listed.iter().filter_map(LogFile::parse).collect();
    if start.is_none() && files.is_empty() && listed.is_empty() {
        return Err(Error::TableNotFound {
            location: storage.location(),
            reason: "_delta_log is missing or empty".into(),
        });
    }
    files.sort_by(|a, b| a.version.cmp(&b.version).then_with(|| a.path.cmp(&b.path)));
    Ok(Some(files))
}

/// Reads `_last_checkpoint`; a missing or unreadable one is no hint at all.
pub async fn read_last_checkpoint(storage: &dyn Storage) -> Result<Option<LastCheckpoint>> {
    let path = format!("{LOG_DIR}_last_checkpoint");
    match storage.get(&path).await {
        Ok(bytes) => match serde_json::from_slice::<LastCheckpoint>(&bytes) {
            Ok(hint) if hint.version >= 0 => Ok(Some(hint)),
            Ok(_) | Err(_) => {
                tracing::warn!(path, "ignoring corrupt _last_checkpoint");
                Ok(None)
            }
        },
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Range;

    use async_trait::async_trait;
    use bytes::Bytes;

    use super::*;
    use crate::storage::{FileMeta, MemoryStorage};

    /// A store whose listings miss one file that exists, as a listing
    /// taken while another writer commits can.
    #[derive(Debug)]
    struct RacingListing {
        inner: MemoryStorage,
        missed: String,
    }

    #[async_trait]
    impl Storage for RacingListing {
        fn location(&self) -> String {
            self.inner.location()
        }
        async fn get(&self, path: &str) -> Result<Bytes> {
            self.inner.get(path).await
        }
        async fn get_ranges(&self, path: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
            self.inner.get_ranges(path, ranges).await
        }
        async fn list(&self, prefix: &str, after: Option<&str>) -> Result<Option<Vec<FileMeta>>> {
            Ok(self.inner.list(prefix, after).await?.map(|files| {
                files
                    .into_iter()
                    .filter(|f| f.path != self.missed)
                    .collect()
            }))
        }
    }

    async fn log_of(versions: &[i64], missed: i64) -> RacingListing {
        let inner = MemoryStorage::new("memory:///t/");
        for version in versions {
            inner
                .put(&commit_path(*version), Bytes::from_static(b"{}\n"))
                .await
                .unwrap();
        }
        RacingListing {
            inner,
            missed: commit_path(missed),
        }
    }

    #[tokio::test]
    async fn a_commit_a_racing_listing_missed_is_found() {
        let storage = log_of(&[0, 1, 2, 3], 2).await;
        let segment = LogSegment::load(&storage, None).await.unwrap();
        let versions: Vec<i64> = segment.commits.iter().map(|c| c.file.version).collect();
        assert_eq!(versions, [0, 1, 2, 3]);
        let after = LogSegment::commits_after(&storage, 0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after.len(), 3);
    }

    #[tokio::test]
    async fn a_commit_really_missing_is_still_an_error() {
        let storage = log_of(&[0, 1, 3], 2).await;
        let err = LogSegment::load(&storage, None).await.unwrap_err();
        assert!(err.to_string().contains("not contiguous"), "{err}");
    }
}
