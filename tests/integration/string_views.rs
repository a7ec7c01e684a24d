//! A query session reads its tables' strings and binaries as views
//! (`Utf8View`, `BinaryView`), which DataFusion decodes, compares and
//! groups faster, while callers, writes and the log's statistics keep the
//! declared `string` and `binary` types.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use wavelake_engine::scan::DeltaScanExec;

/// Fruit names in two files: `apple`..`cherry` then `mango`..`plum`, each
/// in both partitions.
const FRUIT: &[&str] = &[
    "CREATE TABLE t (id BIGINT, note STRING, data BINARY, part STRING) PARTITIONED BY (part)",
    "INSERT INTO t VALUES (1, 'apple', X'01', 'a'), (2, 'banana', X'02', 'b'), \
     (3, 'cherry', NULL, 'a'), (4, NULL, X'04', 'b')",
    "INSERT INTO t VALUES (5, 'mango', X'05', 'a'), (6, 'plum', X'06', 'b'), \
     (7, 'mango', X'07', 'b')",
];

fn types(batch: &RecordBatch) -> Vec<DataType> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect()
}

/// The first column of `batches` as text, nulls as `-`.
fn texts(batches: &[RecordBatch]) -> Vec<String> {
    batches
        .iter()
        .flat_map(|batch| {
            let column = batch.column(0).as_string::<i32>().clone();
            (0..column.len())
                .map(|i| match column.is_null(i) {
                    true => "-".to_owned(),
                    false => column.value(i).to_owned(),
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn file_strings_are_scanned_as_views_and_answered_as_declared() {
    let (_dir, engine) = wavelake_tests::engine_after(FRUIT).await;
    let sql = "SELECT note, data, part FROM t ORDER BY id";
    let plan = wavelake_tests::physical_plan(&engine, sql).await;
    let scan = wavelake_tests::find_node::<DeltaScanExec>(&plan).expect("a Delta scan");
    let scanned: Vec<DataType> = scan
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    assert_eq!(
        scanned,
        vec![
            DataType::Int64,
            DataType::Utf8View,
            DataType::BinaryView,
            DataType::Utf8
        ],
        "data-file strings and binaries as views, the partition column as declared"
    );

    let batches = engine.query(sql).await.unwrap();
    assert_eq!(
        types(&batches[0]),
        vec![DataType::Utf8, DataType::Binary, DataType::Utf8]
    );
    assert_eq!(
        texts(&batches),
        ["apple", "banana", "cherry", "-", "mango", "plum", "mango"]
    );
    let described = engine.query("DESCRIBE t").await.unwrap();
    let data_types = described[0]
        .column_by_name("data_type")
        .expect("a data_type column")
        .as_string::<i32>()
        .iter()
        .map(|t| t.unwrap_or("-").to_owned())
        .collect::<Vec<_>>();
    assert_eq!(data_types, ["Int64", "Utf8", "Binary", "Utf8"]);
    let grouped = engine
        .query("SELECT note, count(*) AS n FROM t GROUP BY note ORDER BY n DESC, note")
        .await
        .unwrap();
    assert_eq!(types(&grouped[0]), vec![DataType::Utf8, DataType::Int64]);
    assert_eq!(
        texts(&grouped),
        ["mango", "apple", "banana", "cherry", "plum", "-"]
    );
}

#[tokio::test]
async fn string_conditions_still_prune_files_by_the_log_statistics() {
    let (_dir, engine) = wavelake_tests::engine_after(FRUIT).await;
    let profile = engine
        .profile("SELECT id FROM t WHERE note = 'mango'")
        .await
        .unwrap();
    let total = profile.total();
    // Two partitions per insert: four files, the first insert's two
    // ruled out by their bounds (`apple`..`cherry`).
    assert_eq!(total.files_scanned + total.files_pruned, 4, "{total:?}");
    assert_eq!(total.files_pruned, 2, "{total:?}");
    let rows: usize = profile.batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, 2);
}

#[tokio::test]
async fn writes_planned_over_views_keep_the_declared_types() {
    let (_dir, engine) = wavelake_tests::engine_after(FRUIT).await;
    for sql in [
        "CREATE TABLE copy AS SELECT id, note, data, part FROM t WHERE id < 5",
        "INSERT INTO copy SELECT id, upper(note), data, part FROM t WHERE note = 'mango'",
        "UPDATE t SET note = concat(note, '!') WHERE note = 'apple' OR note LIKE 'pl%'",
        "DELETE FROM t WHERE note = 'banana'",
        "MERGE INTO t USING copy AS s ON t.note = lower(s.note) AND s.id = 5 \
         WHEN MATCHED THEN UPDATE SET note = s.note",
    ] {
        engine.query(sql).await.unwrap();
    }
    for table in ["t", "copy"] {
        let schema = engine.table(table).unwrap().snapshot().await.unwrap();
        let declared: Vec<DataType> = schema
            .arrow_schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(
            declared,
            vec![
                DataType::Int64,
                DataType::Utf8,
                DataType::Binary,
                DataType::Utf8
            ],
            "{table}"
        );
    }
    let copied = engine
        .query("SELECT note FROM copy ORDER BY id")
        .await
        .unwrap();
    assert_eq!(
        texts(&copied),
        ["apple", "banana", "cherry", "-", "MANGO", "MANGO"]
    );
    let changed = engine
        .query("SELECT note FROM t ORDER BY id")
        .await
        .unwrap();
    assert_eq!(
        texts(&changed),
        ["apple!", "cherry", "-", "MANGO", "plum!", "MANGO"]
    );
}

#[tokio::test]
async fn ordered_answers_stay_ordered_after_the_cast_to_declared_types() {
    let (_dir, engine) = wavelake_tests::engine_after(&[
        "CREATE TABLE many (id BIGINT, name STRING)",
        "INSERT INTO many SELECT value, concat('n', CAST(value AS STRING)) FROM range(50000)",
        "INSERT INTO many SELECT value + 50000, concat('m', CAST(value AS STRING)) FROM range(50000)",
    ])
    .await;
    let frame = engine
        .sql("SELECT name, id FROM many ORDER BY id DESC")
        .await
        .unwrap();
    let batches = frame.collect().await.unwrap();
    let ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            b.column(1)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(ids.len(), 100_000);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "not in order");

    // Ordered by a column not selected, with the string computed.
    let expected: Vec<String> = (0..100_000)
        .rev()
        .map(|id| match id {
            0..50_000 => format!("N{id}"),
            _ => format!("M{}", id - 50_000),
        })
        .collect();
    let upper = engine
        .query("SELECT upper(name) AS u FROM many ORDER BY id DESC")
        .await
        .unwrap();
    assert_eq!(texts(&upper), expected);
    let limited = engine
        .query("SELECT upper(name) AS u FROM many ORDER BY id DESC LIMIT 3")
        .await
        .unwrap();
    assert_eq!(texts(&limited), expected[..3]);
}
