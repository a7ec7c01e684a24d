//! A [`BlobStore`] in the Origin Private File System: one directory of the
//! origin's private files, one file per blob, written whole with
//! `createWritable` (which replaces a file only when it is closed, so a
//! page closed mid-write leaves the old blob or none, never half of one).
//! Pages and dedicated workers have it; Node and workerd do not.

use std::cell::RefCell;
use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;
use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    File, FileSystemDirectoryHandle, FileSystemFileHandle, FileSystemGetDirectoryOptions,
    FileSystemGetFileOptions, FileSystemWritableFileStream, StorageManager,
};

use wavelake_kernel::storage::send::run_send;
use wavelake_kernel::storage::{BlobMeta, BlobStore};
use wavelake_kernel::{Error, Result};

/// Blobs in the directory `directory` of the origin's private file system.
#[derive(Debug, Clone)]
pub struct OpfsBlobStore {
    directory: String,
}

impl OpfsBlobStore {
    /// The store in `directory` (created on first use), or `None` where
    /// the host has no origin private file system (Node, workerd, old
    /// browsers). A browser may still refuse it (some private windows):
    /// every read then misses and every write fails, which loses nothing.
    pub fn new(directory: &str) -> Option<Self> {
        private_file_system().map(|_| Self {
            directory: directory.to_owned(),
        })
    }
}

/// The host's `navigator.storage`, when it has `getDirectory`.
fn private_file_system() -> Option<StorageManager> {
    let navigator = Reflect::get(&js_sys::global(), &JsValue::from_str("navigator")).ok()?;
    if !navigator.is_object() {
        return None;
    }
    let storage = Reflect::get(&navigator, &JsValue::from_str("storage")).ok()?;
    let get_directory = storage
        .is_object()
        .then(|| Reflect::get(&storage, &JsValue::from_str("getDirectory")).ok())
        .flatten()?;
    get_directory
        .is_function()
        .then(|| storage.unchecked_into())
}

thread_local! {
    /// Directories opened so far, by name: each operation would otherwise
    /// walk from the root again (a page has one thread).
    static DIRECTORIES: RefCell<HashMap<String, FileSystemDirectoryHandle>> =
        RefCell::default();
}

/// The directory `name` under the origin's private file system root.
async fn directory_handle(name: &str) -> std::result::Result<FileSystemDirectoryHandle, JsValue> {
    if let Some(directory) = DIRECTORIES.with(|d| d.borrow().get(name).cloned()) {
        return Ok(directory);
    }
    let directory = open_directory(name).await?;
    DIRECTORIES.with(|d| d.borrow_mut().insert(name.to_owned(), directory.clone()));
    Ok(directory)
}

/// Forgets the handle of `name` (its directory may have been removed with
/// the site's data): the next operation opens it again.
fn forget_directory(name: &str) {
    DIRECTORIES.with(|d| d.borrow_mut().remove(name));
}

async fn open_directory(name: &str) -> std::result::Result<FileSystemDirectoryHandle, JsValue> {
    let storage = private_file_system()
        .ok_or_else(|| JsValue::from_str("this host has no origin private file system"))?;
    let root: FileSystemDirectoryHandle =
        JsFuture::from(storage.get_directory()).await?.dyn_into()?;
    let options = FileSystemGetDirectoryOptions::new();
    options.set_create(true);
    JsFuture::from(root.get_directory_handle_with_options(name, &options))
        .await?
        .dyn_into()
}

/// Whether `error` is a `NotFoundError` DOMException.
fn is_not_found(error: &JsValue) -> bool {
    Reflect::get(error, &JsValue::from_str("name"))
        .ok()
        .and_then(|n| n.as_string())
        .is_some_and(|n| n == "NotFoundError")
}

fn js_failure(path: &str, error: &JsValue) -> Error {
    let message = Reflect::get(error, &JsValue::from_str("message"))
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| error.as_string())
        .unwrap_or_else(|| format!("{error:?}"));
    Error::Storage {
        path: format!("opfs:{path}"),
        message,
    }
}

