//! A physical optimizer rule that has a filter test its cheap conditions
//! first. DataFusion evaluates the conditions of an `AND` in the order the
//! query wrote them, and evaluates a later one only on the rows the earlier
//! ones kept when they keep few; comparing numbers and dates costs a
//! fraction of comparing strings or matching patterns, so a filter that
//! tests a date range before a string (TPC-H Q12) compares the strings of
//! a fraction of the rows. SQL promises no order of evaluation, so the
//! answer is the same. The conditions are then evaluated as one
//! [`Conjunction`], which compares the cheap ones over whole batches.

use std::sync::Arc;

use arrow::datatypes::{DataType, Schema};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result as DfResult;
use datafusion::physical_expr::expressions::{Column, InListExpr, LikeExpr};
use datafusion::physical_expr::utils::split_conjunction;
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};

use crate::conjunction::Conjunction;

/// Orders the conditions of every filter's `AND` by their cost to
/// evaluate, cheapest first (conditions of equal cost keep their order),
/// and has the filter evaluate them as one [`Conjunction`].
#[derive(Debug, Default)]
pub(crate) struct CheapConditionsFirst;

impl PhysicalOptimizerRule for CheapConditionsFirst {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(filter) = node.downcast_ref::<FilterExec>() else {
                return Ok(Transformed::no(node));
            };
            if filter.predicate().downcast_ref::<Conjunction>().is_some() {
                return Ok(Transformed::no(node));
            }
            let schema = filter.input().schema();
            let mut conditions: Vec<(u32, Arc<dyn PhysicalExpr>)> =
                split_conjunction(filter.predicate())
                    .into_iter()
                    .map(|condition| (cost(condition, &schema), Arc::clone(condition)))
                    .collect();
            if conditions.len() < 2 {
                return Ok(Transformed::no(node));
            }
            conditions.sort_by_key(|(cost, _)| *cost);
            let conditions = conditions
                .into_iter()
                .map(|(_, condition)| condition)
                .collect();
            let reordered = FilterExecBuilder::from(filter)
                .with_predicate(Arc::new(Conjunction::try_new(conditions)?))
                .build()?;
            Ok(Transformed::yes(
                Arc::new(reordered) as Arc<dyn ExecutionPlan>
            ))
        })
        .map(|transformed| transformed.data)
    }

    fn name(&self) -> &str {
        "cheap_conditions_first"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// A rough cost of evaluating `condition` per row: each column it reads
/// (strings and bytes four times a fixed-width value), each pattern match
/// or function call, and each `IN` list lookup.
fn cost(condition: &Arc<dyn PhysicalExpr>, schema: &Schema) -> u32 {
    let mut total = 0u32;
    let _ = condition.apply(|expr| {
        total = total.saturating_add(node_cost(expr, schema));
        Ok(TreeNodeRecursion::Continue)
    });
    total
}

fn node_cost(expr: &Arc<dyn PhysicalExpr>, schema: &Schema) -> u32 {
    if let Some(column) = expr.downcast_ref::<Column>() {
        return match schema.fields().get(column.index()).map(|f| f.data_type()) {
            Some(
                DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Binary
                | DataType::LargeBinary
                | DataType::BinaryView,
            ) => 4,
            _ => 1,
        };
    }
    if expr.downcast_ref::<LikeExpr>().is_some()
        || expr.downcast_ref::<ScalarFunctionExpr>().is_some()
    {
        return 8;
    }
    // A list of constants is one lookup in a hashed set however long it
    // is (its items, visited as children, add their own cost).
    if expr.downcast_ref::<InListExpr>().is_some() {
        return 2;
    }
    0
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::Field;
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{binary, col, lit};
    use datafusion::physical_plan::empty::EmptyExec;

    use super::*;

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("mode", DataType::Utf8, true),
            Field::new("shipped", DataType::Date32, true),
        ]))
    }

    fn condition(column: &str, op: Operator, value: ScalarValue) -> Arc<dyn PhysicalExpr> {
        let schema = schema();
        binary(col(column, &schema).unwrap(), op, lit(value), &schema).unwrap()
    }

    fn optimized(predicate: Arc<dyn PhysicalExpr>) -> String {
        let input: Arc<dyn ExecutionPlan> = Arc::new(EmptyExec::new(schema()));
        let filter: Arc<dyn ExecutionPlan> =
            Arc::new(FilterExec::try_new(predicate, input).unwrap());
        let plan = CheapConditionsFirst
            .optimize(filter, &ConfigOptions::default())
            .unwrap();
        let filter = plan.downcast_ref::<FilterExec>().unwrap();
        filter.predicate().to_string()
    }

    #[test]
    fn date_comparisons_come_before_string_comparisons() {
        let mode = condition("mode", Operator::Eq, ScalarValue::Utf8(Some("MAIL".into())));
        let shipped = condition("shipped", Operator::Gt, ScalarValue::Date32(Some(9000)));
        let both = binary(
            Arc::clone(&mode),
            Operator::And,
            Arc::clone(&shipped),
            &schema(),
        )
        .unwrap();
        assert_eq!(optimized(both), "shipped@1 > 1994-08-23 AND mode@0 = MAIL");
        // Already cheapest first: the order stays.
        let both = binary(shipped, Operator::And, mode, &schema()).unwrap();
        assert_eq!(optimized(both), "shipped@1 > 1994-08-23 AND mode@0 = MAIL");
    }

    #[test]
    fn a_list_of_constants_is_cheaper_than_a_string_pattern() {
        let schema = schema();
        let pattern: Arc<dyn PhysicalExpr> = Arc::new(LikeExpr::new(
            true,
            false,
            col("mode", &schema).unwrap(),
            lit(ScalarValue::Utf8(Some("MEDIUM POLISHED%".into()))),
        ));
        let days: Vec<Arc<dyn PhysicalExpr>> = (0..20)
            .map(|day| lit(ScalarValue::Date32(Some(9000 + day))))
            .collect();
        let listed = datafusion::physical_expr::expressions::in_list(
            col("shipped", &schema).unwrap(),
            days,
            &false,
            &schema,
        )
        .unwrap();
        let both = binary(pattern, Operator::And, listed, &schema).unwrap();
        let reordered = optimized(both);
        assert!(reordered.starts_with("shipped@1 IN"), "{reordered}");
    }
}
