//! Broken tables give typed errors naming the file or feature, never a
//! panic: malformed and truncated commits, a truncated checkpoint, a missing
//! or corrupt data file, a deletion vector with a wrong checksum, an unknown
//! reader feature, a Parquet page declaring more than a reader may hold.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wavelake_engine::Error;
use wavelake_engine::storage::ObjectStoreStorage;
use wavelake_tests::{copy_dir, files_under, golden_or_skip, unpack};

/// A writable copy of a golden table's `delta/` folder.
fn copy_of(test: &str, name: &str) -> Option<(tempfile::TempDir, PathBuf)> {
    let root = golden_or_skip(test)?;
    let source = unpack(&root.join(format!("kernel-golden/{name}.tar.zst"))).join("delta");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&source, dir.path());
    let path = dir.path().to_path_buf();
    Some((dir, path))
}

async fn read(table: &Path) -> Result<usize, Error> {
    let engine = wavelake_write::session();
    let storage = ObjectStoreStorage::open(table.to_str().unwrap())?;
    engine.register("t", Arc::new(storage)).await?;
    let batches = engine.query("SELECT * FROM t").await?;
    Ok(batches.iter().map(|b| b.num_rows()).sum())
}

fn files_matching(dir: &Path, pred: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| pred(&p.to_string_lossy()))
        .collect()
}

const LAST_COMMIT: &str = "_delta_log/00000000000000000002.json";

