//! An `ObjectStore` view of a [`Storage`], so DataFusion's Parquet reader
//! reads data files through the engine's storage on every target.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use ::object_store::path::Path;
use ::object_store::{
    self, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use wavelake_kernel::Error;
use wavelake_kernel::storage::StorageRef;

/// Characters kept as they are in object paths; everything else is
/// percent-encoded so any file name survives the round trip.
const KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'=')
    .remove(b'/');

/// Read-only `ObjectStore` that forwards to a `Storage`.
pub struct StorageObjectStore {
    storage: StorageRef,
}

impl StorageObjectStore {
    /// Wraps `storage`.
    pub fn new(storage: StorageRef) -> Self {
        Self { storage }
    }

    /// The object path under which DataFusion must address the storage path
    /// `path` (reversible for any name, unlike `Path::from`).
    pub fn object_path(path: &str) -> Result<Path, Error> {
        let encoded = utf8_percent_encode(path.trim_start_matches('/'), KEEP).to_string();
        Path::parse(&encoded)
            .map_err(|e| Error::InvalidArgument(format!("cannot address file {path:?}: {e}")))
    }

    /// The storage path an object path stands for.
    pub fn storage_path(location: &Path) -> String {
        percent_decode_str(location.as_ref())
            .decode_utf8_lossy()
            .into_owned()
    }
}

impl fmt::Debug for StorageObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorageObjectStore({})", self.storage.location())
    }
}

impl fmt::Display for StorageObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

fn to_store_error(path: &str, err: Error) -> object_store::Error {
    match err {
        Error::NotFound { .. } => object_store::Error::NotFound {
            path: path.to_owned(),
            source: Box::new(err),
        },
        other => object_store::Error::Generic {
            store: "wavelake",
            source: Box::new(other),
        },
    }
}

fn read_only() -> object_store::Error {
    object_store::Error::NotImplemented {
        operation: "write through the read-only query store".into(),
        implementer: "wavelake".into(),
    }
}

#[async_trait]
impl ObjectStore for StorageObjectStore {
    async fn put_opts(
        &self,
        _: &Path,
        _: PutPayload,
        _: PutOptions,
    ) -> object_store::Result<PutResult> {
        Err(read_only())
    }

    async fn put_multipart_opts(
        &self,
        _: &Path,
        _: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(read_only())
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let path = Self::storage_path(location);
        let (bytes, range) = match options.range {
            Some(GetRange::Bounded(range)) => {
                let mut parts = self
                    .storage
                    .get_ranges(&path, std::slice::from_ref(&range))
                    .await
                    .map_err(|e| to_store_error(&path, e))?;
                let bytes = parts.pop().unwrap_or_default();
                let end = range.start + bytes.len() as u64;
                (bytes, range.start..end)
            }
            // DataFusion always knows file sizes from the log, so open-ended
            // and suffix reads only come from callers outside the scan.
            Some(GetRange::Offset(_) | GetRange::Suffix(_)) | None => {
                let whole = self
                    .storage
                    .get(&path)
                    .await
                    .map_err(|e| to_store_error(&path, e))?;
                let len = whole.len() as u64;
                let range = match options.range {
                    Some(GetRange::Offset(start)) => start.min(len)..len,
                    Some(GetRange::Suffix(n)) => len.saturating_sub(n)..len,
                    _ => 0..len,
                };
                (whole.slice(range.start as usize..range.end as usize), range)
            }
        };
        let meta = ObjectMeta {
            location: location.clone(),
            last_modified: chrono::DateTime::UNIX_EPOCH,
            size: range.end,
            e_tag: None,
            version: None,
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(
                futures::stream::once(async move { Ok(bytes) }).boxed(),
            ),
            meta,
            range,
            attributes: Default::default(),
        })
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let path = Self::storage_path(location);
        self.storage
            .get_ranges(&path, ranges)
            .await
            .map_err(|e| to_store_error(&path, e))
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        locations.map(|_| Err(read_only())).boxed()
    }

    fn list(&self, _: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        futures::stream::once(async { Err(read_only()) }).boxed()
    }

    async fn list_with_delimiter(&self, _: Option<&Path>) -> object_store::Result<ListResult> {
        Err(read_only())
    }

    async fn copy_opts(
        &self,
        _: &Path,
        _: &Path,
        _: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        Err(read_only())
    }
}

/// Shares a storage as an `ObjectStore`.
pub fn as_object_store(storage: StorageRef) -> Arc<dyn ObjectStore> {
    Arc::new(StorageObjectStore::new(storage))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_paths_round_trip_any_name() {
        for name in [
            "a/b.parquet",
            "p=a%b/c d#e?.parquet",
            "ü/日本.parquet",
            "x=1/+,;",
        ] {
            let path = StorageObjectStore::object_path(name).expect("encodes");
            assert_eq!(StorageObjectStore::storage_path(&path), name);
        }
    }
}
