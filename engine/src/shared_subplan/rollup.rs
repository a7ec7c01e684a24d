//! Computing a coarse aggregation from a finer one over the same rows.
//! TPC-H Q11 groups `partsupp` by `ps_partkey` and compares each group's
//! sum with a subquery's total of the same sum over the same join: two
//! reads of `partsupp`. Projection pushdown leaves `ps_partkey` out of the
//! subquery's scan, so the two inputs are no longer equal plans and
//! [`super::mark_shared_subplans`] cannot share them. [`roll_up_aggregations`]
//! finds such pairs and rewrites the coarse one to aggregate the fine one's
//! output (a total of per-group sums), which then occurs twice and is
//! computed once.
//!
//! Only `sum`, `count`, `min` and `max` without `DISTINCT`, `FILTER` or
//! `ORDER BY` roll up, and only when the coarse aggregation's input is the
//! fine one's with fewer columns (the same scans, filters, joins and
//! projections, each projecting a subset).

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::common::{Column, ScalarValue};
use datafusion::error::Result as DfResult;
use datafusion::functions_aggregate::expr_fn::{max, min, sum};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{
    Aggregate, Expr, LogicalPlan, LogicalPlanBuilder, Projection, TableScan, cast, lit, when,
};

use super::{is_shareable, same_source, same_subplan};

