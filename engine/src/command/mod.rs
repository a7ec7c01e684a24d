//! Statements the engine runs itself rather than through DataFusion's
//! planner: Delta DDL written the way Spark and Databricks users write it
//! (`CREATE TABLE … USING DELTA PARTITIONED BY (…) LOCATION '…'
//! TBLPROPERTIES (…) [AS SELECT …]`, `DROP TABLE`, `ALTER TABLE`, `MERGE
//! INTO`).

mod alter;
mod column_type;
mod maintenance;
mod merge;

pub use alter::{TableChange, parse_alter};
pub use maintenance::{RETENTION_CHECK_SETTING, RestoreTarget};
pub use merge::{Merge, MergeAction, MergeClause, MergeWhen, parse_merge};

use std::collections::HashMap;

use datafusion::sql::sqlparser::ast::{ColumnDef, ColumnOption};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::schema::{StructField, StructType};
use crate::statement::WavelakeDialect;
use crate::{Error, Result};

/// A table to create: what `CREATE TABLE` says about it (the write path
/// turns it into version 0's protocol and metadata).
#[derive(Debug, Clone, Default)]
pub struct NewTable {
    /// Columns.
    pub schema: Option<StructType>,
    /// Partition columns, by name, in order.
    pub partition_columns: Vec<String>,
    /// Table properties (`delta.*` and others).
    pub properties: std::collections::HashMap<String, String>,
    /// The table's name, recorded in its metadata.
    pub name: Option<String>,
    /// A description, recorded in its metadata.
    pub description: Option<String>,
}

/// A statement of the engine's own.
#[derive(Debug, Clone)]
pub enum Command {
    /// `CREATE [OR REPLACE] TABLE [IF NOT EXISTS] …`.
    CreateTable(Box<CreateTable>),
    /// `DROP TABLE [IF EXISTS] name`.
    DropTable {
        /// The table.
        name: String,
        /// Whether a missing table is fine.
        if_exists: bool,
    },
    /// `MERGE INTO target USING source ON … WHEN …`.
    Merge(Box<Merge>),
    /// `OPTIMIZE name [WHERE …] [ZORDER BY (…)]`.
    Optimize {
        /// The table.
        name: String,
        /// Partition predicate, as SQL.
        predicate: Option<String>,
        /// Z-order columns.
        zorder_by: Vec<String>,
    },
    /// `VACUUM name [RETAIN n HOURS] [DRY RUN]`.
    Vacuum {
        /// The table.
        name: String,
        /// Retention in hours, if given.
        retain_hours: Option<f64>,
        /// Only list the files.
        dry_run: bool,
    },
    /// `RESTORE [TABLE] name TO VERSION AS OF n | TIMESTAMP AS OF '…'`.
    Restore {
        /// The table.
        name: String,
        /// The version to go back to.
        target: RestoreTarget,
    },
    /// `SET spark.databricks.delta.retentionDurationCheck.enabled = …`.
    RetentionCheck(bool),
    /// `ALTER TABLE name …`.
    AlterTable {
        /// The table.
        name: String,
        /// What changes.
        change: TableChange,
    },
}

/// A parsed `CREATE TABLE`.
#[derive(Debug, Clone)]
pub struct CreateTable {
    /// The table's name.
    pub name: String,
    /// `IF NOT EXISTS`: an existing table is left alone.
    pub if_not_exists: bool,
    /// Columns, partitioning, properties, comment.
    pub table: NewTable,
    /// `LOCATION '…'`, if given.
    pub location: Option<String>,
    /// The query of `CREATE TABLE … AS SELECT`, as SQL.
    pub query: Option<String>,
}

/// The engine's own statement in `sql`, if it is one (`None` leaves the
/// statement to DataFusion). [`crate::statement::Statement::parse`] is the
/// way in; this is for tests.
#[cfg(test)]
pub fn parse(sql: &str) -> Option<Result<Command>> {
    crate::statement::Statement::parse(sql)
        .map(|statement| match statement.into_body() {
            crate::statement::Body::Command(command) => Some(command),
            crate::statement::Body::DataFusion(_) => None,
        })
        .transpose()
}

/// The engine's own statement in `sql`, recognised by its first `words`
/// (upper-cased, comments skipped), if it is one.
pub(crate) fn parse_from_words(sql: &str, words: &[&str]) -> Option<Result<Command>> {
    match words {
        ["CREATE", "TABLE", ..] | ["CREATE", "OR", "REPLACE", "TABLE"] => {
            Some(parse_create(sql).map(|c| Command::CreateTable(Box::new(c))))
        }
        ["DROP", "TABLE", ..] => Some(parse_drop(sql)),
        ["ALTER", "TABLE", ..] => Some(parse_alter(sql)),
        ["OPTIMIZE", ..] => Some(maintenance::parse_optimize(sql)),
        ["VACUUM", ..] => Some(maintenance::parse_vacuum(sql)),
        ["RESTORE", ..] => Some(maintenance::parse_restore(sql)),
        ["SET", ..] => maintenance::parse_set(sql),
        ["MERGE", ..] => Some(parse_merge(sql).map(|m| Command::Merge(Box::new(m)))),
        _ => None,
    }
}

