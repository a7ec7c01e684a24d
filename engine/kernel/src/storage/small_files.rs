//! Small data files read whole. A scan of many small files (streaming
//! appends, fine partitions) would otherwise spend one request on each
//! file's footer and more on its pages; over HTTP from a page, requests,
//! not bytes, are what such a scan waits on. Files the log says hold at
//! most [`SMALL_FILE_BYTES`] are fetched in one request on first use, and
//! their ranges served from memory while the scan runs.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use quick_cache::Weighter;

use super::{FileMeta, Storage, StorageRef};
use crate::{Error, Result};

/// Files up to this size are read whole.
pub const SMALL_FILE_BYTES: u64 = 256 * 1024;

/// Whole files one scan holds at once at most, in bytes; beyond it the
/// least recently used is dropped (and read again if asked for).
const HELD_BYTES: u64 = 32 << 20;

#[derive(Debug, Clone, Copy)]
struct FileWeight;

impl Weighter<String, Bytes> for FileWeight {
    fn weight(&self, path: &String, bytes: &Bytes) -> u64 {
        (bytes.len() + path.len() + 64) as u64
    }
}

/// A storage that reads the small files it is told of whole.
pub struct WholeSmallFiles {
    inner: StorageRef,
    /// Sizes of the small files, by path, as the log gives them.
    sizes: HashMap<String, u64>,
    held: Mutex<quick_cache::unsync::Cache<String, Bytes, FileWeight>>,
}

impl std::fmt::Debug for WholeSmallFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WholeSmallFiles")
            .field("inner", &self.inner)
            .field("small_files", &self.sizes.len())
            .finish()
    }
}

impl WholeSmallFiles {
    /// Reads through `inner`; of `files` (path and size from the log), those
    /// of at most [`SMALL_FILE_BYTES`] are read whole.
    pub fn new(inner: StorageRef, files: impl IntoIterator<Item = (String, u64)>) -> Self {
        let sizes: HashMap<String, u64> = files
            .into_iter()
            .filter(|(_, size)| *size <= SMALL_FILE_BYTES)
            .collect();
        let estimated = usize::try_from(HELD_BYTES / SMALL_FILE_BYTES).unwrap_or(16);
        Self {
            inner,
            sizes,
            held: Mutex::new(quick_cache::unsync::Cache::with_weighter(
                estimated, HELD_BYTES, FileWeight,
            )),
        }
    }

    /// Whether any file will be read whole.
    pub fn has_small_files(&self) -> bool {
        !self.sizes.is_empty()
    }

    fn held(&self, path: &str) -> Option<Bytes> {
        match self.held.lock() {
            Ok(held) => held.get(path).cloned(),
            Err(poisoned) => poisoned.into_inner().get(path).cloned(),
        }
    }

    fn hold(&self, path: &str, bytes: Bytes) {
        match self.held.lock() {
            Ok(mut held) => held.insert(path.to_owned(), bytes),
            Err(poisoned) => poisoned.into_inner().insert(path.to_owned(), bytes),
        }
    }

    /// The whole small file at `path` of `size` bytes.
    async fn whole(&self, path: &str, size: u64) -> Result<Bytes> {
        if let Some(bytes) = self.held(path) {
            return Ok(bytes);
        }
        let bytes = self.inner.get_range(path, 0..size).await?;
        if bytes.len() as u64 != size {
            return Err(Error::Corrupt {
                path: path.to_owned(),
                reason: format!(
                    "the log says the file has {size} bytes, the storage returned {}",
                    bytes.len()
                ),
            });
        }
        self.hold(path, bytes.clone());
        Ok(bytes)
    }
}

#[async_trait]
impl Storage for WholeSmallFiles {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn get(&self, path: &str) -> Result<Bytes> {
        match self.sizes.get(path) {
            Some(size) => self.whole(path, *size).await,
            None => self.inner.get(path).await,
        }
    }

    async fn get_ranges(&self, path: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let Some(size) = self.sizes.get(path) else {
            return self.inner.get_ranges(path, ranges).await;
        };
        let whole = self.whole(path, *size).await?;
        ranges
            .iter()
            .map(|range| {
                let inside = range.start <= range.end && range.end <= *size;
                if !inside {
                    return Err(Error::Corrupt {
                        path: path.to_owned(),
                        reason: format!(
                            "bytes {}..{} were asked of a file of {size} bytes",
                            range.start, range.end
                        ),
                    });
                }
                // Within `size`, which is the length of `whole`.
                Ok(whole.slice(range.start as usize..range.end as usize))
            })
            .collect()
    }

    async fn list(&self, prefix: &str, start_after: Option<&str>) -> Result<Option<Vec<FileMeta>>> {
        self.inner.list(prefix, start_after).await
    }

    async fn list_directories(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list_directories(prefix).await
    }

    async fn size(&self, path: &str) -> Result<u64> {
        match self.sizes.get(path) {
            Some(size) => Ok(*size),
            None => self.inner.size(path).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::storage::metered_memory_files as files;

    #[tokio::test]
    async fn a_small_file_is_fetched_once_and_its_ranges_sliced() {
        let metered = files(&[("small.parquet", 5_000), ("big.parquet", 400_000)]).await;
        let network = metered.meter();
        let storage = WholeSmallFiles::new(
            Arc::new(metered),
            [
                ("small.parquet".to_owned(), 5_000),
                ("big.parquet".to_owned(), 400_000),
            ],
        );
        let tail = storage
            .get_range("small.parquet", 4_992..5_000)
            .await
            .unwrap();
        let parts = storage
            .get_ranges("small.parquet", &[0..4, 1_000..1_010])
            .await
            .unwrap();
        assert_eq!(network.figures().requests, 1, "one request for the file");
        assert_eq!(network.figures().bytes, 5_000);
        assert_eq!(tail[0], (4_992 % 251) as u8);
        assert_eq!(parts[1].len(), 10);
        assert_eq!(parts[1][0], (1_000 % 251) as u8);
        // A big file is read by ranges, as asked.
        let big = storage.get_range("big.parquet", 100..200).await.unwrap();
        assert_eq!(big.len(), 100);
        assert_eq!(network.figures().requests, 2);
        assert_eq!(network.figures().bytes, 5_100);
    }

    #[tokio::test]
    async fn a_file_shorter_than_the_log_says_is_corrupt_not_a_panic() {
        let metered = files(&[("f.parquet", 100)]).await;
        let storage = WholeSmallFiles::new(Arc::new(metered), [("f.parquet".to_owned(), 150)]);
        assert!(storage.get_range("f.parquet", 0..10).await.is_err());
        let truthful = WholeSmallFiles::new(
            Arc::new(files(&[("f.parquet", 100)]).await),
            [("f.parquet".to_owned(), 100)],
        );
        let beyond = truthful.get_range("f.parquet", 90..120).await.unwrap_err();
        assert!(matches!(beyond, Error::Corrupt { .. }), "{beyond}");
        let missing = WholeSmallFiles::new(
            Arc::new(files(&[]).await),
            [("gone.parquet".to_owned(), 10)],
        );
        let gone = missing.get_range("gone.parquet", 0..4).await.unwrap_err();
        assert!(matches!(gone, Error::NotFound { .. }), "{gone}");
    }
}
