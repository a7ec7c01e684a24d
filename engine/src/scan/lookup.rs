//! When a scan evaluates its filter while decoding Parquet (late
//! materialization): only in sessions that pay for every byte, and only
//! for lookups. Reading the filter's columns first and the others for the
//! passing rows alone skips a page of another column only when no row of
//! it passes; a filter keeping one row in a hundred leaves a passing row
//! in nearly every page, and evaluating it while decoding costs time and
//! saves nothing (TPC-H Q6 over HTTP: 1.4x the time, the same bytes).

use std::sync::Arc;

use arrow::datatypes::Schema;
use datafusion::common::Statistics;
use datafusion::physical_expr::{AnalysisContext, PhysicalExpr, analyze};

/// A session config extension: this session's scans evaluate lookups'
/// filters while decoding (see [`crate::SqlSessionOptions::late_materialization`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct LateMaterialization;

/// The largest share of rows a filter may keep, by the log's statistics,
/// and still count as a lookup: about one row per page of 10,000.
const LOOKUP_SELECTIVITY: f64 = 1e-4;

/// Whether `predicate` keeps at most [`LOOKUP_SELECTIVITY`] of the rows
/// `statistics` (of `schema`) describe: min/max intervals narrowed by the
/// predicate, as DataFusion's filter estimation does. Unknown statistics
/// or a predicate the analysis cannot bound are not lookups.
pub fn is_lookup(
    predicate: &Arc<dyn PhysicalExpr>,
    schema: &Schema,
    statistics: &Statistics,
) -> bool {
    if statistics.column_statistics.len() != schema.fields().len() {
        return false;
    }
    let Ok(context) = AnalysisContext::try_from_statistics(schema, &statistics.column_statistics)
    else {
        return false;
    };
    analyze(predicate, context, schema)
        .ok()
        .and_then(|analysis| analysis.selectivity)
        .is_some_and(|selectivity| selectivity <= LOOKUP_SELECTIVITY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field};
    use datafusion::common::stats::Precision;
    use datafusion::common::{ColumnStatistics, ScalarValue};
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("key", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ])
    }

    /// Keys 1..=6,000,000; names without statistics.
    fn statistics() -> Statistics {
        let key = ColumnStatistics {
            min_value: Precision::Exact(ScalarValue::Int64(Some(1))),
            max_value: Precision::Exact(ScalarValue::Int64(Some(6_000_000))),
            null_count: Precision::Exact(0),
            ..ColumnStatistics::new_unknown()
        };
        Statistics {
            num_rows: Precision::Exact(6_000_000),
            total_byte_size: Precision::Absent,
            column_statistics: vec![key, ColumnStatistics::new_unknown()],
        }
    }

    fn compare(
        column: &str,
        index: usize,
        op: Operator,
        value: ScalarValue,
    ) -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(
            Arc::new(Column::new(column, index)),
            op,
            Arc::new(Literal::new(value)),
        ))
    }

    #[test]
    fn a_key_lookup_is_one_a_range_is_not() {
        let (schema, statistics) = (schema(), statistics());
        let key = |op, v: i64| compare("key", 0, op, ScalarValue::Int64(Some(v)));
        assert!(is_lookup(
            &key(Operator::Eq, 3_000_000),
            &schema,
            &statistics
        ));
        // A seventh of the keys.
        assert!(!is_lookup(
            &key(Operator::Lt, 857_000),
            &schema,
            &statistics
        ));
        // A column without statistics cannot be bounded.
        let name = compare("name", 1, Operator::Eq, ScalarValue::Utf8(Some("x".into())));
        assert!(!is_lookup(&name, &schema, &statistics));
        // Nor can anything without statistics at all.
        let unknown = Statistics::new_unknown(&schema);
        assert!(!is_lookup(&key(Operator::Eq, 3_000_000), &schema, &unknown));
    }
}
