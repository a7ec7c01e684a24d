//! The write path's first pieces end to end: data files with statistics
//! and commits, read back by Wavelake (with file skipping) and by the
//! oracles, PyPI `deltalake` and DuckDB's delta extension.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use wavelake_engine::protocol::{Add, Format, Metadata, Protocol};
use wavelake_engine::storage::{ObjectStoreStorage, Storage};
use wavelake_write::data_file::{DataFileOptions, write_data_file};
use wavelake_write::transaction::Transaction;

#[tokio::test]
async fn committed_files_are_read_by_wavelake_and_the_oracles() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(ObjectStoreStorage::open(dir.path().to_str().unwrap()).unwrap());
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let schema_string = r#"{"type":"struct","fields":[{"name":"id","type":"long","nullable":false,"metadata":{}},{"name":"name","type":"string","nullable":true,"metadata":{}}]}"#;
    Transaction::new(None, "CREATE TABLE")
        .protocol(Protocol {
            min_reader_version: 1,
            min_writer_version: 2,
            reader_features: None,
            writer_features: None,
        })
        .metadata(Metadata {
            id: "e2e".into(),
            name: None,
            description: None,
            format: Format::default(),
            schema_string: schema_string.into(),
            partition_columns: vec![],
            created_time: Some(0),
            configuration: HashMap::new(),
        })
        .commit(storage.as_ref(), 0)
        .await
        .unwrap();
    let mut adds = Vec::new();
    for part in 0..3i64 {
        let ids: Vec<i64> = (part * 100..part * 100 + 100).collect();
        let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap();
        let file = write_data_file(&schema, &[batch], &DataFileOptions::default()).unwrap();
        let path = format!("part-{part:05}.parquet");
        let size = file.bytes.len() as i64;
        storage.put(&path, file.bytes).await.unwrap();
        adds.push(Add {
            path,
            partition_values: HashMap::new(),
            size,
            modification_time: 0,
            data_change: true,
            stats: Some(file.stats),
            tags: None,
            deletion_vector: None,
            base_row_id: None,
            default_row_commit_version: None,
            clustering_provider: None,
        });
    }
    Transaction::new(Some(0), "WRITE")
        .add_files(adds)
        .commit(storage.as_ref(), 1)
        .await
        .unwrap();

    let engine = wavelake_write::session();
    engine.register("t", storage.clone()).await.unwrap();
    let profile = engine
        .profile("SELECT count(*) FROM t WHERE id >= 250")
        .await
        .unwrap();
    let count = arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(
        profile.batches[0].column(0),
    )
    .value(0);
    assert_eq!(count, 50);
    assert_eq!(profile.total().files_pruned, 2, "statistics skip two files");

    wavelake_tests::assert_oracles_agree(
        "committed_files_are_read_by_wavelake_and_the_oracles",
        &[dir.path().to_path_buf()],
    )
    .await;
}
