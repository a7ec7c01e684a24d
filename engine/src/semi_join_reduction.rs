//! Semi-join reduction of grouped join inputs. DataFusion turns a
//! correlated subquery such as TPC-H Q17's
//! `l_quantity < (SELECT 0.2 * avg(l_quantity) FROM lineitem WHERE l_partkey = p_partkey)`
//! into a join with the subquery grouped by its correlation key, so it
//! groups all six million `lineitem` rows into 200,000 parts to keep the
//! 204 the outer query selects. [`SemiJoinReduction`] gives such a grouping
//! only the input rows whose key the other side of the join can hold: it
//! follows the other side's key down to the smallest filtered subplan it
//! comes from (a filtered `part` here) and semi-joins the grouping's input
//! with that subplan's keys. A group whose key is not among them would never
//! have been joined, and every group that stays sees all its rows, so the
//! answer is the same.
//!
//! The keys' subplan is computed once more, so it must be cheap and
//! repeatable: only filters, projections, aliases, semi- and anti-joins and
//! scans, with at least one filter, and nothing volatile.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, NullEquality};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    Expr, Join, JoinConstraint, JoinType, LogicalPlan, Projection, SubqueryAlias,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use crate::shared_subplan::may_differ_between_evaluations;

/// Alias of the keys subplan a reduced grouping is semi-joined with; also
/// how the rule recognises a grouping it has already reduced.
const KEYS_ALIAS: &str = "__semi_join_keys";

/// The optimizer rule: see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct SemiJoinReduction;

/// DataFusion's optimizer rules with [`SemiJoinReduction`] after filter
/// pushdown (so the other side's filters sit on its scans) and before
/// projection pruning (so the keys' subplan reads only what it needs).
pub(crate) fn optimizer_rules() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    let mut rules = datafusion::optimizer::Optimizer::new().rules;
    let at = rules
        .iter()
        .position(|rule| rule.name() == "push_down_filter")
        .map_or(rules.len(), |index| index + 1);
    rules.insert(at, Arc::new(SemiJoinReduction));
    rules
}

