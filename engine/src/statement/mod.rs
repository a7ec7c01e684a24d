//! One SQL statement, parsed once with the dialect the engine runs it in
//! ([`WavelakeDialect`]), and what it does: whether it only reads or
//! changes something, and which tables it writes. The server's API, the web
//! app and the npm package all ask this one classifier, and the engine runs
//! the very statement it classified; nothing looks at keywords.
//!
//! Anything the classifier cannot vouch for as a read (`SET`, views, DDL
//! of DataFusion's, a write nested in a query, `EXPLAIN ANALYZE` of a
//! write) is a write.

mod dialect;
mod parameters;

pub use dialect::WavelakeDialect;
pub use parameters::{bind_parameters, has_placeholders};

use std::ops::ControlFlow;

use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{
    FromTable, ObjectName, Statement as SqlStatement, TableFactor, TableObject, Visit, Visitor,
};
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::command::Command;
use crate::{Error, Result};

/// What running a statement may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// It only reads tables.
    Read,
    /// It changes tables, the catalog or the session (or cannot be vouched
    /// for as a read).
    Write,
}

/// A statement that begins or ends a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionControl {
    /// `BEGIN` or `START TRANSACTION`.
    Begin,
    /// `COMMIT` or `END`.
    Commit,
    /// `ROLLBACK`.
    Rollback,
}

/// One parsed statement, ready for [`crate::SqlSession::execute`].
#[derive(Debug, Clone)]
pub struct Statement {
    sql: String,
    body: Body,
    access: Access,
    writes: Vec<String>,
}

/// What the engine runs.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    /// A statement of the engine's own (Delta DDL, MERGE, maintenance).
    Command(Command),
    /// A statement DataFusion plans.
    DataFusion(Box<DfStatement>),
}

impl Statement {
    /// Parses one statement (a trailing `;` is fine; a second statement is
    /// an error).
    pub fn parse(sql: &str) -> Result<Self> {
        let words = leading_words(sql)?;
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        if let Some(command) = crate::command::parse_from_words(sql, &words) {
            let command = command?;
            let writes = command.target().map(str::to_owned).into_iter().collect();
            return Ok(Self {
                sql: sql.to_owned(),
                body: Body::Command(command),
                access: Access::Write,
                writes,
            });
        }
        if let ["DESCRIBE", "HISTORY", ..] = words.as_slice()
            && let Some(query) = crate::metadata_tables::describe_history_query(sql)
        {
            return Self::parse(&query);
        }
        let mut statements = DFParser::parse_sql_with_dialect(sql, &WavelakeDialect)?;
        let statement = match (statements.pop_front(), statements.is_empty()) {
            (Some(statement), true) => statement,
            (Some(_), false) => return Err(Error::Sql("send one statement at a time".into())),
            (None, _) => return Err(Error::Sql("the statement is empty".into())),
        };
        let access = df_access(&statement);
        let writes = match &statement {
            DfStatement::Statement(inner) => written_tables(inner),
            _ => Vec::new(),
        };
        Ok(Self {
            sql: sql.to_owned(),
            body: Body::DataFusion(Box::new(statement)),
            access,
            writes,
        })
    }

    /// Whether the statement only reads.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The tables the statement writes, as written (`t`, `ns.t`).
    pub fn writes(&self) -> &[String] {
        &self.writes
    }

    /// The statement's text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Whether it begins or ends a transaction (`BEGIN`, `START
    /// TRANSACTION`, `COMMIT`, `END`, `ROLLBACK`), as parsed.
    pub fn transaction_control(&self) -> Option<TransactionControl> {
        let Body::DataFusion(statement) = &self.body else {
            return None;
        };
        let DfStatement::Statement(inner) = statement.as_ref() else {
            return None;
        };
        match inner.as_ref() {
            SqlStatement::StartTransaction { .. } => Some(TransactionControl::Begin),
            SqlStatement::Commit { .. } => Some(TransactionControl::Commit),
            SqlStatement::Rollback {
                savepoint: None, ..
            } => Some(TransactionControl::Rollback),
            _ => None,
        }
    }

    /// Whether it changes rows of one table and nothing else: INSERT,
    /// DELETE, UPDATE or MERGE (what a transaction may hold).
    pub fn changes_rows_only(&self) -> bool {
        match &self.body {
            Body::Command(Command::Merge(_)) => true,
            Body::Command(_) => false,
            Body::DataFusion(_) => self.dml_target().is_some(),
        }
    }

    /// Whether it is an `INSERT` DataFusion plans (into one table).
    pub fn inserts(&self) -> bool {
        match &self.body {
            Body::DataFusion(statement) => matches!(
                statement.as_ref(),
                DfStatement::Statement(inner) if matches!(inner.as_ref(), SqlStatement::Insert(_))
            ),
            Body::Command(_) => false,
        }
    }

