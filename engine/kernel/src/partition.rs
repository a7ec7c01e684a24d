//! Partition values: the strings in `add.partitionValues`, typed.

use arrow::datatypes::DataType;
use datafusion_common::ScalarValue;

use crate::{Error, Result};

/// Parses a serialized partition value into a scalar of `data_type`.
/// `None` and the empty string are null, for every type: Hive-style
/// partitioning cannot tell an empty string from null, and Spark,
/// delta-kernel and delta-rs all read `""` as null.
pub fn parse_partition_value(value: Option<&str>, data_type: &DataType) -> Result<ScalarValue> {
    let text = match value {
        None => return Ok(ScalarValue::try_from(data_type)?),
        Some("") => return Ok(ScalarValue::try_from(data_type)?),
        Some(text) => text,
    };
    match data_type {
        DataType::Utf8 => Ok(ScalarValue::Utf8(Some(text.to_owned()))),
        DataType::Binary => Ok(ScalarValue::Binary(Some(text.as_bytes().to_vec()))),
        DataType::Boolean => match text.to_ascii_lowercase().as_str() {
            "true" => Ok(ScalarValue::Boolean(Some(true))),
            "false" => Ok(ScalarValue::Boolean(Some(false))),
            _ => Err(bad(text, data_type)),
        },
        DataType::Timestamp(_, _) => {
            // Spark writes `2021-01-01 12:00:00[.ffffff]`; some writers use ISO 8601.
            ScalarValue::Utf8(Some(text.to_owned()))
                .cast_to(data_type)
                .map_err(|_| bad(text, data_type))
        }
        _ => ScalarValue::Utf8(Some(text.trim().to_owned()))
            .cast_to(data_type)
            .map_err(|_| bad(text, data_type))
            .and_then(|v| {
                if v.is_null() {
                    Err(bad(text, data_type))
                } else {
                    Ok(v)
                }
            }),
    }
}

fn bad(text: &str, data_type: &DataType) -> Error {
    Error::invalid_table(format!(
        "partition value {text:?} is not a valid {data_type}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::TimeUnit;

    #[test]
    fn parses_partition_values_of_each_type() {
        let p = |v, t: DataType| parse_partition_value(v, &t).expect("parses");
        assert_eq!(p(Some("7"), DataType::Int32), ScalarValue::Int32(Some(7)));
        assert_eq!(p(None, DataType::Int64), ScalarValue::Int64(None));
        assert_eq!(p(Some(""), DataType::Date32), ScalarValue::Date32(None));
        assert_eq!(p(Some(""), DataType::Utf8), ScalarValue::Utf8(None));
        assert_eq!(
            p(Some("2021-01-02"), DataType::Date32),
            ScalarValue::Date32(Some(18629))
        );
        assert_eq!(
            p(Some("1.25"), DataType::Decimal128(5, 2)),
            ScalarValue::Decimal128(Some(125), 5, 2)
        );
        assert_eq!(
            p(
                Some("2021-01-01 00:00:01"),
                DataType::Timestamp(TimeUnit::Microsecond, None)
            ),
            ScalarValue::TimestampMicrosecond(Some(1_609_459_201_000_000), None)
        );
        assert!(parse_partition_value(Some("x"), &DataType::Int32).is_err());
    }
}