impl OptimizerRule for SemiJoinReduction {
    fn name(&self) -> &str {
        "semi_join_reduction"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> DfResult<Transformed<LogicalPlan>> {
        let LogicalPlan::Join(join) = plan else {
            return Ok(Transformed::no(plan));
        };
        if join.null_equality != NullEquality::NullEqualsNothing || join.null_aware {
            return Ok(Transformed::no(LogicalPlan::Join(join)));
        }
        // A side may lose rows whose key the other side lacks only where
        // such rows never reach the output on their own.
        let (left_reducible, right_reducible) = match join.join_type {
            JoinType::Inner => (true, true),
            JoinType::Left | JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => {
                (false, true)
            }
            JoinType::Right | JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => {
                (true, false)
            }
            JoinType::Full => (false, false),
        };
        let pairs: Vec<(Column, Column)> = join
            .on
            .iter()
            .filter_map(|(left, right)| match (left, right) {
                (Expr::Column(left), Expr::Column(right)) => Some((left.clone(), right.clone())),
                _ => None,
            })
            .collect();
        let mut left = None;
        let mut right = None;
        for (left_key, right_key) in &pairs {
            if right_reducible && right.is_none() {
                right = reduced(&join.right, right_key, &join.left, left_key)?;
            }
            if left_reducible && left.is_none() {
                left = reduced(&join.left, left_key, &join.right, right_key)?;
            }
        }
        if left.is_none() && right.is_none() {
            return Ok(Transformed::no(LogicalPlan::Join(join)));
        }
        let rewritten = Join {
            left: left.map_or_else(|| Arc::clone(&join.left), Arc::new),
            right: right.map_or_else(|| Arc::clone(&join.right), Arc::new),
            ..join
        };
        Ok(Transformed::yes(LogicalPlan::Join(rewritten)))
    }
}

/// `side` with its grouping on `side_key` reduced to the keys `other` holds
/// in `other_key`, or `None` where that is not possible or not worth it.
fn reduced(
    side: &LogicalPlan,
    side_key: &Column,
    other: &LogicalPlan,
    other_key: &Column,
) -> DfResult<Option<LogicalPlan>> {
    if !reaches_grouping(side, side_key) {
        return Ok(None);
    }
    let Some((source, source_key)) = key_source(other, other_key) else {
        return Ok(None);
    };
    if !cheap_and_repeatable(&source)? {
        return Ok(None);
    }
    reduce_grouping(side, side_key, &source, &source_key)
}

/// Whether `column` of `plan` is, through renames and filters, a grouping
/// column of an aggregation over a plain input column.
fn reaches_grouping(plan: &LogicalPlan, column: &Column) -> bool {
    match plan {
        LogicalPlan::Aggregate(_) => grouping_input_column(plan, column).is_some(),
        _ => match (renamed_column(plan, column), plan.inputs().first()) {
            (Some(inner), Some(input)) => reaches_grouping(input, &inner),
            _ => false,
        },
    }
}

/// `plan` with the aggregation reached from `column` given only the input
/// rows whose key occurs in `source`'s `source_key`.
fn reduce_grouping(
    plan: &LogicalPlan,
    column: &Column,
    source: &LogicalPlan,
    source_key: &Column,
) -> DfResult<Option<LogicalPlan>> {
    let new_input = match plan {
        LogicalPlan::Aggregate(aggregate) => {
            let Some(group_column) = grouping_input_column(plan, column) else {
                return Ok(None);
            };
            if already_reduced(&aggregate.input)? {
                return Ok(None);
            }
            let (_, input_field) = aggregate
                .input
                .schema()
                .qualified_field_from_column(&group_column)?;
            let (_, key_field) = source.schema().qualified_field_from_column(source_key)?;
            if input_field.data_type() != key_field.data_type() {
                return Ok(None);
            }
            let keys = keys_plan(source, source_key)?;
            let key_column = Column::from(keys.schema().qualified_field(0));
            LogicalPlan::Join(Join::try_new(
                Arc::clone(&aggregate.input),
                Arc::new(keys),
                vec![(Expr::Column(group_column), Expr::Column(key_column))],
                None,
                JoinType::LeftSemi,
                JoinConstraint::On,
                NullEquality::NullEqualsNothing,
                false,
            )?)
        }
        _ => {
            let inputs = plan.inputs();
            let (Some(inner), Some(input)) = (renamed_column(plan, column), inputs.first()) else {
                return Ok(None);
            };
            match reduce_grouping(input, &inner, source, source_key)? {
                Some(reduced) => reduced,
                None => return Ok(None),
            }
        }
    };
    Ok(Some(
        plan.with_new_exprs(plan.expressions(), vec![new_input])?,
    ))
}

/// The aggregation input's column behind grouping output `column`, where
/// that grouping expression is a plain column.
fn grouping_input_column(plan: &LogicalPlan, column: &Column) -> Option<Column> {
    let LogicalPlan::Aggregate(aggregate) = plan else {
        return None;
    };
    if aggregate
        .group_expr
        .iter()
        .any(|expr| matches!(expr, Expr::GroupingSet(_)))
    {
        return None;
    }
    let index = aggregate.schema.index_of_column(column).ok()?;
    match aggregate.group_expr.get(index)? {
        Expr::Column(inner) => Some(inner.clone()),
        Expr::Alias(alias) => match alias.expr.as_ref() {
            Expr::Column(inner) => Some(inner.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// For a projection, alias or filter, the input column that output
/// `column` passes through unchanged.
fn renamed_column(plan: &LogicalPlan, column: &Column) -> Option<Column> {
    match plan {
        LogicalPlan::Projection(projection) => {
            let index = projection.schema.index_of_column(column).ok()?;
            match projection.expr.get(index)?.clone().unalias() {
                Expr::Column(inner) => Some(inner),
                _ => None,
            }
        }
        LogicalPlan::SubqueryAlias(alias) => {
            let index = alias.schema.index_of_column(column).ok()?;
            Some(Column::from(alias.input.schema().qualified_field(index)))
        }
        LogicalPlan::Filter(_) => Some(column.clone()),
        _ => None,
    }
}

/// The smallest filtered subplan of `plan` whose `column` values include
/// every value `plan` yields in `column`, with that column's name in it.
fn key_source(plan: &LogicalPlan, column: &Column) -> Option<(LogicalPlan, Column)> {
    let deeper = match plan {
        // A filter over a scan is kept whole: the scan alone may return
        // rows its pushed-down filters did not remove.
        LogicalPlan::Filter(filter)
            if matches!(filter.input.as_ref(), LogicalPlan::TableScan(_)) =>
        {
            None
        }
        LogicalPlan::Join(join) => join_key_source(join, column),
        LogicalPlan::Aggregate(aggregate) => grouping_input_column(plan, column)
            .and_then(|inner| key_source(&aggregate.input, &inner)),
        // Fewer or reordered rows of the input: its keys include the output's.
        LogicalPlan::Limit(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Distinct(datafusion::logical_expr::Distinct::All(_)) => plan
            .inputs()
            .first()
            .and_then(|input| key_source(input, column)),
        _ => match (renamed_column(plan, column), plan.inputs().first()) {
            (Some(inner), Some(input)) => key_source(input, &inner),
            _ => None,
        },
    };
    deeper.or_else(|| restricts_rows(plan).then(|| (plan.clone(), column.clone())))
}

/// Where a join's output `column` comes from: the input holding it or, for
/// an equality the join enforces, the input on the other side of it.
fn join_key_source(join: &Join, column: &Column) -> Option<(LogicalPlan, Column)> {
    let in_left = join.left.schema().has_column(column);
    let (own, other) = if in_left {
        (&join.left, &join.right)
    } else {
        (&join.right, &join.left)
    };
    let own_source = key_source(own, column);
    let enforces_equality = matches!(
        join.join_type,
        JoinType::Inner | JoinType::LeftSemi | JoinType::RightSemi
    );
    if own_source.is_some() || !enforces_equality {
        return own_source;
    }
    join.on.iter().find_map(|(left, right)| {
        let (mine, partner) = if in_left {
            (left, right)
        } else {
            (right, left)
        };
        match (mine, partner) {
            (Expr::Column(mine), Expr::Column(partner)) if mine == column => {
                key_source(other, partner)
            }
            _ => None,
        }
    })
}

/// Whether `plan` itself drops rows of its input.
fn restricts_rows(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Filter(_) | LogicalPlan::Limit(_) => true,
        LogicalPlan::TableScan(scan) => !scan.filters.is_empty() || scan.fetch.is_some(),
        LogicalPlan::Join(join) => matches!(
            join.join_type,
            JoinType::LeftSemi | JoinType::RightSemi | JoinType::LeftAnti | JoinType::RightAnti
        ),
        _ => false,
    }
}

/// A subplan worth computing once more: scans narrowed by filters and
/// semi-joins, with no volatile function and no subquery.
fn cheap_and_repeatable(plan: &LogicalPlan) -> DfResult<bool> {
    let mut cheap = true;
    plan.apply_with_subqueries(|node| {
        cheap &= matches!(
            node,
            LogicalPlan::Filter(_)
                | LogicalPlan::Projection(_)
                | LogicalPlan::SubqueryAlias(_)
                | LogicalPlan::TableScan(_)
                | LogicalPlan::Limit(_)
        ) || matches!(node, LogicalPlan::Join(_) if restricts_rows(node));
        for expr in node.expressions() {
            if may_differ_between_evaluations(&expr)? {
                cheap = false;
            }
        }
        Ok(if cheap {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    })?;
    Ok(cheap)
}

/// Whether a grouping input already holds a keys subplan of this rule.
fn already_reduced(input: &LogicalPlan) -> DfResult<bool> {
    input.exists(|node| {
        Ok(matches!(node, LogicalPlan::SubqueryAlias(alias)
            if alias.alias.table() == KEYS_ALIAS))
    })
}

/// `source`'s `key` alone, under the alias that marks a reduction.
fn keys_plan(source: &LogicalPlan, key: &Column) -> DfResult<LogicalPlan> {
    let projection =
        Projection::try_new(vec![Expr::Column(key.clone())], Arc::new(source.clone()))?;
    Ok(LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(
        Arc::new(LogicalPlan::Projection(projection)),
        KEYS_ALIAS,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::prelude::SessionContext;

    /// `facts(key, v)`: keys 0..50 and a null key, several rows each;
    /// `dims(id, kind)`: ids 0..60 (some without facts) and a null id.
    fn register(ctx: &SessionContext) {
        let keys: Vec<Option<i64>> = (0..400)
            .map(|i| if i % 97 == 0 { None } else { Some(i % 50) })
            .collect();
        let values: Vec<i64> = (0..400).map(|i| (i * 37) % 101).collect();
        let facts = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("key", DataType::Int64, true),
                Field::new("v", DataType::Int64, false),
            ])),
            vec![
                Arc::new(Int64Array::from(keys)),
                Arc::new(Int64Array::from(values)),
            ],
        )
        .unwrap();
        let ids: Vec<Option<i64>> = (0..61).map(|i| (i < 60).then_some(i)).collect();
        let kinds: Vec<&str> = (0..61).map(|i| ["a", "b", "c"][i % 3]).collect();
        let dims = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, true),
                Field::new("kind", DataType::Utf8, false),
            ])),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(kinds)),
            ],
        )
        .unwrap();
        for (name, batch) in [("facts", facts), ("dims", dims)] {
            let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).unwrap();
            ctx.register_table(name, Arc::new(table)).unwrap();
        }
    }

    fn reducing() -> SessionContext {
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_optimizer_rules(optimizer_rules())
            .build();
        let ctx = SessionContext::new_with_state(state);
        register(&ctx);
        ctx
    }

    fn plain() -> SessionContext {
        let ctx = SessionContext::new();
        register(&ctx);
        ctx
    }

    async fn answer(ctx: &SessionContext, sql: &str) -> String {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        pretty_format_batches(&batches).unwrap().to_string()
    }

    /// How many reductions the optimized plan of `sql` holds, after
    /// checking its answer against DataFusion's without the rule.
    async fn reductions(sql: &str) -> usize {
        let (with_rule, without) = (reducing(), plain());
        assert_eq!(
            answer(&with_rule, sql).await,
            answer(&without, sql).await,
            "{sql}"
        );
        let plan = with_rule
            .sql(sql)
            .await
            .unwrap()
            .into_optimized_plan()
            .unwrap();
        let mut count = 0;
        plan.apply_with_subqueries(|node| {
            if matches!(node, LogicalPlan::SubqueryAlias(alias) if alias.alias.table() == KEYS_ALIAS)
            {
                count += 1;
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .unwrap();
        count
    }

    #[tokio::test]
    async fn a_correlated_average_groups_only_the_selected_keys() {
        let sql = "SELECT sum(f.v) AS total FROM facts f, dims d \
                   WHERE d.id = f.key AND d.kind = 'a' \
                   AND f.v < (SELECT 0.5 * avg(v) FROM facts WHERE key = d.id)";
        assert_eq!(reductions(sql).await, 1);
    }

    #[tokio::test]
    async fn a_grouped_side_of_outer_and_semi_joins_is_reduced() {
        let left = "SELECT d.id, g.total FROM dims d \
                    LEFT JOIN (SELECT key, sum(v) AS total FROM facts GROUP BY key) g \
                    ON g.key = d.id WHERE d.kind = 'b' ORDER BY d.id";
        assert_eq!(reductions(left).await, 1);
        let having = "SELECT d.id FROM dims d WHERE d.kind = 'c' AND d.id IN \
                      (SELECT key FROM facts GROUP BY key HAVING sum(v) > 400) ORDER BY d.id";
        assert_eq!(reductions(having).await, 1);
    }

    #[tokio::test]
    async fn keys_come_through_joins_from_the_filtered_input() {
        // The keys come from `dims` filtered, not from the unfiltered join.
        let sql = "SELECT f.key, sum(f.v) AS total FROM facts f \
                   JOIN dims d ON d.id = f.key \
                   JOIN (SELECT key, max(v) AS top FROM facts GROUP BY key) m ON m.key = f.key \
                   WHERE d.kind = 'a' AND f.v * 2 > m.top GROUP BY f.key ORDER BY f.key";
        assert_eq!(reductions(sql).await, 1);
    }

    #[tokio::test]
    async fn keys_from_the_table_being_grouped_are_kept_apart() {
        // The keys' subplan reads `facts` too; its alias keeps the names apart.
        let sql = "SELECT f.key, f.v, g.total FROM (SELECT * FROM facts WHERE v > 95) f \
                   JOIN (SELECT key, sum(v) AS total FROM facts GROUP BY key) g \
                   ON g.key = f.key ORDER BY f.key, f.v";
        assert_eq!(reductions(sql).await, 1);
    }

    #[tokio::test]
    async fn unfiltered_volatile_or_full_joins_are_left_alone() {
        let unfiltered = "SELECT d.id, g.total FROM dims d \
                          JOIN (SELECT key, sum(v) AS total FROM facts GROUP BY key) g \
                          ON g.key = d.id ORDER BY d.id";
        assert_eq!(reductions(unfiltered).await, 0);
        let full = "SELECT d.id, g.total FROM (SELECT * FROM dims WHERE kind = 'a') d \
                    FULL JOIN (SELECT key, sum(v) AS total FROM facts GROUP BY key) g \
                    ON g.key = d.id ORDER BY d.id, g.total";
        assert_eq!(reductions(full).await, 0);
        let computed_key = "SELECT d.id, g.total FROM dims d \
                            JOIN (SELECT key + 1 AS k, sum(v) AS total FROM facts GROUP BY key + 1) g \
                            ON g.k = d.id WHERE d.kind = 'a' ORDER BY d.id";
        assert_eq!(reductions(computed_key).await, 0);
        // Evaluated twice, a volatile filter could select other keys.
        let volatile = "SELECT count(*) FROM (SELECT * FROM dims WHERE random() < 2.0) d \
                        JOIN (SELECT key, sum(v) AS total FROM facts GROUP BY key) g \
                        ON g.key = d.id";
        assert_eq!(reductions(volatile).await, 0);
    }

    #[tokio::test]
    async fn a_reduced_grouping_is_not_reduced_again() {
        // The optimizer runs its rules in several passes.
        let sql = "SELECT d.id, g.total FROM dims d \
                   JOIN (SELECT key, sum(v) AS total FROM facts GROUP BY key) g \
                   ON g.key = d.id WHERE d.kind = 'a' ORDER BY d.id";
        assert_eq!(reductions(sql).await, 1);
    }
}
