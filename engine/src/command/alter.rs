//! `ALTER TABLE` as Delta users write it: ADD COLUMN(S), RENAME COLUMN,
//! DROP COLUMN(S), SET and UNSET TBLPROPERTIES, ADD and DROP CONSTRAINT.

use std::collections::HashMap;

use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use super::{
    Command, column_field, expect_end, identifier_list, parse_properties, parser, sql_error,
    table_name,
};
use crate::schema::StructField;
use crate::{Error, Result};

/// What an `ALTER TABLE` changes.
#[derive(Debug, Clone, PartialEq)]
pub enum TableChange {
    /// `ADD COLUMN[S] (name type [NOT NULL] [COMMENT '…'], …)`.
    AddColumns(Vec<StructField>),
    /// `RENAME COLUMN from TO to`.
    RenameColumn {
        /// The current name.
        from: String,
        /// The new name.
        to: String,
    },
    /// `DROP COLUMN[S] [IF EXISTS] (name, …)`.
    DropColumns {
        /// The columns.
        columns: Vec<String>,
        /// Whether missing columns are fine.
        if_exists: bool,
    },
    /// `SET TBLPROPERTIES ('key' = 'value', …)`.
    SetProperties(HashMap<String, String>),
    /// `UNSET TBLPROPERTIES [IF EXISTS] ('key', …)`.
    UnsetProperties {
        /// The keys.
        keys: Vec<String>,
        /// Whether missing keys are fine.
        if_exists: bool,
    },
    /// `ADD CONSTRAINT name CHECK (condition)`.
    AddConstraint {
        /// The constraint's name.
        name: String,
        /// The condition, as SQL.
        expression: String,
    },
    /// `DROP CONSTRAINT [IF EXISTS] name`.
    DropConstraint {
        /// The constraint's name.
        name: String,
        /// Whether a missing constraint is fine.
        if_exists: bool,
    },
}

impl TableChange {
    /// The operation's name in the table's history, as Delta writes it.
    pub fn operation(&self) -> &'static str {
        match self {
            Self::AddColumns(_) => "ADD COLUMNS",
            Self::RenameColumn { .. } => "RENAME COLUMN",
            Self::DropColumns { .. } => "DROP COLUMNS",
            Self::SetProperties(_) => "SET TBLPROPERTIES",
            Self::UnsetProperties { .. } => "UNSET TBLPROPERTIES",
            Self::AddConstraint { .. } => "ADD CONSTRAINT",
            Self::DropConstraint { .. } => "DROP CONSTRAINT",
        }
    }
}

