//! A [`Storage`] wrapper that counts what its reads fetch, so a scan can
//! report the requests and bytes it cost.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use super::{FileMeta, Storage, StorageRef};
use crate::Result;

/// Running totals of the reads made through a [`MeteredStorage`].
#[derive(Debug, Default)]
pub struct FetchMeter {
    requests: AtomicU64,
    bytes: AtomicU64,
    cached_bytes: AtomicU64,
    /// Paths read at least once.
    files: Mutex<HashSet<String>>,
}

/// A reading of a [`FetchMeter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchFigures {
    /// Reads made (a whole-file read or one range each).
    pub requests: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Bytes served from the in-memory range cache instead.
    pub cached_bytes: u64,
    /// Distinct files read from.
    pub files: u64,
}

impl FetchMeter {
    /// The totals so far.
    pub fn figures(&self) -> FetchFigures {
        FetchFigures {
            requests: self.requests.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            cached_bytes: self.cached_bytes.load(Ordering::Relaxed),
            files: match self.files.lock() {
                Ok(files) => files.len() as u64,
                Err(poisoned) => poisoned.into_inner().len() as u64,
            },
        }
    }

    /// Counts `bytes` served from a cache rather than fetched.
    pub fn record_cached(&self, bytes: usize) {
        self.cached_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn record(&self, path: &str, requests: usize, bytes: usize) {
        self.requests.fetch_add(requests as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        let mut files = match self.files.lock() {
            Ok(files) => files,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !files.contains(path) {
            files.insert(path.to_owned());
        }
    }
}

/// Forwards to another storage and counts every read in a [`FetchMeter`].
#[derive(Debug, Clone)]
pub struct MeteredStorage {
    inner: StorageRef,
    meter: Arc<FetchMeter>,
}

impl MeteredStorage {
    /// Counts the reads of `inner` in a new meter.
    pub fn new(inner: StorageRef) -> Self {
        Self::with_meter(inner, Arc::default())
    }

    /// Counts the reads of `inner` in `meter`, which other storages may
    /// share (one meter for every table of a session, say).
    pub fn with_meter(inner: StorageRef, meter: Arc<FetchMeter>) -> Self {
        Self { inner, meter }
    }

    /// The meter the reads are counted in.
    pub fn meter(&self) -> Arc<FetchMeter> {
        self.meter.clone()
    }
}

#[async_trait]
impl Storage for MeteredStorage {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn get(&self, path: &str) -> Result<Bytes> {
        let bytes = self.inner.get(path).await?;
        self.meter.record(path, 1, bytes.len());
        Ok(bytes)
    }

    async fn get_ranges(&self, path: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let parts = self.inner.get_ranges(path, ranges).await?;
        self.meter
            .record(path, ranges.len(), parts.iter().map(Bytes::len).sum());
        Ok(parts)
    }

    async fn list(&self, prefix: &str, start_after: Option<&str>) -> Result<Option<Vec<FileMeta>>> {
        let listed = self.inner.list(prefix, start_after).await?;
        if listed.is_some() {
            self.meter.requests.fetch_add(1, Ordering::Relaxed);
        }
        Ok(listed)
    }

    async fn put(&self, path: &str, bytes: Bytes) -> Result<()> {
        self.inner.put(path, bytes).await
    }

    async fn put_if_absent(&self, path: &str, bytes: Bytes) -> Result<()> {
        self.inner.put_if_absent(path, bytes).await
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.inner.delete(path).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::metered_memory_files;

    #[tokio::test]
    async fn counts_requests_and_bytes() {
        let metered = metered_memory_files(&[("f.bin", 1000)]).await;
        metered.get("f.bin").await.unwrap();
        metered
            .get_ranges("f.bin", &[0..10, 500..600])
            .await
            .unwrap();
        assert_eq!(
            metered.meter().figures(),
            FetchFigures {
                requests: 3,
                bytes: 1110,
                cached_bytes: 0,
                files: 1,
            }
        );
        assert!(metered.get("missing").await.is_err());
        assert_eq!(metered.meter().figures().requests, 3);
    }
}
