//! A subquery repeated in one statement (a common table expression named
//! twice, as in TPC-H Q15) is read and aggregated once, and gives the
//! same answer as before.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use wavelake_engine::SqlSession;
use wavelake_engine::storage::ObjectStoreStorage;
use wavelake_tests::write_one_file_table;

const ROWS: i64 = 50_000;

/// A table of `ROWS` rows: `id` 0.., `grp` = id % 100.
async fn engine_over_groups(dir: &std::path::Path) -> SqlSession {
    let ids: Vec<i64> = (0..ROWS).collect();
    let groups: Vec<i64> = ids.iter().map(|id| id % 100).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("grp", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(Int64Array::from(groups)),
        ],
    )
    .unwrap();
    write_one_file_table(dir, &batch, 10_000, 1_000);
    let engine = wavelake_write::session();
    let storage = ObjectStoreStorage::open(dir.to_str().unwrap()).unwrap();
    engine.register("t", Arc::new(storage)).await.unwrap();
    engine
}

fn int_column(batches: &[RecordBatch], column: usize) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            b.column(column)
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect()
}

#[tokio::test]
async fn a_common_table_expression_named_twice_is_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_over_groups(dir.path()).await;
    // The group with the largest sum of ids is 99 (ids 99, 199, ...).
    let sql = "WITH totals AS (SELECT grp, sum(id) AS total FROM t GROUP BY grp) \
               SELECT grp, total FROM totals \
               WHERE total = (SELECT max(total) FROM totals) ORDER BY grp";
    let profile = engine.profile(sql).await.unwrap();
    assert_eq!(int_column(&profile.batches, 0), vec![99]);
    let expected: i64 = (0..ROWS).filter(|id| id % 100 == 99).sum();
    assert_eq!(int_column(&profile.batches, 1), vec![expected]);
    let rows_read: u64 = profile.scans.iter().map(|s| s.output_rows).sum();
    assert_eq!(
        rows_read, ROWS as u64,
        "the table was read more than once:\n{}",
        profile.plan
    );
    assert_eq!(
        profile.plan.matches("SharedSubplanExec: id=0").count(),
        2,
        "{}",
        profile.plan
    );

    // Written out twice rather than named, the subquery is shared too.
    let spelled_out = "SELECT grp FROM (SELECT grp, sum(id) AS total FROM t GROUP BY grp) a \
               WHERE total = (SELECT max(total) FROM \
               (SELECT grp, sum(id) AS total FROM t GROUP BY grp) b)";
    let profile = engine.profile(spelled_out).await.unwrap();
    assert_eq!(int_column(&profile.batches, 0), vec![99]);
    let rows_read: u64 = profile.scans.iter().map(|s| s.output_rows).sum();
    assert_eq!(rows_read, ROWS as u64, "{}", profile.plan);
}

#[tokio::test]
async fn different_aggregations_and_volatile_ones_are_not_shared() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_over_groups(dir.path()).await;
    // Same shape, different filters: two computations, two answers.
    let batches = engine
        .query(
            "SELECT a.total, b.total FROM \
             (SELECT sum(id) AS total FROM t WHERE grp = 1) a, \
             (SELECT sum(id) AS total FROM t WHERE grp = 2) b",
        )
        .await
        .unwrap();
    let ones: i64 = (0..ROWS).filter(|id| id % 100 == 1).sum();
    let twos: i64 = (0..ROWS).filter(|id| id % 100 == 2).sum();
    assert_eq!(int_column(&batches, 0), vec![ones]);
    assert_eq!(int_column(&batches, 1), vec![twos]);

    // A volatile function is evaluated by each occurrence.
    let profile = engine
        .profile(
            "SELECT a.n, b.n FROM \
             (SELECT count(*) AS n FROM t WHERE random() < 2.0) a, \
             (SELECT count(*) AS n FROM t WHERE random() < 2.0) b",
        )
        .await
        .unwrap();
    assert_eq!(int_column(&profile.batches, 0), vec![ROWS]);
    assert!(
        !profile.plan.contains("SharedSubplanExec"),
        "{}",
        profile.plan
    );
}

#[tokio::test]
async fn a_total_is_computed_from_the_groups_of_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_over_groups(dir.path()).await;
    // TPC-H Q11's shape: groups compared with the total of the same sum.
    // The subquery reads only `id`, the grouping `grp` and `id`; the total
    // is summed from the 100 groups' sums, so `t` is read once.
    let sql = "SELECT grp, sum(id) AS total FROM t GROUP BY grp \
               HAVING sum(id) > (SELECT sum(id) / 100 FROM t) ORDER BY grp";
    let profile = engine.profile(sql).await.unwrap();
    // Group g sums to 500 g + 12,475,000; the total / 100 is 12,499,750.
    assert_eq!(
        int_column(&profile.batches, 0),
        (50..100).collect::<Vec<_>>()
    );
    let totals: Vec<i64> = (50..100).map(|g| 500 * g + 12_475_000).collect();
    assert_eq!(int_column(&profile.batches, 1), totals);
    let rows_read: u64 = profile.scans.iter().map(|s| s.output_rows).sum();
    assert_eq!(
        rows_read, ROWS as u64,
        "read more than once:\n{}",
        profile.plan
    );

    // Counts and minimums roll up too; a count over no rows stays 0.
    for (bound, count, minimum) in [(1_000, 1_000, Some(0)), (0, 0, None)] {
        let sql = format!(
            "SELECT CAST(NULL AS BIGINT) AS grp, count(id) AS n, min(id) AS lo \
             FROM t WHERE id < {bound} \
             UNION ALL SELECT grp, count(id), min(id) FROM t WHERE id < {bound} GROUP BY grp"
        );
        let profile = engine.profile(&sql).await.unwrap();
        assert_eq!(
            profile.plan.matches("SharedSubplanExec: id=0").count(),
            2,
            "{}",
            profile.plan
        );
        let batch =
            arrow::compute::concat_batches(&profile.batches[0].schema(), &profile.batches).unwrap();
        let total_row = (0..batch.num_rows())
            .find(|&row| batch.column(0).is_null(row))
            .expect("the total's row");
        assert_eq!(
            batch.column(1).as_primitive::<Int64Type>().value(total_row),
            count
        );
        let lo = batch.column(2).as_primitive::<Int64Type>();
        assert_eq!(
            (!lo.is_null(total_row)).then(|| lo.value(total_row)),
            minimum
        );
        assert_eq!(batch.num_rows(), 1 + usize::from(count > 0) * 100);
    }
}

#[tokio::test]
async fn an_average_is_not_computed_from_group_averages() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_over_groups(dir.path()).await;
    let sql = "SELECT grp FROM t GROUP BY grp \
               HAVING avg(id) > (SELECT avg(id) FROM t) ORDER BY grp";
    let profile = engine.profile(sql).await.unwrap();
    // The mean of all ids is 24,999.5; group g's is 24,950 + g.
    assert_eq!(
        int_column(&profile.batches, 0),
        (50..100).collect::<Vec<_>>()
    );
    assert!(
        !profile.plan.contains("SharedSubplanExec"),
        "{}",
        profile.plan
    );
}
