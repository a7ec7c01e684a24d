//! SQL behaviour as sqllogictest files (`tests/slt/*.slt`), the way
//! DataFusion tests its SQL: each file runs in a fresh session over an
//! empty table root, statement by statement, and every result and error
//! is compared with the file. Errors read `[CODE] message`, so a file
//! checks the kind of an error (`statement error \[TABLE_NOT_FOUND\]`),
//! not only its words. `WAVELAKE_SLT_COMPLETE=1` writes the results of
//! new queries into the files, to be reviewed before they are committed.

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use sqllogictest::{DBOutput, DefaultColumnType};
use wavelake_engine::SqlSession;

/// An engine error as the files match it: `[CODE] message`.
#[derive(Debug)]
struct SltError(wavelake_engine::Error);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}", self.0.code(), self.0)
    }
}

impl std::error::Error for SltError {}

/// A session over a table root of its own.
struct SltSession {
    engine: SqlSession,
    _root: tempfile::TempDir,
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for SltSession {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let batches = self.engine.query(sql).await.map_err(SltError)?;
        let columns = batches.first().map_or(0, RecordBatch::num_columns);
        if columns == 0 {
            return Ok(DBOutput::StatementComplete(0));
        }
        let rows = text_rows(&batches).map_err(|e| SltError(e.into()))?;
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; columns],
            rows,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "wavelake"
    }

    async fn sleep(duration: std::time::Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// Every row as text cells: `NULL` for nulls, `(empty)` for empty
/// strings (sqllogictest cannot tell an empty cell from a missing one).
fn text_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, arrow::error::ArrowError> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            let cells = formatters
                .iter()
                .map(|formatter| match formatter.value(row).to_string() {
                    text if text.is_empty() => "(empty)".to_owned(),
                    text => text,
                })
                .collect();
            rows.push(cells);
        }
    }
    Ok(rows)
}

fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn sql_behaves_as_the_slt_files_say() {
    let files = slt_files();
    assert!(files.len() >= 4, "the slt files: {files:?}");
    let mut failures = Vec::new();
    for file in &files {
        let mut runner = sqllogictest::Runner::new(|| async {
            let root = tempfile::tempdir().unwrap();
            let engine = wavelake_tests::engine_at(root.path()).await;
            Ok(SltSession {
                engine,
                _root: root,
            })
        });
        if std::env::var_os("WAVELAKE_SLT_COMPLETE").is_some() {
            // Writes each query's results into the file, for review.
            runner
                .update_test_file(
                    file,
                    " ",
                    sqllogictest::default_validator,
                    sqllogictest::default_normalizer,
                    sqllogictest::default_column_validator,
                )
                .await
                .unwrap();
            continue;
        }
        match runner.run_file_async(file).await {
            Ok(()) => eprintln!("ok      {}", file.display()),
            Err(e) => failures.push(format!("{}: {e}", file.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
