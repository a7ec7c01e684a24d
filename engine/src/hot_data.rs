//! Hot data: decoded Arrow column chunks of recently read data files, kept
//! in memory up to a byte budget so a repeated query (a dashboard
//! refreshing) neither fetches, decompresses nor decodes Parquet again.
//!
//! A chunk is one column of one row group of one data file, with the rows
//! its deletion vector removes already left out. The rows each deletion
//! vector keeps and the files' parsed footers are held too (in the same
//! budget), so a repeated query fetches neither. Delta data files and deletion
//! vectors never change once written, so what is held stays valid for as
//! long as it is held: the budget is the only reason anything leaves.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, RowSelection};
use quick_cache::Weighter;

/// Identifies a decoded column chunk.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChunkKey {
    /// The data file: its table's location and its path.
    pub file: Arc<str>,
    /// The deletion vector applied (its unique id), if any.
    pub deletion_vector: Option<Arc<str>>,
    /// The row group's index in the file.
    pub row_group: usize,
    /// The part of the row group's kept rows the chunk holds, as an offset
    /// and a length, when partitions share the row group; `None`: all.
    pub share: Option<(usize, usize)>,
    /// The column's index among the file's top-level Parquet columns.
    pub column: usize,
    /// The type the column was decoded to (the table's type for it).
    pub data_type: DataType,
}

/// What hot data has done since the process started (or the cache was
/// made), and holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct HotDataFigures {
    /// Chunks served from memory.
    pub hits: u64,
    /// Chunks looked for and decoded from Parquet instead.
    pub misses: u64,
    /// Decoded bytes served from memory (what the hits did not decode).
    pub bytes_saved: u64,
    /// Decoded bytes put in the cache.
    pub bytes_inserted: u64,
    /// Bytes held now.
    pub bytes_held: u64,
    /// Entries held now (chunks and deletion vectors' selections).
    pub entries_held: u64,
    /// The byte budget.
    pub budget: u64,
}

/// What is held: a chunk, or the rows a deletion vector keeps of a file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum HeldKey {
    Chunk(ChunkKey),
    Footer(Arc<str>),
    Selection {
        file: Arc<str>,
        deletion_vector: Arc<str>,
    },
}

#[derive(Debug, Clone)]
enum Held {
    Chunk(ArrayRef),
    Footer(ArrowReaderMetadata),
    Selection(Arc<RowSelection>),
}

#[derive(Debug, Clone, Copy)]
struct HeldWeight;

impl Weighter<HeldKey, Held> for HeldWeight {
    fn weight(&self, key: &HeldKey, held: &Held) -> u64 {
        // Keys and bookkeeping cost memory too; never weigh an entry zero
        // (those are never evicted).
        let file = match key {
            HeldKey::Chunk(key) => &key.file,
            HeldKey::Footer(file) | HeldKey::Selection { file, .. } => file,
        };
        let value = match held {
            Held::Chunk(array) => array.get_array_memory_size(),
            Held::Footer(metadata) => metadata.metadata().memory_size(),
            Held::Selection(selection) => selection_bytes(selection),
        };
        (value + file.len() + 96) as u64
    }
}

/// Memory a row selection takes: its runs of selected and skipped rows.
fn selection_bytes(selection: &RowSelection) -> usize {
    selection.iter().count() * std::mem::size_of::<parquet::arrow::arrow_reader::RowSelector>()
}

/// Decoded column chunks in a byte budget, shared by every session given
/// it (a server's queries); the least used leave first.
pub struct HotData {
    held: quick_cache::sync::Cache<HeldKey, Held, HeldWeight>,
    budget: u64,
    hits: AtomicU64,
    misses: AtomicU64,
    bytes_saved: AtomicU64,
    bytes_inserted: AtomicU64,
}

impl std::fmt::Debug for HotData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotData")
            .field("figures", &self.figures())
            .finish()
    }
}

impl HotData {
    /// A cache holding at most `budget` bytes of decoded chunks.
    pub fn new(budget: u64) -> Self {
        // quick_cache sizes its tables from an item estimate: assume
        // chunks of about 1 MiB.
        let estimated = usize::try_from(budget >> 20).unwrap_or(usize::MAX).max(64);
        Self {
            held: quick_cache::sync::Cache::with_weighter(estimated, budget, HeldWeight),
            budget,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            bytes_saved: AtomicU64::new(0),
            bytes_inserted: AtomicU64::new(0),
        }
    }

