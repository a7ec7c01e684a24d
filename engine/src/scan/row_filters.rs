//! Testing the rows a scan returns against the dynamic filters of the
//! joins above it, where an aggregation stands between the two.
//!
//! A hash join's keys reach the Parquet scan as a dynamic filter, which
//! prunes row groups but removes no row. Where the scan feeds a join
//! directly, that is as it should be: the join tests each row against its
//! hash table anyway, and testing the same keys at the scan first only
//! doubles the work (TPC-H Q3 and Q5 got slower when every scan did). Where
//! an aggregation stands between them (TPC-H Q17 averages all 6M
//! `lineitem` rows by part for a join that keeps 204 parts, Q20 and Q2 do
//! the same), every row the filter would remove is grouped first, so the
//! [`AggregatedProbeRowTests`] rule has those scans test their rows.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch};
use datafusion::common::ScalarValue;
use datafusion::common::config::ConfigOptions;
use datafusion::error::Result as DfResult;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{DynamicFilterPhysicalExpr, Literal};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::metrics::Count;

use super::DeltaScanExec;

/// Rows of a scan need no test against a dynamic filter that kept at
/// least this share of the rows it tested...
const KEEPS_NEARLY_ALL: f64 = 0.9;
/// ... once it has tested this many.
const ROWS_TO_JUDGE_A_FILTER: usize = 100_000;

/// The dynamic filters a scan tests its rows against. A filter not set yet
/// (its join is still building, so it is `true`) is passed over; one that
/// keeps nearly every row is dropped for the rest of the stream, where
/// testing it would cost more than it saves.
pub(crate) struct RowFilters {
    filters: Vec<RowFilter>,
    removed: Count,
}

struct RowFilter {
    expr: Arc<dyn PhysicalExpr>,
    tested: usize,
    kept: usize,
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

    /// `batch` without the rows some filter rejects.
    pub(crate) fn apply(&mut self, mut batch: RecordBatch) -> DfResult<RecordBatch> {
        for filter in &mut self.filters {
            let rows = batch.num_rows();
            if rows == 0 {
                break;
            }
            let judged = filter.tested >= ROWS_TO_JUDGE_A_FILTER;
            if judged && filter.kept as f64 >= KEEPS_NEARLY_ALL * filter.tested as f64 {
                continue;
            }
            if let Some(dynamic) = filter.expr.downcast_ref::<DynamicFilterPhysicalExpr>()
                && is_true(&dynamic.current()?)
            {
                continue;
            }
            let mask = filter.expr.evaluate(&batch)?.into_array(rows)?;
            let Some(mask) = mask.as_any().downcast_ref::<BooleanArray>() else {
                continue;
            };
            // A null (unknown) key matches no key of the join.
            let kept = mask.true_count();
            filter.tested += rows;
            filter.kept += kept;
            if kept < rows {
                batch = arrow::compute::filter_record_batch(&batch, mask)?;
                self.removed.add(rows - kept);
            }
        }
        Ok(batch)
    }
}

/// Whether `expr` is the literal `true`.
fn is_true(expr: &Arc<dyn PhysicalExpr>) -> bool {
    expr.downcast_ref::<Literal>()
        .is_some_and(|literal| literal.value() == &ScalarValue::Boolean(Some(true)))
}

/// Has the scans under an aggregation on a hash join's probe side test
/// their rows against the dynamic filters they were given. Runs after
/// DataFusion's filter pushdown, which hands the scans those filters.
#[derive(Debug, Default)]
pub(crate) struct AggregatedProbeRowTests;

/// Where a node stands relative to the joins above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    /// On no join's probe side.
    Free,
    /// On a join's probe side, no aggregation in between.
    Probe,
    /// Under an aggregation on a join's probe side.
    AggregatedProbe,
}

impl PhysicalOptimizerRule for AggregatedProbeRowTests {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        mark(plan, Place::Free)
    }

    fn name(&self) -> &str {
        "aggregated_probe_row_tests"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

fn mark(plan: Arc<dyn ExecutionPlan>, place: Place) -> DfResult<Arc<dyn ExecutionPlan>> {
    if let Some(scan) = plan.downcast_ref::<DeltaScanExec>() {
        if place == Place::AggregatedProbe
            && let Some(testing) = scan.with_row_tests()
        {
            return Ok(testing);
        }
        return Ok(plan);
    }
    let children = plan.children();
    if children.is_empty() {
        return Ok(plan);
    }
    let is_join = plan.downcast_ref::<HashJoinExec>().is_some();
    let below = |index: usize| match place {
        _ if is_join && index == 1 => place.max(Place::Probe),
        Place::Probe if plan.downcast_ref::<AggregateExec>().is_some() => Place::AggregatedProbe,
        other => other,
    };
    let marked = children
        .into_iter()
        .enumerate()
        .map(|(index, child)| mark(Arc::clone(child), below(index)))
        .collect::<DfResult<Vec<_>>>()?;
    replace_children_if_necessary(plan, marked)
}
