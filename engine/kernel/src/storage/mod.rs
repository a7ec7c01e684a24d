//! The one storage interface the engine reads through, its decorators
//! (range cache, metering, whole small files), an in-memory implementation,
//! and the check that a store makes commits exclusive. The backends that do
//! IO (object_store, HTTP, per-file URLs) are the `wavelake-storage` crate.
//!
//! Paths handed to a [`Storage`] are plain (not percent-encoded) and relative
//! to the table root, like `_delta_log/00000000000000000000.json` or
//! `part=1/data.parquet`. A path that is an absolute URI (an `add` outside
//! the table, a `p` deletion vector) is passed through unchanged; backends
//! resolve it or return [`Error::NotFound`].

use std::borrow::Cow;
use std::fmt::Debug;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{Error, Result};

mod cache;
mod footer_tails;
mod memory;
mod metered;
mod persistent;
mod probe;
pub mod send;
mod small_files;

pub use cache::{CachedStorage, RangeCache};
pub use footer_tails::FooterTails;
pub use memory::MemoryStorage;
pub use metered::{FetchFigures, FetchMeter, MeteredStorage};
pub use persistent::{
    BlobMeta, BlobStore, MemoryBlobStore, PersistentCache, PersistentFigures, PersistentStorage,
    is_immutable, remove_all,
};
pub use probe::check_exclusive_commits;
pub use small_files::{SMALL_FILE_BYTES, WholeSmallFiles};

/// Ranges closer than this are fetched with one request. Small: a point
/// query reads a column chunk's dictionary and one page far into it, and
/// the gap between them is bytes fetched for nothing; a scan's pages are
/// contiguous and coalesce at any gap.
pub const COALESCE_GAP: u64 = 64 * 1024;

/// A file found by [`Storage::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// Path relative to the table root.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Milliseconds since the epoch of the last modification.
    pub last_modified: i64,
}

/// Async access to the files of one table.
///
/// Every method's future is `Send` on every target, so DataFusion can poll
/// it; backends whose IO is not `Send` (browser `fetch`) bridge internally.
#[async_trait]
pub trait Storage: Send + Sync + Debug {
    /// A URL-like description of the table root, for messages.
    fn location(&self) -> String;

    /// Reads a whole file. A missing file is [`Error::NotFound`].
    async fn get(&self, path: &str) -> Result<Bytes>;

    /// Reads byte ranges of a file. Implementations issue the reads
    /// concurrently and coalesce nearby ranges; the result has one entry per
    /// range, in order. Never needs to learn the file's size first.
    async fn get_ranges(&self, path: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>>;

    /// Reads one byte range of a file.
    async fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        let mut parts = self.get_ranges(path, std::slice::from_ref(&range)).await?;
        Ok(parts.pop().unwrap_or_default())
    }

    /// Lists the files directly or indirectly under the directory `prefix`
    /// (like `_delta_log/`) whose paths sort after `start_after`, in
    /// ascending lexicographic order of path. Returns `Ok(None)` when the
    /// backend cannot list (plain HTTP); callers then probe with `get`.
    async fn list(&self, prefix: &str, start_after: Option<&str>) -> Result<Option<Vec<FileMeta>>>;

    /// Names of the directories directly under the directory `prefix`
    /// (`""` for the root), sorted. Backends that cannot list return none;
    /// a local filesystem may also name a directory whose files were all
    /// deleted (object stores have no directories to keep).
    async fn list_directories(&self, prefix: &str) -> Result<Vec<String>> {
        let _ = prefix;
        Ok(Vec::new())
    }

    /// Writes a whole file, replacing any file at `path` (data files, which
    /// have unique names). Read-only backends return [`Error::ReadOnly`].
    async fn put(&self, path: &str, bytes: Bytes) -> Result<()> {
        let _ = (path, bytes);
        Err(Error::ReadOnly {
            location: self.location(),
        })
    }

    /// Writes a file only if none exists at `path`, atomically: the step
    /// that makes a commit. A file already there is
    /// [`Error::AlreadyExists`] and nothing is written.
    async fn put_if_absent(&self, path: &str, bytes: Bytes) -> Result<()> {
        let _ = (path, bytes);
        Err(Error::ReadOnly {
            location: self.location(),
        })
    }

