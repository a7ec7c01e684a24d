//! Testing the rows a scan returns against the dynamic filters of the
//! operators above it, where those filters keep few rows.
//!
//! A hash join's keys reach the Parquet scan as a dynamic filter, which
//! prunes row groups but removes no row: every row is still repartitioned,
//! hashed and probed (or grouped first, where an aggregation stands
//! between). Where the join keeps a small share of the rows — TPC-H Q18's
//! semi join keeps 57 of 1.5M orders, and every `lineitem` row is then
//! probed against the 1.5M orders joined with their customers — testing
//! them at the scan removes that work. Where it keeps most of them,
//! testing costs about what the join's own probe costs (a hash to route the
//! key to its partition's table and a lookup), and the join then does it
//! again: two earlier attempts that tested every row slowed TPC-H Q3, Q5
//! and Q20. So each scan stream judges each filter on the first rows it
//! tests and keeps testing only one that keeps at most a tenth of them; a
//! scan whose rows the query filters itself right above leaves the test to
//! the join, since the query's own condition is the cheaper one to test
//! first.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch};
use arrow::buffer::BooleanBuffer;
use datafusion::common::ScalarValue;
use datafusion::common::config::ConfigOptions;
use datafusion::error::Result as DfResult;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{CaseExpr, DynamicFilterPhysicalExpr, Literal};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::metrics::Count;
use datafusion::physical_plan::projection::ProjectionExec;

use super::DeltaScanExec;

/// A partitioned join's filter routes each row by its key's hash to the
/// test of the keys of the partition the hash names (`CASE hash % n WHEN 0
/// THEN test0 WHEN 1 THEN test1 ... END`), which DataFusion evaluates by
/// splitting the batch by branch and merging the answers back a row at a
/// time. With at most this many branches, each row is tested against every
/// branch instead and the answers combined a word at a time, which keeps
/// the same rows (a key is only among the keys of the partition its hash
/// names) for less work.
const MOST_BRANCHES_TESTED_EACH: usize = 4;

/// A filter is tested on every row only while it keeps at most this share
/// of the rows it tested...
const SELECTIVE_SHARE: f64 = 0.1;
/// ... once it has tested this many (before that it is tested on all).
const ROWS_TO_JUDGE_A_FILTER: usize = 100_000;

/// The dynamic filters one scan stream tests its rows against. A filter not
/// set yet (its operator is still building, so it is `true`) is passed
/// over; one that keeps more than [`SELECTIVE_SHARE`] of the first
/// [`ROWS_TO_JUDGE_A_FILTER`] rows is dropped for the rest of the stream.
pub(crate) struct RowFilters {
    filters: Vec<RowFilter>,
    removed: Count,
}

struct RowFilter {
    expr: Arc<dyn PhysicalExpr>,
    tested: usize,
    kept: usize,
}

impl RowFilter {
    /// Whether the rows tested so far show the filter keeps too many to be
    /// worth testing.
    fn keeps_too_many(&self) -> bool {
        self.tested >= ROWS_TO_JUDGE_A_FILTER
            && self.kept as f64 > SELECTIVE_SHARE * self.tested as f64
    }
}

impl RowFilters {
    /// Tests rows against `filters`, counting the rows removed in `removed`.
    pub(crate) fn new(filters: &[Arc<dyn PhysicalExpr>], removed: Count) -> Self {
        let filters = filters
            .iter()
            .map(|expr| RowFilter {
                expr: Arc::clone(expr),
                tested: 0,
                kept: 0,
            })
            .collect();
        Self { filters, removed }
    }

    /// `batch` without the rows a selective filter rejects.
    pub(crate) fn apply(&mut self, mut batch: RecordBatch) -> DfResult<RecordBatch> {
        for filter in &mut self.filters {
            let rows = batch.num_rows();
            if rows == 0 {
                break;
            }
            if filter.keeps_too_many() {
                continue;
            }
            let current = match filter.expr.downcast_ref::<DynamicFilterPhysicalExpr>() {
                Some(dynamic) => dynamic.current()?,
                None => Arc::clone(&filter.expr),
            };
            if is_true(&current) {
                continue;
            }
            let Some(mask) = evaluate(&current, &batch)? else {
                continue;
            };
            // A null (unknown) outcome keeps no row: a null key matches no
            // key of the join.
            let kept = mask.true_count();
            filter.tested += rows;
            filter.kept += kept;
            if kept < rows {
                batch = arrow::compute::filter_record_batch(&batch, &mask)?;
                self.removed.add(rows - kept);
            }
        }
        Ok(batch)
    }
}

