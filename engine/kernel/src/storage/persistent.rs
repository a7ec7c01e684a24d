//! A byte-budgeted cache of immutable table files that outlives the
//! process: in a page, the Origin Private File System, so that after a
//! reload a repeated query fetches no byte of data files, deletion vectors,
//! checkpoints or commits it read before. Only `_last_checkpoint` changes
//! in a Delta table, so it is never kept, and a version not seen yet is
//! asked of the network (a missing file is never remembered).
//!
//! Entries are blobs in a [`BlobStore`], named by a hash of what they hold
//! (the storage's location, the path, the range) and starting with that
//! key, which is checked on every read: a collision or a damaged blob is a
//! miss, never wrong bytes. When the budget is full the least recently
//! used entries go first: used means written, or read by this process
//! (another process knows only when entries were written).

use std::collections::HashMap;
use std::fmt::Debug;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use futures::lock::Mutex as AsyncMutex;
use sha2::{Digest, Sha256};

use super::{FileMeta, Storage, StorageRef};
use crate::Result;
use crate::log::LogFile;

/// One blob of a [`BlobStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    /// Its name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was written, in milliseconds since the epoch.
    pub written_ms: i64,
}

/// Named blobs that outlive the process: where a [`PersistentCache`] keeps
/// its entries (the Origin Private File System in pages).
#[async_trait]
pub trait BlobStore: Send + Sync + Debug {
    /// The blob `name`, or `None` when there is none.
    async fn read(&self, name: &str) -> Result<Option<Bytes>>;
    /// Writes the blob `name` whole, replacing any before it.
    async fn write(&self, name: &str, bytes: Bytes) -> Result<()>;
    /// Removes the blob `name`; one already gone is not an error.
    async fn remove(&self, name: &str) -> Result<()>;
    /// Every blob.
    async fn list(&self) -> Result<Vec<BlobMeta>>;
}

/// What a [`PersistentCache`] has done since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PersistentFigures {
    /// Reads answered from the cache.
    pub hits: u64,
    /// Reads of immutable files that went to the network.
    pub misses: u64,
    /// Bytes answered from the cache.
    pub bytes_served: u64,
    /// Bytes written to the cache.
    pub bytes_written: u64,
    /// Entries removed to stay within the budget.
    pub evictions: u64,
    /// Bytes the cache holds now (known once it has written or been
    /// measured; 0 before).
    pub bytes_held: u64,
    /// The byte budget.
    pub budget: u64,
}

/// Reads remembered between two writes (about 2 MiB of names).
const MAX_READS_REMEMBERED: usize = 1 << 16;

/// The first bytes of every entry: the format, then the key's length.
const MAGIC: &[u8; 4] = b"WLC1";

/// Entries held and their total size, read from the store once.
#[derive(Debug, Default)]
struct Held {
    entries: HashMap<String, (u64, i64)>,
    bytes: u64,
    /// Entries written by this process, in order: their times are later
    /// than any listed.
    clock: i64,
}

/// A budgeted cache of immutable file bytes in a [`BlobStore`]; share one
/// by every table of a page.
#[derive(Debug)]
pub struct PersistentCache {
    store: Arc<dyn BlobStore>,
    budget: u64,
    /// Loaded on the first write.
    held: AsyncMutex<Option<Held>>,
    hits: AtomicU64,
    misses: AtomicU64,
    bytes_served: AtomicU64,
    bytes_written: AtomicU64,
    evictions: AtomicU64,
    bytes_held: AtomicU64,
    /// Keys being written, so that concurrent misses write once.
    writing: Mutex<std::collections::HashSet<String>>,
    /// Writes started and not finished.
    pending: AtomicUsize,
    /// Entries read since the cache last made room, oldest read first:
    /// they count as newly used when it next does.
    read: Mutex<Vec<String>>,
}

impl PersistentCache {
    /// A cache of at most `budget` bytes in `store`.
    pub fn new(store: Arc<dyn BlobStore>, budget: u64) -> Self {
        Self {
            store,
            budget,
            held: AsyncMutex::new(None),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            bytes_served: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            bytes_held: AtomicU64::new(0),
            writing: Mutex::default(),
            read: Mutex::default(),
            pending: AtomicUsize::new(0),
        }
    }

