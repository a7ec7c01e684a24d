//! A table with fewer data files than the query has partitions is read in
//! ranges of rows, one per partition, with its deletion vectors applied in
//! every range.

use std::collections::BTreeSet;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::physical_plan::parquet::ParquetRowSelection;
use datafusion::datasource::source::DataSourceExec;
use wavelake_engine::SqlSession;

const ROWS: i64 = 240_000;

/// The distinct row ranges (file and row selection) the first Parquet scan
/// of `sql`'s plan reads, and the number of its partitions.
async fn ranges(engine: &SqlSession, sql: &str) -> (BTreeSet<String>, usize) {
    let plan = wavelake_tests::physical_plan(engine, sql).await;
    let scan = wavelake_tests::find_node::<DataSourceExec>(&plan).expect("a Parquet scan");
    let scan = scan.downcast_ref::<DataSourceExec>().unwrap();
    let config = scan
        .data_source()
        .downcast_ref::<FileScanConfig>()
        .expect("a file scan");
    let ranges = config
        .file_groups
        .iter()
        .flat_map(|group| group.iter())
        .map(|file| {
            let selection = file.extension::<ParquetRowSelection>().map(|s| {
                s.selection()
                    .iter()
                    .map(|s| format!("{}{}", if s.skip { "-" } else { "+" }, s.row_count))
                    .collect::<Vec<_>>()
                    .join(" ")
            });
            format!("{} {selection:?}", file.object_meta.location)
        })
        .collect();
    (ranges, config.file_groups.len())
}

fn numbers(batches: &[RecordBatch]) -> Vec<i64> {
    let batch = &batches[0];
    (0..batch.num_columns())
        .map(|c| batch.column(c).as_primitive::<Int64Type>().value(0))
        .collect()
}

#[tokio::test]
async fn one_file_is_read_by_every_partition_with_its_deletion_vector() {
    let (_dir, engine) = wavelake_tests::engine_after(&[
        "CREATE TABLE t (id BIGINT NOT NULL, name STRING) \
         TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')",
        "SET datafusion.execution.target_partitions = 1",
        &format!(
            "INSERT INTO t SELECT value AS id, concat('n', CAST(value AS STRING)) AS name \
             FROM generate_series(0, {}) ORDER BY value",
            ROWS - 1
        ),
        "SET datafusion.execution.target_partitions = 4",
    ])
    .await;
    let query = "SELECT count(*) AS n, sum(id) AS total, count(DISTINCT name) AS names \
                 FROM t WHERE id % 5 <> 1";
    // However many files the insert wrote (one or two), four ranges of
    // rows, each read by a partition of its own.
    let (read, partitions) = ranges(&engine, query).await;
    assert_eq!(read.len(), 4, "{read:?}");
    assert!(read.iter().all(|r| r.contains("Some")), "{read:?}");
    assert_eq!(partitions, 4);
    let kept: Vec<i64> = (0..ROWS).filter(|id| id % 5 != 1).collect();
    let expected = vec![kept.len() as i64, kept.iter().sum(), kept.len() as i64];
    assert_eq!(numbers(&engine.query(query).await.unwrap()), expected);

    // Rows deleted in every range, as a deletion vector.
    engine
        .query("DELETE FROM t WHERE id % 7 = 0 OR id BETWEEN 79990 AND 80010")
        .await
        .unwrap();
    let (read, _) = ranges(&engine, query).await;
    assert_eq!(read.len(), 4, "{read:?}");
    let kept: Vec<i64> = (0..ROWS)
        .filter(|id| id % 5 != 1 && id % 7 != 0 && !(79_990..=80_010).contains(id))
        .collect();
    let expected = vec![kept.len() as i64, kept.iter().sum(), kept.len() as i64];
    assert_eq!(numbers(&engine.query(query).await.unwrap()), expected);
}