/// `filter`'s outcome for each row of `batch`; `None` when it is not a
/// boolean.
fn evaluate(filter: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> DfResult<Option<BooleanArray>> {
    let rows = batch.num_rows();
    let Some(branches) = branches(filter) else {
        let outcome = filter.evaluate(batch)?.into_array(rows)?;
        return Ok(outcome.as_any().downcast_ref::<BooleanArray>().cloned());
    };
    // A row any branch keeps is kept (a null outcome keeps no row).
    let mut kept = BooleanBuffer::new_unset(rows);
    for branch in branches {
        let outcome = branch.evaluate(batch)?.into_array(rows)?;
        let Some(outcome) = outcome.as_any().downcast_ref::<BooleanArray>() else {
            return Ok(None);
        };
        let outcome = match outcome.nulls() {
            Some(nulls) => outcome.values() & nulls.inner(),
            None => outcome.values().clone(),
        };
        kept = &kept | &outcome;
    }
    Ok(Some(BooleanArray::new(kept, None)))
}

/// The outcomes of a `CASE value WHEN ...` filter with at most
/// [`MOST_BRANCHES_TESTED_EACH`] branches (its `ELSE` too): a row it keeps
/// is kept by one of them, so a row none of them keeps is one it removes.
fn branches(filter: &Arc<dyn PhysicalExpr>) -> Option<Vec<&Arc<dyn PhysicalExpr>>> {
    let case = filter.downcast_ref::<CaseExpr>()?;
    case.expr()?;
    let branches: Vec<&Arc<dyn PhysicalExpr>> = case
        .when_then_expr()
        .iter()
        .map(|(_, then)| then)
        .chain(case.else_expr())
        .filter(|branch| !is_false(branch))
        .collect();
    (branches.len() <= MOST_BRANCHES_TESTED_EACH).then_some(branches)
}

/// Whether `expr` is the literal `false`.
fn is_false(expr: &Arc<dyn PhysicalExpr>) -> bool {
    expr.downcast_ref::<Literal>()
        .is_some_and(|literal| literal.value() == &ScalarValue::Boolean(Some(false)))
}

/// Whether `expr` is the literal `true`.
fn is_true(expr: &Arc<dyn PhysicalExpr>) -> bool {
    expr.downcast_ref::<Literal>()
        .is_some_and(|literal| literal.value() == &ScalarValue::Boolean(Some(true)))
}

/// Has every scan given dynamic filters test its rows against them (see
/// the module documentation), except a scan the query filters right above.
/// Runs after DataFusion's filter pushdown, which hands the scans their
/// dynamic filters.
#[derive(Debug, Default)]
pub(crate) struct SelectiveRowTests;

impl PhysicalOptimizerRule for SelectiveRowTests {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        mark(plan, false)
    }

    fn name(&self) -> &str {
        "selective_row_tests"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Marks the scans under `plan`; `filtered` says whether the query filters
/// `plan`'s rows right above it.
fn mark(plan: Arc<dyn ExecutionPlan>, filtered: bool) -> DfResult<Arc<dyn ExecutionPlan>> {
    if let Some(scan) = plan.downcast_ref::<DeltaScanExec>() {
        return match (filtered, scan.with_row_tests()) {
            (false, Some(testing)) => Ok(testing),
            _ => Ok(plan),
        };
    }
    let children = plan.children();
    if children.is_empty() {
        return Ok(plan);
    }
    let filters_below = plan.downcast_ref::<FilterExec>().is_some()
        || (filtered && plan.downcast_ref::<ProjectionExec>().is_some());
    let marked = children
        .into_iter()
        .map(|child| mark(Arc::clone(child), filters_below))
        .collect::<DfResult<Vec<_>>>()?;
    replace_children_if_necessary(plan, marked)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{BinaryExpr, CaseExpr, col, in_list, lit};

    use super::*;

    fn batch(values: impl IntoIterator<Item = i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]));
        let column = Int64Array::from_iter_values(values);
        RecordBatch::try_new(schema, vec![Arc::new(column)]).unwrap()
    }

    fn below(bound: i64) -> Arc<dyn PhysicalExpr> {
        let schema = batch([]).schema();
        Arc::new(BinaryExpr::new(
            col("k", &schema).unwrap(),
            Operator::Lt,
            lit(bound),
        ))
    }

    fn dynamic(children: Vec<Arc<dyn PhysicalExpr>>) -> Arc<DynamicFilterPhysicalExpr> {
        Arc::new(DynamicFilterPhysicalExpr::new(children, lit(true)))
    }

    #[test]
    fn a_selective_filter_is_tested_on_every_row() {
        let removed = Count::new();
        let mut filters = RowFilters::new(&[below(5)], removed.clone());
        for _ in 0..30 {
            let kept = filters.apply(batch(0..10_000)).unwrap();
            assert_eq!(kept.num_rows(), 5);
        }
        assert_eq!(removed.value(), 30 * 9_995);
    }

    #[test]
    fn a_filter_keeping_many_rows_is_dropped_once_judged() {
        let removed = Count::new();
        let mut filters = RowFilters::new(&[below(5_000)], removed.clone());
        // Tested on the first 100,000 rows, where it keeps half...
        for _ in 0..10 {
            assert_eq!(filters.apply(batch(0..10_000)).unwrap().num_rows(), 5_000);
        }
        // ... and then no longer.
        assert_eq!(filters.apply(batch(0..10_000)).unwrap().num_rows(), 10_000);
        assert_eq!(removed.value(), 10 * 5_000);
    }

    #[test]
    fn a_filter_not_set_yet_is_passed_over_until_it_is() {
        let key = col("k", &batch([]).schema()).unwrap();
        let filter = dynamic(vec![key]);
        let removed = Count::new();
        let as_expr: Arc<dyn PhysicalExpr> = filter.clone();
        let mut filters = RowFilters::new(&[as_expr], removed.clone());
        // Not set: nothing is tested, so nothing counts toward judging it.
        for _ in 0..20 {
            assert_eq!(filters.apply(batch(0..10_000)).unwrap().num_rows(), 10_000);
        }
        filter.update(below(3)).unwrap();
        for _ in 0..20 {
            assert_eq!(filters.apply(batch(0..10_000)).unwrap().num_rows(), 3);
        }
        assert_eq!(removed.value(), 20 * 9_997);
    }

    /// `CASE k % n WHEN i THEN k IN (keys of i) ... ELSE false END`, as a
    /// partitioned join routes keys (here by remainder, not hash).
    fn routed(n: i64, keys: &[i64]) -> Arc<dyn PhysicalExpr> {
        let schema = batch([]).schema();
        let key = col("k", &schema).unwrap();
        let route = Arc::new(BinaryExpr::new(key.clone(), Operator::Modulo, lit(n)));
        let branches = (0..n)
            .map(|i| {
                let mine = keys
                    .iter()
                    .filter(|k| *k % n == i)
                    .map(|k| lit(*k))
                    .collect();
                let test = in_list(key.clone(), mine, &false, &schema).unwrap();
                (lit(i), test)
            })
            .collect();
        Arc::new(CaseExpr::try_new(Some(route), branches, Some(lit(false))).unwrap())
    }

    fn kept_keys(filter: Arc<dyn PhysicalExpr>, rows: RecordBatch) -> Vec<Option<i64>> {
        let mut filters = RowFilters::new(&[filter], Count::new());
        let kept = filters.apply(rows).unwrap();
        let keys = kept
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        keys.iter().collect()
    }

    #[test]
    fn a_routed_filter_keeps_what_its_case_keeps_for_few_or_many_branches() {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]));
        let values: Vec<Option<i64>> = (0..40).map(|k| (k % 11 != 7).then_some(k)).collect();
        let rows =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.clone()))]).unwrap();
        let keys = [1, 3, 4, 9, 12, 18, 22, 29, 33, 34];
        for n in [2, 3, 4, 5, 7] {
            let filter = routed(n, &keys);
            assert_eq!(branches(&filter).is_some(), n <= 4);
            let expected: Vec<Option<i64>> = values
                .iter()
                .filter(|k| k.is_some_and(|k| keys.contains(&k)))
                .copied()
                .collect();
            assert_eq!(kept_keys(filter, rows.clone()), expected, "{n} branches");
        }
    }

    #[test]
    fn every_branch_of_a_case_and_its_else_keep_rows() {
        // Not a routing: whatever the branches, no row the CASE keeps is removed.
        let schema = batch([]).schema();
        let key = col("k", &schema).unwrap();
        let route = Arc::new(BinaryExpr::new(key.clone(), Operator::Modulo, lit(3_i64)));
        let filter: Arc<dyn PhysicalExpr> = Arc::new(
            CaseExpr::try_new(
                Some(route),
                vec![(lit(0_i64), below(3)), (lit(1_i64), lit(false))],
                Some(Arc::new(BinaryExpr::new(key, Operator::Gt, lit(17_i64)))),
            )
            .unwrap(),
        );
        assert_eq!(
            kept_keys(filter, batch(0..20)),
            [0, 1, 2, 18, 19].map(Some).to_vec()
        );
    }

    #[test]
    fn a_null_outcome_keeps_no_row() {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]));
        let column = Int64Array::from(vec![Some(1), None, Some(9)]);
        let rows = RecordBatch::try_new(schema, vec![Arc::new(column)]).unwrap();
        let mut filters = RowFilters::new(&[below(5)], Count::new());
        let kept = filters.apply(rows).unwrap();
        assert_eq!(kept.num_rows(), 1);
    }
}