    /// What the cache has done, and holds.
    pub fn figures(&self) -> PersistentFigures {
        PersistentFigures {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bytes_served: self.bytes_served.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            bytes_held: self.bytes_held.load(Ordering::Relaxed),
            budget: self.budget,
        }
    }

    /// Measures what the store holds once the writes under way are done.
    pub async fn measure(&self) -> Result<u64> {
        self.flush().await;
        let mut held = self.held.lock().await;
        let loaded = self.load(&mut held).await?;
        Ok(loaded.bytes)
    }

    /// Removes every entry (after the writes under way).
    pub async fn clear(&self) -> Result<()> {
        self.flush().await;
        let mut held = self.held.lock().await;
        remove_all(self.store.as_ref()).await?;
        *held = Some(Held::default());
        self.bytes_held.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// The bytes kept under `key`, if any and intact.
    async fn lookup(&self, key: &str) -> Option<Bytes> {
        let blob = match self.store.read(&blob_name(key)).await {
            Ok(Some(blob)) => blob,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!("persistent cache read failed, fetching instead: {e}");
                return None;
            }
        };
        let bytes = open_entry(key, &blob)?;
        if let Ok(mut read) = self.read.lock() {
            if read.len() >= MAX_READS_REMEMBERED {
                // A long session without writes: forget the older half.
                read.drain(..MAX_READS_REMEMBERED / 2);
            }
            read.push(blob_name(key));
        }
        self.hits.fetch_add(1, Ordering::Relaxed);
        self.bytes_served
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Some(bytes)
    }

    /// Keeps `bytes` under `key` in the background (the read that fetched
    /// them does not wait; [`Self::flush`] does), or right away where
    /// nothing can run in the background (outside a Tokio runtime).
    async fn keep(self: &Arc<Self>, key: String, bytes: Bytes) {
        let cache = self.clone();
        self.pending.fetch_add(1, Ordering::AcqRel);
        let write = async move {
            cache.keep_now(&key, &bytes).await;
            cache.pending.fetch_sub(1, Ordering::AcqRel);
        };
        if let Some(write) = spawn_detached(write) {
            write.await;
        }
    }

    /// Waits until the writes under way have finished.
    pub async fn flush(&self) {
        while self.pending.load(Ordering::Acquire) > 0 {
            crate::timer::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    /// Keeps `bytes` under `key`, making room by evicting the least
    /// recently used entries. A failure to write loses nothing but the
    /// entry.
    async fn keep_now(&self, key: &str, bytes: &Bytes) {
        let entry = seal_entry(key, bytes);
        let size = entry.len() as u64;
        if size > self.budget / 4 {
            // One huge file would push out everything else.
            return;
        }
        let name = blob_name(key);
        if let Ok(mut writing) = self.writing.lock()
            && !writing.insert(name.clone())
        {
            return;
        }
        if let Err(e) = self.write_entry(&name, entry, size).await {
            tracing::warn!("persistent cache write failed: {e}");
        }
        if let Ok(mut writing) = self.writing.lock() {
            writing.remove(&name);
        }
    }

    /// Counts the entry and makes room under the lock; the file system
    /// work runs outside it, so the writes of one query proceed together.
    async fn write_entry(&self, name: &str, entry: Bytes, size: u64) -> Result<()> {
        let victims = {
            let mut guard = self.held.lock().await;
            let held = self.load(&mut guard).await?;
            // What was read since counts as used now, so what is read
            // often outlives what was only written long ago.
            let read = self
                .read
                .lock()
                .map(|mut r| std::mem::take(&mut *r))
                .unwrap_or_default();
            for read_name in read {
                held.clock += 1;
                let clock = held.clock;
                if let Some((_, used)) = held.entries.get_mut(&read_name) {
                    *used = clock;
                }
            }
            if let Some((old, _)) = held.entries.remove(name) {
                held.bytes = held.bytes.saturating_sub(old);
            }
            let mut victims = Vec::new();
            while held.bytes + size > self.budget {
                let Some(oldest) = held
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, used))| *used)
                    .map(|(name, _)| name.clone())
                else {
                    break;
                };
                if let Some((old, _)) = held.entries.remove(&oldest) {
                    held.bytes = held.bytes.saturating_sub(old);
                }
                victims.push(oldest);
            }
            held.clock += 1;
            held.entries.insert(name.to_owned(), (size, held.clock));
            held.bytes += size;
            self.bytes_held.store(held.bytes, Ordering::Relaxed);
            victims
        };
        for victim in &victims {
            self.store.remove(victim).await?;
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        if let Err(e) = self.store.write(name, entry).await {
            let mut guard = self.held.lock().await;
            if let Some(held) = guard.as_mut()
                && let Some((old, _)) = held.entries.remove(name)
            {
                held.bytes = held.bytes.saturating_sub(old);
                self.bytes_held.store(held.bytes, Ordering::Relaxed);
            }
            return Err(e);
        }
        self.bytes_written.fetch_add(size, Ordering::Relaxed);
        Ok(())
    }

