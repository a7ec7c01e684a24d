//! What a query would read, estimated from the log before reading any data
//! (`SqlSession::estimate_reads`), over a partitioned table.

use std::sync::Arc;

use arrow::array::AsArray;

use wavelake_engine::{Error, SqlSession};

async fn partitioned_table() -> (tempfile::TempDir, SqlSession) {
    let dir = tempfile::tempdir().unwrap();
    let engine = wavelake_write::session().with_storage_opener(Arc::new(|location: &str| {
        wavelake_engine::storage::open(location)
    }));
    engine
        .register_root(dir.path().to_str().unwrap())
        .await
        .unwrap();
    for sql in [
        "CREATE TABLE t (id BIGINT, part STRING) PARTITIONED BY (part)",
        "INSERT INTO t SELECT value AS id, CAST(value % 2 AS STRING) AS part FROM range(1000)",
        "INSERT INTO t SELECT value + 1000 AS id, 'x' AS part FROM range(10)",
    ] {
        engine.query(sql).await.unwrap();
    }
    (dir, engine)
}

#[tokio::test]
async fn the_estimate_is_what_the_scan_keeps_after_pruning() {
    let (_dir, engine) = partitioned_table().await;
    let table = engine.table("t").unwrap().snapshot().await.unwrap();
    let sizes: u64 = table.files().iter().map(|f| f.size as u64).sum();
    assert_eq!(table.files().len(), 3);

    let all = engine.estimate_reads("SELECT * FROM t").await.unwrap();
    assert_eq!((all.files, all.files_pruned, all.scans), (3, 0, 1));
    assert_eq!(all.bytes, sizes);
    assert_eq!(all.other_source, None);

    let one = engine
        .estimate_reads("SELECT count(*) FROM t WHERE part = '1'")
        .await
        .unwrap();
    assert_eq!((one.files, one.files_pruned), (1, 2));
    assert!(one.bytes > 0 && one.bytes < sizes, "{one:?}");
    // Statistics: no file holds ids above 2000.
    let none = engine
        .estimate_reads("SELECT * FROM t WHERE id > 2000")
        .await
        .unwrap();
    assert_eq!((none.files, none.bytes), (0, 0));
    let joined = engine
        .estimate_reads("SELECT * FROM t a JOIN t b ON a.id = b.id")
        .await
        .unwrap();
    assert_eq!((joined.scans, joined.bytes), (2, 2 * sizes));
}

#[tokio::test]
async fn writes_have_no_estimate_and_other_sources_are_named() {
    let (_dir, engine) = partitioned_table().await;
    let refused = engine.estimate_reads("DELETE FROM t").await.unwrap_err();
    assert!(matches!(refused, Error::InvalidArgument(_)), "{refused}");
    let rows = engine.query("SELECT count(*) FROM t").await.unwrap();
    let count = rows[0]
        .column(0)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(0);
    assert_eq!(count, 1010, "nothing was deleted");
    let history = engine
        .estimate_reads("SELECT * FROM delta_history('t')")
        .await
        .unwrap();
    assert!(history.other_source.is_some(), "{history:?}");
}

/// The bytes of the column chunks a query fetches, from the kept files'
/// footers: each column's chunks in every kept file, nothing for pruned
/// files, and a column chosen twice counted once.
#[tokio::test]
async fn chunk_bytes_are_the_kept_files_chunks_of_the_columns_read() {
    let (dir, engine) = partitioned_table().await;
    let table = engine.table("t").unwrap().snapshot().await.unwrap();
    // `id`'s chunks in each data file, read from the files themselves.
    let id_bytes: std::collections::HashMap<String, u64> = table
        .files()
        .iter()
        .map(|add| {
            let path = dir.path().join("t").join(table.file_path(add));
            let file = std::fs::File::open(&path).unwrap();
            let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
            let metadata = parquet::file::reader::FileReader::metadata(&reader);
            let bytes = metadata
                .row_groups()
                .iter()
                .map(|g| g.column(0).compressed_size() as u64)
                .sum();
            (
                add.partition_values.get("part").cloned().flatten().unwrap(),
                bytes,
            )
        })
        .collect();
    let all: u64 = id_bytes.values().sum();
    assert!(all > 0);
    let ids = engine
        .estimate_chunk_bytes("SELECT id FROM t")
        .await
        .unwrap();
    assert_eq!(ids, all);
    // Partition values are not in the files; `id` once though read twice.
    let twice = engine
        .estimate_chunk_bytes("SELECT id, part, id + 1 FROM t")
        .await
        .unwrap();
    assert_eq!(twice, all);
    let one = engine
        .estimate_chunk_bytes("SELECT id FROM t WHERE part = '1'")
        .await
        .unwrap();
    assert_eq!(one, id_bytes["1"]);
    let none = engine
        .estimate_chunk_bytes("SELECT count(*) FROM t WHERE id > 2000")
        .await
        .unwrap();
    assert_eq!(none, 0);
    let err = engine
        .estimate_chunk_bytes("DELETE FROM t WHERE id = 1")
        .await
        .expect_err("a write has no estimate");
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
}
