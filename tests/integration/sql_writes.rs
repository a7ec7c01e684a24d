//! Every kind of change SQL makes, end to end through `SqlSession::sql` on a
//! table root: the rows Wavelake reads are the expected ones, and PyPI
//! `deltalake` and DuckDB's delta extension read the same rows.

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use wavelake_engine::{Error, SqlSession};
use wavelake_tests::{assert_oracles_agree, engine_at, files_under};

async fn run(engine: &SqlSession, sql: &str) -> u64 {
    let batches = engine
        .query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    batches
        .first()
        .and_then(|b| {
            arrow::array::AsArray::as_primitive_opt::<arrow::datatypes::UInt64Type>(b.column(0))
                .map(|c| c.value(0))
        })
        .unwrap_or(0)
}

/// The result of `sql` as a table of text, for comparing with a literal.
async fn rows(engine: &SqlSession, sql: &str) -> String {
    let batches: Vec<RecordBatch> = engine.query(sql).await.unwrap();
    pretty_format_batches(&batches).unwrap().to_string()
}

fn table_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("_delta_log").is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn log_of(table: &Path) -> String {
    let mut text = String::new();
    for file in files_under(&table.join("_delta_log")) {
        if file.extension().is_some_and(|e| e == "json") {
            text.push_str(&std::fs::read_to_string(file).unwrap());
        }
    }
    text
}

const PEOPLE: &str = "CREATE TABLE people (id BIGINT NOT NULL, name STRING, age INT, day DATE) \
     PARTITIONED BY (day)";
const PEOPLE_ROWS: &str = "INSERT INTO people VALUES \
     (1, 'ann', 30, DATE '2024-01-01'), (2, 'bob', 40, DATE '2024-01-01'), \
     (3, 'cy', 50, DATE '2024-01-02'), (4, 'dee', 60, DATE '2024-01-02'), \
     (5, NULL, 70, NULL)";

#[tokio::test]
async fn merge_on_read_changes_are_read_by_the_oracles() {
    let root = tempfile::tempdir().unwrap();
    let engine = engine_at(root.path()).await;
    run(&engine, PEOPLE).await;
    assert_eq!(run(&engine, PEOPLE_ROWS).await, 5);
    assert_eq!(
        run(&engine, "UPDATE people SET age = age + 1 WHERE id = 2").await,
        1
    );
    assert_eq!(run(&engine, "DELETE FROM people WHERE id = 3").await, 1);
    run(
        &engine,
        "CREATE TABLE changes AS SELECT * FROM (VALUES \
         (CAST(1 AS BIGINT), 'ann2', 31, DATE '2024-01-01', false), \
         (4, 'dee', 60, DATE '2024-01-02', true), \
         (9, 'new', 10, DATE '2024-01-03', false)) AS v(id, name, age, day, gone)",
    )
    .await;
    let merged = run(
        &engine,
        "MERGE INTO people AS t USING changes AS s ON t.id = s.id \
         WHEN MATCHED AND s.gone THEN DELETE \
         WHEN MATCHED THEN UPDATE SET name = s.name, age = s.age \
         WHEN NOT MATCHED THEN INSERT (id, name, age, day) VALUES (s.id, s.name, s.age, s.day)",
    )
    .await;
    assert_eq!(merged, 3, "one update, one delete, one insert");
    assert_eq!(
        rows(&engine, "SELECT id, name, age, day FROM people ORDER BY id").await,
        "+----+------+-----+------------+\n\
         | id | name | age | day        |\n\
         +----+------+-----+------------+\n\
         | 1  | ann2 | 31  | 2024-01-01 |\n\
         | 2  | bob  | 41  | 2024-01-01 |\n\
         | 5  |      | 70  |            |\n\
         | 9  | new  | 10  | 2024-01-03 |\n\
         +----+------+-----+------------+"
    );
    let log = log_of(&root.path().join("people"));
    assert!(
        log.contains("\"deletionVector\""),
        "changes are deletion vectors"
    );
    assert!(
        log.contains("\"numTargetRowsInserted\":\"1\""),
        "merge metrics"
    );

    // Many scattered deletes: a deletion vector too big to inline.
    run(
        &engine,
        "CREATE TABLE numbers AS SELECT value AS n, value % 10 AS bucket FROM range(0, 20000)",
    )
    .await;
    assert_eq!(
        run(&engine, "DELETE FROM numbers WHERE n % 7 = 3").await,
        2857
    );
    assert!(
        files_under(&root.path().join("numbers"))
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".bin"))
    );
    assert_eq!(
        rows(&engine, "SELECT count(*) AS c, sum(n) AS s FROM numbers").await,
        "+-------+-----------+\n\
         | c     | s         |\n\
         +-------+-----------+\n\
         | 17143 | 171422857 |\n\
         +-------+-----------+"
    );
    // A MERGE with no source rows of its own kind and NOT MATCHED BY SOURCE.
    run(
        &engine,
        "MERGE INTO numbers USING (SELECT n FROM numbers WHERE n < 100) AS small \
         ON numbers.n = small.n + 100000 \
         WHEN NOT MATCHED BY SOURCE AND numbers.bucket = 1 THEN UPDATE SET bucket = -1",
    )
    .await;
    assert_eq!(
        rows(
            &engine,
            "SELECT count(*) AS c FROM numbers WHERE bucket = -1"
        )
        .await,
        "+------+\n| c    |\n+------+\n| 1714 |\n+------+"
    );

    // INSERT OVERWRITE replaces every row.
    run(
        &engine,
        "CREATE TABLE snapshot_copy AS SELECT * FROM people",
    )
    .await;
    run(
        &engine,
        "INSERT OVERWRITE snapshot_copy SELECT * FROM people WHERE id < 3",
    )
    .await;
    assert_eq!(
        rows(&engine, "SELECT count(*) AS c FROM snapshot_copy").await,
        "+---+\n| c |\n+---+\n| 2 |\n+---+"
    );

    assert_oracles_agree(
        "merge_on_read_changes_are_read_by_the_oracles",
        &table_dirs(root.path()),
    )
    .await;
}

