//! [`Storage`] held in memory: the kernel's own tests, and tables a page
//! assembles without a server. Commits are exclusive (one lock guards the
//! map), so it keeps every rule the durable backends keep.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;

use super::{FileMeta, Storage};
use crate::{Error, Result};

/// A table root whose files live in a sorted map.
#[derive(Debug)]
pub struct MemoryStorage {
    location: String,
    files: Mutex<BTreeMap<String, MemoryFile>>,
}

#[derive(Debug, Clone)]
struct MemoryFile {
    bytes: Bytes,
    last_modified: i64,
}

impl MemoryStorage {
    /// An empty root described as `location` in messages.
    pub fn new(location: impl Into<String>) -> Self {
        Self {
            location: location.into(),
            files: Mutex::new(BTreeMap::new()),
        }
    }

    /// Puts `bytes` at `path` at once, replacing any file there.
    pub fn insert(&self, path: &str, bytes: Bytes) {
        self.lock().insert(path.to_owned(), MemoryFile::now(bytes));
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, MemoryFile>> {
        // A panic elsewhere while holding the lock leaves the map whole
        // (every update is one insert or remove), so keep using it.
        self.files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn file(&self, path: &str) -> Result<Bytes> {
        self.lock()
            .get(path)
            .map(|f| f.bytes.clone())
            .ok_or_else(|| Error::NotFound {
                path: path.to_owned(),
            })
    }
}

impl MemoryFile {
    fn now(bytes: Bytes) -> Self {
        Self {
            bytes,
            last_modified: chrono::Utc::now().timestamp_millis(),
        }
    }
}

/// The part of `bytes` in `range`; a range running past the end is cut
/// there, one starting past it is an error.
fn slice(path: &str, bytes: &Bytes, range: &Range<u64>) -> Result<Bytes> {
    let len = bytes.len() as u64;
    if range.start > len || range.start > range.end {
        return Err(Error::Storage {
            path: path.to_owned(),
            message: format!("range {range:?} is outside the file's {len} bytes"),
        });
    }
    Ok(bytes.slice(range.start as usize..range.end.min(len) as usize))
}

/// `prefix` as a directory: empty for the root, else ending in `/`.
fn directory(prefix: &str) -> String {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}/")
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn get(&self, path: &str) -> Result<Bytes> {
        self.file(path)
    }

    async fn get_ranges(&self, path: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let bytes = self.file(path)?;
        ranges.iter().map(|r| slice(path, &bytes, r)).collect()
    }

    async fn list(&self, prefix: &str, start_after: Option<&str>) -> Result<Option<Vec<FileMeta>>> {
        let dir = directory(prefix);
        let files = self.lock();
        Ok(Some(
            files
                .range(dir.clone()..)
                .take_while(|(path, _)| path.starts_with(&dir))
                .filter(|(path, _)| start_after.is_none_or(|after| path.as_str() > after))
                .map(|(path, file)| FileMeta {
                    path: path.clone(),
                    size: file.bytes.len() as u64,
                    last_modified: file.last_modified,
                })
                .collect(),
        ))
    }

    async fn list_directories(&self, prefix: &str) -> Result<Vec<String>> {
        let dir = directory(prefix);
        let mut names: Vec<String> = self
            .lock()
            .range(dir.clone()..)
            .take_while(|(path, _)| path.starts_with(&dir))
            .filter_map(|(path, _)| {
                let (name, _) = path[dir.len()..].split_once('/')?;
                Some(name.to_owned())
            })
            .collect();
        names.dedup();
        Ok(names)
    }

    async fn put(&self, path: &str, bytes: Bytes) -> Result<()> {
        self.insert(path, bytes);
        Ok(())
    }

    async fn put_if_absent(&self, path: &str, bytes: Bytes) -> Result<()> {
        let mut files = self.lock();
        if files.contains_key(path) {
            return Err(Error::AlreadyExists {
                path: path.to_owned(),
            });
        }
        files.insert(path.to_owned(), MemoryFile::now(bytes));
        Ok(())
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.lock().remove(path);
        Ok(())
    }

    async fn size(&self, path: &str) -> Result<u64> {
        Ok(self.file(path)?.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> MemoryStorage {
        let storage = MemoryStorage::new("memory:///t/");
        for name in [
            "_delta_log/00000000000000000002.json",
            "_delta_log/00000000000000000000.json",
            "_delta_log/00000000000000000001.json",
            "p=1/part-0.parquet",
            "p=2/part-0.parquet",
            "x y.parquet",
        ] {
            storage.insert(name, Bytes::from(name.to_owned()));
        }
        storage
    }

    #[tokio::test]
    async fn lists_a_directory_in_order_after_an_offset() {
        let storage = table();
        let listed = storage
            .list("_delta_log/", Some("_delta_log/00000000000000000000.json"))
            .await
            .expect("lists")
            .expect("supported");
        let names: Vec<_> = listed.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            names,
            [
                "_delta_log/00000000000000000001.json",
                "_delta_log/00000000000000000002.json"
            ]
        );
        assert_eq!(listed[0].size, 36);
        let all = storage.list("", None).await.expect("lists").expect("some");
        assert_eq!(all.len(), 6);
        assert_eq!(
            storage.list_directories("").await.expect("dirs"),
            ["_delta_log", "p=1", "p=2"]
        );
    }

    #[tokio::test]
    async fn reads_ranges_cut_at_the_end_and_refuses_ranges_past_it() {
        let storage = table();
        let parts = storage
            .get_ranges("x y.parquet", &[0..1, 2..4, 9..100])
            .await
            .expect("ranges");
        assert_eq!(parts, [&b"x"[..], &b"y."[..], &b"et"[..]]);
        let err = storage
            .get_range("x y.parquet", 12..13)
            .await
            .expect_err("past the end");
        assert!(matches!(err, Error::Storage { .. }), "{err:?}");
        assert!(
            storage
                .get("missing")
                .await
                .expect_err("gone")
                .is_not_found()
        );
    }

    #[tokio::test]
    async fn put_if_absent_writes_once_and_delete_is_idempotent() {
        let storage = table();
        let path = "_delta_log/00000000000000000003.json";
        storage
            .put_if_absent(path, Bytes::from_static(b"first"))
            .await
            .expect("first write wins");
        let err = storage
            .put_if_absent(path, Bytes::from_static(b"second"))
            .await
            .expect_err("second write loses");
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
        assert_eq!(storage.get(path).await.expect("get").as_ref(), b"first");
        assert_eq!(storage.size(path).await.expect("size"), 5);
        storage.delete(path).await.expect("delete");
        storage.delete(path).await.expect("deleting again is fine");
        assert!(storage.get(path).await.expect_err("gone").is_not_found());
    }
}
