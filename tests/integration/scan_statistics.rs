//! What a scan tells DataFusion's optimizer before it reads a byte (rows,
//! null counts and bounds from the log's file statistics, so that joins
//! build their hash table on the smaller side whatever order the query
//! names the tables in), and what it takes from the plan above it (a
//! join's dynamic filter, which skips the row groups it rules out).

use std::sync::Arc;

use datafusion::common::ScalarValue;
use datafusion::common::Statistics;
use datafusion::common::stats::Precision;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
use wavelake_engine::scan::DeltaScanExec;

/// What DataFusion's optimizer knows of `plan`'s output.
fn statistics_of(plan: &Arc<dyn ExecutionPlan>) -> Arc<Statistics> {
    StatisticsContext::new()
        .compute(plan.as_ref(), &StatisticsArgs::new())
        .unwrap()
}

#[tokio::test]
async fn a_scan_states_the_rows_nulls_and_bounds_the_log_records() {
    let (_dir, engine) = wavelake_tests::engine_after(&[
        "CREATE TABLE t (id BIGINT, note STRING, part STRING) PARTITIONED BY (part)",
        "INSERT INTO t SELECT value AS id, CASE WHEN value % 10 = 0 THEN NULL ELSE 'n' END AS note, \
         CAST(value % 2 AS STRING) AS part FROM range(1000)",
        "INSERT INTO t SELECT value + 1000 AS id, 'm' AS note, 'x' AS part FROM range(10)",
    ])
    .await;
    let plan = wavelake_tests::physical_plan(&engine, "SELECT id, note, part FROM t").await;
    let scan = wavelake_tests::find_node::<DeltaScanExec>(&plan).expect("a Delta scan");
    let statistics = statistics_of(&scan);
    assert_eq!(statistics.num_rows, Precision::Exact(1010));
    let [id, note, part] = &statistics.column_statistics[..] else {
        panic!("{statistics:?}");
    };
    assert_eq!(id.null_count, Precision::Exact(0));
    assert_eq!(
        id.min_value,
        Precision::Inexact(ScalarValue::Int64(Some(0)))
    );
    assert_eq!(
        id.max_value,
        Precision::Inexact(ScalarValue::Int64(Some(1009)))
    );
    assert_eq!(note.null_count, Precision::Exact(100));
    assert_eq!(part.null_count, Precision::Exact(0));
    assert_eq!(
        part.max_value,
        Precision::Exact(ScalarValue::Utf8(Some("x".into())))
    );

    // Deleted rows: the count is an estimate, less those deleted.
    engine.query("DELETE FROM t WHERE id < 5").await.unwrap();
    let plan = wavelake_tests::physical_plan(&engine, "SELECT id FROM t").await;
    let scan = wavelake_tests::find_node::<DeltaScanExec>(&plan).expect("a Delta scan");
    let statistics = statistics_of(&scan);
    assert_eq!(statistics.num_rows, Precision::Inexact(1005));
}

#[tokio::test]
async fn a_join_builds_on_the_smaller_table_whatever_the_query_order() {
    let (_dir, engine) = wavelake_tests::engine_after(&[
        "CREATE TABLE big (id BIGINT, v BIGINT)",
        "INSERT INTO big SELECT value AS id, value * 2 AS v FROM range(200000)",
        "CREATE TABLE small (id BIGINT, name STRING)",
        "INSERT INTO small SELECT value * 1000 AS id, 'row' AS name FROM range(10)",
    ])
    .await;
    for sql in [
        "SELECT count(*) FROM big JOIN small ON big.id = small.id",
        "SELECT count(*) FROM small JOIN big ON big.id = small.id",
    ] {
        let plan = wavelake_tests::physical_plan(&engine, sql).await;
        let join = wavelake_tests::find_node::<HashJoinExec>(&plan).expect("a hash join");
        let join = join.downcast_ref::<HashJoinExec>().unwrap();
        let build = statistics_of(join.left());
        assert_eq!(
            build.num_rows.get_value(),
            Some(&10),
            "{sql}: the hash table is built on {:?} rows",
            build.num_rows
        );
    }
    let answer = engine
        .query("SELECT count(*) AS n FROM big JOIN small ON big.id = small.id")
        .await
        .unwrap();
    assert_eq!(
        answer[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap()
            .value(0),
        10
    );
}

#[tokio::test]
async fn a_join_s_dynamic_filter_skips_row_groups_of_the_probed_table() {
    let (_dir, engine) = wavelake_tests::engine_after(&[
        "CREATE TABLE big (id BIGINT, v BIGINT)",
        "INSERT INTO big SELECT value AS id, value AS v FROM range(0, 50000)",
        "INSERT INTO big SELECT value AS id, value AS v FROM range(50000, 100000)",
        "INSERT INTO big SELECT value AS id, value AS v FROM range(100000, 150000)",
        "INSERT INTO big SELECT value AS id, value AS v FROM range(150000, 200000)",
        "CREATE TABLE small (id BIGINT)",
        "INSERT INTO small SELECT value + 120000 AS id FROM range(10)",
    ])
    .await;
    let sql = "SELECT count(*) AS n, sum(big.v) AS s FROM big JOIN small ON big.id = small.id";
    let analyzed = engine
        .query(&format!("EXPLAIN ANALYZE {sql}"))
        .await
        .unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&analyzed)
        .unwrap()
        .to_string();
    // The scan of `big` took the join's filter (ids 120000 to 120009) and
    // skipped the row groups of its files that hold none of them: `big`'s
    // eight row groups hold disjoint id ranges, one or two can match.
    let probe = text
        .lines()
        .find(|line| line.contains("DataSourceExec") && line.contains("DynamicFilter"))
        .unwrap_or_else(|| panic!("no scan took the join's filter: {text}"));
    let pruning = probe
        .split("row_groups_pruned_statistics=")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("{probe}"));
    let figures: Vec<u64> = pruning
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(
        matches!(figures[..], [8, matched] if matched <= 2),
        "{pruning}"
    );
    let answer = engine.query(sql).await.unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&answer)
        .unwrap()
        .to_string();
    assert!(text.contains("| 10 | 1200045 |"), "{text}");
}