    /// The entries held, listed from the store the first time.
    async fn load<'a>(&self, held: &'a mut Option<Held>) -> Result<&'a mut Held> {
        if held.is_none() {
            let blobs = self.store.list().await?;
            let mut loaded = Held::default();
            for blob in blobs {
                loaded.clock = loaded.clock.max(blob.written_ms);
                loaded.bytes += blob.size;
                loaded
                    .entries
                    .insert(blob.name, (blob.size, blob.written_ms));
            }
            self.bytes_held.store(loaded.bytes, Ordering::Relaxed);
            *held = Some(loaded);
        }
        Ok(held.get_or_insert_with(Held::default))
    }
}

/// Removes every blob of `store`: what clearing a cache that is not open
/// (a page's "clear cached files") amounts to.
pub async fn remove_all(store: &dyn BlobStore) -> Result<()> {
    for blob in store.list().await? {
        store.remove(&blob.name).await?;
    }
    Ok(())
}

/// Runs `task` in the background: on the page's task queue in JavaScript
/// hosts, on the Tokio runtime natively. Gives it back when there is
/// neither (the caller then runs it).
#[cfg(not(target_arch = "wasm32"))]
fn spawn_detached<F>(task: F) -> Option<F>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(task);
            None
        }
        Err(_) => Some(task),
    }
}

/// See the native version.
#[cfg(target_arch = "wasm32")]
fn spawn_detached<F>(task: F) -> Option<F>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    wasm_bindgen_futures::spawn_local(task);
    None
}

/// The blob name of `key`: hex of the first 16 bytes of its SHA-256.
fn blob_name(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// An entry: magic, key length (u32 LE), key, then the bytes.
fn seal_entry(key: &str, bytes: &Bytes) -> Bytes {
    let mut entry = BytesMut::with_capacity(8 + key.len() + bytes.len());
    entry.put_slice(MAGIC);
    entry.put_u32_le(key.len() as u32);
    entry.put_slice(key.as_bytes());
    entry.put_slice(bytes);
    entry.freeze()
}

/// The bytes of an entry if it holds `key` (else a collision or damage).
fn open_entry(key: &str, entry: &Bytes) -> Option<Bytes> {
    let header = 8 + key.len();
    if entry.len() < header || &entry[..4] != MAGIC {
        return None;
    }
    let stored = u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]) as usize;
    (stored == key.len() && &entry[8..header] == key.as_bytes()).then(|| entry.slice(header..))
}

/// Whether the file at `path` (table-relative) never changes once written:
/// data files, deletion vectors, commits and checkpoints; not
/// `_last_checkpoint` or anything else the log directory holds.
pub fn is_immutable(path: &str) -> bool {
    match path.strip_prefix(crate::log::LOG_DIR) {
        None => true,
        Some(name) => {
            name.starts_with("_sidecars/")
                || LogFile::parse(&FileMeta {
                    path: path.to_owned(),
                    size: 0,
                    last_modified: 0,
                })
                .is_some()
        }
    }
}

/// Reads through a [`PersistentCache`]: immutable files found there are
/// not fetched; the others are fetched from the inner storage and kept.
/// Writes, listings and mutable files go straight to the inner storage.
#[derive(Debug, Clone)]
pub struct PersistentStorage {
    inner: StorageRef,
    /// The inner storage's location, once: it keys every entry.
    location: String,
    cache: Arc<PersistentCache>,
}

