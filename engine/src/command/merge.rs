//! `MERGE INTO` as Delta users write it (Spark and Databricks dialect),
//! including `UPDATE SET *`, `INSERT *` and `WHEN NOT MATCHED BY SOURCE`.
//! Expressions are kept as SQL text: the write path plans them inside one
//! join query, so DataFusion resolves every name.

use datafusion::sql::sqlparser::ast::{AssignmentTarget, TableFactor};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use super::{expect_end, parser, sql_error};
use crate::{Error, Result};

/// A parsed `MERGE INTO target USING source ON condition WHEN …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    /// The target table's name.
    pub target: String,
    /// The name that qualifies the target's columns (its alias, or its name).
    pub target_alias: String,
    /// The source relation as written: a table or a subquery, with its alias.
    pub source: String,
    /// The name that qualifies the source's columns.
    pub source_alias: String,
    /// The join condition.
    pub on: String,
    /// The `WHEN` clauses, in order.
    pub clauses: Vec<MergeClause>,
}

/// Which rows a `WHEN` clause applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeWhen {
    /// `WHEN MATCHED`: a target row with a source row.
    Matched,
    /// `WHEN NOT MATCHED [BY TARGET]`: a source row with no target row.
    NotMatched,
    /// `WHEN NOT MATCHED BY SOURCE`: a target row with no source row.
    NotMatchedBySource,
}

/// One `WHEN … [AND condition] THEN action` clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeClause {
    /// The rows it applies to.
    pub when: MergeWhen,
    /// Its extra condition, as SQL.
    pub condition: Option<String>,
    /// What it does.
    pub action: MergeAction,
}

/// What a `WHEN` clause does to its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeAction {
    /// `UPDATE SET column = expression, …` (column names unqualified).
    Update(Vec<(String, String)>),
    /// `UPDATE SET *`: every target column from the source column of its name.
    UpdateAll,
    /// `DELETE`.
    Delete,
    /// `INSERT (columns) VALUES (expressions)`.
    Insert {
        /// The columns given values; the others are null.
        columns: Vec<String>,
        /// One expression per column.
        values: Vec<String>,
    },
    /// `INSERT *`: every target column from the source column of its name.
    InsertAll,
}

impl MergeAction {
    /// Whether rows it applies to are written (updated or inserted).
    pub fn writes(&self) -> bool {
        !matches!(self, MergeAction::Delete)
    }
}

/// Parses a `MERGE INTO` statement.
pub fn parse_merge(sql: &str) -> Result<Merge> {
    let mut p = parser(sql)?;
    p.expect_keyword(Keyword::MERGE).map_err(sql_error)?;
    let _ = p.parse_keyword(Keyword::INTO);
    let (target, target_alias) = match p.parse_table_factor().map_err(sql_error)? {
        TableFactor::Table { name, alias, .. } => {
            let last = name
                .0
                .last()
                .and_then(|part| part.as_ident())
                .cloned()
                .ok_or_else(|| Error::Sql(format!("bad table name {name}")))?;
            let qualifier = alias.map_or_else(|| last.to_string(), |a| a.name.to_string());
            (super::object_name(&name)?, qualifier)
        }
        other => {
            return Err(Error::Sql(format!(
                "MERGE INTO needs a table as its target, not {other}"
            )));
        }
    };
    p.expect_keyword(Keyword::USING).map_err(sql_error)?;
    let source = p.parse_table_factor().map_err(sql_error)?;
    let source_alias = match &source {
        TableFactor::Table { name, alias, .. } => match alias {
            Some(alias) => alias.name.to_string(),
            None => name
                .0
                .last()
                .map(|part| part.to_string())
                .unwrap_or_default(),
        },
        TableFactor::Derived { alias, .. } => alias
            .as_ref()
            .map(|a| a.name.to_string())
            .ok_or_else(|| Error::Sql("a MERGE source subquery needs an alias".into()))?,
        other => {
            return Err(Error::Sql(format!(
                "MERGE USING takes a table or a subquery, not {other}"
            )));
        }
    };
    if source_alias.eq_ignore_ascii_case(&target_alias) {
        return Err(Error::Sql(format!(
            "MERGE target and source are both called {source_alias}; give one an alias"
        )));
    }
    p.expect_keyword(Keyword::ON).map_err(sql_error)?;
    let on = p.parse_expr().map_err(sql_error)?.to_string();
    let mut clauses = Vec::new();
    while p.parse_keyword(Keyword::WHEN) {
        clauses.push(parse_clause(&mut p)?);
    }
    expect_end(&mut p)?;
    check_clauses(&clauses)?;
    Ok(Merge {
        target,
        target_alias,
        source: source.to_string(),
        source_alias,
        on,
        clauses,
    })
}

