//! A correlated subquery over a large table (TPC-H Q17's shape) groups only
//! the rows whose key the outer query keeps, through the session every edge
//! uses, and answers as before.

use std::sync::Arc;

use arrow::array::{AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use wavelake_engine::SqlSession;
use wavelake_engine::storage::ObjectStoreStorage;
use wavelake_tests::write_one_file_table;

const ROWS: i64 = 20_000;

fn batch(fields: Vec<Field>, columns: Vec<arrow::array::ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

/// `facts(id, grp)` with `grp = id % 100` and `groups(g, keep)` with
/// `keep = 1` for every tenth group.
async fn engine(root: &std::path::Path) -> SqlSession {
    let ids: Vec<i64> = (0..ROWS).collect();
    let facts = batch(
        vec![
            Field::new("id", DataType::Int64, false),
            Field::new("grp", DataType::Int64, false),
        ],
        vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(Int64Array::from(
                ids.iter().map(|id| id % 100).collect::<Vec<_>>(),
            )),
        ],
    );
    let groups = batch(
        vec![
            Field::new("g", DataType::Int64, false),
            Field::new("keep", DataType::Int64, false),
        ],
        vec![
            Arc::new(Int64Array::from((0..100).collect::<Vec<i64>>())),
            Arc::new(Int64Array::from(
                (0..100).map(|g| i64::from(g % 10 == 3)).collect::<Vec<_>>(),
            )),
        ],
    );
    let engine = wavelake_write::session();
    for (name, batch) in [("facts", facts), ("groups", groups)] {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        write_one_file_table(&dir, &batch, 5_000, 1_000);
        let storage = ObjectStoreStorage::open(dir.to_str().unwrap()).unwrap();
        engine.register(name, Arc::new(storage)).await.unwrap();
    }
    engine
}

#[tokio::test]
async fn a_correlated_average_groups_only_the_kept_keys() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let sql = "SELECT sum(f.id) FROM facts f, groups g \
               WHERE g.g = f.grp AND g.keep = 1 \
               AND f.id < (SELECT avg(id) FROM facts WHERE grp = g.g)";
    let batches = engine.query(sql).await.unwrap();
    let answer: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    // Per kept group, the ids below the group's average.
    let expected: i64 = (0..100)
        .filter(|g| g % 10 == 3)
        .map(|g| {
            let ids: Vec<i64> = (0..ROWS).filter(|id| id % 100 == g).collect();
            let average = ids.iter().sum::<i64>() as f64 / ids.len() as f64;
            ids.iter().filter(|id| (**id as f64) < average).sum::<i64>()
        })
        .sum();
    assert_eq!(answer, vec![expected]);

    let explained = engine.query(&format!("EXPLAIN {sql}")).await.unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&explained)
        .unwrap()
        .to_string();
    assert!(
        text.contains("LeftSemi Join: facts.grp = __semi_join_keys.g"),
        "the grouping is not reduced to the kept groups:\n{text}"
    );
}