impl Command {
    /// The table the command changes, as written (none for settings).
    pub fn target(&self) -> Option<&str> {
        match self {
            Self::CreateTable(create) => Some(&create.name),
            Self::Merge(merge) => Some(&merge.target),
            Self::DropTable { name, .. }
            | Self::Optimize { name, .. }
            | Self::Vacuum { name, .. }
            | Self::Restore { name, .. }
            | Self::AlterTable { name, .. } => Some(name),
            Self::RetentionCheck(_) => None,
        }
    }
}

fn sql_error(e: ParserError) -> Error {
    Error::Sql(
        e.to_string()
            .replace("sql parser error: ", "SQL syntax error: "),
    )
}

fn parser(sql: &str) -> Result<Parser<'static>> {
    static DIALECT: WavelakeDialect = WavelakeDialect;
    Parser::new(&DIALECT).try_with_sql(sql).map_err(sql_error)
}

fn expect_end(parser: &mut Parser<'_>) -> Result<()> {
    while parser.consume_token(&Token::SemiColon) {}
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(Error::Sql(format!(
            "SQL syntax error: unexpected {} at the end of the statement",
            next.token
        )));
    }
    Ok(())
}

/// A table name, `table` or `namespace.table`, as the identifiers' values
/// joined by dots.
fn table_name(parser: &mut Parser<'_>) -> Result<String> {
    let name = parser.parse_object_name(false).map_err(sql_error)?;
    object_name(&name)
}

/// `name` as dotted identifier values (`ns.t`); at most two parts.
pub fn object_name(name: &datafusion::sql::sqlparser::ast::ObjectName) -> Result<String> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|part| part.as_ident().map(|ident| ident.value.clone()))
        .collect::<Option<_>>()
        .ok_or_else(|| Error::Sql(format!("bad table name {name}")))?;
    if parts.is_empty() || parts.len() > 2 || parts.iter().any(String::is_empty) {
        return Err(Error::Sql(format!(
            "bad table name {name}: use table or namespace.table"
        )));
    }
    Ok(parts.join("."))
}

fn parse_drop(sql: &str) -> Result<Command> {
    let mut p = parser(sql)?;
    p.expect_keyword(Keyword::DROP).map_err(sql_error)?;
    p.expect_keyword(Keyword::TABLE).map_err(sql_error)?;
    let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let name = table_name(&mut p)?;
    expect_end(&mut p)?;
    Ok(Command::DropTable { name, if_exists })
}

fn parse_create(sql: &str) -> Result<CreateTable> {
    let mut p = parser(sql)?;
    p.expect_keyword(Keyword::CREATE).map_err(sql_error)?;
    if p.parse_keywords(&[Keyword::OR, Keyword::REPLACE]) {
        return Err(Error::Sql(
            "CREATE OR REPLACE TABLE is not supported; DROP the table first or INSERT OVERWRITE"
                .into(),
        ));
    }
    p.expect_keyword(Keyword::TABLE).map_err(sql_error)?;
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = table_name(&mut p)?;
    let mut table = NewTable {
        name: Some(name.clone()),
        ..NewTable::default()
    };
    if p.consume_token(&Token::LParen) {
        let columns = p
            .parse_comma_separated(Parser::parse_column_def)
            .map_err(sql_error)?;
        p.expect_token(&Token::RParen).map_err(sql_error)?;
        let fields = columns
            .iter()
            .map(column_field)
            .collect::<Result<Vec<_>>>()?;
        table.schema = Some(StructType {
            type_name: "struct".into(),
            fields,
        });
    }
    let mut location = None;
    let mut query = None;
    loop {
        if p.parse_keyword(Keyword::USING) {
            let format = p.parse_identifier().map_err(sql_error)?;
            if !format.value.eq_ignore_ascii_case("delta") {
                return Err(Error::Sql(format!(
                    "tables here are Delta tables; USING {} is not supported",
                    format.value
                )));
            }
        } else if p.parse_keywords(&[Keyword::PARTITIONED, Keyword::BY]) {
            p.expect_token(&Token::LParen).map_err(sql_error)?;
            table.partition_columns = p
                .parse_comma_separated(|p| p.parse_identifier())
                .map_err(sql_error)?
                .into_iter()
                .map(|i| i.value)
                .collect();
            p.expect_token(&Token::RParen).map_err(sql_error)?;
        } else if p.parse_keyword(Keyword::LOCATION) {
            location = Some(p.parse_literal_string().map_err(sql_error)?);
        } else if p.parse_keyword(Keyword::COMMENT) {
            table.description = Some(p.parse_literal_string().map_err(sql_error)?);
        } else if p.parse_keyword(Keyword::TBLPROPERTIES) {
            table.properties = parse_properties(&mut p)?;
        } else if p.parse_keyword(Keyword::AS) {
            query = Some(p.parse_query().map_err(sql_error)?.to_string());
            break;
        } else {
            break;
        }
    }
    expect_end(&mut p)?;
    if table.schema.is_none() && query.is_none() {
        return Err(Error::Sql(format!(
            "CREATE TABLE {name} needs columns or AS SELECT"
        )));
    }
    if table.schema.is_some() && query.is_some() {
        return Err(Error::Sql(
            "CREATE TABLE … AS SELECT takes its columns from the query; drop the column list"
                .into(),
        ));
    }
    Ok(CreateTable {
        name,
        if_not_exists,
        table,
        location,
        query,
    })
}