impl PersistentStorage {
    /// Caches the immutable reads of `inner` in `cache`.
    pub fn new(inner: StorageRef, cache: Arc<PersistentCache>) -> Self {
        Self {
            location: inner.location(),
            inner,
            cache,
        }
    }

    fn key(&self, path: &str, range: Option<&Range<u64>>) -> String {
        match range {
            Some(range) => format!("{}\n{path}\n{}-{}", self.location, range.start, range.end),
            None => format!("{}\n{path}\nwhole", self.location),
        }
    }
}

#[async_trait]
impl Storage for PersistentStorage {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn get(&self, path: &str) -> Result<Bytes> {
        if !is_immutable(path) {
            return self.inner.get(path).await;
        }
        let key = self.key(path, None);
        if let Some(bytes) = self.cache.lookup(&key).await {
            return Ok(bytes);
        }
        let bytes = self.inner.get(path).await?;
        self.cache.misses.fetch_add(1, Ordering::Relaxed);
        self.cache.keep(key, bytes.clone()).await;
        Ok(bytes)
    }

    async fn get_ranges(&self, path: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        if !is_immutable(path) {
            return self.inner.get_ranges(path, ranges).await;
        }
        // Looked up together: in a page each lookup is a chain of file
        // system promises, and a scan asks for hundreds of ranges.
        let keys: Vec<String> = ranges.iter().map(|r| self.key(path, Some(r))).collect();
        let mut found: Vec<Option<Bytes>> =
            futures::future::join_all(keys.iter().map(|key| self.cache.lookup(key))).await;
        let missing: Vec<usize> = (0..ranges.len()).filter(|&i| found[i].is_none()).collect();
        if !missing.is_empty() {
            let wanted: Vec<Range<u64>> = missing.iter().map(|&i| ranges[i].clone()).collect();
            let fetched = self.inner.get_ranges(path, &wanted).await?;
            self.cache
                .misses
                .fetch_add(missing.len() as u64, Ordering::Relaxed);
            for (index, bytes) in missing.into_iter().zip(fetched) {
                self.cache
                    .keep(self.key(path, Some(&ranges[index])), bytes.clone())
                    .await;
                found[index] = Some(bytes);
            }
        }
        Ok(found.into_iter().map(Option::unwrap_or_default).collect())
    }

    async fn list(&self, prefix: &str, start_after: Option<&str>) -> Result<Option<Vec<FileMeta>>> {
        self.inner.list(prefix, start_after).await
    }

