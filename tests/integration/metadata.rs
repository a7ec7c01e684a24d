//! SQL metadata tables (`delta_history`, `delta_files`, `delta_schema`,
//! `delta_protocol`, `delta_properties`, `DESCRIBE HISTORY`) checked
//! against what the log and the data say.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use wavelake_engine::Error;
use wavelake_tests::golden_engine;

fn single_i64(batches: &[RecordBatch]) -> i64 {
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

fn strings(batches: &[RecordBatch], column: usize) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for batch in batches {
        let cast =
            arrow::compute::cast(batch.column(column), &arrow::datatypes::DataType::Utf8).unwrap();
        let array = cast.as_string::<i32>();
        out.extend((0..array.len()).map(|i| array.is_valid(i).then(|| array.value(i).to_owned())));
    }
    out
}

#[tokio::test]
async fn history_lists_commits_newest_first() {
    let Some(engine) = golden_engine("history", "time-travel-start-start20-start40").await else {
        return;
    };
    let batches = engine
        .query("SELECT version, operation, timestamp FROM delta_history('t')")
        .await
        .unwrap();
    let versions = strings(&batches, 0);
    assert_eq!(versions, ["2", "1", "0"].map(|v| Some(v.to_owned())));
    assert!(
        strings(&batches, 1)
            .iter()
            .all(|op| op.as_deref() == Some("WRITE"))
    );
    let described = engine.query("DESCRIBE HISTORY t LIMIT 1").await.unwrap();
    assert_eq!(strings(&described, 0), [Some("2".to_owned())]);
}

#[tokio::test]
async fn files_agree_with_the_rows_and_deletion_vectors() {
    let Some(engine) = golden_engine("files", "dv-partitioned-with-checkpoint").await else {
        return;
    };
    let live = single_i64(&engine.query("SELECT count(*) FROM t").await.unwrap());
    let figures = engine
        .query(
            "SELECT sum(num_records) - sum(coalesce(deleted_rows, 0)), count(*), \
             count(deleted_rows) FROM delta_files('t')",
        )
        .await
        .unwrap();
    let row = &figures[0];
    let net = row.column(0).as_primitive::<Int64Type>().value(0);
    let files = row.column(1).as_primitive::<Int64Type>().value(0);
    let with_dv = row.column(2).as_primitive::<Int64Type>().value(0);
    assert_eq!(net, live, "records minus DV cardinalities = live rows");
    let snapshot = engine.table("t").unwrap().snapshot().await.unwrap();
    assert_eq!(files as usize, snapshot.files().len());
    assert!(with_dv > 0, "the table has deletion vectors");
    let partitions = engine
        .query("SELECT DISTINCT partition_values FROM delta_files('t') ORDER BY 1 LIMIT 1")
        .await
        .unwrap();
    assert_eq!(
        strings(&partitions, 0),
        [Some(r#"{"part":"0"}"#.to_owned())]
    );
}

#[tokio::test]
async fn files_at_an_older_version_match_that_version() {
    let Some(engine) = golden_engine("files at version", "time-travel-start-start20-start40").await
    else {
        return;
    };
    // Each of the three commits added two files (and none has statistics).
    for version in 0..3 {
        let files = single_i64(
            &engine
                .query(&format!(
                    "SELECT count(*) FROM delta_files('t', {version}) WHERE num_records IS NULL"
                ))
                .await
                .unwrap(),
        );
        assert_eq!(files, 2 * (version + 1), "version {version}");
    }
}

#[tokio::test]
async fn column_mapping_is_shown_and_statistics_use_logical_names() {
    let Some(engine) = golden_engine(
        "schema",
        "data-skipping-basic-stats-all-types-columnmapping-name",
    )
    .await
    else {
        return;
    };
    let schema = engine
        .query("SELECT column_name, physical_name, field_id FROM delta_schema('t') WHERE column_name = 'as_int'")
        .await
        .unwrap();
    assert_eq!(
        strings(&schema, 1),
        [Some("col-51c5f1e8-f3d9-4504-86fb-003ea4d1b703".to_owned())]
    );
    assert_eq!(strings(&schema, 2), [Some("1".to_owned())]);
    let stats = engine
        .query("SELECT min_values FROM delta_files('t') WHERE num_records > 0")
        .await
        .unwrap();
    let min = strings(&stats, 0)[0].clone().unwrap();
    assert!(min.contains("\"as_int\""), "logical names in {min}");
    assert!(!min.contains("col-"), "no physical names in {min}");
}

#[tokio::test]
async fn protocol_and_properties_are_listed() {
    let Some(engine) = golden_engine("protocol", "dv-partitioned-with-checkpoint").await else {
        return;
    };
    let protocol = engine
        .query(
            "SELECT min_reader_version, array_has(reader_features, 'deletionVectors') \
             FROM delta_protocol('t')",
        )
        .await
        .unwrap();
    assert_eq!(strings(&protocol, 0), [Some("3".to_owned())]);
    assert_eq!(strings(&protocol, 1), [Some("true".to_owned())]);
    let properties = engine
        .query("SELECT value FROM delta_properties('t') WHERE key = 'delta.enableDeletionVectors'")
        .await
        .unwrap();
    assert_eq!(strings(&properties, 0), [Some("true".to_owned())]);
    let partition = engine
        .query("SELECT column_name FROM delta_schema('t') WHERE is_partition")
        .await
        .unwrap();
    assert_eq!(strings(&partition, 0), [Some("part".to_owned())]);
}

#[tokio::test]
async fn bad_arguments_are_clear_errors() {
    let Some(engine) = golden_engine("bad args", "dv-partitioned-with-checkpoint").await else {
        return;
    };
    for (sql, phrase) in [
        (
            "SELECT * FROM delta_files('nope')",
            "no Delta table named \"nope\"",
        ),
        (
            "SELECT * FROM delta_files(42)",
            "usage: delta_files('table name' [, version])",
        ),
        (
            "SELECT * FROM delta_history('t', 1)",
            "usage: delta_history('table name')",
        ),
    ] {
        let err = engine.query(sql).await.expect_err(sql);
        assert!(
            matches!(&err, Error::Sql(m) if m.contains(phrase)),
            "{sql}: {err:?}"
        );
    }
    let err = engine
        .query("SELECT * FROM delta_files('t', 99)")
        .await
        .expect_err("no version 99");
    assert!(
        matches!(err, Error::VersionNotFound { version: 99, .. }),
        "{err:?}"
    );
}
