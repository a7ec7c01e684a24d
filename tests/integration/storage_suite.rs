//! One behaviour suite for every `Storage` backend, the way object_store
//! runs one suite over every store: reads (whole files, ranges, sizes,
//! missing files), listings where the backend lists, and, where it writes,
//! puts, the put-if-absent that makes commits exclusive, and deletes. Run
//! over the kernel's in-memory storage, object_store's memory, a local directory, S3 (moto), Azure Blob Storage (Azurite),
//! a static HTTP host and a map of presigned-style URLs.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use wavelake_engine::Error;
use wavelake_engine::storage::{
    HttpStorage, MemoryStorage, ObjectStoreStorage, Storage, StorageRef, UrlMapStorage,
};
use wavelake_tests::http_server::TestHttpServer;
use wavelake_tests::{AzuriteServer, MotoServer};

/// The files every backend is checked over: path and length (byte `i` of
/// each is `(i * 7 + len) % 251`).
const FILES: &[(&str, usize)] = &[
    ("_delta_log/00000000000000000000.json", 120),
    ("a/one.bin", 1000),
    ("a/b/two.bin", 10),
    ("c/three.bin", 3),
];

fn content(len: usize) -> Bytes {
    (0..len).map(|i| ((i * 7 + len) % 251) as u8).collect()
}

/// Reads of the [`FILES`]; listings when `lists` (else the backend must
/// say it cannot list).
async fn check_reads(name: &str, storage: &dyn Storage, lists: bool) {
    for (path, len) in FILES {
        let want = content(*len);
        assert_eq!(storage.get(path).await.unwrap(), want, "{name}: get {path}");
        assert_eq!(
            storage.size(path).await.unwrap(),
            *len as u64,
            "{name}: size {path}"
        );
    }
    let one = content(1000);
    assert_eq!(
        storage.get_range("a/one.bin", 10..20).await.unwrap(),
        one.slice(10..20),
        "{name}: one range"
    );
    let ranges = [0..5, 500..510, 990..1000, 3..4];
    let parts = storage.get_ranges("a/one.bin", &ranges).await.unwrap();
    assert_eq!(parts.len(), ranges.len(), "{name}: one part per range");
    for (part, range) in parts.iter().zip(&ranges) {
        let want = one.slice(range.start as usize..range.end as usize);
        assert_eq!(part, &want, "{name}: range {range:?}");
    }
    for missing in [
        storage.get("a/none.bin").await,
        storage.get_range("a/none.bin", 0..4).await,
    ] {
        match missing {
            Err(e) => assert!(
                e.is_not_found(),
                "{name}: a missing file is NotFound, not {e:?}"
            ),
            Ok(bytes) => panic!("{name}: a missing file read as {} bytes", bytes.len()),
        }
    }
    let listed = storage.list("a/", None).await.unwrap();
    if !lists {
        assert!(listed.is_none(), "{name}: lists though it cannot");
        return;
    }
    let listed = listed.unwrap_or_else(|| panic!("{name}: cannot list"));
    let found: Vec<(&str, u64)> = listed.iter().map(|f| (f.path.as_str(), f.size)).collect();
    assert_eq!(
        found,
        [("a/b/two.bin", 10), ("a/one.bin", 1000)],
        "{name}: list a/"
    );
    let after = storage
        .list("a/", Some("a/b/two.bin"))
        .await
        .unwrap()
        .unwrap();
    let after: Vec<&str> = after.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(after, ["a/one.bin"], "{name}: list a/ after a/b/two.bin");
    let log = storage.list("_delta_log/", None).await.unwrap().unwrap();
    assert_eq!(log.len(), 1, "{name}: list _delta_log/");
    assert!(
        storage
            .list("nothing/", None)
            .await
            .unwrap()
            .unwrap()
            .is_empty(),
        "{name}: an empty prefix lists nothing"
    );
    // Directories that hold files; a local filesystem may also list one
    // that deletes emptied (object stores have no directories to keep).
    let mut directories = Vec::new();
    for directory in storage.list_directories("").await.unwrap() {
        let files = storage
            .list(&format!("{directory}/"), None)
            .await
            .unwrap()
            .unwrap();
        if !files.is_empty() {
            directories.push(directory);
        }
    }
    assert_eq!(
        directories,
        ["_delta_log", "a", "c"],
        "{name}: directories of the root"
    );
    assert_eq!(
        storage.list_directories("a/").await.unwrap(),
        ["b"],
        "{name}: directories of a/"
    );
}