async fn read_blob(directory: &str, name: &str) -> std::result::Result<Option<Vec<u8>>, JsValue> {
    let dir = directory_handle(directory).await?;
    let handle = match JsFuture::from(dir.get_file_handle(name)).await {
        Ok(handle) => handle.unchecked_into::<FileSystemFileHandle>(),
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let file: File = JsFuture::from(handle.get_file()).await?.dyn_into()?;
    let buffer = JsFuture::from(file.array_buffer()).await?;
    Ok(Some(Uint8Array::new(&buffer).to_vec()))
}

async fn write_blob(directory: &str, name: &str, bytes: &[u8]) -> std::result::Result<(), JsValue> {
    let written = try_write_blob(directory, name, bytes).await;
    if written.is_err() {
        forget_directory(directory);
    }
    written
}

async fn try_write_blob(
    directory: &str,
    name: &str,
    bytes: &[u8],
) -> std::result::Result<(), JsValue> {
    let dir = directory_handle(directory).await?;
    let options = FileSystemGetFileOptions::new();
    options.set_create(true);
    let handle: FileSystemFileHandle =
        JsFuture::from(dir.get_file_handle_with_options(name, &options))
            .await?
            .dyn_into()?;
    let writable: FileSystemWritableFileStream =
        JsFuture::from(handle.create_writable()).await?.dyn_into()?;
    if let Err(e) = JsFuture::from(writable.write_with_u8_array(bytes)?).await {
        let _ = JsFuture::from(writable.abort()).await;
        return Err(e);
    }
    JsFuture::from(writable.close()).await?;
    Ok(())
}

async fn remove_blob(directory: &str, name: &str) -> std::result::Result<(), JsValue> {
    let dir = directory_handle(directory).await?;
    match JsFuture::from(dir.remove_entry(name)).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

async fn list_blobs(directory: &str) -> std::result::Result<Vec<BlobMeta>, JsValue> {
    let dir = directory_handle(directory).await?;
    let entries = dir.values();
    let mut blobs = Vec::new();
    loop {
        let next = JsFuture::from(entries.next()?).await?;
        if Reflect::get(&next, &JsValue::from_str("done"))?.is_truthy() {
            break;
        }
        let handle = Reflect::get(&next, &JsValue::from_str("value"))?;
        let kind = Reflect::get(&handle, &JsValue::from_str("kind"))?;
        if kind.as_string().as_deref() != Some("file") {
            continue;
        }
        let handle: FileSystemFileHandle = handle.unchecked_into();
        let file: File = JsFuture::from(handle.get_file()).await?.dyn_into()?;
        blobs.push(BlobMeta {
            name: file.name(),
            size: file.size() as u64,
            written_ms: file.last_modified() as i64,
        });
    }
    Ok(blobs)
}

#[async_trait]
impl BlobStore for OpfsBlobStore {
    async fn read(&self, name: &str) -> Result<Option<Bytes>> {
        let (directory, name) = (self.directory.clone(), name.to_owned());
        run_send(async move {
            read_blob(&directory, &name)
                .await
                .map(|blob| blob.map(Bytes::from))
                .map_err(|e| js_failure(&name, &e))
        })
        .await
    }

    async fn write(&self, name: &str, bytes: Bytes) -> Result<()> {
        let (directory, name) = (self.directory.clone(), name.to_owned());
        run_send(async move {
            write_blob(&directory, &name, &bytes)
                .await
                .map_err(|e| js_failure(&name, &e))
        })
        .await
    }

    async fn remove(&self, name: &str) -> Result<()> {
        let (directory, name) = (self.directory.clone(), name.to_owned());
        run_send(async move {
            remove_blob(&directory, &name)
                .await
                .map_err(|e| js_failure(&name, &e))
        })
        .await
    }

    async fn list(&self) -> Result<Vec<BlobMeta>> {
        let directory = self.directory.clone();
        run_send(async move {
            list_blobs(&directory)
                .await
                .map_err(|e| js_failure(&directory, &e))
        })
        .await
    }
}
