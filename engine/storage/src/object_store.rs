//! [`Storage`] over an `object_store` backend: a local directory, memory, S3,
//! GCS or Azure Blob Storage natively; memory in the browser.

use std::ops::Range;
use std::sync::Arc;

use ::object_store::path::Path;
use ::object_store::{self, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use url::Url;

use wavelake_kernel::storage::{FileMeta, Storage, storage_error};
use wavelake_kernel::{Error, Result};

/// A table stored under a prefix of an `object_store`.
#[derive(Debug, Clone)]
pub struct ObjectStoreStorage {
    store: Arc<dyn ObjectStore>,
    root: Path,
    url: Url,
    /// Presigns URLs (S3).
    #[cfg(feature = "native")]
    signer: Option<Arc<dyn object_store::signer::Signer>>,
    /// The local file system, when the table is on one: writes are then
    /// flushed to disk before they are acknowledged.
    #[cfg(feature = "native")]
    local: Option<Arc<object_store::local::LocalFileSystem>>,
}

impl ObjectStoreStorage {
    /// Wraps `store`, with the table at the path of `url` inside it.
    pub fn new(store: Arc<dyn ObjectStore>, url: Url) -> Result<Self> {
        let root = Path::from_url_path(url.path())
            .map_err(|e| Error::InvalidArgument(format!("bad table location {url}: {e}")))?;
        Ok(Self {
            store,
            root,
            url,
            #[cfg(feature = "native")]
            signer: None,
            #[cfg(feature = "native")]
            local: None,
        })
    }

    /// Opens a local directory (plain path or `file://`), `memory://`,
    /// `s3://bucket/prefix`, `gs://` or `az://` location. S3 is configured from the standard
    /// `AWS_*` environment variables (`AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`,
    /// credentials, region).
    #[cfg(feature = "native")]
    pub fn open(location: &str) -> Result<Self> {
        Self::open_with(location, std::iter::empty::<(String, String)>())
    }

    /// Like [`Self::open`], also for `gs://bucket/prefix` and
    /// `az://container/prefix` (or `abfss://`), with `object_store` options
    /// (`aws_endpoint`, `google_service_account`, `azure_storage_account_name`,
    /// …) taking precedence over the environment (`AWS_*`, `GOOGLE_*`,
    /// `AZURE_*`). Unknown keys are an error naming them.
    #[cfg(feature = "native")]
    pub fn open_with<K, V>(
        location: &str,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self>
    where
        K: AsRef<str>,
        V: Into<String>,
    {
        let url = location_url(location)?;
        let signed = |store: Arc<dyn SignedStore>, url: Url| -> Result<Self> {
            let mut storage = Self::new(store.clone().as_store(), url)?;
            storage.signer = Some(store.as_signer());
            Ok(storage)
        };
        match url.scheme() {
            "file" => {
                let local = Arc::new(object_store::local::LocalFileSystem::new());
                let mut storage = Self::new(local.clone(), url)?;
                storage.local = Some(local);
                Ok(storage)
            }
            "memory" => Self::new(Arc::new(::object_store::memory::InMemory::new()), url),
            "s3" | "s3a" => {
                let mut builder =
                    object_store::aws::AmazonS3Builder::from_env().with_url(url.as_str());
                for (key, value) in options {
                    builder = builder.with_config(option_key(key.as_ref(), "S3")?, value);
                }
                signed(Arc::new(built(builder.build(), &url)?), url)
            }
            "gs" => {
                let mut builder =
                    object_store::gcp::GoogleCloudStorageBuilder::from_env().with_url(url.as_str());
                for (key, value) in options {
                    builder = builder.with_config(option_key(key.as_ref(), "GCS")?, value);
                }
                signed(Arc::new(built(builder.build(), &url)?), url)
            }
            "az" | "azure" | "abfs" | "abfss" | "adl" => {
                let mut builder =
                    object_store::azure::MicrosoftAzureBuilder::from_env().with_url(url.as_str());
                for (key, value) in options {
                    builder = builder.with_config(option_key(key.as_ref(), "Azure")?, value);
                }
                signed(Arc::new(built(builder.build(), &url)?), url)
            }
            other => Err(Error::InvalidArgument(format!(
                "unsupported storage scheme {other:?} in {location}"
            ))),
        }
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn object_path(&self, path: &str) -> Result<Path> {
        let relative = if path.contains("://") || path.starts_with("file:") {
            let absolute = Url::parse(path)
                .map_err(|e| Error::InvalidArgument(format!("bad file URI {path}: {e}")))?;
            let root = self.url.as_str().trim_end_matches('/');
            match absolute
                .as_str()
                .strip_prefix(root)
                .and_then(|r| r.strip_prefix('/'))
            {
                Some(rest) => percent_encoding::percent_decode_str(rest)
                    .decode_utf8_lossy()
                    .into_owned(),
                None => {
                    return Err(Error::NotFound {
                        path: format!("{path} (outside the table root {})", self.url),
                    });
                }
            }
        } else {
            path.to_owned()
        };
        // Raw segments: a file named `a%3Ab` on disk or in a bucket is
        // addressed as exactly that (no second round of escaping).
        let mut raw = self.root.as_ref().to_owned();
        for segment in relative.split('/').filter(|s| !s.is_empty()) {
            if !raw.is_empty() {
                raw.push('/');
            }
            raw.push_str(segment);
        }
        Path::parse(&raw)
            .map_err(|e| Error::InvalidArgument(format!("cannot address {path:?}: {e}")))
    }

    /// On a local disk, flushes the file just written at `location` and the
    /// directories that name it (see [`crate::durable`]); elsewhere the
    /// store's own acknowledgement is durable.
    async fn make_durable(&self, path: &str, location: &Path) -> Result<()> {
        #[cfg(feature = "native")]
        if let Some(local) = &self.local {
            let file = local
                .path_to_filesystem(location)
                .map_err(|e| map_error(path, e))?;
            let root = local
                .path_to_filesystem(&self.root)
                .map_err(|e| map_error(path, e))?;
            let stop = root.parent().map_or_else(|| root.clone(), |p| p.to_owned());
            let synced = tokio::task::spawn_blocking(move || {
                crate::durable::sync_file_and_parents(&file, &stop)
            })
            .await
            .map_err(|e| storage_error(path, e))?;
            return synced
                .map_err(|e| storage_error(path, format!("written but not flushed to disk: {e}")));
        }
        let _ = (path, location);
        Ok(())
    }

    fn relative(&self, location: &Path) -> String {
        let full = location.as_ref();
        let root = self.root.as_ref();
        let rest = if root.is_empty() {
            full
        } else {
            full.strip_prefix(root)
                .map(|r| r.trim_start_matches('/'))
                .unwrap_or(full)
        };
        rest.to_owned()
    }
}

/// A cloud store that can also presign URLs.
#[cfg(feature = "native")]
trait SignedStore: ObjectStore + object_store::signer::Signer {
    fn as_store(self: Arc<Self>) -> Arc<dyn ObjectStore>;
    fn as_signer(self: Arc<Self>) -> Arc<dyn object_store::signer::Signer>;
}

#[cfg(feature = "native")]
impl<T: ObjectStore + object_store::signer::Signer> SignedStore for T {
    fn as_store(self: Arc<Self>) -> Arc<dyn ObjectStore> {
        self
    }
    fn as_signer(self: Arc<Self>) -> Arc<dyn object_store::signer::Signer> {
        self
    }
}

/// Parses one configuration key of a cloud store.
#[cfg(feature = "native")]
fn option_key<K: std::str::FromStr>(key: &str, store: &str) -> Result<K> {
    key.parse()
        .map_err(|_| Error::InvalidArgument(format!("unknown {store} option {key:?}")))
}

/// A built cloud store, or an error naming the location.
#[cfg(feature = "native")]
fn built<T>(store: object_store::Result<T>, url: &Url) -> Result<T> {
    store.map_err(|e| Error::InvalidArgument(format!("cannot open {url}: {e}")))
}

/// Turns a location (path or URL) into a URL ending in `/`.
#[cfg(feature = "native")]
pub fn location_url(location: &str) -> Result<Url> {
    let url = if location.contains("://") {
        Url::parse(location)
            .map_err(|e| Error::InvalidArgument(format!("bad location {location}: {e}")))?
    } else {
        let path = std::path::Path::new(location);
        let absolute = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| storage_error(location, e))?
                .join(path)
        };
        Url::from_directory_path(&absolute).map_err(|()| {
            Error::InvalidArgument(format!(
                "cannot use {} as a table location",
                absolute.display()
            ))
        })?
    };
    let mut text = url.to_string();
    if !text.ends_with('/') {
        text.push('/');
    }
    Url::parse(&text).map_err(|e| Error::InvalidArgument(format!("bad location {location}: {e}")))
}

fn map_error(path: &str, err: object_store::Error) -> Error {
    match err {
        object_store::Error::NotFound { .. } => Error::NotFound {
            path: path.to_owned(),
        },
        other => storage_error(path, other),
    }
}

#[async_trait]
impl Storage for ObjectStoreStorage {
    fn location(&self) -> String {
        self.url.to_string()
    }

    async fn get(&self, path: &str) -> Result<Bytes> {
        let location = self.object_path(path)?;
        let result = self
            .store
            .get(&location)
            .await
            .map_err(|e| map_error(path, e))?;
        result.bytes().await.map_err(|e| map_error(path, e))
    }

    async fn size(&self, path: &str) -> Result<u64> {
        let location = self.object_path(path)?;
        let meta = self
            .store
            .head(&location)
            .await
            .map_err(|e| map_error(path, e))?;
        Ok(meta.size)
    }

    #[cfg(feature = "native")]
    async fn signed_url(
        &self,
        path: &str,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>> {
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        let location = self.object_path(path)?;
        let url = signer
            .signed_url(reqwest::Method::GET, &location, expires_in)
            .await
            .map_err(|e| map_error(path, e))?;
        Ok(Some(url.to_string()))
    }

    async fn get_ranges(&self, path: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let location = self.object_path(path)?;
        self.store
            .get_ranges(&location, ranges)
            .await
            .map_err(|e| map_error(path, e))
    }

    async fn list(&self, prefix: &str, start_after: Option<&str>) -> Result<Option<Vec<FileMeta>>> {
        let dir = self.object_path(prefix)?;
        let stream = match start_after {
            Some(offset) => {
                let offset = self.object_path(offset)?;
                self.store.list_with_offset(Some(&dir), &offset)
            }
            None => self.store.list(Some(&dir)),
        };
        let metas: Vec<_> = stream
            .try_collect()
            .await
            .map_err(|e| map_error(prefix, e))?;
        let mut files: Vec<FileMeta> = metas
            .into_iter()
            .map(|m| FileMeta {
                path: self.relative(&m.location),
                size: m.size,
                last_modified: m.last_modified.timestamp_millis(),
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Some(files))
    }

    async fn list_directories(&self, prefix: &str) -> Result<Vec<String>> {
        let dir = self.object_path(prefix)?;
        let listed = self
            .store
            .list_with_delimiter(Some(&dir))
            .await
            .map_err(|e| map_error(prefix, e))?;
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    async fn put(&self, path: &str, bytes: Bytes) -> Result<()> {
        let location = self.object_path(path)?;
        self.store
            .put(&location, PutPayload::from(bytes))
            .await
            .map_err(|e| map_error(path, e))?;
        self.make_durable(path, &location).await
    }

    async fn put_if_absent(&self, path: &str, bytes: Bytes) -> Result<()> {
        let location = self.object_path(path)?;
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&location, PutPayload::from(bytes), options)
            .await
        {
            Ok(_) => self.make_durable(path, &location).await,
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Err(Error::AlreadyExists {
                path: path.to_owned(),
            }),
            Err(e) => Err(map_error(path, e)),
        }
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let location = self.object_path(path)?;
        match self.store.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_error(path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::object_store::PutPayload;
    use ::object_store::memory::InMemory;

    #[tokio::test]
    async fn reads_ranges_and_lists_in_order() {
        let store = Arc::new(InMemory::new());
        for name in [
            "t/_delta_log/2.json",
            "t/_delta_log/0.json",
            "t/_delta_log/1.json",
            "t/x y.parquet",
        ] {
            store
                .put(
                    &Path::from(name),
                    PutPayload::from(name.as_bytes().to_vec()),
                )
                .await
                .expect("put");
        }
        let storage =
            ObjectStoreStorage::new(store, Url::parse("memory:///t/").expect("url")).expect("new");
        let listed = storage
            .list("_delta_log/", Some("_delta_log/0.json"))
            .await
            .expect("lists")
            .expect("supported");
        let names: Vec<_> = listed.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(names, ["_delta_log/1.json", "_delta_log/2.json"]);
        let parts = storage
            .get_ranges("x y.parquet", &[0..1, 2..4])
            .await
            .expect("ranges");
        assert_eq!(parts, [Bytes::from_static(b"t"), Bytes::from_static(b"x ")]);
        assert!(
            storage
                .get("missing")
                .await
                .expect_err("missing")
                .is_not_found()
        );
    }

    #[cfg(feature = "native")]
    #[tokio::test]
    async fn cloud_locations_are_configured_from_options() {
        let err = ObjectStoreStorage::open_with("gs://bucket/t", [("google_no_such_key", "x")])
            .expect_err("unknown key");
        assert!(err.to_string().contains("unknown GCS option"), "{err}");
        let err = ObjectStoreStorage::open_with("az://container/t", [("azure_nope", "x")])
            .expect_err("unknown key");
        assert!(err.to_string().contains("unknown Azure option"), "{err}");
        let err = ObjectStoreStorage::open_with("ftp://host/t", std::iter::empty::<(&str, &str)>())
            .expect_err("unknown scheme");
        assert!(
            err.to_string().contains("unsupported storage scheme"),
            "{err}"
        );
        // A key generated for this test only: it grants nothing anywhere.
        let key = serde_json::json!({
            "private_key": include_str!("testdata/gcs-service-account-key.pem"),
            "private_key_id": "test",
            "client_email": "reader@wavelake-test.iam.gserviceaccount.com",
        });
        let gcs = ObjectStoreStorage::open_with(
            "gs://bucket/lake/t",
            [("google_service_account_key", key.to_string())],
        )
        .expect("opens");
        let url = gcs
            .signed_url("part-0.parquet", std::time::Duration::from_secs(60))
            .await
            .expect("signs")
            .expect("GCS presigns");
        assert!(
            url.starts_with("https://storage.googleapis.com/bucket/lake/t/part-0.parquet?"),
            "{url}"
        );
        assert!(url.contains("X-Goog-Algorithm=GOOG4-RSA-SHA256"), "{url}");
        assert!(url.contains("X-Goog-Signature="), "{url}");
    }

    #[tokio::test]
    async fn put_if_absent_writes_once() {
        let storage = ObjectStoreStorage::new(
            Arc::new(InMemory::new()),
            Url::parse("memory:///t/").expect("url"),
        )
        .expect("new");
        let path = "_delta_log/00000000000000000000.json";
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
        storage.delete(path).await.expect("delete");
        storage
            .delete(path)
            .await
            .expect("deleting a missing file is fine");
        assert!(storage.get(path).await.expect_err("gone").is_not_found());
    }

    #[cfg(feature = "native")]
    #[tokio::test]
    async fn local_writes_are_flushed_before_they_return() {
        use crate::durable::tests::synced_under;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("ns").join("t");
        let storage = ObjectStoreStorage::open(root.to_str().expect("utf-8")).expect("open");
        let commit = "_delta_log/00000000000000000000.json";
        storage
            .put_if_absent(commit, Bytes::from_static(b"{}"))
            .await
            .expect("commits");
        let log = root.join("_delta_log");
        let ns = dir.path().join("ns");
        assert_eq!(
            synced_under(dir.path()),
            [
                log.join("00000000000000000000.json"),
                log.clone(),
                root.clone(),
                ns.clone()
            ]
        );
        storage
            .put("p=1/part-0.parquet", Bytes::from_static(b"PAR1"))
            .await
            .expect("writes");
        let synced = synced_under(dir.path());
        assert_eq!(
            synced[4..],
            [
                root.join("p=1/part-0.parquet"),
                root.join("p=1"),
                root.clone(),
                ns
            ]
        );
        // A losing commit flushes nothing more.
        storage
            .put_if_absent(commit, Bytes::from_static(b"{}"))
            .await
            .expect_err("taken");
        assert_eq!(synced_under(dir.path()).len(), 8);
    }

    #[cfg(feature = "native")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_writers_on_a_directory_have_one_winner() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage =
            Arc::new(ObjectStoreStorage::open(dir.path().to_str().expect("utf-8")).expect("open"));
        for round in 0..10 {
            let path = format!("_delta_log/{round:020}.json");
            let writers = (0..16).map(|writer| {
                let storage = storage.clone();
                let path = path.clone();
                tokio::spawn(async move {
                    storage
                        .put_if_absent(&path, Bytes::from(format!("writer {writer}")))
                        .await
                })
            });
            let results = futures::future::join_all(writers).await;
            let winners = results.iter().filter(|r| matches!(r, Ok(Ok(())))).count();
            let losers = results
                .iter()
                .filter(|r| matches!(r, Ok(Err(Error::AlreadyExists { .. }))))
                .count();
            assert_eq!((winners, losers), (1, 15), "round {round}");
        }
    }
}
