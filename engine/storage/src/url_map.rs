//! [`Storage`] over a map of per-file URLs, as a Delta Sharing server hands
//! out presigned URLs: each file is read from its own URL, and URLs that
//! are refused (expired) are replaced by fresh ones from a [`UrlRefresh`].

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;

use wavelake_kernel::storage::{FileMeta, Storage, StorageRef};
use wavelake_kernel::{Error, Result};

/// Where fresh URLs come from once the ones a [`UrlMapStorage`] holds are
/// refused (a Delta Sharing server's refresh token, say).
#[async_trait]
pub trait UrlRefresh: Send + Sync + std::fmt::Debug {
    /// Fresh URLs for the same files, by path; paths left out keep theirs.
    async fn refresh(&self) -> Result<HashMap<String, String>>;
}

/// Files addressed by their own URLs.
#[derive(Debug, Clone)]
pub struct UrlMapStorage {
    location: String,
    reader: StorageRef,
    urls: Arc<Urls>,
}

/// The current URLs, and how to replace them.
#[derive(Debug)]
struct Urls {
    map: RwLock<Arc<HashMap<String, String>>>,
    /// Bumped by each refresh, so reads that failed on older URLs retry
    /// with the new ones instead of refreshing again.
    generation: AtomicU64,
    refresher: Option<Arc<dyn UrlRefresh>>,
    refreshing: futures::lock::Mutex<()>,
}

impl UrlMapStorage {
    /// Serves `path -> url` through `reader`, which must accept absolute URLs
    /// as paths (an `HttpStorage` does).
    pub fn new(
        location: impl Into<String>,
        urls: HashMap<String, String>,
        reader: StorageRef,
    ) -> Self {
        Self {
            location: location.into(),
            reader,
            urls: Arc::new(Urls {
                map: RwLock::new(Arc::new(urls)),
                generation: AtomicU64::new(0),
                refresher: None,
                refreshing: futures::lock::Mutex::new(()),
            }),
        }
    }

    /// Asks `refresher` for fresh URLs when a read is refused (HTTP 401 or
    /// 403, as an expired presigned URL is).
    pub fn with_refresh(self, refresher: Arc<dyn UrlRefresh>) -> Self {
        let map = self.current();
        Self {
            urls: Arc::new(Urls {
                map: RwLock::new(map),
                generation: AtomicU64::new(0),
                refresher: Some(refresher),
                refreshing: futures::lock::Mutex::new(()),
            }),
            ..self
        }
    }

    fn current(&self) -> Arc<HashMap<String, String>> {
        match self.urls.map.read() {
            Ok(map) => map.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The URL `path` is read from now, and the generation of the map.
    fn url_of(&self, path: &str) -> Result<(String, u64)> {
        let generation = self.urls.generation.load(Ordering::Acquire);
        // Absolute URLs (deletion vectors a sharing server presigned) are
        // read as they are.
        if path.starts_with("https://") || path.starts_with("http://") {
            return Ok((path.to_owned(), generation));
        }
        let url = self
            .current()
            .get(path)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                path: path.to_owned(),
            })?;
        Ok((url, generation))
    }

    /// Replaces the URLs unless another read already did since
    /// `generation`.
    async fn refresh(&self, path: &str, generation: u64) -> Result<()> {
        let expired = |reason: String| Error::UrlExpired {
            path: path.to_owned(),
            reason,
        };
        let Some(refresher) = &self.urls.refresher else {
            return Err(expired(
                "the URL was refused and no fresh one can be had".into(),
            ));
        };
        let _one_at_a_time = self.urls.refreshing.lock().await;
        if self.urls.generation.load(Ordering::Acquire) != generation {
            return Ok(());
        }
        let fresh = refresher
            .refresh()
            .await
            .map_err(|e| expired(format!("asking for a fresh URL failed: {e}")))?;
        let mut merged = HashMap::clone(&self.current());
        merged.extend(fresh);
        match self.urls.map.write() {
            Ok(mut map) => *map = Arc::new(merged),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(merged),
        }
        self.urls.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Runs `read` on the URL of `path`; when the URL is refused, once more
    /// on a fresh one.
    async fn read<'a, T>(
        &'a self,
        path: &'a str,
        read: impl Fn(String) -> BoxFuture<'a, Result<T>> + Send + 'a,
    ) -> Result<T> {
        let (url, generation) = self.url_of(path)?;
        match read(url).await {
            Err(Error::Forbidden { .. }) => {
                self.refresh(path, generation).await?;
                let (url, _) = self.url_of(path)?;
                read(url).await.map_err(|e| match e {
                    Error::Forbidden { status, .. } => Error::UrlExpired {
                        path: path.to_owned(),
                        reason: format!("a fresh URL was refused too (HTTP {status})"),
                    },
                    other => other,
                })
            }
            other => other,
        }
    }
}