#[tokio::test]
async fn a_malformed_commit_line_is_corrupt_naming_the_commit() {
    let Some((_dir, table)) = copy_of("malformed commit", "time-travel-start-start20-start40")
    else {
        return;
    };
    let commit = table.join(LAST_COMMIT);
    let mut text = std::fs::read_to_string(&commit).unwrap();
    text.push_str("{\"add\": {\"path\": \"x.parquet\", \"size\": \"not a number\"}}\n");
    std::fs::write(&commit, text).unwrap();
    let err = read(&table).await.expect_err("malformed");
    assert!(
        matches!(&err, Error::Corrupt { path, .. } if path.ends_with("00000000000000000002.json")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_truncated_commit_is_corrupt_naming_the_commit() {
    let Some((_dir, table)) = copy_of("truncated commit", "time-travel-start-start20-start40")
    else {
        return;
    };
    let commit = table.join(LAST_COMMIT);
    let bytes = std::fs::read(&commit).unwrap();
    std::fs::write(&commit, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let err = read(&table).await.expect_err("truncated");
    assert!(
        matches!(&err, Error::Corrupt { path, .. } if path.ends_with("00000000000000000002.json")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_truncated_checkpoint_is_corrupt_naming_it() {
    let Some((_dir, table)) = copy_of("truncated checkpoint", "checkpoint") else {
        return;
    };
    let checkpoints = files_matching(&table, |p| p.ends_with(".checkpoint.parquet"));
    let checkpoint = checkpoints.last().expect("a checkpoint");
    let bytes = std::fs::read(checkpoint).unwrap();
    std::fs::write(checkpoint, &bytes[..bytes.len() / 2]).unwrap();
    let name = checkpoint
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let err = read(&table).await.expect_err("truncated checkpoint");
    assert!(
        matches!(&err, Error::Corrupt { path, .. } if path.ends_with(&name)),
        "{err:?}"
    );
}

#[tokio::test]
async fn missing_and_corrupt_data_files_are_named() {
    let Some((_dir, table)) = copy_of("data files", "basic-with-inserts-deletes-checkpoint") else {
        return;
    };
    let active = {
        let storage = Arc::new(ObjectStoreStorage::open(table.to_str().unwrap()).unwrap());
        let snapshot = wavelake_engine::Table::new(storage)
            .unwrap()
            .snapshot()
            .await
            .unwrap();
        table.join(&snapshot.files()[0].path)
    };
    let corrupt = active.file_name().unwrap().to_string_lossy().into_owned();
    // Garbage of the same size where a data file should be.
    let size = std::fs::metadata(&active).unwrap().len() as usize;
    std::fs::write(&active, vec![b'x'; size]).unwrap();
    let err = read(&table).await.expect_err("corrupt data file");
    assert!(
        matches!(&err, Error::Corrupt { path, .. } if path.ends_with(&corrupt)),
        "{err:?}"
    );
    // A data file that is gone.
    std::fs::remove_file(&active).unwrap();
    let err = read(&table).await.expect_err("missing data file");
    assert!(
        matches!(&err, Error::NotFound { path } if path.ends_with(&corrupt)),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_deletion_vector_with_a_wrong_checksum_names_the_data_file() {
    let Some((_dir, table)) = copy_of("dv checksum", "dv-partitioned-with-checkpoint") else {
        return;
    };
    // Flip one bit of the bitmap in every DV file (after its 4-byte version
    // and 4-byte length prefix, inside the serialized bitmap).
    for dv in files_matching(&table, |p| {
        p.contains("deletion_vector_") && p.ends_with(".bin")
    }) {
        let mut bytes = std::fs::read(&dv).unwrap();
        let at = bytes.len().min(16) - 1;
        bytes[at] ^= 0x01;
        std::fs::write(&dv, bytes).unwrap();
    }
    let err = read(&table).await.expect_err("bad DV");
    assert!(
        matches!(&err, Error::DeletionVector { data_file, reason }
            if data_file.ends_with(".parquet") && (reason.contains("checksum") || reason.contains("CRC"))),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unknown_reader_feature_is_refused_by_name() {
    let Some((_dir, table)) = copy_of("unknown feature", "time-travel-start-start20-start40")
    else {
        return;
    };
    let commit = table.join("_delta_log/00000000000000000000.json");
    let text = std::fs::read_to_string(&commit).unwrap();
    let rewritten: Vec<String> = text
        .lines()
        .map(|line| {
            if line.starts_with("{\"protocol\"") {
                r#"{"protocol":{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["deletionVectors","quantumCompression"],"writerFeatures":["deletionVectors","quantumCompression"]}}"#.to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect();
    std::fs::write(&commit, rewritten.join("\n")).unwrap();
    let err = read(&table).await.expect_err("unknown feature");
    assert!(
        matches!(&err, Error::UnsupportedFeature { feature } if feature.contains("quantumCompression")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_broken_table_under_a_root_leaves_the_others_readable() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let engine = wavelake_write::session().with_storage_opener(Arc::new(|location: &str| {
        Ok(Arc::new(ObjectStoreStorage::open(location)?) as _)
    }));
    engine.register_root(root).await.unwrap();
    engine.query("CREATE TABLE good (id BIGINT)").await.unwrap();
    engine.query("INSERT INTO good VALUES (1)").await.unwrap();
    let broken = dir.path().join("broken/_delta_log");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("00000000000000000000.json"), b"{not json").unwrap();
    std::fs::create_dir_all(dir.path().join("not_a_table")).unwrap();

    let fresh = wavelake_write::session().with_storage_opener(Arc::new(|location: &str| {
        Ok(Arc::new(ObjectStoreStorage::open(location)?) as _)
    }));
    assert_eq!(fresh.register_root(root).await.unwrap(), ["good"]);
    let rows = fresh.query("SELECT count(*) FROM good").await.unwrap();
    assert_eq!(rows[0].num_rows(), 1);
    let err = read(&dir.path().join("broken")).await.expect_err("corrupt");
    assert!(
        err.to_string().contains("00000000000000000000.json"),
        "{err}"
    );
}

/// `bytes` with the uncompressed size of the page whose header starts at
/// `header` set to `size`: the header's second field (the page type comes
/// first), a zigzag varint, rewritten at whatever length it needs.
fn with_page_size(bytes: &[u8], header: usize, size: i64) -> Vec<u8> {
    let varint_end = |at: usize| {
        let mut end = at;
        while bytes[end] & 0x80 != 0 {
            end += 1;
        }
        end + 1
    };
    assert_eq!(bytes[header], 0x15, "field 1, an i32");
    let field_two = varint_end(header + 1);
    assert_eq!(bytes[field_two], 0x15, "field 2, an i32");
    let (start, end) = (field_two + 1, varint_end(field_two + 1));
    let mut zigzag = ((size << 1) ^ (size >> 63)) as u64;
    let mut encoded = Vec::new();
    loop {
        let byte = (zigzag & 0x7f) as u8;
        zigzag >>= 7;
        if zigzag == 0 {
            encoded.push(byte);
            break;
        }
        encoded.push(byte | 0x80);
    }
    [&bytes[..start], &encoded, &bytes[end..]].concat()
}

/// A data file whose first page declares 2 GB uncompressed (the parquet
/// crate would allocate that before decompressing) is refused by name
/// before the page is decompressed.
#[tokio::test]
async fn a_page_declaring_gigabytes_is_refused_before_it_is_decompressed() {
    let dir = tempfile::tempdir().unwrap();
    let engine = wavelake_tests::engine_at(dir.path()).await;
    engine.query("CREATE TABLE t (id BIGINT)").await.unwrap();
    engine
        .query("INSERT INTO t SELECT value FROM range(0, 5000)")
        .await
        .unwrap();
    let table = dir.path().join("t");
    assert_eq!(read(&table).await.unwrap(), 5000);
    let data = files_matching(&table, |p| {
        p.ends_with(".parquet") && !p.contains("_delta_log")
    });
    assert_eq!(data.len(), 1, "{data:?}");
    let bytes = std::fs::read(&data[0]).unwrap();
    // The first column chunk starts right after the magic bytes.
    let bomb = with_page_size(&bytes, 4, 2_000_000_000);
    std::fs::write(&data[0], &bomb).unwrap();
    // The log says how big the file is: say it again.
    let commit = table.join("_delta_log/00000000000000000001.json");
    let log = std::fs::read_to_string(&commit).unwrap();
    let resized = log.replace(
        &format!("\"size\":{}", bytes.len()),
        &format!("\"size\":{}", bomb.len()),
    );
    assert_ne!(log, resized, "the add action names the file's size");
    std::fs::write(&commit, resized).unwrap();
    let err = read(&table).await.expect_err("a page bomb");
    assert!(
        matches!(&err, Error::LimitExceeded { what, detail, .. }
            if what == "a Parquet page" && detail.contains("2000000000")),
        "{err:?}"
    );
    // A scan with a filter decodes through another reader than the one
    // that read the footer (DataFusion reads bloom filters through the
    // first): its pages are checked all the same. (The bomb moved the
    // page index that follows the pages: it is not read.)
    let engine = wavelake_write::session();
    let storage = ObjectStoreStorage::open(table.to_str().unwrap()).unwrap();
    engine.register("t", Arc::new(storage)).await.unwrap();
    engine
        .query("SET datafusion.execution.parquet.enable_page_index = false")
        .await
        .unwrap();
    let err = engine
        .query("SELECT * FROM t WHERE id > 10")
        .await
        .expect_err("a page bomb");
    assert!(
        matches!(&err, Error::LimitExceeded { what, detail, .. }
            if what == "a Parquet page" && detail.contains("2000000000")),
        "{err:?}"
    );
}