    /// Deletes a file; a file already gone is not an error.
    async fn delete(&self, path: &str) -> Result<()> {
        let _ = path;
        Err(Error::ReadOnly {
            location: self.location(),
        })
    }

    /// A file's size in bytes. Backends that can ask for it (a HEAD)
    /// override this; the default reads the file.
    async fn size(&self, path: &str) -> Result<u64> {
        Ok(self.get(path).await?.len() as u64)
    }

    /// A URL anyone can GET the file at for `expires_in` (S3 presigning);
    /// `None` when the backend cannot presign, and the server signs URLs of
    /// its own instead.
    async fn signed_url(
        &self,
        path: &str,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>> {
        let _ = (path, expires_in);
        Ok(None)
    }

    /// Something this storage offers those who write through it besides
    /// files, found by its type (a transaction's staged log takes what
    /// each statement read); `None` by default.
    fn extension(&self) -> Option<&(dyn std::any::Any + Send + Sync)> {
        None
    }
}

/// A shared, type-erased storage.
pub type StorageRef = Arc<dyn Storage>;

/// Turns an `add` or `remove` path (a percent-encoded URI reference) into a
/// storage path: relative paths are decoded; absolute URIs that point inside
/// `root` become relative; other absolute URIs are returned as they are.
pub fn resolve_data_path(root: &url::Url, uri: &str) -> String {
    resolve_data_path_ref(root, uri).into_owned()
}

/// [`resolve_data_path`], borrowing `uri` where it is already the storage
/// path (a relative path without escapes: the usual case, which log replay
/// keys 300k files by without copying them).
pub fn resolve_data_path_ref<'a>(root: &url::Url, uri: &'a str) -> Cow<'a, str> {
    // Only a URI with a scheme (`scheme:...`) or an absolute filesystem
    // path (a `file:` URI) is absolute; the usual relative path skips the
    // URL parser.
    if !uri.starts_with('/') && !uri.contains(':') {
        return decode(uri);
    }
    let qualified;
    let uri_text = if uri.starts_with('/') {
        qualified = format!("file://{uri}");
        qualified.as_str()
    } else {
        uri
    };
    match url::Url::parse(uri_text) {
        Ok(absolute) => {
            let root_str = root.as_str().trim_end_matches('/');
            let abs_str = absolute.as_str();
            if let Some(rest) = abs_str.strip_prefix(root_str)
                && let Some(rest) = rest.strip_prefix('/')
            {
                return Cow::Owned(decode(rest).into_owned());
            }
            Cow::Owned(absolute.to_string())
        }
        Err(_) => Cow::Owned(decode(uri_text).into_owned()),
    }
}

fn decode(s: &str) -> Cow<'_, str> {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy()
}

/// Maps a storage failure for `path` into the engine's error.
pub fn storage_error(path: &str, err: impl std::fmt::Display) -> Error {
    Error::Storage {
        path: path.to_owned(),
        message: err.to_string(),
    }
}

/// A metered in-memory table root holding `files` (name and length; byte
/// `i` of each is `i % 251`), for storage tests (the `testing` feature
/// offers it to other crates' tests).
#[cfg(any(test, feature = "testing"))]
pub async fn metered_memory_files(files: &[(&str, usize)]) -> MeteredStorage {
    let storage = MemoryStorage::new("memory:///t/");
    for (name, len) in files {
        let body: Vec<u8> = (0..*len).map(|i| (i % 251) as u8).collect();
        storage.insert(name, Bytes::from(body));
    }
    MeteredStorage::new(Arc::new(storage))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_and_absolute_paths() {
        let root = url::Url::parse("file:///data/my%20table/").expect("url");
        assert_eq!(resolve_data_path(&root, "a%20b/c.parquet"), "a b/c.parquet");
        assert_eq!(
            resolve_data_path(&root, "file:///data/my%20table/x=1/f.parquet"),
            "x=1/f.parquet"
        );
        assert_eq!(
            resolve_data_path(&root, "/data/my%20table/x=1/f.parquet"),
            "x=1/f.parquet"
        );
        assert_eq!(
            resolve_data_path(&root, "/elsewhere/f"),
            resolve_data_path(&root, "file:/elsewhere/f")
        );
        assert_eq!(
            resolve_data_path(&root, "s3://other/f.parquet"),
            "s3://other/f.parquet"
        );
    }
}