/// Writes on a writable backend, then the [`FILES`] written and read back.
async fn check_writes_then_reads(name: &str, storage: &dyn Storage) {
    storage
        .put("w/file", Bytes::from_static(b"first"))
        .await
        .unwrap();
    assert_eq!(storage.get("w/file").await.unwrap(), "first", "{name}: put");
    storage
        .put("w/file", Bytes::from_static(b"second"))
        .await
        .unwrap();
    assert_eq!(
        storage.get("w/file").await.unwrap(),
        "second",
        "{name}: put replaces"
    );

    storage
        .put_if_absent("w/commit", Bytes::from_static(b"mine"))
        .await
        .unwrap();
    match storage
        .put_if_absent("w/commit", Bytes::from_static(b"theirs"))
        .await
    {
        Err(Error::AlreadyExists { .. }) => {}
        other => panic!("{name}: a second put_if_absent must be AlreadyExists, not {other:?}"),
    }
    assert_eq!(
        storage.get("w/commit").await.unwrap(),
        "mine",
        "{name}: the first commit stays"
    );

    storage.delete("w/file").await.unwrap();
    assert!(
        storage.get("w/file").await.unwrap_err().is_not_found(),
        "{name}: deleted"
    );
    storage.delete("w/file").await.unwrap();
    storage.delete("w/commit").await.unwrap();

    for (path, len) in FILES {
        storage.put(path, content(*len)).await.unwrap();
    }
    check_reads(name, storage, true).await;
}

/// A read-only backend refuses writes as `ReadOnly` and keeps nothing.
async fn check_read_only(name: &str, storage: &dyn Storage) {
    for refused in [
        storage.put("x", Bytes::from_static(b"x")).await,
        storage.put_if_absent("x", Bytes::from_static(b"x")).await,
        storage.delete("a/one.bin").await,
    ] {
        assert!(
            matches!(refused, Err(Error::ReadOnly { .. })),
            "{name}: {refused:?}"
        );
    }
    assert_eq!(
        storage.size("a/one.bin").await.unwrap(),
        1000,
        "{name}: nothing deleted"
    );
}

#[tokio::test]
async fn kernel_memory_storage_behaves_as_every_storage() {
    let storage = MemoryStorage::new("memory:///suite/");
    check_writes_then_reads("kernel memory", &storage).await;
}

#[tokio::test]
async fn memory_storage_behaves_as_every_storage() {
    let storage = ObjectStoreStorage::open("memory://suite").unwrap();
    check_writes_then_reads("memory", &storage).await;
}

#[tokio::test]
async fn local_storage_behaves_as_every_storage() {
    let dir = tempfile::tempdir().unwrap();
    let storage = ObjectStoreStorage::open(dir.path().to_str().unwrap()).unwrap();
    check_writes_then_reads("local", &storage).await;
}

#[tokio::test]
async fn s3_storage_behaves_as_every_storage() {
    let Some(moto) = MotoServer::start("s3_storage_behaves_as_every_storage") else {
        return;
    };
    moto.create_bucket("suite");
    let storage = ObjectStoreStorage::open_with("s3://suite/root", moto.options()).unwrap();
    check_writes_then_reads("s3", &storage).await;
}

#[tokio::test]
async fn azure_storage_behaves_as_every_storage() {
    let Some(azurite) = AzuriteServer::start("azure_storage_behaves_as_every_storage") else {
        return;
    };
    azurite.create_container("suite");
    let storage =
        ObjectStoreStorage::open_with("az://suite/root", azurite.endpoint_options()).unwrap();
    check_writes_then_reads("azure", &storage).await;
}

/// A local directory holding the [`FILES`], served over HTTP.
async fn served_files() -> (tempfile::TempDir, TestHttpServer) {
    let dir = tempfile::tempdir().unwrap();
    let local = ObjectStoreStorage::open(dir.path().to_str().unwrap()).unwrap();
    for (path, len) in FILES {
        local.put(path, content(*len)).await.unwrap();
    }
    let server = TestHttpServer::start(dir.path()).await.unwrap();
    (dir, server)
}

#[tokio::test]
async fn http_storage_behaves_as_every_storage() {
    let (_dir, server) = served_files().await;
    let storage = HttpStorage::new(&format!("{}/", server.url)).unwrap();
    check_reads("http", &storage, false).await;
    check_read_only("http", &storage).await;
}

#[tokio::test]
async fn url_map_storage_behaves_as_every_storage() {
    let (_dir, server) = served_files().await;
    let urls: HashMap<String, String> = FILES
        .iter()
        .map(|(path, _)| {
            (
                (*path).to_owned(),
                format!("{}/{path}?signature=x", server.url),
            )
        })
        .collect();
    let reader: StorageRef = Arc::new(HttpStorage::new(&format!("{}/", server.url)).unwrap());
    let storage = UrlMapStorage::new("urls://suite/", urls, reader);
    check_reads("url map", &storage, false).await;
    check_read_only("url map", &storage).await;
}