fn parse_clause(p: &mut Parser<'_>) -> Result<MergeClause> {
    let when = if p.parse_keyword(Keyword::NOT) {
        p.expect_keyword(Keyword::MATCHED).map_err(sql_error)?;
        if p.parse_keywords(&[Keyword::BY, Keyword::SOURCE]) {
            MergeWhen::NotMatchedBySource
        } else {
            let _ = p.parse_keywords(&[Keyword::BY, Keyword::TARGET]);
            MergeWhen::NotMatched
        }
    } else {
        p.expect_keyword(Keyword::MATCHED).map_err(sql_error)?;
        MergeWhen::Matched
    };
    let condition = if p.parse_keyword(Keyword::AND) {
        Some(p.parse_expr().map_err(sql_error)?.to_string())
    } else {
        None
    };
    p.expect_keyword(Keyword::THEN).map_err(sql_error)?;
    let action = match p.parse_one_of_keywords(&[Keyword::UPDATE, Keyword::DELETE, Keyword::INSERT])
    {
        Some(Keyword::UPDATE) => {
            p.expect_keyword(Keyword::SET).map_err(sql_error)?;
            if p.consume_token(&Token::Mul) {
                MergeAction::UpdateAll
            } else {
                let assignments = p
                    .parse_comma_separated(Parser::parse_assignment)
                    .map_err(sql_error)?;
                let mut set = Vec::with_capacity(assignments.len());
                for assignment in assignments {
                    let AssignmentTarget::ColumnName(name) = &assignment.target else {
                        return Err(Error::Sql(format!(
                            "MERGE cannot assign to a tuple: {}",
                            assignment.target
                        )));
                    };
                    let column = name
                        .0
                        .last()
                        .and_then(|part| part.as_ident())
                        .map(|ident| ident.value.clone())
                        .ok_or_else(|| Error::Sql(format!("bad column name {name}")))?;
                    set.push((column, assignment.value.to_string()));
                }
                MergeAction::Update(set)
            }
        }
        Some(Keyword::DELETE) => MergeAction::Delete,
        Some(_) => {
            if p.consume_token(&Token::Mul) {
                MergeAction::InsertAll
            } else {
                p.expect_token(&Token::LParen).map_err(sql_error)?;
                let columns = p
                    .parse_comma_separated(|p| p.parse_identifier())
                    .map_err(sql_error)?
                    .into_iter()
                    .map(|ident| ident.value)
                    .collect::<Vec<_>>();
                p.expect_token(&Token::RParen).map_err(sql_error)?;
                p.expect_keyword(Keyword::VALUES).map_err(sql_error)?;
                p.expect_token(&Token::LParen).map_err(sql_error)?;
                let values = p
                    .parse_comma_separated(Parser::parse_expr)
                    .map_err(sql_error)?
                    .into_iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>();
                p.expect_token(&Token::RParen).map_err(sql_error)?;
                if columns.len() != values.len() {
                    return Err(Error::Sql(format!(
                        "MERGE INSERT lists {} columns but {} values",
                        columns.len(),
                        values.len()
                    )));
                }
                MergeAction::Insert { columns, values }
            }
        }
        None => {
            return Err(Error::Sql(format!(
                "SQL syntax error: expected UPDATE, DELETE or INSERT after THEN, found {}",
                p.peek_token().token
            )));
        }
    };
    let allowed = match when {
        MergeWhen::Matched => {
            !matches!(action, MergeAction::Insert { .. } | MergeAction::InsertAll)
        }
        MergeWhen::NotMatched => {
            matches!(action, MergeAction::Insert { .. } | MergeAction::InsertAll)
        }
        MergeWhen::NotMatchedBySource => {
            matches!(action, MergeAction::Update(_) | MergeAction::Delete)
        }
    };
    if !allowed {
        return Err(Error::Sql(format!(
            "{} cannot {}",
            match when {
                MergeWhen::Matched => "WHEN MATCHED",
                MergeWhen::NotMatched => "WHEN NOT MATCHED",
                MergeWhen::NotMatchedBySource => "WHEN NOT MATCHED BY SOURCE",
            },
            match action {
                MergeAction::Insert { .. } | MergeAction::InsertAll => "INSERT",
                MergeAction::UpdateAll => "UPDATE SET * (there is no source row)",
                _ => "UPDATE or DELETE",
            }
        )));
    }
    Ok(MergeClause {
        when,
        condition,
        action,
    })
}