    async fn list_directories(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list_directories(prefix).await
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

    async fn size(&self, path: &str) -> Result<u64> {
        self.inner.size(path).await
    }

    async fn signed_url(
        &self,
        path: &str,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>> {
        self.inner.signed_url(path, expires_in).await
    }

    fn extension(&self) -> Option<&(dyn std::any::Any + Send + Sync)> {
        self.inner.extension()
    }
}

/// A [`BlobStore`] in memory, for tests and hosts without persistent
/// storage (it outlives nothing).
#[derive(Debug, Default)]
pub struct MemoryBlobStore {
    blobs: Mutex<HashMap<String, (Bytes, i64)>>,
    writes: AtomicU64,
}

impl MemoryBlobStore {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, (Bytes, i64)>) -> T) -> T {
        match self.blobs.lock() {
            Ok(mut blobs) => f(&mut blobs),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Overwrites blob `name` with `bytes` as they are (tests damage blobs).
    pub fn replace_raw(&self, name: &str, bytes: Bytes) {
        self.with(|blobs| {
            if let Some(blob) = blobs.get_mut(name) {
                blob.0 = bytes;
            }
        });
    }
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    async fn read(&self, name: &str) -> Result<Option<Bytes>> {
        Ok(self.with(|blobs| blobs.get(name).map(|(bytes, _)| bytes.clone())))
    }

    async fn write(&self, name: &str, bytes: Bytes) -> Result<()> {
        let order = self.writes.fetch_add(1, Ordering::Relaxed) as i64;
        self.with(|blobs| blobs.insert(name.to_owned(), (bytes, order)));
        Ok(())
    }

    async fn remove(&self, name: &str) -> Result<()> {
        self.with(|blobs| blobs.remove(name));
        Ok(())
    }

    async fn list(&self) -> Result<Vec<BlobMeta>> {
        Ok(self.with(|blobs| {
            blobs
                .iter()
                .map(|(name, (bytes, written_ms))| BlobMeta {
                    name: name.clone(),
                    size: bytes.len() as u64,
                    written_ms: *written_ms,
                })
                .collect()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{MemoryStorage, MeteredStorage, metered_memory_files};

    fn persistent(
        inner: MeteredStorage,
        store: &Arc<MemoryBlobStore>,
        budget: u64,
    ) -> (PersistentStorage, Arc<PersistentCache>) {
        let cache = Arc::new(PersistentCache::new(store.clone(), budget));
        (
            PersistentStorage::new(Arc::new(inner), cache.clone()),
            cache,
        )
    }

    #[tokio::test]
    async fn a_new_process_reads_immutable_files_from_the_cache_and_fetches_nothing() {
        let store = Arc::new(MemoryBlobStore::default());
        let files = [
            ("part-0.parquet", 10_000),
            ("_delta_log/00000000000000000000.json", 300),
        ];
        let first_network = metered_memory_files(&files).await;
        let meter = first_network.meter();
        let (first, first_cache) = persistent(first_network, &store, 1 << 20);
        let ranges = first
            .get_ranges("part-0.parquet", &[0..100, 9_000..10_000])
            .await
            .unwrap();
        let commit = first
            .get("_delta_log/00000000000000000000.json")
            .await
            .unwrap();
        assert_eq!(meter.figures().bytes, 1_400);
        first_cache.flush().await;

        // "After a reload": a new cache object over the same blobs.
        let second_network = metered_memory_files(&files).await;
        let meter = second_network.meter();
        let (second, cache) = persistent(second_network, &store, 1 << 20);
        assert_eq!(
            second
                .get_ranges("part-0.parquet", &[0..100, 9_000..10_000])
                .await
                .unwrap(),
            ranges
        );
        assert_eq!(
            second
                .get("_delta_log/00000000000000000000.json")
                .await
                .unwrap(),
            commit
        );
        assert_eq!(meter.figures().requests, 0);
        let figures = cache.figures();
        assert_eq!((figures.hits, figures.misses), (3, 0));
        assert_eq!(figures.bytes_served, 1_400);
        // A range not read before is fetched, alone.
        second.get_range("part-0.parquet", 200..300).await.unwrap();
        assert_eq!(meter.figures().bytes, 100);
        assert_eq!(cache.figures().misses, 1);
    }

    #[tokio::test]
    async fn last_checkpoint_and_missing_files_always_go_to_the_network() {
        let store = Arc::new(MemoryBlobStore::default());
        let cache = Arc::new(PersistentCache::new(store.clone(), 1 << 20));
        let inner: StorageRef = Arc::new(MemoryStorage::new("memory://t/"));
        let storage = PersistentStorage::new(inner.clone(), cache.clone());
        let hint = "_delta_log/_last_checkpoint";
        let next = "_delta_log/00000000000000000001.json";
        inner
            .put(hint, Bytes::from_static(b"{\"version\":0}"))
            .await
            .unwrap();
        assert_eq!(storage.get(hint).await.unwrap(), &b"{\"version\":0}"[..]);
        let missing = storage.get(next).await;
        assert!(
            matches!(missing, Err(crate::Error::NotFound { .. })),
            "{missing:?}"
        );
        // The table moves on: both reads see it.
        inner
            .put(hint, Bytes::from_static(b"{\"version\":1}"))
            .await
            .unwrap();
        inner.put(next, Bytes::from_static(b"{}")).await.unwrap();
        assert_eq!(storage.get(hint).await.unwrap(), &b"{\"version\":1}"[..]);
        assert_eq!(storage.get(next).await.unwrap(), &b"{}"[..]);
        // Only the commit was kept.
        cache.flush().await;
        assert_eq!(store.list().await.unwrap().len(), 1);
        assert_eq!(cache.figures().hits, 0);
    }

    #[test]
    fn only_files_delta_never_rewrites_are_immutable() {
        assert!(is_immutable("year=2024/part-0001.snappy.parquet"));
        assert!(is_immutable("deletion_vector_4f2a.bin"));
        assert!(is_immutable("_delta_log/00000000000000000007.json"));
        assert!(is_immutable(
            "_delta_log/00000000000000000010.checkpoint.parquet"
        ));
        assert!(is_immutable("_delta_log/_sidecars/3a0d65cd.parquet"));
        assert!(!is_immutable("_delta_log/_last_checkpoint"));
        assert!(!is_immutable("_delta_log/00000000000000000007.json.tmp"));
    }

    #[tokio::test]
    async fn a_damaged_or_colliding_entry_is_a_miss_not_wrong_bytes() {
        let store = Arc::new(MemoryBlobStore::default());
        let (storage, cache) = persistent(
            metered_memory_files(&[("f.parquet", 1_000)]).await,
            &store,
            1 << 20,
        );
        let good = storage.get_range("f.parquet", 0..500).await.unwrap();
        cache.flush().await;
        let name = store.list().await.unwrap()[0].name.clone();
        // Same name, another key inside (a collision), then torn bytes.
        for bad in [
            seal_entry("elsewhere\nf.parquet\n0-500", &Bytes::from_static(b"wrong")),
            Bytes::from_static(b"WLC1\xff\xff"),
        ] {
            store.replace_raw(&name, bad);
            assert_eq!(storage.get_range("f.parquet", 0..500).await.unwrap(), good);
        }
        assert_eq!(cache.figures().hits, 0);
    }

    /// Reads 900 bytes of `f.parquet` at every 1,000 in `starts`, each kept
    /// before the next is read.
    async fn keep_ranges(
        storage: &PersistentStorage,
        cache: &PersistentCache,
        starts: std::ops::Range<u64>,
    ) {
        for start in starts.step_by(1_000) {
            storage
                .get_range("f.parquet", start..start + 900)
                .await
                .unwrap();
            cache.flush().await;
        }
    }

    #[tokio::test]
    async fn the_budget_evicts_the_oldest_entries_first_and_clear_empties_it() {
        let store = Arc::new(MemoryBlobStore::default());
        let (storage, cache) = persistent(
            metered_memory_files(&[("f.parquet", 100_000)]).await,
            &store,
            10_000,
        );
        keep_ranges(&storage, &cache, 0..20_000).await;
        let figures = cache.figures();
        assert!(figures.bytes_held <= 10_000, "{figures:?}");
        let listed: u64 = store.list().await.unwrap().iter().map(|b| b.size).sum();
        assert_eq!(listed, figures.bytes_held);
        assert!(figures.evictions >= 10, "{figures:?}");
        // The newest range is still held, the oldest is not.
        let held = |start: u64| storage.key("f.parquet", Some(&(start..start + 900)));
        assert!(
            store
                .read(&blob_name(&held(19_000)))
                .await
                .unwrap()
                .is_some()
        );
        assert!(store.read(&blob_name(&held(0))).await.unwrap().is_none());
        // A new cache over the same store knows what it holds.
        let reopened = PersistentCache::new(store.clone(), 10_000);
        assert_eq!(reopened.measure().await.unwrap(), figures.bytes_held);
        cache.clear().await.unwrap();
        assert!(store.list().await.unwrap().is_empty());
        assert_eq!(cache.figures().bytes_held, 0);
    }

    #[tokio::test]
    async fn entries_read_again_outlive_entries_only_written() {
        let store = Arc::new(MemoryBlobStore::default());
        let (storage, cache) = persistent(
            metered_memory_files(&[("f.parquet", 100_000)]).await,
            &store,
            10_000,
        );
        // Ten entries of about 930 bytes fill the budget.
        keep_ranges(&storage, &cache, 0..10_000).await;
        // The first one written is read again; then new ones need room.
        storage.get_range("f.parquet", 0..900).await.unwrap();
        assert_eq!(cache.figures().hits, 1);
        keep_ranges(&storage, &cache, 10_000..13_000).await;
        let held = |start: u64| {
            let name = blob_name(&storage.key("f.parquet", Some(&(start..start + 900))));
            let store = store.clone();
            async move { store.read(&name).await.unwrap().is_some() }
        };
        assert!(held(0).await, "read again: kept");
        assert!(!held(1_000).await, "the oldest only written: evicted");
        assert!(held(12_000).await);
    }

    /// A store whose writes wait for a permit.
    #[derive(Debug)]
    struct GatedStore {
        inner: MemoryBlobStore,
        gate: tokio::sync::Semaphore,
    }

    #[async_trait]
    impl BlobStore for GatedStore {
        async fn read(&self, name: &str) -> Result<Option<Bytes>> {
            self.inner.read(name).await
        }
        async fn write(&self, name: &str, bytes: Bytes) -> Result<()> {
            let _permit = self.gate.acquire().await;
            self.inner.write(name, bytes).await
        }
        async fn remove(&self, name: &str) -> Result<()> {
            self.inner.remove(name).await
        }
        async fn list(&self) -> Result<Vec<BlobMeta>> {
            self.inner.list().await
        }
    }

    #[tokio::test]
    async fn a_read_does_not_wait_for_its_bytes_to_be_kept() {
        let store = Arc::new(GatedStore {
            inner: MemoryBlobStore::default(),
            gate: tokio::sync::Semaphore::new(0),
        });
        let cache = Arc::new(PersistentCache::new(store.clone(), 1 << 20));
        let network = metered_memory_files(&[("f.parquet", 1_000)]).await;
        let storage = PersistentStorage::new(Arc::new(network), cache.clone());
        // The write is blocked, the read answers anyway.
        let bytes = storage.get_range("f.parquet", 0..500).await.unwrap();
        assert_eq!(bytes.len(), 500);
        assert!(store.list().await.unwrap().is_empty());
        store.gate.add_permits(1);
        cache.flush().await;
        assert_eq!(store.list().await.unwrap().len(), 1);
        assert_eq!(cache.measure().await.unwrap(), cache.figures().bytes_held);
    }

    /// A store that refuses every write (a full or revoked file system).
    #[derive(Debug, Default)]
    struct RefusingStore;

    #[async_trait]
    impl BlobStore for RefusingStore {
        async fn read(&self, _: &str) -> Result<Option<Bytes>> {
            Ok(None)
        }
        async fn write(&self, name: &str, _: Bytes) -> Result<()> {
            Err(crate::Error::Storage {
                path: name.to_owned(),
                message: "quota exceeded".into(),
            })
        }
        async fn remove(&self, _: &str) -> Result<()> {
            Ok(())
        }
        async fn list(&self) -> Result<Vec<BlobMeta>> {
            Ok(Vec::new())
        }
    }

    #[tokio::test]
    async fn a_store_that_refuses_writes_loses_nothing_but_the_entries() {
        let cache = Arc::new(PersistentCache::new(Arc::new(RefusingStore), 1 << 20));
        let network = metered_memory_files(&[("f.parquet", 1_000)]).await;
        let storage = PersistentStorage::new(Arc::new(network), cache.clone());
        for _ in 0..2 {
            assert_eq!(
                storage.get_range("f.parquet", 0..500).await.unwrap().len(),
                500
            );
            cache.flush().await;
        }
        let figures = cache.figures();
        assert_eq!((figures.hits, figures.misses), (0, 2));
        assert_eq!((figures.bytes_held, figures.bytes_written), (0, 0));
    }

    #[tokio::test]
    async fn writes_and_listings_pass_through() {
        let store = Arc::new(MemoryBlobStore::default());
        let cache = Arc::new(PersistentCache::new(store.clone(), 1 << 20));
        let inner: StorageRef = Arc::new(MemoryStorage::new("memory://t/"));
        let storage = PersistentStorage::new(inner.clone(), cache);
        storage
            .put_if_absent(
                "_delta_log/00000000000000000000.json",
                Bytes::from_static(b"{}"),
            )
            .await
            .unwrap();
        assert_eq!(
            inner
                .get("_delta_log/00000000000000000000.json")
                .await
                .unwrap(),
            Bytes::from_static(b"{}")
        );
        let listed = storage.list("_delta_log/", None).await.unwrap().unwrap();
        assert_eq!(listed.len(), 1);
    }
}
