//! The ends of data files a scan read for their footers, kept while it
//! runs. A Parquet reader given a size hint reads the last bytes of a file
//! at once (DataFusion's `metadata_size_hint`), which hold the footer and,
//! right before it, the page index; DataFusion then asks for the page
//! index by its own range. Kept, the end of the file answers that request
//! without another round trip, which from a page costs more than its bytes.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use quick_cache::Weighter;

use super::{FileMeta, Storage, StorageRef};
use crate::Result;

/// The longest end of a file kept (a footer with its page index).
const MOST_TAIL_BYTES: u64 = 1 << 20;

/// Ends of files one scan holds at once at most, in bytes; beyond it the
/// least recently used is dropped.
const HELD_BYTES: u64 = 16 << 20;

#[derive(Debug, Clone, Copy)]
struct TailWeight;

impl Weighter<String, (u64, Bytes)> for TailWeight {
    fn weight(&self, path: &String, tail: &(u64, Bytes)) -> u64 {
        (tail.1.len() + path.len() + 64) as u64
    }
}

/// A storage that keeps what it reads from the end of the files it is told
/// of, and serves later reads inside it from memory.
pub struct FooterTails {
    inner: StorageRef,
    /// Sizes of the files, by path, as the log gives them.
    sizes: HashMap<String, u64>,
    /// By path: where the kept end starts, and its bytes.
    held: Mutex<quick_cache::unsync::Cache<String, (u64, Bytes), TailWeight>>,
}

impl std::fmt::Debug for FooterTails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FooterTails")
            .field("inner", &self.inner)
            .field("files", &self.sizes.len())
            .finish()
    }
}

impl FooterTails {
    /// Reads through `inner`, keeping the ends read of `files` (path and
    /// size from the log).
    pub fn new(inner: StorageRef, files: impl IntoIterator<Item = (String, u64)>) -> Self {
        let sizes: HashMap<String, u64> = files.into_iter().collect();
        let estimated = usize::try_from(HELD_BYTES / (128 << 10)).unwrap_or(16);
        Self {
            inner,
            sizes,
            held: Mutex::new(quick_cache::unsync::Cache::with_weighter(
                estimated, HELD_BYTES, TailWeight,
            )),
        }
    }

    fn held(&self, path: &str) -> Option<(u64, Bytes)> {
        match self.held.lock() {
            Ok(held) => held.get(path).cloned(),
            Err(poisoned) => poisoned.into_inner().get(path).cloned(),
        }
    }

    fn hold(&self, path: &str, start: u64, bytes: Bytes) {
        match self.held.lock() {
            Ok(mut held) => held.insert(path.to_owned(), (start, bytes)),
            Err(poisoned) => poisoned
                .into_inner()
                .insert(path.to_owned(), (start, bytes)),
        }
    }

    /// `ranges` cut from the kept end of `path`, if it holds them all.
    fn cut_from_tail(&self, path: &str, ranges: &[Range<u64>]) -> Option<Vec<Bytes>> {
        let (start, tail) = self.held(path)?;
        let end = start + tail.len() as u64;
        ranges
            .iter()
            .map(|range| {
                let inside = start <= range.start && range.start <= range.end && range.end <= end;
                inside.then(|| {
                    tail.slice((range.start - start) as usize..(range.end - start) as usize)
                })
            })
            .collect()
    }
}

#[async_trait]
impl Storage for FooterTails {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn get(&self, path: &str) -> Result<Bytes> {
        self.inner.get(path).await
    }

    async fn get_ranges(&self, path: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let Some(size) = self.sizes.get(path).copied() else {
            return self.inner.get_ranges(path, ranges).await;
        };
        if let Some(parts) = self.cut_from_tail(path, ranges) {
            return Ok(parts);
        }
        let parts = self.inner.get_ranges(path, ranges).await?;
        // A read reaching the end of the file, no longer than a footer
        // with its index, whole as asked: keep the longest.
        let tail = ranges
            .iter()
            .zip(&parts)
            .filter(|(range, bytes)| {
                range.end == size
                    && range.end - range.start <= MOST_TAIL_BYTES
                    && bytes.len() as u64 == range.end - range.start
            })
            .min_by_key(|(range, _)| range.start);
        if let Some((range, bytes)) = tail {
            let longer = self.held(path).is_none_or(|(start, _)| range.start < start);
            if longer {
                self.hold(path, range.start, bytes.clone());
            }
        }
        Ok(parts)
    }

    async fn list(&self, prefix: &str, start_after: Option<&str>) -> Result<Option<Vec<FileMeta>>> {
        self.inner.list(prefix, start_after).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{FetchMeter, MemoryStorage, MeteredStorage};
    use std::sync::Arc;

    fn file() -> Bytes {
        Bytes::from((0..=255u8).cycle().take(10_000).collect::<Vec<u8>>())
    }

    /// `FooterTails` over a memory storage holding `file()` at `f`, and the
    /// meter of what reached the memory storage.
    async fn tails() -> (FooterTails, Arc<FetchMeter>) {
        let memory = MemoryStorage::new("memory://t");
        memory.put("f", file()).await.expect("put");
        let meter = Arc::new(FetchMeter::default());
        let metered: StorageRef =
            Arc::new(MeteredStorage::with_meter(Arc::new(memory), meter.clone()));
        (FooterTails::new(metered, [("f".to_owned(), 10_000)]), meter)
    }

    #[tokio::test]
    async fn reads_inside_a_kept_end_are_served_from_it() {
        let (tails, meter) = tails().await;
        let whole = file();
        let end = tails.get_range("f", 9_000..10_000).await.expect("end");
        assert_eq!(end, whole.slice(9_000..10_000));
        let fetched = meter.figures().bytes;
        let index = tails
            .get_ranges("f", &[9_100..9_200, 9_990..10_000])
            .await
            .expect("inside");
        assert_eq!(index[0], whole.slice(9_100..9_200));
        assert_eq!(index[1], whole.slice(9_990..10_000));
        assert_eq!(meter.figures().bytes, fetched, "nothing fetched again");
        // Outside the kept end: read.
        let before = tails.get_range("f", 8_000..9_100).await.expect("before");
        assert_eq!(before, whole.slice(8_000..9_100));
        assert_eq!(meter.figures().bytes, fetched + 1_100);
    }

    #[tokio::test]
    async fn only_reads_reaching_the_end_are_kept() {
        let (tails, meter) = tails().await;
        tails.get_range("f", 100..200).await.expect("middle");
        tails.get_range("f", 150..160).await.expect("again");
        assert_eq!(meter.figures().bytes, 110, "a middle range is not kept");
        // A shorter end after a longer one keeps the longer.
        tails.get_range("f", 5_000..10_000).await.expect("long end");
        tails
            .get_range("f", 9_992..10_000)
            .await
            .expect("short end");
        let kept = tails.get_range("f", 6_000..7_000).await.expect("kept");
        assert_eq!(kept, file().slice(6_000..7_000));
        assert_eq!(meter.figures().bytes, 110 + 5_000);
    }

    #[tokio::test]
    async fn files_it_was_not_told_of_are_read_through() {
        let memory = MemoryStorage::new("memory://t");
        memory.put("g", file()).await.expect("put");
        let meter = Arc::new(FetchMeter::default());
        let metered: StorageRef =
            Arc::new(MeteredStorage::with_meter(Arc::new(memory), meter.clone()));
        let tails = FooterTails::new(metered, []);
        tails.get_range("g", 9_000..10_000).await.expect("end");
        tails.get_range("g", 9_500..10_000).await.expect("again");
        assert_eq!(meter.figures().bytes, 1_500);
    }
}