#[async_trait]
impl Storage for UrlMapStorage {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn get(&self, path: &str) -> Result<Bytes> {
        let reader = &self.reader;
        self.read(path, |url| Box::pin(async move { reader.get(&url).await }))
            .await
    }

    async fn get_ranges(&self, path: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let reader = &self.reader;
        self.read(path, |url| {
            Box::pin(async move { reader.get_ranges(&url, ranges).await })
        })
        .await
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Serves `url` bodies; URLs in `refused` get a 403.
    #[derive(Debug, Default)]
    struct FakeHost {
        refused: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Storage for FakeHost {
        fn location(&self) -> String {
            "fake://".into()
        }
        async fn get(&self, url: &str) -> Result<Bytes> {
            if self.refused.lock().unwrap().iter().any(|r| r == url) {
                return Err(Error::Forbidden {
                    path: url.into(),
                    status: 403,
                });
            }
            Ok(Bytes::from(url.to_owned()))
        }
        async fn get_ranges(&self, url: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
            let body = self.get(url).await?;
            Ok(ranges
                .iter()
                .map(|r| body.slice(r.start as usize..r.end as usize))
                .collect())
        }
        async fn list(&self, _: &str, _: Option<&str>) -> Result<Option<Vec<FileMeta>>> {
            Ok(None)
        }
    }

    #[derive(Debug, Default)]
    struct CountingRefresh {
        calls: AtomicU64,
    }

    #[async_trait]
    impl UrlRefresh for CountingRefresh {
        async fn refresh(&self) -> Result<HashMap<String, String>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(HashMap::from([("a".to_owned(), format!("fresh{n}"))]))
        }
    }

    fn storage(host: Arc<FakeHost>) -> UrlMapStorage {
        let urls = HashMap::from([("a".to_owned(), "old".to_owned())]);
        UrlMapStorage::new("urls://t/", urls, host)
    }

    #[tokio::test]
    async fn refused_urls_are_refreshed_once_for_all_readers() {
        let host = Arc::new(FakeHost::default());
        host.refused.lock().unwrap().push("old".into());
        let refresh = Arc::new(CountingRefresh::default());
        let urls = storage(host.clone()).with_refresh(refresh.clone());
        let reads = futures::future::join_all((0..8).map(|_| urls.get("a"))).await;
        for read in reads {
            assert_eq!(read.unwrap(), Bytes::from("fresh1"));
        }
        assert_eq!(refresh.calls.load(Ordering::SeqCst), 1);
        assert_eq!(urls.get_range("a", 0..3).await.unwrap(), "fre");
        assert!(matches!(urls.get("b").await, Err(Error::NotFound { .. })));
    }

    #[tokio::test]
    async fn a_refused_url_without_refresh_is_expired() {
        let host = Arc::new(FakeHost::default());
        host.refused.lock().unwrap().push("old".into());
        let err = storage(host.clone()).get("a").await.unwrap_err();
        assert_eq!(err.code(), "EXPIRED_URL");
        // A fresh URL refused as well is expired too, after one refresh.
        host.refused.lock().unwrap().push("fresh1".into());
        let refresh = Arc::new(CountingRefresh::default());
        let urls = storage(host).with_refresh(refresh.clone());
        let err = urls.get("a").await.unwrap_err();
        assert!(matches!(err, Error::UrlExpired { .. }), "{err}");
        assert_eq!(refresh.calls.load(Ordering::SeqCst), 1);
    }
}
