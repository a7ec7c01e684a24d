//! Table maintenance as Delta users write it: `OPTIMIZE t [WHERE …]
//! [ZORDER BY (…)]`, `VACUUM t [RETAIN n HOURS] [DRY RUN]`, `RESTORE [TABLE]
//! t [TO] VERSION AS OF n | TIMESTAMP AS OF '…'`, and the session switch
//! `SET spark.databricks.delta.retentionDurationCheck.enabled = false`.

use datafusion::sql::sqlparser::keywords::Keyword;

use super::{Command, expect_end, identifier_list, parser, sql_error, table_name};
use crate::{Error, Result};

/// The session setting that lets VACUUM retain less than the table's
/// retention, as Delta on Spark names it.
pub const RETENTION_CHECK_SETTING: &str = "spark.databricks.delta.retentionDurationCheck.enabled";

/// Where RESTORE goes back to.
#[derive(Debug, Clone, PartialEq)]
pub enum RestoreTarget {
    /// `VERSION AS OF n`.
    Version(i64),
    /// `TIMESTAMP AS OF '…'`, as written.
    Timestamp(String),
}

/// Parses `OPTIMIZE name [WHERE predicate] [ZORDER BY (c, …)]`.
pub fn parse_optimize(sql: &str) -> Result<Command> {
    let mut p = parser(sql)?;
    p.expect_keyword(Keyword::OPTIMIZE).map_err(sql_error)?;
    let name = table_name(&mut p)?;
    let predicate = if p.parse_keyword(Keyword::WHERE) {
        Some(p.parse_expr().map_err(sql_error)?.to_string())
    } else {
        None
    };
    let mut zorder_by = Vec::new();
    if p.parse_keyword(Keyword::ZORDER) {
        p.expect_keyword(Keyword::BY).map_err(sql_error)?;
        zorder_by = identifier_list(&mut p)?;
    }
    expect_end(&mut p)?;
    Ok(Command::Optimize {
        name,
        predicate,
        zorder_by,
    })
}

/// Parses `VACUUM name [RETAIN n HOURS] [DRY RUN]`.
pub fn parse_vacuum(sql: &str) -> Result<Command> {
    let mut p = parser(sql)?;
    p.expect_keyword(Keyword::VACUUM).map_err(sql_error)?;
    let name = table_name(&mut p)?;
    let mut retain_hours = None;
    if p.parse_keyword(Keyword::RETAIN) {
        let number = p.parse_number_value().map_err(sql_error)?.value.to_string();
        let hours: f64 = number.parse().map_err(|_| {
            Error::Sql(format!(
                "VACUUM RETAIN takes a number of hours, not {number}"
            ))
        })?;
        p.expect_keyword(Keyword::HOURS).map_err(sql_error)?;
        retain_hours = Some(hours);
    }
    let dry_run = p.parse_keywords(&[Keyword::DRY, Keyword::RUN]);
    expect_end(&mut p)?;
    Ok(Command::Vacuum {
        name,
        retain_hours,
        dry_run,
    })
}

/// Parses `RESTORE [TABLE] name [TO] VERSION AS OF n | TIMESTAMP AS OF '…'`.
pub fn parse_restore(sql: &str) -> Result<Command> {
    let mut p = parser(sql)?;
    // RESTORE is not a keyword of the parser: the dispatcher saw it.
    let _ = p.next_token();
    let _ = p.parse_keyword(Keyword::TABLE);
    let name = table_name(&mut p)?;
    let _ = p.parse_keyword(Keyword::TO);
    let target = if p.parse_keywords(&[Keyword::VERSION, Keyword::AS, Keyword::OF]) {
        let number = p.parse_number_value().map_err(sql_error)?.value.to_string();
        RestoreTarget::Version(number.parse().map_err(|_| {
            Error::Sql(format!(
                "RESTORE … VERSION AS OF takes a version number, not {number}"
            ))
        })?)
    } else if p.parse_keywords(&[Keyword::TIMESTAMP, Keyword::AS, Keyword::OF]) {
        RestoreTarget::Timestamp(p.parse_literal_string().map_err(sql_error)?)
    } else {
        return Err(Error::Sql(
            "RESTORE needs TO VERSION AS OF n or TO TIMESTAMP AS OF '…'".into(),
        ));
    };
    expect_end(&mut p)?;
    Ok(Command::Restore { name, target })
}