#[tokio::test]
async fn copy_on_write_tables_rewrite_files_instead() {
    let root = tempfile::tempdir().unwrap();
    let engine = engine_at(root.path()).await;
    run(
        &engine,
        &format!("{PEOPLE} TBLPROPERTIES ('delta.enableDeletionVectors' = 'false')"),
    )
    .await;
    run(&engine, PEOPLE_ROWS).await;
    run(
        &engine,
        "UPDATE people SET name = upper(name) WHERE age >= 40",
    )
    .await;
    run(&engine, "DELETE FROM people WHERE id = 1").await;
    run(
        &engine,
        "MERGE INTO people t USING (SELECT CAST(2 AS BIGINT) AS id, 'b' AS name UNION ALL \
         SELECT 7, 'g') s ON t.id = s.id \
         WHEN MATCHED THEN UPDATE SET t.name = s.name \
         WHEN NOT MATCHED THEN INSERT (id, name) VALUES (s.id, s.name)",
    )
    .await;
    assert_eq!(
        rows(&engine, "SELECT id, name, age FROM people ORDER BY id").await,
        "+----+------+-----+\n\
         | id | name | age |\n\
         +----+------+-----+\n\
         | 2  | b    | 40  |\n\
         | 3  | CY   | 50  |\n\
         | 4  | DEE  | 60  |\n\
         | 5  |      | 70  |\n\
         | 7  | g    |     |\n\
         +----+------+-----+"
    );
    let log = log_of(&root.path().join("people"));
    assert!(!log.contains("\"deletionVector\":{"), "no deletion vectors");
    assert_oracles_agree(
        "copy_on_write_tables_rewrite_files_instead",
        &table_dirs(root.path()),
    )
    .await;
}

/// The table's files (log and data), to check a failed statement left
/// nothing behind.
fn snapshot_of_files(table: &Path) -> Vec<PathBuf> {
    files_under(table)
}

#[tokio::test]
async fn bad_writes_are_refused_and_commit_nothing() {
    let root = tempfile::tempdir().unwrap();
    let engine = engine_at(root.path()).await;
    run(&engine, PEOPLE).await;
    run(&engine, PEOPLE_ROWS).await;
    run(
        &engine,
        "CREATE TABLE dupes AS SELECT CAST(1 AS BIGINT) AS id UNION ALL SELECT CAST(1 AS BIGINT)",
    )
    .await;
    let table = root.path().join("people");
    let before = snapshot_of_files(&table);
    for (sql, code, words) in [
        (
            "INSERT INTO people VALUES (NULL, 'x', 1, DATE '2024-01-01')",
            "CONSTRAINT_VIOLATION",
            "NOT NULL",
        ),
        (
            "INSERT INTO people (id, nope) VALUES (1, 2)",
            "SQL_ERROR",
            "nope",
        ),
        (
            "INSERT INTO people VALUES (1, 'x', 'not a number', DATE '2024-01-01')",
            "",
            "not a number",
        ),
        ("INSERT INTO people VALUES (1, 'x')", "", "values"),
        ("DELETE FROM people WHERE nope = 1", "", "nope"),
        ("DELETE FROM people WHERE id +", "SQL_ERROR", "SQL"),
        ("UPDATE people SET nope = 1 WHERE id = 1", "", "nope"),
        (
            "UPDATE people SET id = NULL WHERE id = 1",
            "CONSTRAINT_VIOLATION",
            "id",
        ),
        (
            "MERGE INTO people t USING dupes s ON t.id = s.id WHEN MATCHED THEN DELETE",
            "",
            "more than once",
        ),
        (
            "MERGE INTO people t USING dupes s ON t.id = s.id WHEN MATCHED THEN UPDATE SET nope = 1",
            "",
            "nope",
        ),
        (
            "MERGE INTO people t USING dupes s ON t.nope = s.id WHEN MATCHED THEN DELETE",
            "",
            "nope",
        ),
    ] {
        let err: Error = engine.query(sql).await.expect_err(sql);
        let text = err.to_string();
        assert!(
            text.to_lowercase().contains(&words.to_lowercase()),
            "{sql}: {text}"
        );
        if !code.is_empty() {
            assert_eq!(err.code(), code, "{sql}: {text}");
        }
        assert_eq!(snapshot_of_files(&table), before, "{sql} left files behind");
    }
    assert_eq!(
        rows(&engine, "SELECT count(*) AS c FROM people").await,
        "+---+\n| c |\n+---+\n| 5 |\n+---+"
    );
}

