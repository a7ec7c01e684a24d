//! [`Storage`] over a map of per-file URLs, as a Delta Sharing server hands
//! out presigned URLs: each file is read from its own URL.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::{FileMeta, Storage, StorageRef};
use crate::{Error, Result};

/// Files addressed by their own URLs, with an optional fallback storage for
/// paths the map does not know.
#[derive(Debug, Clone)]
pub struct UrlMapStorage {
    location: String,
    urls: Arc<HashMap<String, String>>,
    reader: StorageRef,
}

impl UrlMapStorage {
    /// Serves `path -> url` through `reader`, which must accept absolute URLs
    /// as paths (an [`HttpStorage`](super::HttpStorage) does).
    pub fn new(
        location: impl Into<String>,
        urls: HashMap<String, String>,
        reader: StorageRef,
    ) -> Self {
        Self {
            location: location.into(),
            urls: Arc::new(urls),
            reader,
        }
    }

    fn url_of<'a>(&'a self, path: &'a str) -> Result<&'a str> {
        // Absolute URLs (deletion vectors a sharing server presigned) are
        // read as they are.
        if path.starts_with("https://") || path.starts_with("http://") {
            return Ok(path);
        }
        self.urls
            .get(path)
            .map(String::as_str)
            .ok_or_else(|| Error::NotFound {
                path: path.to_owned(),
            })
    }
}

#[async_trait]
impl Storage for UrlMapStorage {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn get(&self, path: &str) -> Result<Bytes> {
        self.reader.get(self.url_of(path)?).await
    }

    async fn get_ranges(&self, path: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.reader.get_ranges(self.url_of(path)?, ranges).await
    }

    /// A URL map knows its files but cannot list a log: callers probe.
    async fn list(
        &self,
        _prefix: &str,
        _start_after: Option<&str>,
    ) -> Result<Option<Vec<FileMeta>>> {
        Ok(None)
    }
}