/// Parses an `ALTER TABLE` statement.
pub fn parse_alter(sql: &str) -> Result<Command> {
    let mut p = parser(sql)?;
    p.expect_keyword(Keyword::ALTER).map_err(sql_error)?;
    p.expect_keyword(Keyword::TABLE).map_err(sql_error)?;
    let name = table_name(&mut p)?;
    let change = if p.parse_keywords(&[Keyword::ADD, Keyword::CONSTRAINT]) {
        let name = p.parse_identifier().map_err(sql_error)?.value;
        p.expect_keyword(Keyword::CHECK).map_err(sql_error)?;
        p.expect_token(&Token::LParen).map_err(sql_error)?;
        let expression = p.parse_expr().map_err(sql_error)?.to_string();
        p.expect_token(&Token::RParen).map_err(sql_error)?;
        TableChange::AddConstraint { name, expression }
    } else if p.parse_keywords(&[Keyword::DROP, Keyword::CONSTRAINT]) {
        let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        let name = p.parse_identifier().map_err(sql_error)?.value;
        TableChange::DropConstraint { name, if_exists }
    } else if p.parse_keyword(Keyword::ADD) {
        let _ = p.parse_keyword(Keyword::COLUMNS) || p.parse_keyword(Keyword::COLUMN);
        let parenthesized = p.consume_token(&Token::LParen);
        let columns = p
            .parse_comma_separated(Parser::parse_column_def)
            .map_err(sql_error)?;
        if parenthesized {
            p.expect_token(&Token::RParen).map_err(sql_error)?;
        }
        TableChange::AddColumns(
            columns
                .iter()
                .map(column_field)
                .collect::<Result<Vec<_>>>()?,
        )
    } else if p.parse_keywords(&[Keyword::RENAME, Keyword::COLUMN]) {
        let from = p.parse_identifier().map_err(sql_error)?.value;
        p.expect_keyword(Keyword::TO).map_err(sql_error)?;
        let to = p.parse_identifier().map_err(sql_error)?.value;
        TableChange::RenameColumn { from, to }
    } else if p.parse_keyword(Keyword::DROP) {
        if !(p.parse_keyword(Keyword::COLUMNS) || p.parse_keyword(Keyword::COLUMN)) {
            return Err(Error::Sql(
                "ALTER TABLE … DROP takes COLUMN or COLUMNS".into(),
            ));
        }
        let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        let columns = identifier_list(&mut p)?;
        TableChange::DropColumns { columns, if_exists }
    } else if p.parse_keywords(&[Keyword::SET, Keyword::TBLPROPERTIES]) {
        TableChange::SetProperties(parse_properties(&mut p)?)
    } else if p.parse_keywords(&[Keyword::UNSET, Keyword::TBLPROPERTIES]) {
        let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        p.expect_token(&Token::LParen).map_err(sql_error)?;
        let keys = p
            .parse_comma_separated(|p| match p.peek_token().token {
                Token::SingleQuotedString(_) | Token::DoubleQuotedString(_) => {
                    p.parse_literal_string()
                }
                _ => Ok(p.parse_object_name(false)?.to_string()),
            })
            .map_err(sql_error)?;
        p.expect_token(&Token::RParen).map_err(sql_error)?;
        TableChange::UnsetProperties { keys, if_exists }
    } else {
        return Err(Error::Sql(format!(
            "ALTER TABLE supports ADD COLUMNS, RENAME COLUMN, DROP COLUMNS, SET and UNSET \
             TBLPROPERTIES, ADD and DROP CONSTRAINT; found {}",
            p.peek_token().token
        )));
    };
    expect_end(&mut p)?;
    Ok(Command::AlterTable { name, change })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(sql: &str) -> TableChange {
        match parse_alter(sql).unwrap() {
            Command::AlterTable { change, .. } => change,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_form_parses() {
        let TableChange::AddColumns(fields) =
            change("ALTER TABLE t ADD COLUMNS (a INT NOT NULL COMMENT 'why', b STRING)")
        else {
            panic!("add");
        };
        assert_eq!(fields.len(), 2);
        assert!(!fields[0].nullable);
        assert_eq!(fields[0].metadata["comment"], "why");
        assert!(
            matches!(change("ALTER TABLE t ADD COLUMN c DATE"), TableChange::AddColumns(f) if f.len() == 1)
        );
        assert_eq!(
            change("ALTER TABLE t RENAME COLUMN a TO b"),
            TableChange::RenameColumn {
                from: "a".into(),
                to: "b".into()
            }
        );
        assert_eq!(
            change("ALTER TABLE t DROP COLUMNS IF EXISTS (a, b)"),
            TableChange::DropColumns {
                columns: vec!["a".into(), "b".into()],
                if_exists: true
            }
        );
        assert_eq!(
            change("ALTER TABLE t DROP COLUMN a"),
            TableChange::DropColumns {
                columns: vec!["a".into()],
                if_exists: false
            }
        );
        assert_eq!(
            change("ALTER TABLE t ADD CONSTRAINT positive CHECK (id > 0 AND name <> '')"),
            TableChange::AddConstraint {
                name: "positive".into(),
                expression: "id > 0 AND name <> ''".into()
            }
        );
        assert_eq!(
            change("ALTER TABLE t DROP CONSTRAINT IF EXISTS positive"),
            TableChange::DropConstraint {
                name: "positive".into(),
                if_exists: true
            }
        );
        assert!(parse_alter("ALTER TABLE t ADD CONSTRAINT c (id > 0)").is_err());
        assert!(matches!(
            change("ALTER TABLE t SET TBLPROPERTIES ('delta.appendOnly' = 'true')"),
            TableChange::SetProperties(p) if p["delta.appendOnly"] == "true"
        ));
        assert_eq!(
            change("ALTER TABLE t UNSET TBLPROPERTIES IF EXISTS ('a', b.c)"),
            TableChange::UnsetProperties {
                keys: vec!["a".into(), "b.c".into()],
                if_exists: true
            }
        );
    }

    #[test]
    fn unknown_alterations_are_explained() {
        for (sql, words) in [
            ("ALTER TABLE t OWNER TO bob", "ALTER TABLE supports"),
            ("ALTER TABLE t DROP PARTITION (a = 1)", "COLUMN or COLUMNS"),
            ("ALTER TABLE t ADD COLUMNS (a INT", "SQL syntax error"),
            ("ALTER TABLE t RENAME COLUMN a b", "SQL syntax error"),
        ] {
            let err = parse_alter(sql).expect_err(sql);
            assert!(err.to_string().contains(words), "{sql}: {err}");
        }
    }
}