#[tokio::test]
async fn statements_naming_unknown_tables_say_so_by_kind() {
    let root = tempfile::tempdir().unwrap();
    let engine = engine_at(root.path()).await;
    run(&engine, PEOPLE).await;
    run(&engine, PEOPLE_ROWS).await;
    for (sql, missing) in [
        ("SELECT * FROM nobody", "nobody"),
        ("SELECT * FROM people JOIN ghosts ON true", "ghosts"),
        ("SELECT * FROM elsewhere.people", "elsewhere.people"),
        ("INSERT INTO nobody VALUES (1)", "nobody"),
        ("DELETE FROM nobody WHERE id = 1", "nobody"),
        ("UPDATE nobody SET id = 2", "nobody"),
        ("OPTIMIZE nobody", "nobody"),
        ("VACUUM nobody", "nobody"),
        (
            "MERGE INTO nobody t USING people s ON t.id = s.id WHEN MATCHED THEN DELETE",
            "nobody",
        ),
        ("ALTER TABLE nobody SET TBLPROPERTIES ('a' = 'b')", "nobody"),
        ("SELECT * FROM nobody VERSION AS OF 0", "nobody"),
        (
            "SELECT * FROM people JOIN ghosts TIMESTAMP AS OF '2024-01-01' ON true",
            "ghosts",
        ),
    ] {
        match engine.query(sql).await {
            Err(Error::UnknownTable { name }) => assert_eq!(name, missing, "{sql}"),
            other => panic!("{sql}: {other:?}"),
        }
    }
    // A CTE, a table function and a table of that name are no unknown tables.
    for sql in [
        "WITH nobody AS (SELECT 1 AS id) SELECT count(*) FROM nobody",
        "SELECT count(*) FROM delta_history('people')",
        "SELECT count(*) FROM people",
    ] {
        let rows = engine.query(sql).await.expect(sql);
        assert_eq!(rows[0].num_rows(), 1, "{sql}");
    }
}

#[tokio::test]
async fn schema_evolution_keeps_every_row_readable() {
    let root = tempfile::tempdir().unwrap();
    let engine = engine_at(root.path()).await;
    run(&engine, PEOPLE).await;
    run(&engine, PEOPLE_ROWS).await;
    run(
        &engine,
        "ALTER TABLE people ADD COLUMNS (city STRING COMMENT 'where')",
    )
    .await;
    run(
        &engine,
        "INSERT INTO people VALUES (6, 'eve', 20, DATE '2024-01-03', 'Oslo')",
    )
    .await;
    run(&engine, "ALTER TABLE people RENAME COLUMN name TO label").await;
    run(&engine, "ALTER TABLE people DROP COLUMN age").await;
    run(&engine, "ALTER TABLE people RENAME COLUMN day TO joined").await;
    run(
        &engine,
        "INSERT INTO people (id, label, joined, city) VALUES (7, 'fay', DATE '2024-01-03', 'Rome')",
    )
    .await;
    run(
        &engine,
        "UPDATE people SET city = 'Lima' WHERE label = 'bob'",
    )
    .await;
    run(&engine, "DELETE FROM people WHERE id = 1").await;
    run(
        &engine,
        "ALTER TABLE people SET TBLPROPERTIES ('delta.appendOnly' = 'false', 'team' = 'data')",
    )
    .await;
    assert_eq!(
        rows(&engine, "SELECT * FROM people ORDER BY id").await,
        "+----+-------+------------+------+\n\
         | id | label | joined     | city |\n\
         +----+-------+------------+------+\n\
         | 2  | bob   | 2024-01-01 | Lima |\n\
         | 3  | cy    | 2024-01-02 |      |\n\
         | 4  | dee   | 2024-01-02 |      |\n\
         | 5  |       |            |      |\n\
         | 6  | eve   | 2024-01-03 | Oslo |\n\
         | 7  | fay   | 2024-01-03 | Rome |\n\
         +----+-------+------------+------+"
    );
    let log = log_of(&root.path().join("people"));
    for operation in [
        "ADD COLUMNS",
        "RENAME COLUMN",
        "DROP COLUMNS",
        "SET TBLPROPERTIES",
    ] {
        assert!(
            log.contains(&format!("\"operation\":\"{operation}\"")),
            "{operation}"
        );
    }
    // Inserting the old shape fails before anything is written.
    let before = files_under(&root.path().join("people"));
    let err = engine
        .query("INSERT INTO people (id, age) VALUES (8, 1)")
        .await
        .expect_err("age is gone");
    assert!(err.to_string().contains("age"), "{err}");
    assert_eq!(files_under(&root.path().join("people")), before);
    assert_oracles_agree(
        "schema_evolution_keeps_every_row_readable",
        &table_dirs(root.path()),
    )
    .await;
}
