//! Parameters bound to a prepared statement: every `?` placeholder (in the
//! order they appear) and every `$n` (the n-th value) becomes a literal of
//! its value, token by token, so that what then runs, and what
//! authorization classifies, is an ordinary statement. Values never become
//! SQL text of their own: a string is one quoted literal whatever it holds.

use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::Value;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use super::WavelakeDialect;
use crate::{Error, Result};

/// `sql` with its placeholders replaced by `values`: each `?` takes the
/// next value, `$n` the n-th. Every value must be used and every
/// placeholder must have one.
pub fn bind_parameters(sql: &str, values: &[ScalarValue]) -> Result<String> {
    let tokens = Tokenizer::new(&WavelakeDialect, sql)
        .tokenize()
        .map_err(|e| Error::Sql(format!("SQL syntax error: {e}")))?;
    let mut used = vec![false; values.len()];
    let mut next = 0;
    let mut bound = String::with_capacity(sql.len());
    for token in tokens {
        let Token::Placeholder(name) = &token else {
            bound.push_str(&token.to_string());
            continue;
        };
        let index = if name == "?" {
            next += 1;
            next - 1
        } else {
            name.strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| n.checked_sub(1))
                .ok_or_else(|| {
                    Error::InvalidArgument(format!("placeholder {name} is not ? or $1, $2, …"))
                })?
        };
        let value = values.get(index).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "placeholder {name} has no parameter: {} bound",
                values.len()
            ))
        })?;
        used[index] = true;
        bound.push_str(&literal(value)?);
    }
    if let Some(unused) = used.iter().position(|u| !u) {
        return Err(Error::InvalidArgument(format!(
            "parameter {} of {} has no placeholder in the statement",
            unused + 1,
            values.len()
        )));
    }
    Ok(bound)
}

/// Whether `sql` has placeholders to bind (`false` for SQL that does not
/// tokenize: parsing it says why).
pub fn has_placeholders(sql: &str) -> bool {
    Tokenizer::new(&WavelakeDialect, sql)
        .tokenize()
        .is_ok_and(|tokens| tokens.iter().any(|t| matches!(t, Token::Placeholder(_))))
}

/// `value` as an SQL literal of its type.
fn literal(value: &ScalarValue) -> Result<String> {
    if value.is_null() {
        return Ok("NULL".into());
    }
    let quoted = |text: String| Value::SingleQuotedString(text).to_string();
    Ok(match value {
        ScalarValue::Boolean(Some(v)) => v.to_string().to_ascii_uppercase(),
        ScalarValue::Int8(Some(_))
        | ScalarValue::Int16(Some(_))
        | ScalarValue::Int32(Some(_))
        | ScalarValue::Int64(Some(_))
        | ScalarValue::UInt8(Some(_))
        | ScalarValue::UInt16(Some(_))
        | ScalarValue::UInt32(Some(_))
        | ScalarValue::UInt64(Some(_)) => {
            format!("CAST({value} AS {})", sql_type(value)?)
        }
        ScalarValue::Float32(Some(_)) | ScalarValue::Float64(Some(_)) => {
            // Through a string, so NaN and infinities are literals too.
            format!(
                "CAST({} AS {})",
                quoted(value.to_string()),
                sql_type(value)?
            )
        }
        ScalarValue::Utf8(Some(text))
        | ScalarValue::LargeUtf8(Some(text))
        | ScalarValue::Utf8View(Some(text)) => quoted(text.clone()),
        ScalarValue::Date32(Some(_))
        | ScalarValue::TimestampSecond(Some(_), _)
        | ScalarValue::TimestampMillisecond(Some(_), _)
        | ScalarValue::TimestampMicrosecond(Some(_), _)
        | ScalarValue::TimestampNanosecond(Some(_), _)
        | ScalarValue::Decimal128(Some(_), _, _) => {
            format!(
                "CAST({} AS {})",
                quoted(value.to_string()),
                sql_type(value)?
            )
        }
        other => {
            return Err(Error::InvalidArgument(format!(
                "a parameter of type {} cannot be bound (booleans, integers, floats, \
                 strings, dates, timestamps and decimals can)",
                other.data_type()
            )));
        }
    })
}