/// `a, b` or `(a, b)`: identifier values.
fn identifier_list(p: &mut Parser<'_>) -> Result<Vec<String>> {
    let parenthesized = p.consume_token(&Token::LParen);
    let names = p
        .parse_comma_separated(|p| p.parse_identifier())
        .map_err(sql_error)?
        .into_iter()
        .map(|ident| ident.value)
        .collect();
    if parenthesized {
        p.expect_token(&Token::RParen).map_err(sql_error)?;
    }
    Ok(names)
}

/// A column definition as a Delta field: type, NOT NULL, COMMENT.
fn column_field(column: &ColumnDef) -> Result<StructField> {
    let nullable = !column
        .options
        .iter()
        .any(|o| o.option == ColumnOption::NotNull);
    let mut field = StructField::new(
        column.name.value.clone(),
        column_type::delta_type(&column.data_type)?,
        nullable,
    );
    for option in &column.options {
        if let ColumnOption::Comment(comment) = &option.option {
            field
                .metadata
                .insert("comment".into(), comment.clone().into());
        }
    }
    Ok(field)
}

/// `('key' = 'value', …)`; keys may also be dotted identifiers.
fn parse_properties(p: &mut Parser<'_>) -> Result<HashMap<String, String>> {
    p.expect_token(&Token::LParen).map_err(sql_error)?;
    let pairs = p
        .parse_comma_separated(|p| {
            let key = match p.peek_token().token {
                Token::SingleQuotedString(_) | Token::DoubleQuotedString(_) => {
                    p.parse_literal_string()?
                }
                _ => p.parse_object_name(false)?.to_string(),
            };
            let _ = p.consume_token(&Token::Eq);
            let value = match p.peek_token().token {
                Token::SingleQuotedString(_) | Token::DoubleQuotedString(_) => {
                    p.parse_literal_string()?
                }
                _ => p.parse_value()?.value.to_string(),
            };
            Ok((key, value))
        })
        .map_err(sql_error)?;
    p.expect_token(&Token::RParen).map_err(sql_error)?;
    Ok(pairs.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(sql: &str) -> CreateTable {
        match parse(sql).expect("a command").expect("parses") {
            Command::CreateTable(c) => *c,
            other => panic!("not a create: {other:?}"),
        }
    }

    #[test]
    fn databricks_create_table_parses() {
        let c = create(
            "CREATE TABLE IF NOT EXISTS t (id BIGINT NOT NULL, name STRING, l LONG, \
             s STRUCT<a: INT, b: STRING>, m MAP<STRING, INT>, a ARRAY<INT>, ts TIMESTAMP, \
             tn TIMESTAMP_NTZ, d DECIMAL(10,2), day DATE) USING DELTA PARTITIONED BY (day) \
             LOCATION '/data/t' COMMENT 'facts' TBLPROPERTIES ('delta.appendOnly' = 'false', delta.x = 1)",
        );
        assert!(c.if_not_exists);
        assert_eq!(c.location.as_deref(), Some("/data/t"));
        assert_eq!(c.table.partition_columns, vec!["day"]);
        assert_eq!(c.table.description.as_deref(), Some("facts"));
        assert_eq!(c.table.properties["delta.appendOnly"], "false");
        assert_eq!(c.table.properties["delta.x"], "1");
        let schema = c.table.schema.expect("columns");
        assert!(!schema.fields[0].nullable);
        let json = schema.to_json().unwrap();
        for expected in [
            "\"long\"",
            "\"timestamp_ntz\"",
            "\"decimal(10,2)\"",
            "\"map\"",
            "\"array\"",
        ] {
            assert!(json.contains(expected), "{expected} in {json}");
        }
    }

    #[test]
    fn create_as_select_keeps_its_query() {
        let c = create("CREATE TABLE t USING delta PARTITIONED BY (k) AS SELECT 1 AS k, 2 AS v");
        assert_eq!(c.query.as_deref(), Some("SELECT 1 AS k, 2 AS v"));
    }

    #[test]
    fn bad_ddl_is_explained() {
        for (sql, words) in [
            ("CREATE TABLE t", "needs columns"),
            ("CREATE TABLE t (a INT) USING parquet", "USING parquet"),
            ("CREATE TABLE t (a INT) PARTITIONED BY", "SQL syntax error"),
            ("CREATE TABLE t (a GEOMETRY)", "unsupported column type"),
            ("DROP TABLE t extra", "unexpected"),
        ] {
            let err = parse(sql).expect("a command").expect_err(sql);
            assert!(err.to_string().contains(words), "{sql}: {err}");
        }
        assert!(parse("SELECT 1").is_none());
        assert!(parse("INSERT INTO t VALUES (1)").is_none());
    }
}
