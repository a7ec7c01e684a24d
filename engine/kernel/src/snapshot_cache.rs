//! Latest snapshots of tables, shared by the sessions of a long-running
//! process (the server) and brought up to date by reading only the commits
//! made since: a table of 10,000 files is replayed once, not per request.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::Result;
use crate::snapshot::Snapshot;
use crate::table::Table;

/// Tables kept when no capacity is given.
pub const DEFAULT_CACHED_TABLES: usize = 256;

/// Snapshots by table root URL, the least recently used dropped first.
#[derive(Debug)]
pub struct SnapshotCache {
    entries: Mutex<Entries>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Entries {
    snapshots: HashMap<String, (Snapshot, u64)>,
    clock: u64,
}

impl Default for SnapshotCache {
    fn default() -> Self {
        Self::new(DEFAULT_CACHED_TABLES)
    }
}

impl SnapshotCache {
    /// A cache of at most `capacity` tables.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    /// The table's latest snapshot: the cached one advanced by the commits
    /// made since, or a full load the first time.
    pub async fn latest(&self, table: &Table) -> Result<Snapshot> {
        let key = table.root().to_string();
        let cached = self.get(&key);
        let snapshot = match cached {
            Some(previous) => table.refresh(&previous).await?,
            None => table.load_latest().await?,
        };
        self.put(key, &snapshot);
        Ok(snapshot)
    }

    /// Forgets a table (after it was dropped or restored elsewhere).
    pub fn forget(&self, table: &Table) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.snapshots.remove(table.root().as_str());
        }
    }

    /// Tables cached.
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.snapshots.len())
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, key: &str) -> Option<Snapshot> {
        let mut entries = self.entries.lock().ok()?;
        entries.clock += 1;
        let now = entries.clock;
        let (snapshot, used) = entries.snapshots.get_mut(key)?;
        *used = now;
        Some(snapshot.clone())
    }

    fn put(&self, key: String, snapshot: &Snapshot) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        entries.clock += 1;
        let now = entries.clock;
        // Racing refreshes: the newest version stays.
        if let Some((kept, used)) = entries.snapshots.get_mut(&key) {
            if kept.version() <= snapshot.version() {
                *kept = snapshot.clone();
            }
            *used = now;
            return;
        }
        if entries.snapshots.len() >= self.capacity
            && let Some(oldest) = entries
                .snapshots
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
        {
            entries.snapshots.remove(&oldest);
        }
        entries.snapshots.insert(key, (snapshot.clone(), now));
    }
}
