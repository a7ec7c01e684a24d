//! # Wavelake storage backends
//!
//! The implementations of the kernel's `Storage` trait, one per way a
//! table's files are reached:
//!
//! - [`ObjectStoreStorage`]: an `object_store` backend (local directories,
//!   memory, S3, GCS and Azure Blob Storage natively, with presigned URLs
//!   and local writes flushed to disk before they are acknowledged).
//! - [`HttpStorage`] (feature `http`): plain HTTP(S) GETs with range reads
//!   and retries, over `fetch` in the browser: a static host.
//! - `OpfsBlobStore` (feature `opfs`, wasm32): the persistent cache's
//!   entries in the browser's Origin Private File System.
//! - [`UrlMapStorage`]: files addressed by their own (presigned) URLs, as a
//!   Delta Sharing server hands them out, refreshed when refused.
//! - [`StorageObjectStore`]: the other direction, any `Storage` seen as a
//!   read-only `ObjectStore`, so DataFusion's Parquet reader reads through
//!   the engine's storage (its decorators: range cache, metering, whole
//!   small files) on every target.
//!
//! The trait, its decorators and the rules every backend keeps live in
//! `wavelake-kernel`; this crate depends on it and on `object_store`, never
//! on DataFusion, the SQL session or the write path.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod adapter;
#[cfg(feature = "native")]
mod durable;
#[cfg(feature = "http")]
mod http;
mod object_store;
#[cfg(all(feature = "opfs", target_arch = "wasm32"))]
mod opfs;
#[cfg(feature = "http")]
pub mod retry;
mod url_map;

pub use self::object_store::ObjectStoreStorage;
#[cfg(feature = "native")]
pub use self::object_store::location_url;
pub use adapter::{StorageObjectStore, as_object_store};
#[cfg(feature = "http")]
pub use http::HttpStorage;
#[cfg(all(feature = "opfs", target_arch = "wasm32"))]
pub use opfs::OpfsBlobStore;
pub use url_map::{UrlMapStorage, UrlRefresh};

/// Opens storage for a table location: a local directory, `file://`,
/// `memory://`, `s3://bucket/prefix`, `gs://`, `az://`, or an `http(s)://`
/// base URL.
#[cfg(feature = "native")]
pub fn open(location: &str) -> wavelake_kernel::Result<wavelake_kernel::storage::StorageRef> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Ok(std::sync::Arc::new(HttpStorage::new(location)?));
    }
    Ok(std::sync::Arc::new(ObjectStoreStorage::open(location)?))
}