/// Parses `SET spark.databricks.delta.retentionDurationCheck.enabled = …`;
/// `None` for any other SET (left to DataFusion).
pub fn parse_set(sql: &str) -> Option<Result<Command>> {
    let rest = sql
        .trim()
        .strip_prefix("SET ")
        .or_else(|| sql.trim().strip_prefix("set "))?;
    let (key, value) = rest.split_once('=')?;
    if !key.trim().eq_ignore_ascii_case(RETENTION_CHECK_SETTING) {
        return None;
    }
    let value = value.trim().trim_end_matches(';').trim().trim_matches('\'');
    Some(match value.to_ascii_lowercase().as_str() {
        "true" => Ok(Command::RetentionCheck(true)),
        "false" => Ok(Command::RetentionCheck(false)),
        other => Err(Error::Sql(format!(
            "{RETENTION_CHECK_SETTING} is true or false, not {other}"
        ))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maintenance_statements_parse() {
        assert!(matches!(
            parse_optimize("OPTIMIZE t WHERE day >= '2024-01-01' ZORDER BY (a, b)").unwrap(),
            Command::Optimize { name, predicate: Some(p), zorder_by }
                if name == "t" && p == "day >= '2024-01-01'" && zorder_by == ["a", "b"]
        ));
        assert!(matches!(
            parse_optimize("OPTIMIZE t ZORDER BY a").unwrap(),
            Command::Optimize { zorder_by, predicate: None, .. } if zorder_by == ["a"]
        ));
        assert!(matches!(
            parse_vacuum("VACUUM t RETAIN 0.5 HOURS DRY RUN").unwrap(),
            Command::Vacuum { retain_hours: Some(h), dry_run: true, .. } if h == 0.5
        ));
        assert!(matches!(
            parse_vacuum("VACUUM t").unwrap(),
            Command::Vacuum {
                retain_hours: None,
                dry_run: false,
                ..
            }
        ));
        assert!(matches!(
            parse_restore("RESTORE TABLE t TO VERSION AS OF 3").unwrap(),
            Command::Restore {
                target: RestoreTarget::Version(3),
                ..
            }
        ));
        assert!(matches!(
            parse_restore("RESTORE t TIMESTAMP AS OF '2024-01-01'").unwrap(),
            Command::Restore { target: RestoreTarget::Timestamp(ts), .. } if ts == "2024-01-01"
        ));
        assert!(matches!(
            parse_set("SET spark.databricks.delta.retentionDurationCheck.enabled = false"),
            Some(Ok(Command::RetentionCheck(false)))
        ));
        assert!(parse_set("SET datafusion.execution.batch_size = 10").is_none());
    }

    #[test]
    fn bad_maintenance_is_explained() {
        for (result, words) in [
            (parse_optimize("OPTIMIZE t ZORDER (a)"), "SQL syntax error"),
            (parse_vacuum("VACUUM t RETAIN 5 DAYS"), "SQL syntax error"),
            (parse_vacuum("VACUUM t RETAIN x HOURS"), "SQL syntax error"),
            (parse_restore("RESTORE t"), "VERSION AS OF"),
            (
                parse_restore("RESTORE t VERSION AS OF 1.5"),
                "version number",
            ),
        ] {
            let err = result.expect_err(words);
            assert!(err.to_string().contains(words), "{err}");
        }
        assert!(
            parse_set("SET spark.databricks.delta.retentionDurationCheck.enabled = maybe")
                .is_some_and(|r| r.is_err())
        );
    }
}