    /// Whether it is a DataFusion INSERT, DELETE or UPDATE at the top level
    /// (whose table is reloaded after it runs).
    pub(crate) fn dml_target(&self) -> Option<&str> {
        match &self.body {
            Body::DataFusion(statement) => match statement.as_ref() {
                DfStatement::Statement(inner)
                    if matches!(
                        inner.as_ref(),
                        SqlStatement::Insert(_) | SqlStatement::Delete(_) | SqlStatement::Update(_)
                    ) =>
                {
                    self.writes.first().map(String::as_str)
                }
                _ => None,
            },
            Body::Command(_) => None,
        }
    }

    pub(crate) fn into_body(self) -> Body {
        self.body
    }
}

/// The first words of `sql`, upper-cased, skipping comments: what the
/// engine's own statements are recognised by. Quoted identifiers and
/// literals are no words.
fn leading_words(sql: &str) -> Result<Vec<String>> {
    let tokens = Tokenizer::new(&WavelakeDialect, sql)
        .tokenize()
        .map_err(|e| Error::Sql(format!("SQL syntax error: {e}")))?;
    let mut words = Vec::new();
    for token in tokens {
        match token {
            Token::Whitespace(_) => continue,
            Token::Word(word) if word.quote_style.is_none() && words.len() < 4 => {
                words.push(word.value.to_ascii_uppercase());
            }
            _ => break,
        }
        if words.len() == 4 {
            break;
        }
    }
    Ok(words)
}

/// Whether a DataFusion statement only reads.
fn df_access(statement: &DfStatement) -> Access {
    match statement {
        DfStatement::Statement(inner) => sql_access(inner),
        DfStatement::Explain(explain) if explain.options.analyze => df_access(&explain.statement),
        DfStatement::Explain(_) => Access::Read,
        DfStatement::CreateExternalTable(_) | DfStatement::CopyTo(_) | DfStatement::Reset(_) => {
            Access::Write
        }
    }
}

/// Whether an SQL statement only reads: a query with no statement nested
/// in it but queries, a `SHOW`, `DESCRIBE`, or an `EXPLAIN` that does not
/// run what it explains.
fn sql_access(statement: &SqlStatement) -> Access {
    match statement {
        SqlStatement::Explain {
            analyze, statement, ..
        } => {
            if *analyze {
                sql_access(statement)
            } else {
                Access::Read
            }
        }
        SqlStatement::Query(_) => {
            struct Nested(bool);
            impl Visitor for Nested {
                type Break = ();
                fn pre_visit_statement(&mut self, statement: &SqlStatement) -> ControlFlow<()> {
                    if !matches!(statement, SqlStatement::Query(_)) {
                        self.0 = true;
                        return ControlFlow::Break(());
                    }
                    ControlFlow::Continue(())
                }
            }
            let mut nested = Nested(false);
            let _ = statement.visit(&mut nested);
            if nested.0 {
                Access::Write
            } else {
                Access::Read
            }
        }
        SqlStatement::ExplainTable { .. }
        | SqlStatement::ShowTables { .. }
        | SqlStatement::ShowColumns { .. }
        | SqlStatement::ShowFunctions { .. }
        | SqlStatement::ShowVariable { .. }
        | SqlStatement::ShowCreate { .. }
        | SqlStatement::ShowSchemas { .. } => Access::Read,
        _ => Access::Write,
    }
}