    /// The chunk under `key`, counted as a hit or a miss.
    pub fn get(&self, key: &ChunkKey) -> Option<ArrayRef> {
        match self.held.get(&HeldKey::Chunk(key.clone())) {
            Some(Held::Chunk(array)) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                self.bytes_saved
                    .fetch_add(array.get_array_memory_size() as u64, Ordering::Relaxed);
                Some(array)
            }
            _ => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Keeps `array` under `key`, evicting the least used entries beyond
    /// the budget (a chunk larger than the whole budget is not kept).
    pub fn insert(&self, key: ChunkKey, array: ArrayRef) {
        let bytes = array.get_array_memory_size() as u64;
        if bytes >= self.budget {
            return;
        }
        self.bytes_inserted.fetch_add(bytes, Ordering::Relaxed);
        self.held.insert(HeldKey::Chunk(key), Held::Chunk(array));
    }

    /// The rows deletion vector `deletion_vector` (its unique id) keeps of
    /// data file `file` (its table's location and path), if held.
    pub fn row_selection(&self, file: &str, deletion_vector: &str) -> Option<Arc<RowSelection>> {
        let key = HeldKey::Selection {
            file: file.into(),
            deletion_vector: deletion_vector.into(),
        };
        match self.held.get(&key) {
            Some(Held::Selection(selection)) => Some(selection),
            _ => None,
        }
    }

    /// Keeps the rows deletion vector `deletion_vector` keeps of `file`.
    pub fn keep_row_selection(&self, file: &str, deletion_vector: &str, selection: RowSelection) {
        let key = HeldKey::Selection {
            file: file.into(),
            deletion_vector: deletion_vector.into(),
        };
        self.held.insert(key, Held::Selection(Arc::new(selection)));
    }

    /// The parsed footer of data file `file` (its table's location and
    /// path) with the Arrow schema it is read as, if held.
    pub fn footer(&self, file: &str) -> Option<ArrowReaderMetadata> {
        match self.held.get(&HeldKey::Footer(file.into())) {
            Some(Held::Footer(metadata)) => Some(metadata),
            _ => None,
        }
    }

    /// Keeps the parsed footer of `file` with the schema it is read as.
    pub fn keep_footer(&self, file: &str, metadata: ArrowReaderMetadata) {
        self.held
            .insert(HeldKey::Footer(file.into()), Held::Footer(metadata));
    }

    /// Drops everything held (the counters stay).
    pub fn clear(&self) {
        self.held.clear();
    }

    /// The counters and what is held now.
    pub fn figures(&self) -> HotDataFigures {
        HotDataFigures {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bytes_saved: self.bytes_saved.load(Ordering::Relaxed),
            bytes_inserted: self.bytes_inserted.load(Ordering::Relaxed),
            bytes_held: self.held.weight(),
            entries_held: self.held.len() as u64,
            budget: self.budget,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    fn key(file: &str, row_group: usize, column: usize) -> ChunkKey {
        ChunkKey {
            file: file.into(),
            deletion_vector: None,
            row_group,
            share: None,
            column,
            data_type: DataType::Int64,
        }
    }

    fn chunk(rows: i64) -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(0..rows))
    }

    #[test]
    fn counts_hits_misses_and_the_bytes_hits_save() {
        let hot = HotData::new(1 << 20);
        assert!(hot.get(&key("t/a.parquet", 0, 0)).is_none());
        let array = chunk(1000);
        let size = array.get_array_memory_size() as u64;
        hot.insert(key("t/a.parquet", 0, 0), array);
        let found = hot.get(&key("t/a.parquet", 0, 0)).unwrap();
        assert_eq!(found.len(), 1000);
        let figures = hot.figures();
        assert_eq!((figures.hits, figures.misses), (1, 1));
        assert_eq!(figures.bytes_saved, size);
        assert_eq!(figures.bytes_inserted, size);
        assert_eq!(figures.entries_held, 1);
        assert!(figures.bytes_held >= size && figures.bytes_held < size + 256);
    }

    #[test]
    fn a_chunk_is_told_apart_by_deletion_vector_share_and_type() {
        let hot = HotData::new(1 << 20);
        hot.insert(key("t/a.parquet", 0, 0), chunk(10));
        let with_dv = ChunkKey {
            deletion_vector: Some("u1@1".into()),
            ..key("t/a.parquet", 0, 0)
        };
        assert!(hot.get(&with_dv).is_none());
        let widened = ChunkKey {
            data_type: DataType::Int32,
            ..key("t/a.parquet", 0, 0)
        };
        assert!(hot.get(&widened).is_none());
        let share = ChunkKey {
            share: Some((0, 5)),
            ..key("t/a.parquet", 0, 0)
        };
        assert!(hot.get(&share).is_none());
        assert!(hot.get(&key("t/a.parquet", 1, 0)).is_none());
        assert!(hot.get(&key("t/a.parquet", 0, 0)).is_some());
    }

    #[test]
    fn keeps_the_rows_a_deletion_vector_keeps() {
        use parquet::arrow::arrow_reader::RowSelector;
        let hot = HotData::new(1 << 20);
        assert!(hot.row_selection("t/a.parquet", "u1").is_none());
        let kept = RowSelection::from(vec![RowSelector::select(3), RowSelector::skip(2)]);
        hot.keep_row_selection("t/a.parquet", "u1", kept.clone());
        assert_eq!(
            hot.row_selection("t/a.parquet", "u1").as_deref(),
            Some(&kept)
        );
        assert!(hot.row_selection("t/a.parquet", "u2").is_none());
        assert!(hot.row_selection("t/b.parquet", "u1").is_none());
    }

    #[test]
    fn holds_no_more_than_its_budget() {
        let budget = 64 << 10;
        let hot = HotData::new(budget);
        // 100 chunks of about 8 KiB each: about 12 times the budget.
        for i in 0..100 {
            hot.insert(key("t/a.parquet", i, 0), chunk(1000));
        }
        let figures = hot.figures();
        assert!(figures.bytes_held <= budget, "{figures:?}");
        assert!(figures.entries_held >= 4, "{figures:?}");
        assert!(figures.entries_held < 100, "{figures:?}");
        // A chunk larger than the budget is never kept.
        hot.insert(key("t/b.parquet", 0, 0), chunk(20_000));
        assert!(hot.get(&key("t/b.parquet", 0, 0)).is_none());
    }
}