/// Rewrites every aggregation that can be computed from a finer one in
/// `plan` (see the module documentation) to aggregate that finer one's
/// output; a plan without such pairs comes back unchanged.
pub(crate) fn roll_up_aggregations(plan: LogicalPlan) -> DfResult<LogicalPlan> {
    let mut aggregations: Vec<LogicalPlan> = Vec::new();
    plan.apply_with_subqueries(|node| {
        if matches!(node, LogicalPlan::RecursiveQuery(_)) {
            aggregations.clear();
            return Ok(TreeNodeRecursion::Stop);
        }
        if is_shareable(node)? && !aggregations.iter().any(|seen| same_subplan(seen, node)) {
            aggregations.push(node.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    let finer = |coarse: &LogicalPlan| {
        aggregations
            .iter()
            .find(|fine| rolls_up(coarse, fine))
            .cloned()
    };
    // A source is one no other aggregation rolls it up: it stays in the
    // plan, so the rewritten occurrences share its result.
    let rewrites: Vec<(LogicalPlan, LogicalPlan)> = aggregations
        .iter()
        .filter_map(|coarse| {
            let fine = finer(coarse)?;
            finer(&fine).is_none().then(|| (coarse.clone(), fine))
        })
        .collect();
    if rewrites.is_empty() {
        return Ok(plan);
    }
    plan.transform_down_with_subqueries(|node| {
        let Some((_, fine)) = rewrites
            .iter()
            .find(|(coarse, _)| same_subplan(coarse, &node))
        else {
            return Ok(Transformed::no(node));
        };
        match rolled_up(&node, fine)? {
            Some(rewritten) => Ok(Transformed::new(rewritten, true, TreeNodeRecursion::Jump)),
            None => Ok(Transformed::no(node)),
        }
    })
    .map(|rewritten| rewritten.data)
}

/// Whether aggregation `coarse` can be computed from `fine`'s output.
fn rolls_up(coarse: &LogicalPlan, fine: &LogicalPlan) -> bool {
    let (LogicalPlan::Aggregate(coarse), LogicalPlan::Aggregate(fine)) = (coarse, fine) else {
        return false;
    };
    let plain_groups = |groups: &[Expr]| groups.iter().all(|g| matches!(g, Expr::Column(_)));
    plain_groups(&coarse.group_expr)
        && plain_groups(&fine.group_expr)
        && coarse.group_expr.len() < fine.group_expr.len()
        && coarse
            .group_expr
            .iter()
            .all(|g| fine.group_expr.contains(g))
        && coarse
            .aggr_expr
            .iter()
            .all(|a| rollup_function(a).is_some() && fine.aggr_expr.contains(a))
        && covers(&fine.input, &coarse.input)
}

/// How partial results of aggregate `expr` combine, if they can.
#[derive(Clone, Copy)]
enum Rollup {
    Sum,
    Count,
    Min,
    Max,
}

fn rollup_function(expr: &Expr) -> Option<Rollup> {
    let Expr::AggregateFunction(AggregateFunction { func, params }) = expr else {
        return None;
    };
    if params.distinct || params.filter.is_some() || !params.order_by.is_empty() {
        return None;
    }
    match func.name() {
        "sum" => Some(Rollup::Sum),
        "count" => Some(Rollup::Count),
        "min" => Some(Rollup::Min),
        "max" => Some(Rollup::Max),
        _ => None,
    }
}

/// Whether `wide` yields every column `narrow` does, from the same rows:
/// the same tree of scans, filters, joins and aliases, where each of
/// `wide`'s projections and scans keeps at least `narrow`'s columns.
fn covers(wide: &LogicalPlan, narrow: &LogicalPlan) -> bool {
    match (wide, narrow) {
        (LogicalPlan::Projection(w), LogicalPlan::Projection(n)) => {
            n.expr.iter().all(|e| w.expr.contains(e)) && covers(&w.input, &n.input)
        }
        (LogicalPlan::Filter(w), LogicalPlan::Filter(n)) => {
            w.predicate == n.predicate && covers(&w.input, &n.input)
        }
        (LogicalPlan::SubqueryAlias(w), LogicalPlan::SubqueryAlias(n)) => {
            w.alias == n.alias && covers(&w.input, &n.input)
        }
        (LogicalPlan::Join(w), LogicalPlan::Join(n)) => {
            w.on == n.on
                && w.filter == n.filter
                && w.join_type == n.join_type
                && w.join_constraint == n.join_constraint
                && w.null_equality == n.null_equality
                && w.null_aware == n.null_aware
                && covers(&w.left, &n.left)
                && covers(&w.right, &n.right)
        }
        (LogicalPlan::TableScan(w), LogicalPlan::TableScan(n)) => scan_covers(w, n),
        _ => false,
    }
}

fn scan_covers(wide: &TableScan, narrow: &TableScan) -> bool {
    let same_rows = wide.table_name == narrow.table_name
        && same_source(wide, narrow)
        && wide.filters == narrow.filters
        && wide.fetch == narrow.fetch
        && wide.statistics_requests == narrow.statistics_requests;
    let columns = match (&wide.projection, &narrow.projection) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(w), Some(n)) => n.iter().all(|column| w.contains(column)),
    };
    same_rows && columns
}

/// `coarse` computed from `fine`'s output: an aggregation of `fine` by
/// `coarse`'s groups, each aggregate combining `fine`'s partial results,
/// projected to `coarse`'s exact schema. `None` if the types do not agree.
fn rolled_up(coarse: &LogicalPlan, fine: &LogicalPlan) -> DfResult<Option<LogicalPlan>> {
    let (LogicalPlan::Aggregate(coarse), LogicalPlan::Aggregate(fine_aggregate)) = (coarse, fine)
    else {
        return Ok(None);
    };
    let fine_column = |index: usize| Column::from(fine_aggregate.schema.qualified_field(index));
    let mut groups = Vec::with_capacity(coarse.group_expr.len());
    for group in &coarse.group_expr {
        let Some(index) = fine_aggregate.group_expr.iter().position(|g| g == group) else {
            return Ok(None);
        };
        groups.push(Expr::Column(fine_column(index)));
    }
    let mut partials = Vec::with_capacity(coarse.aggr_expr.len());
    let mut combines = Vec::with_capacity(coarse.aggr_expr.len());
    for (position, aggregate) in coarse.aggr_expr.iter().enumerate() {
        let (Some(rollup), Some(index)) = (
            rollup_function(aggregate),
            fine_aggregate.aggr_expr.iter().position(|a| a == aggregate),
        ) else {
            return Ok(None);
        };
        let partial = Expr::Column(fine_column(fine_aggregate.group_expr.len() + index));
        let combined = match rollup {
            Rollup::Sum | Rollup::Count => sum(partial),
            Rollup::Min => min(partial),
            Rollup::Max => max(partial),
        };
        partials.push(combined.alias(format!("__rollup_{position}")));
        combines.push(rollup);
    }
    let grouped = LogicalPlanBuilder::from(fine.clone())
        .aggregate(groups, partials)?
        .build()?;
    projected_like(coarse, grouped, &combines)
}

/// `grouped`'s columns renamed and cast to `coarse`'s schema; a count over
/// no rows is 0, not the null a sum of no counts gives.
fn projected_like(
    coarse: &Aggregate,
    grouped: LogicalPlan,
    combines: &[Rollup],
) -> DfResult<Option<LogicalPlan>> {
    let group_count = coarse.group_expr.len();
    let mut exprs = Vec::with_capacity(coarse.schema.fields().len());
    for (index, (qualifier, field)) in coarse.schema.iter().enumerate() {
        let mut expr = Expr::Column(Column::from(grouped.schema().qualified_field(index)));
        if let Some(Rollup::Count) = index.checked_sub(group_count).and_then(|i| combines.get(i)) {
            // A `CASE`, not `coalesce`: the simplifier has already run.
            expr =
                when(expr.clone().is_null(), lit(ScalarValue::Int64(Some(0)))).otherwise(expr)?;
        }
        if grouped.schema().field(index).data_type() != field.data_type() {
            expr = cast(expr, field.data_type().clone());
        }
        exprs.push(expr.alias_qualified(qualifier.cloned(), field.name()));
    }
    let projection = Projection::try_new(exprs, Arc::new(grouped))?;
    if projection
        .schema
        .has_equivalent_names_and_types(&coarse.schema)
        .is_err()
    {
        return Ok(None);
    }
    Ok(Some(LogicalPlan::Projection(projection)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::{MemTable, provider_as_source};
    use datafusion::logical_expr::col;

    fn scan(provider: &Arc<MemTable>, columns: Vec<usize>, filter: Option<Expr>) -> LogicalPlan {
        let source = provider_as_source(Arc::clone(provider) as _);
        let builder = LogicalPlanBuilder::scan("t", source, Some(columns)).expect("scan");
        match filter {
            Some(predicate) => builder.filter(predicate).expect("filter"),
            None => builder,
        }
        .build()
        .expect("plan")
    }

    #[test]
    fn a_plan_covers_the_same_rows_with_fewer_columns_only() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Int64, false),
        ]));
        let provider =
            Arc::new(MemTable::try_new(Arc::clone(&schema), vec![vec![]]).expect("table"));
        let positive = || Some(col("v").gt(lit(0i64)));
        let wide = scan(&provider, vec![0, 1], positive());
        let narrow = scan(&provider, vec![1], positive());
        assert!(covers(&wide, &narrow));
        assert!(!covers(&narrow, &wide), "k is missing from the narrow scan");
        let other_rows = scan(&provider, vec![1], Some(col("v").gt(lit(1i64))));
        assert!(!covers(&wide, &other_rows), "a different filter");
        let other_provider = Arc::new(MemTable::try_new(schema, vec![vec![]]).expect("table"));
        assert!(!covers(&wide, &scan(&other_provider, vec![1], positive())));
    }
}