/// The tables INSERT, DELETE, UPDATE and MERGE statements in `statement`
/// write, nested ones included, in order.
fn written_tables(statement: &SqlStatement) -> Vec<String> {
    struct Targets(Vec<String>);
    impl Targets {
        fn push(&mut self, name: &ObjectName) {
            let name = crate::command::object_name(name).unwrap_or_else(|_| name.to_string());
            if !self.0.contains(&name) {
                self.0.push(name);
            }
        }
        fn push_factor(&mut self, factor: &TableFactor) {
            if let TableFactor::Table { name, .. } = factor {
                self.push(name);
            }
        }
    }
    impl Visitor for Targets {
        type Break = ();
        fn pre_visit_statement(&mut self, statement: &SqlStatement) -> ControlFlow<()> {
            match statement {
                SqlStatement::Insert(insert) => {
                    if let TableObject::TableName(name) = &insert.table {
                        self.push(name);
                    }
                }
                SqlStatement::Delete(delete) => {
                    let (FromTable::WithFromKeyword(tables) | FromTable::WithoutKeyword(tables)) =
                        &delete.from;
                    for table in tables {
                        self.push_factor(&table.relation);
                    }
                }
                SqlStatement::Update(update) => self.push_factor(&update.table.relation),
                SqlStatement::Merge(merge) => self.push_factor(&merge.table),
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let mut targets = Targets(Vec::new());
    let _ = statement.visit(&mut targets);
    targets.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(sql: &str) -> Access {
        Statement::parse(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .access()
    }

    #[test]
    fn transactions_begin_and_end_as_parsed() {
        let control = |sql: &str| Statement::parse(sql).unwrap().transaction_control();
        for sql in ["BEGIN", "BEGIN TRANSACTION", "START TRANSACTION", "begin;"] {
            assert_eq!(control(sql), Some(TransactionControl::Begin), "{sql}");
        }
        for sql in ["COMMIT", "COMMIT WORK", "END"] {
            assert_eq!(control(sql), Some(TransactionControl::Commit), "{sql}");
        }
        assert_eq!(control("ROLLBACK"), Some(TransactionControl::Rollback));
        assert_eq!(control("SELECT 'BEGIN'"), None);
        assert_eq!(control("/* BEGIN */ SELECT 1"), None);
        let dml = |sql: &str| Statement::parse(sql).unwrap().changes_rows_only();
        assert!(dml("INSERT INTO t VALUES (1)"));
        assert!(dml("UPDATE t SET a = 1"));
        assert!(dml("DELETE FROM t"));
        assert!(dml(
            "MERGE INTO t USING s ON t.k = s.k WHEN MATCHED THEN DELETE"
        ));
        assert!(!dml("CREATE TABLE t (a INT)"));
        assert!(!dml("ALTER TABLE t ADD COLUMN b INT"));
        assert!(!dml("SELECT 1"));
    }

    #[test]
    fn reads_are_reads() {
        for sql in [
            "SELECT 1",
            "  select * from t;",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "EXPLAIN INSERT INTO t VALUES (1)",
            "EXPLAIN SELECT 1",
            "/* note */ SELECT 1",
            "SELECT * FROM t VERSION AS OF 1",
            "SELECT * FROM delta_history('ns.t')",
            "DESCRIBE HISTORY t",
            "SHOW TABLES",
            "SELECT '/*!DELETE FROM*/' AS s",
        ] {
            assert_eq!(access(sql), Access::Read, "{sql}");
        }
    }

    #[test]
    fn writes_are_writes_however_disguised() {
        for sql in [
            "INSERT INTO t VALUES (1)",
            "/* hi */ INSERT INTO t VALUES (1)",
            "-- note\nDELETE FROM t",
            "/* a */ /* b */ UPDATE t SET a = 1",
            "EXPLAIN ANALYZE INSERT INTO t VALUES (1)",
            "EXPLAIN ANALYZE VERBOSE DELETE FROM t",
            "EXPLAIN (ANALYZE) DELETE FROM t",
            "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
            "merge into t using s on t.k = s.k when matched then delete",
            "/* x */ MERGE INTO t USING s ON t.k = s.k WHEN MATCHED THEN DELETE",
            "OPTIMIZE t",
            "-- c\nVACUUM t",
            "CREATE TABLE t (a INT)",
            "/**/CREATE TABLE t (a INT)",
            "DROP TABLE t",
            "ALTER TABLE t ADD COLUMN b INT",
            "RESTORE t TO VERSION AS OF 1",
            "SET datafusion.execution.batch_size = 1",
            "CREATE VIEW v AS SELECT 1",
            "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/etc'",
            "COPY (SELECT 1) TO '/tmp/x.parquet'",
            "TRUNCATE TABLE t",
        ] {
            assert_eq!(access(sql), Access::Write, "{sql}");
        }
    }

    #[test]
    fn mysql_hints_are_comments_not_statements() {
        // Parsed as comments, what is left is no statement at all.
        for sql in ["/*!DELETE FROM*/ t", "/*!INSERT INTO t*/ VALUES (1)"] {
            match Statement::parse(sql) {
                Err(_) => {}
                Ok(statement) => assert_eq!(statement.access(), Access::Read, "{sql}"),
            }
        }
        let values = Statement::parse("/*!INSERT INTO t*/ VALUES (1)");
        assert!(values.is_ok_and(|s| s.access() == Access::Read && s.writes().is_empty()));
    }

    #[test]
    fn written_tables_are_named() {
        let cases = [
            ("INSERT INTO ns.t VALUES (1)", vec!["ns.t"]),
            ("/* c */ DELETE FROM `t` WHERE a = 1", vec!["t"]),
            ("UPDATE ns.t SET a = 2", vec!["ns.t"]),
            (
                "MERGE INTO ns.t USING s ON t.k = s.k WHEN MATCHED THEN DELETE",
                vec!["ns.t"],
            ),
            ("OPTIMIZE ns.t", vec!["ns.t"]),
            ("SELECT * FROM t", vec![]),
        ];
        for (sql, tables) in cases {
            assert_eq!(Statement::parse(sql).unwrap().writes(), tables, "{sql}");
        }
    }

    #[test]
    fn one_statement_at_a_time() {
        for sql in [
            "SELECT 1; DROP TABLE t",
            "SELECT 1; SELECT 2",
            "",
            "  ;",
            "-- only",
        ] {
            assert!(Statement::parse(sql).is_err(), "{sql}");
        }
    }
}