/// Delta's rules: at least one clause, and of several clauses of one kind
/// only the last may go without a condition (the others would be dead).
fn check_clauses(clauses: &[MergeClause]) -> Result<()> {
    if clauses.is_empty() {
        return Err(Error::Sql(
            "MERGE needs at least one WHEN MATCHED or WHEN NOT MATCHED clause".into(),
        ));
    }
    for kind in [
        MergeWhen::Matched,
        MergeWhen::NotMatched,
        MergeWhen::NotMatchedBySource,
    ] {
        let of_kind: Vec<&MergeClause> = clauses.iter().filter(|c| c.when == kind).collect();
        if let Some((_, earlier)) = of_kind.split_last()
            && earlier.iter().any(|c| c.condition.is_none())
        {
            return Err(Error::Sql(
                "of several MERGE clauses of one kind, only the last may omit its AND condition"
                    .into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_merge_parses() {
        let merge = parse_merge(
            "MERGE INTO people AS t USING (SELECT * FROM updates) AS s ON t.id = s.id \
             WHEN MATCHED AND s.gone THEN DELETE \
             WHEN MATCHED THEN UPDATE SET name = s.name, t.age = s.age + 1 \
             WHEN NOT MATCHED THEN INSERT * \
             WHEN NOT MATCHED BY SOURCE AND t.age > 90 THEN DELETE",
        )
        .unwrap();
        assert_eq!(merge.target, "people");
        assert_eq!(merge.target_alias, "t");
        assert_eq!(merge.source_alias, "s");
        assert_eq!(merge.on, "t.id = s.id");
        assert_eq!(merge.clauses.len(), 4);
        assert_eq!(merge.clauses[0].condition.as_deref(), Some("s.gone"));
        assert_eq!(
            merge.clauses[1].action,
            MergeAction::Update(vec![
                ("name".into(), "s.name".into()),
                ("age".into(), "s.age + 1".into())
            ])
        );
        assert_eq!(merge.clauses[2].action, MergeAction::InsertAll);
        assert_eq!(merge.clauses[3].when, MergeWhen::NotMatchedBySource);
    }

    #[test]
    fn unaliased_tables_qualify_by_name() {
        let merge = parse_merge(
            "MERGE INTO t USING src ON t.k = src.k WHEN MATCHED THEN UPDATE SET * \
             WHEN NOT MATCHED THEN INSERT (k, v) VALUES (src.k, 0)",
        )
        .unwrap();
        assert_eq!(
            (merge.target_alias.as_str(), merge.source_alias.as_str()),
            ("t", "src")
        );
        assert_eq!(merge.clauses[0].action, MergeAction::UpdateAll);
    }

    #[test]
    fn bad_merges_are_explained() {
        for (sql, words) in [
            ("MERGE INTO t USING s ON t.k = s.k", "at least one"),
            (
                "MERGE INTO t USING t ON t.k = t.k WHEN MATCHED THEN DELETE",
                "both called",
            ),
            (
                "MERGE INTO t USING (SELECT 1) ON true WHEN MATCHED THEN DELETE",
                "alias",
            ),
            (
                "MERGE INTO t USING s ON t.k = s.k WHEN MATCHED THEN INSERT *",
                "cannot INSERT",
            ),
            (
                "MERGE INTO t USING s ON t.k = s.k WHEN NOT MATCHED THEN DELETE",
                "cannot UPDATE or DELETE",
            ),
            (
                "MERGE INTO t USING s ON t.k = s.k WHEN MATCHED THEN DELETE WHEN MATCHED THEN UPDATE SET *",
                "only the last",
            ),
            (
                "MERGE INTO t USING s ON t.k = s.k WHEN NOT MATCHED THEN INSERT (a, b) VALUES (1)",
                "2 columns but 1",
            ),
            (
                "MERGE INTO t USING s ON WHEN MATCHED THEN DELETE",
                "SQL syntax error",
            ),
            (
                "MERGE INTO t USING s ON t.k = s.k WHEN MATCHED THEN UPSERT",
                "expected UPDATE",
            ),
        ] {
            let err = parse_merge(sql).expect_err(sql);
            assert!(err.to_string().contains(words), "{sql}: {err}");
        }
    }
}
