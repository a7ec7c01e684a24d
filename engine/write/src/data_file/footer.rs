//! Delta bounds from the statistics the Parquet writer keeps per column
//! chunk anyway, so that the common column types need no second pass over
//! the rows for `minValues` and `maxValues`.
//!
//! Parquet cuts string statistics to [`TRUNCATE_BYTES`] (at a character
//! boundary, a cut maximum with its last character raised), which always
//! keeps more than [`STRING_PREFIX_LENGTH`] characters: the Delta bounds
//! made from them are the ones the rows themselves would give.

use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::statistics::Statistics;

use super::STRING_PREFIX_LENGTH;

/// The bytes Parquet keeps of a string statistic: one character more than
/// Delta's prefix, at four bytes each.
pub const TRUNCATE_BYTES: usize = (STRING_PREFIX_LENGTH + 1) * 4;

/// The least minimum and greatest maximum of the leaf column at `path`
/// over `row_groups`; `None` when a row group holding values has no
/// statistics for it (the file then gets no bounds for the column).
pub fn column_bounds(
    row_groups: &[RowGroupMetaData],
    path: &[String],
    data_type: &DataType,
) -> Option<(ScalarValue, ScalarValue)> {
    let mut bounds: Option<(ScalarValue, ScalarValue)> = None;
    for row_group in row_groups {
        let chunk = row_group
            .columns()
            .iter()
            .find(|c| c.column_path().parts() == path)?;
        let statistics = chunk.statistics()?;
        if statistics.min_bytes_opt().is_none() || statistics.max_bytes_opt().is_none() {
            // Only nulls in this row group, or no bounds at all.
            let values = u64::try_from(chunk.num_values()).ok()?;
            if statistics.null_count_opt() == Some(values) {
                continue;
            }
            return None;
        }
        let (low, high) = chunk_bounds(statistics, data_type)?;
        bounds = Some(match bounds {
            None => (low, high),
            Some((least, greatest)) => (
                if low < least { low } else { least },
                if high > greatest { high } else { greatest },
            ),
        });
    }
    bounds
}

fn chunk_bounds(
    statistics: &Statistics,
    data_type: &DataType,
) -> Option<(ScalarValue, ScalarValue)> {
    fn pair<'a, T>(min: Option<&'a T>, max: Option<&'a T>) -> Option<(&'a T, &'a T)> {
        Some((min?, max?))
    }
    Some(match (statistics, data_type) {
        (Statistics::Int32(s), DataType::Int8) => {
            let (lo, hi) = pair(s.min_opt(), s.max_opt())?;
            let narrow = |v: &i32| i8::try_from(*v).ok().map(|v| ScalarValue::Int8(Some(v)));
            (narrow(lo)?, narrow(hi)?)
        }
        (Statistics::Int32(s), DataType::Int16) => {
            let (lo, hi) = pair(s.min_opt(), s.max_opt())?;
            let narrow = |v: &i32| i16::try_from(*v).ok().map(|v| ScalarValue::Int16(Some(v)));
            (narrow(lo)?, narrow(hi)?)
        }
        (Statistics::Int32(s), DataType::Int32) => {
            let (lo, hi) = pair(s.min_opt(), s.max_opt())?;
            (ScalarValue::Int32(Some(*lo)), ScalarValue::Int32(Some(*hi)))
        }
        (Statistics::Int32(s), DataType::Date32) => {
            let (lo, hi) = pair(s.min_opt(), s.max_opt())?;
            (
                ScalarValue::Date32(Some(*lo)),
                ScalarValue::Date32(Some(*hi)),
            )
        }
        (Statistics::Int64(s), DataType::Int64) => {
            let (lo, hi) = pair(s.min_opt(), s.max_opt())?;
            (ScalarValue::Int64(Some(*lo)), ScalarValue::Int64(Some(*hi)))
        }
        (Statistics::Int64(s), DataType::Timestamp(TimeUnit::Microsecond, zone)) => {
            let (lo, hi) = pair(s.min_opt(), s.max_opt())?;
            (
                ScalarValue::TimestampMicrosecond(Some(*lo), zone.clone()),
                ScalarValue::TimestampMicrosecond(Some(*hi), zone.clone()),
            )
        }
        (Statistics::Float(s), DataType::Float32) => {
            let (lo, hi) = pair(s.min_opt(), s.max_opt())?;
            (
                ScalarValue::Float32(Some(*lo)),
                ScalarValue::Float32(Some(*hi)),
            )
        }
        (Statistics::Double(s), DataType::Float64) => {
            let (lo, hi) = pair(s.min_opt(), s.max_opt())?;
            (
                ScalarValue::Float64(Some(*lo)),
                ScalarValue::Float64(Some(*hi)),
            )
        }
        (Statistics::ByteArray(s), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => {
            let (lo, hi) = pair(s.min_opt(), s.max_opt())?;
            (
                ScalarValue::Utf8(Some(lo.as_utf8().ok()?.to_owned())),
                ScalarValue::Utf8(Some(hi.as_utf8().ok()?.to_owned())),
            )
        }
        _ => return None,
    })
}