fn sql_type(value: &ScalarValue) -> Result<String> {
    Ok(match value {
        ScalarValue::Int8(_) => "TINYINT".into(),
        ScalarValue::Int16(_) => "SMALLINT".into(),
        ScalarValue::Int32(_) => "INT".into(),
        ScalarValue::Int64(_) => "BIGINT".into(),
        ScalarValue::UInt8(_) => "TINYINT UNSIGNED".into(),
        ScalarValue::UInt16(_) => "SMALLINT UNSIGNED".into(),
        ScalarValue::UInt32(_) => "INT UNSIGNED".into(),
        ScalarValue::UInt64(_) => "BIGINT UNSIGNED".into(),
        ScalarValue::Float32(_) => "FLOAT".into(),
        ScalarValue::Float64(_) => "DOUBLE".into(),
        ScalarValue::Date32(_) => "DATE".into(),
        ScalarValue::TimestampSecond(_, zone)
        | ScalarValue::TimestampMillisecond(_, zone)
        | ScalarValue::TimestampMicrosecond(_, zone)
        | ScalarValue::TimestampNanosecond(_, zone) => match zone {
            Some(_) => "TIMESTAMP WITH TIME ZONE".into(),
            None => "TIMESTAMP".into(),
        },
        ScalarValue::Decimal128(_, precision, scale) => format!("DECIMAL({precision}, {scale})"),
        other => {
            return Err(Error::InvalidArgument(format!(
                "no SQL type for a parameter of type {}",
                other.data_type()
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(v: i64) -> ScalarValue {
        ScalarValue::Int64(Some(v))
    }

    fn text(v: &str) -> ScalarValue {
        ScalarValue::Utf8(Some(v.into()))
    }

    #[test]
    fn question_marks_take_the_values_in_order() {
        let bound = bind_parameters(
            "SELECT * FROM t WHERE a = ? AND b = ?",
            &[int(7), text("x")],
        )
        .unwrap();
        assert_eq!(
            bound,
            "SELECT * FROM t WHERE a = CAST(7 AS BIGINT) AND b = 'x'"
        );
    }

    #[test]
    fn numbered_placeholders_take_their_value_and_may_repeat() {
        let bound = bind_parameters("SELECT $2, $1, $2", &[int(1), int(2)]).unwrap();
        assert_eq!(
            bound,
            "SELECT CAST(2 AS BIGINT), CAST(1 AS BIGINT), CAST(2 AS BIGINT)"
        );
    }

    #[test]
    fn a_string_stays_one_literal_whatever_it_holds() {
        let hostile = "x' OR 1=1; DROP TABLE t; --";
        let bound = bind_parameters("SELECT * FROM t WHERE name = ?", &[text(hostile)]).unwrap();
        assert_eq!(
            bound,
            "SELECT * FROM t WHERE name = 'x'' OR 1=1; DROP TABLE t; --'"
        );
        // Read as SQL again, it is one read of one table.
        let statement = crate::Statement::parse(&bound).unwrap();
        assert_eq!(statement.access(), crate::Access::Read);
    }

    #[test]
    fn placeholders_inside_literals_and_comments_are_not_bound() {
        let bound = bind_parameters("SELECT '?' -- ?\n, ?", &[int(3)]).unwrap();
        assert_eq!(bound, "SELECT '?' -- ?\n, CAST(3 AS BIGINT)");
    }

    #[test]
    fn placeholders_are_found_outside_literals_only() {
        assert!(has_placeholders("SELECT * FROM t WHERE a = $1"));
        assert!(!has_placeholders("SELECT '?' FROM t -- ?"));
    }

    #[test]
    fn missing_and_unused_parameters_are_refused() {
        let err = bind_parameters("SELECT ?, ?", &[int(1)]).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        let err = bind_parameters("SELECT ?", &[int(1), int(2)]).unwrap_err();
        assert!(err.to_string().contains("parameter 2 of 2"), "{err}");
        let err = bind_parameters("SELECT $0", &[int(1)]).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    }

    #[test]
    fn typed_values_keep_their_types() {
        let bound = bind_parameters(
            "SELECT ?, ?, ?, ?, ?",
            &[
                ScalarValue::Null,
                ScalarValue::Boolean(Some(true)),
                ScalarValue::Float64(Some(f64::NAN)),
                ScalarValue::Date32(Some(19_000)),
                ScalarValue::Decimal128(Some(12_345), 10, 2),
            ],
        )
        .unwrap();
        assert_eq!(
            bound,
            "SELECT NULL, TRUE, CAST('NaN' AS DOUBLE), CAST('2022-01-08' AS DATE), \
             CAST('123.45' AS DECIMAL(10, 2))"
        );
        let err = bind_parameters("SELECT ?", &[ScalarValue::Binary(Some(vec![1]))]).unwrap_err();
        assert!(err.to_string().contains("cannot be bound"), "{err}");
    }
}
