//! A byte-budgeted in-memory cache of the ranges scans read (Parquet
//! footers, pages, deletion vectors), so repeated queries do not fetch
//! them again. Data files and deletion vectors never change once written,
//! so a range read once stays valid; whole-file reads (the log, whose
//! `_last_checkpoint` does change) are never cached.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use quick_cache::Weighter;

use super::{FetchMeter, FileMeta, Storage, StorageRef};
use crate::Result;

/// A range of a file of a table: the storage's location, the path, and
/// the byte range.
type RangeKey = (String, String, u64, u64);

#[derive(Debug, Clone, Copy)]
struct ByteWeight;

impl Weighter<RangeKey, Bytes> for ByteWeight {
    fn weight(&self, key: &RangeKey, bytes: &Bytes) -> u64 {
        // Keys cost memory too; never weigh an entry zero (those are
        // never evicted).
        (bytes.len() + key.0.len() + key.1.len() + 64) as u64
    }
}

/// Ranges of immutable files kept in memory up to a byte budget, least
/// recently used first out. One cache serves every table of a session.
pub struct RangeCache {
    ranges: Mutex<quick_cache::unsync::Cache<RangeKey, Bytes, ByteWeight>>,
    budget: u64,
}

impl std::fmt::Debug for RangeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeCache")
            .field("budget", &self.budget)
            .field("held", &self.held_bytes())
            .finish()
    }
}

impl RangeCache {
    /// A cache holding at most `budget` bytes.
    pub fn new(budget: u64) -> Self {
        // quick_cache sizes its tables from an item estimate: assume
        // ranges of about 64 KiB.
        let estimated = usize::try_from(budget / 65_536)
            .unwrap_or(usize::MAX)
            .max(16);
        Self {
            ranges: Mutex::new(quick_cache::unsync::Cache::with_weighter(
                estimated, budget, ByteWeight,
            )),
            budget,
        }
    }

    /// The byte budget.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes held now (with the keys' overhead).
    pub fn held_bytes(&self) -> u64 {
        self.with(|ranges| ranges.weight())
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut quick_cache::unsync::Cache<RangeKey, Bytes, ByteWeight>) -> T,
    ) -> T {
        match self.ranges.lock() {
            Ok(mut ranges) => f(&mut ranges),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    fn get(&self, key: &RangeKey) -> Option<Bytes> {
        self.with(|ranges| ranges.get(key).cloned())
    }

    fn insert(&self, key: RangeKey, bytes: &Bytes) {
        if bytes.len() as u64 > self.budget / 4 {
            // One huge range would push out everything else.
            return;
        }
        // A copy: the range may be a slice of a larger coalesced read,
        // which must not stay alive uncounted.
        let owned = Bytes::copy_from_slice(bytes);
        self.with(|ranges| ranges.insert(key, owned));
    }
}

/// Reads through a [`RangeCache`]: ranges found there are not fetched;
/// the others are fetched together from the inner storage and kept.
#[derive(Debug, Clone)]
pub struct CachedStorage {
    inner: StorageRef,
    /// The inner storage's location, once: it keys every range.
    location: String,
    cache: Arc<RangeCache>,
    /// Where bytes served from the cache are counted.
    meter: Option<Arc<FetchMeter>>,
}

impl CachedStorage {
    /// Caches the range reads of `inner` in `cache`.
    pub fn new(inner: StorageRef, cache: Arc<RangeCache>) -> Self {
        Self {
            location: inner.location(),
            inner,
            cache,
            meter: None,
        }
    }

    /// Counts bytes served from the cache in `meter`.
    pub fn with_meter(mut self, meter: Arc<FetchMeter>) -> Self {
        self.meter = Some(meter);
        self
    }

    fn key(&self, path: &str, range: &Range<u64>) -> RangeKey {
        (
            self.location.clone(),
            path.to_owned(),
            range.start,
            range.end,
        )
    }
}

#[async_trait]
impl Storage for CachedStorage {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn get(&self, path: &str) -> Result<Bytes> {
        self.inner.get(path).await
    }

    async fn get_ranges(&self, path: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let mut found: Vec<Option<Bytes>> = ranges
            .iter()
            .map(|range| self.cache.get(&self.key(path, range)))
            .collect();
        let hit_bytes: usize = found.iter().flatten().map(Bytes::len).sum();
        if let Some(meter) = &self.meter
            && hit_bytes > 0
        {
            meter.record_cached(hit_bytes);
        }
        let missing: Vec<usize> = (0..ranges.len()).filter(|&i| found[i].is_none()).collect();
        if !missing.is_empty() {
            let wanted: Vec<Range<u64>> = missing.iter().map(|&i| ranges[i].clone()).collect();
            let fetched = self.inner.get_ranges(path, &wanted).await?;
            for (index, bytes) in missing.into_iter().zip(fetched) {
                self.cache.insert(self.key(path, &ranges[index]), &bytes);
                found[index] = Some(bytes);
            }
        }
        Ok(found.into_iter().map(Option::unwrap_or_default).collect())
    }

    async fn list(&self, prefix: &str, start_after: Option<&str>) -> Result<Option<Vec<FileMeta>>> {
        self.inner.list(prefix, start_after).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{MeteredStorage, metered_memory_files};

    async fn metered_file(len: usize) -> MeteredStorage {
        metered_memory_files(&[("f.bin", len)]).await
    }

    #[tokio::test]
    async fn repeated_ranges_are_served_from_memory() {
        let metered = metered_file(10_000).await;
        let network = metered.meter();
        let served = Arc::new(FetchMeter::default());
        let cache = Arc::new(RangeCache::new(1 << 20));
        let cached =
            CachedStorage::new(Arc::new(metered), cache.clone()).with_meter(served.clone());
        let first = cached
            .get_ranges("f.bin", &[0..100, 5000..5100])
            .await
            .unwrap();
        assert_eq!(network.figures().bytes, 200);
        // Again, plus one new range: only the new one is fetched.
        let second = cached
            .get_ranges("f.bin", &[0..100, 7000..7010, 5000..5100])
            .await
            .unwrap();
        assert_eq!(network.figures().bytes, 210);
        assert_eq!(served.figures().cached_bytes, 200);
        assert_eq!(second[0], first[0]);
        assert_eq!(second[2], first[1]);
        assert_eq!(second[1].len(), 10);
        assert_eq!(second[1][0], (7000 % 251) as u8);
    }

    #[tokio::test]
    async fn the_budget_bounds_what_is_held() {
        let metered = metered_file(1 << 20).await;
        let cache = Arc::new(RangeCache::new(64 * 1024));
        let cached = CachedStorage::new(Arc::new(metered), cache.clone());
        for start in (0..1_000_000u64).step_by(10_000) {
            cached
                .get_range("f.bin", start..start + 8_000)
                .await
                .unwrap();
        }
        assert!(cache.held_bytes() <= 64 * 1024, "{cache:?}");
        assert!(cache.held_bytes() > 32 * 1024, "{cache:?}");
        // Ranges over a quarter of the budget are not kept at all.
        cached.get_range("f.bin", 0..20_000).await.unwrap();
        assert!(cache.get(&cached.key("f.bin", &(0..20_000))).is_none());
    }
}
