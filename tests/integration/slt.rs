//! SQL behaviour as sqllogictest files (`tests/slt/*.slt`), the way
//! DataFusion tests its SQL: each file runs in a fresh session over an
//! empty table root, statement by statement, and every result and error
//! is compared with the file. Errors read `[CODE] message`, so a file
//! checks the kind of an error (`statement error \[TABLE_NOT_FOUND\]`),
//! not only its words. `WAVELAKE_SLT_COMPLETE=1` writes the results of
//! new queries into the files, to be reviewed before they are committed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use sqllogictest::{DBOutput, DefaultColumnType};
use wavelake_engine::SqlSession;
use wavelake_engine::hot_data::HotData;

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
    /// Run each query twice, the second time from hot data, and refuse
    /// a difference.
    repeat_queries: bool,
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for SltSession {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let batches = self.engine.query(sql).await.map_err(SltError)?;
        let is_query = {
            let head = sql.trim_start().to_ascii_lowercase();
            head.starts_with("select") || head.starts_with("with")
        };
        if self.repeat_queries && is_query {
            let again = self.engine.query(sql).await.map_err(SltError)?;
            let text = |b: &[RecordBatch]| text_rows(b).map_err(|e| SltError(e.into()));
            let (mut first, mut second) = (text(&batches)?, text(&again)?);
            first.sort();
            second.sort();
            if first != second {
                return Err(SltError(wavelake_engine::Error::Sql(format!(
                    "a repeated query from hot data differs: {first:?} then {second:?}"
                ))));
            }
        }
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
    run_slt_files(false).await;
}

/// The same files with hot data, each query run twice: what DML changes
/// (new files, new deletion vectors) is read, never a chunk from before.
#[tokio::test]
async fn sql_behaves_as_the_slt_files_say_with_hot_data() {
    run_slt_files(true).await;
}

async fn run_slt_files(hot: bool) {
    let files = slt_files();
    assert!(files.len() >= 4, "the slt files: {files:?}");
    let mut failures = Vec::new();
    for file in &files {
        let mut runner = sqllogictest::Runner::new(|| async {
            let root = tempfile::tempdir().unwrap();
            let options = wavelake_engine::SqlSessionOptions {
                hot_data: hot.then(|| Arc::new(HotData::new(64 << 20))),
                ..Default::default()
            };
            let engine = wavelake_tests::engine_at_with(root.path(), options).await;
            Ok(SltSession {
                engine,
                _root: root,
                repeat_queries: hot,
            })
        });
        if std::env::var_os("WAVELAKE_SLT_COMPLETE").is_some() && !hot {
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
