//! Decimal `+`, `-` and `*` checked for overflow once per batch instead of
//! once per row. Arrow checks every row of a decimal sum or product (an
//! overflow is an error, never a wrong answer), which costs TPC-H Q1 about
//! a quarter of its time; most batches cannot overflow at all, and their
//! largest magnitudes prove it: `|a| ≤ A` and `|b| ≤ B` with `A·B` within
//! range bounds every product. Such a batch is computed without a check
//! per row; any other batch goes to Arrow's checked kernel, so the answer
//! and the errors are the same as without the rule.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Decimal128Array};
use arrow::compute::kernels::numeric::{add, mul, sub};
use arrow::datatypes::{DataType, Decimal128Type, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::sort_properties::ExprProperties;
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::BinaryExpr;
use datafusion::physical_expr_common::datum::apply;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};

/// Replaces every decimal (128-bit) `+`, `-` and `*` in projections,
/// filters and aggregate arguments with a [`BatchCheckedDecimal`].
#[derive(Debug, Default)]
pub(crate) struct BatchCheckedDecimalArithmetic;

impl PhysicalOptimizerRule for BatchCheckedDecimalArithmetic {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            // An aggregate's expressions name columns of the rows it was
            // planned on; a final aggregate reads partial sums instead.
            let input_schema = match (
                node.downcast_ref::<AggregateExec>(),
                node.children().first(),
            ) {
                (Some(aggregate), _) => aggregate.input_schema(),
                (None, Some(input)) => input.schema(),
                (None, None) => return Ok(Transformed::no(node)),
            };
            rewrite_node(node, &input_schema)
        })
        .map(|transformed| transformed.data)
    }

    fn name(&self) -> &str {
        "batch_checked_decimal_arithmetic"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `node` with its expressions rewritten, when it is a node whose
/// expressions the rule reaches and any of them changed.
fn rewrite_node(
    node: Arc<dyn ExecutionPlan>,
    input_schema: &Schema,
) -> DfResult<Transformed<Arc<dyn ExecutionPlan>>> {
    if let Some(projection) = node.downcast_ref::<ProjectionExec>() {
        let mut changed = false;
        let mut exprs = Vec::with_capacity(projection.expr().len());
        for item in projection.expr() {
            let rewritten = rewrite_expr(Arc::clone(&item.expr), input_schema)?;
            changed |= rewritten.transformed;
            exprs.push(ProjectionExpr {
                expr: rewritten.data,
                alias: item.alias.clone(),
            });
        }
        if !changed {
            return Ok(Transformed::no(node));
        }
        let rebuilt = ProjectionExec::try_new_with_schema_metadata(
            exprs,
            Arc::clone(projection.input()),
            projection.schema().as_ref(),
        )?;
        return Ok(Transformed::yes(Arc::new(rebuilt)));
    }
    if let Some(filter) = node.downcast_ref::<FilterExec>() {
        let rewritten = rewrite_expr(Arc::clone(filter.predicate()), input_schema)?;
        if !rewritten.transformed {
            return Ok(Transformed::no(node));
        }
        let rebuilt = FilterExecBuilder::from(filter)
            .with_predicate(rewritten.data)
            .build()?;
        return Ok(Transformed::yes(Arc::new(rebuilt)));
    }
    if let Some(aggregate) = node.downcast_ref::<AggregateExec>() {
        let mut changed = false;
        let mut functions = Vec::with_capacity(aggregate.aggr_expr().len());
        for function in aggregate.aggr_expr() {
            let mut args = Vec::new();
            let mut args_changed = false;
            for arg in function.expressions() {
                let rewritten = rewrite_expr(arg, input_schema)?;
                args_changed |= rewritten.transformed;
                args.push(rewritten.data);
            }
            let order_by = function
                .order_bys()
                .iter()
                .map(|sort| Arc::clone(&sort.expr))
                .collect();
            match args_changed
                .then(|| function.with_new_expressions(args, order_by))
                .flatten()
            {
                Some(rewritten) => {
                    changed = true;
                    functions.push(Arc::new(rewritten));
                }
                None => functions.push(Arc::clone(function)),
            }
        }
        if !changed {
            return Ok(Transformed::no(node));
        }
        return Ok(Transformed::yes(Arc::new(
            aggregate.with_new_aggr_exprs(functions),
        )));
    }
    Ok(Transformed::no(node))
}

/// `expr` with each decimal `+`, `-` and `*` in it batch-checked.
fn rewrite_expr(
    expr: Arc<dyn PhysicalExpr>,
    schema: &Schema,
) -> DfResult<Transformed<Arc<dyn PhysicalExpr>>> {
    expr.transform_up(|node| {
        let Some(binary) = node.downcast_ref::<BinaryExpr>() else {
            return Ok(Transformed::no(node));
        };
        if !matches!(
            binary.op(),
            Operator::Plus | Operator::Minus | Operator::Multiply
        ) {
            return Ok(Transformed::no(node));
        }
        let left = binary.left().data_type(schema)?;
        let right = binary.right().data_type(schema)?;
        let output = binary.data_type(schema)?;
        if !matches!(
            (&left, &right, &output),
            (
                DataType::Decimal128(..),
                DataType::Decimal128(..),
                DataType::Decimal128(..)
            )
        ) {
            return Ok(Transformed::no(node));
        }
        let checked = BinaryExpr::new(
            Arc::clone(binary.left()),
            *binary.op(),
            Arc::clone(binary.right()),
        );
        Ok(Transformed::yes(Arc::new(BatchCheckedDecimal {
            checked,
            output,
        })))
    })
}

/// A decimal `+`, `-` or `*` whose operands' largest magnitudes in a batch
/// decide whether the batch needs a check per row.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct BatchCheckedDecimal {
    /// The same operation as DataFusion plans it, for what is not computed
    /// here (display, bounds, ordering).
    checked: BinaryExpr,
    /// The result's type, as planned.
    output: DataType,
}

impl fmt::Display for BatchCheckedDecimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.checked.fmt(f)
    }
}

impl PhysicalExpr for BatchCheckedDecimal {
    fn data_type(&self, _input_schema: &Schema) -> DfResult<DataType> {
        Ok(self.output.clone())
    }

    fn nullable(&self, input_schema: &Schema) -> DfResult<bool> {
        self.checked.nullable(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> DfResult<ColumnarValue> {
        let left = self.checked.left().evaluate(batch)?;
        let right = self.checked.right().evaluate(batch)?;
        if let Some(array) = unchecked(*self.checked.op(), &left, &right, &self.output)? {
            return Ok(ColumnarValue::Array(array));
        }
        match self.checked.op() {
            Operator::Plus => apply(&left, &right, add),
            Operator::Minus => apply(&left, &right, sub),
            _ => apply(&left, &right, mul),
        }
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![self.checked.left(), self.checked.right()]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> DfResult<Arc<dyn PhysicalExpr>> {
        let [left, right]: [Arc<dyn PhysicalExpr>; 2] = children.try_into().map_err(|_| {
            datafusion::error::DataFusionError::Internal(
                "a decimal operation has two operands".into(),
            )
        })?;
        Ok(Arc::new(BatchCheckedDecimal {
            checked: BinaryExpr::new(left, *self.checked.op(), right),
            output: self.output.clone(),
        }))
    }

    fn evaluate_bounds(&self, children: &[&Interval]) -> DfResult<Interval> {
        self.checked.evaluate_bounds(children)
    }

    fn get_properties(&self, children: &[ExprProperties]) -> DfResult<ExprProperties> {
        self.checked.get_properties(children)
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.checked.fmt_sql(f)
    }
}

/// One operand of a batch: its values (one for a constant), its scale and
/// its largest magnitude.
enum Operand<'a> {
    Values(&'a Decimal128Array, i8, u128),
    Constant(i128, i8),
}

impl<'a> Operand<'a> {
    /// `None` for a null constant or a type other than a 128-bit decimal.
    fn of(value: &'a ColumnarValue) -> Option<Self> {
        match value {
            ColumnarValue::Array(array) => {
                let DataType::Decimal128(_, scale) = array.data_type() else {
                    return None;
                };
                let values = array.as_primitive_opt::<Decimal128Type>()?;
                let largest = magnitude_bound(values.values());
                Some(Operand::Values(values, *scale, largest))
            }
            ColumnarValue::Scalar(ScalarValue::Decimal128(Some(v), _, scale)) => {
                Some(Operand::Constant(*v, *scale))
            }
            ColumnarValue::Scalar(_) => None,
        }
    }

    fn scale(&self) -> i8 {
        match self {
            Operand::Values(_, scale, _) | Operand::Constant(_, scale) => *scale,
        }
    }

    /// The operand with a constant multiplied by `factor` (and the factor
    /// left to apply then, one); values keep theirs.
    fn with_constant_scaled(self, factor: i128) -> (Self, i128) {
        match self {
            Operand::Constant(v, scale) => (Operand::Constant(v.wrapping_mul(factor), scale), 1),
            values => (values, factor),
        }
    }

    fn largest(&self) -> u128 {
        match self {
            Operand::Values(_, _, largest) => *largest,
            Operand::Constant(v, _) => v.unsigned_abs(),
        }
    }
}

/// `left op right` computed without a check per row, when the operands'
/// largest magnitudes prove no row overflows and the result is an array of
/// `output`; `None` otherwise (the caller checks every row).
fn unchecked(
    op: Operator,
    left: &ColumnarValue,
    right: &ColumnarValue,
    output: &DataType,
) -> DfResult<Option<ArrayRef>> {
    let (Some(l), Some(r)) = (Operand::of(left), Operand::of(right)) else {
        return Ok(None);
    };
    let DataType::Decimal128(precision, scale) = *output else {
        return Ok(None);
    };
    // Arrow's scales: the larger one for a sum, their sum for a product.
    let (l_factor, r_factor) = match op {
        Operator::Multiply if l.scale().checked_add(r.scale()) == Some(scale) => (1, 1),
        Operator::Plus | Operator::Minus if l.scale().max(r.scale()) == scale => {
            match (
                scale.checked_sub(l.scale()).and_then(power_of_ten),
                scale.checked_sub(r.scale()).and_then(power_of_ten),
            ) {
                (Some(lf), Some(rf)) => (lf, rf),
                _ => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    let bound = match op {
        Operator::Multiply => l.largest().checked_mul(r.largest()),
        _ => l
            .largest()
            .checked_mul(l_factor as u128)
            .zip(r.largest().checked_mul(r_factor as u128))
            .and_then(|(a, b)| a.checked_add(b)),
    };
    if bound.is_none_or(|bound| bound > i128::MAX as u128) {
        return Ok(None);
    }
    // A constant is scaled once here rather than on every row (the bound
    // above covers it scaled).
    let (l, l_factor) = l.with_constant_scaled(l_factor);
    let (r, r_factor) = r.with_constant_scaled(r_factor);
    let result = match (op, l_factor, r_factor) {
        (Operator::Multiply, ..) => each_row(&l, &r, i128::wrapping_mul),
        (Operator::Plus, 1, 1) => each_row(&l, &r, i128::wrapping_add),
        (Operator::Minus, 1, 1) => each_row(&l, &r, i128::wrapping_sub),
        (Operator::Plus, lf, rf) => each_row(&l, &r, move |a, b| {
            a.wrapping_mul(lf).wrapping_add(b.wrapping_mul(rf))
        }),
        (_, lf, rf) => each_row(&l, &r, move |a, b| {
            a.wrapping_mul(lf).wrapping_sub(b.wrapping_mul(rf))
        }),
    }?;
    let Some(result) = result else {
        return Ok(None);
    };
    Ok(Some(Arc::new(
        result.with_precision_and_scale(precision, scale)?,
    )))
}

/// An upper bound of the magnitudes of `values`, without a branch per
/// value: each value's ones' complement if negative (`|v| - 1`), itself
/// otherwise, all OR-ed together, plus one. At most twice the largest
/// magnitude, which is all the overflow test needs.
fn magnitude_bound(values: &[i128]) -> u128 {
    values
        .iter()
        .fold(0u128, |bits, v| bits | (v ^ (v >> 127)) as u128)
        .saturating_add(1)
}

/// `combine` of the operands row by row; `None` for two constants or
/// arrays of different lengths.
fn each_row(
    l: &Operand<'_>,
    r: &Operand<'_>,
    combine: impl Fn(i128, i128) -> i128,
) -> DfResult<Option<Decimal128Array>> {
    Ok(match (l, r) {
        (Operand::Values(a, ..), Operand::Values(b, ..)) if a.len() == b.len() => {
            Some(arrow::compute::binary(*a, *b, combine)?)
        }
        (Operand::Values(a, ..), Operand::Constant(b, _)) => Some(a.unary(|a| combine(a, *b))),
        (Operand::Constant(a, _), Operand::Values(b, ..)) => Some(b.unary(|b| combine(*a, b))),
        _ => None,
    })
}

/// `10^exponent` for the exponents a decimal scale difference takes.
fn power_of_ten(exponent: i8) -> Option<i128> {
    u32::try_from(exponent)
        .ok()
        .and_then(|e| 10i128.checked_pow(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;
    use datafusion::physical_expr::expressions::{Column, Literal};

    fn schema(left: DataType, right: DataType) -> Schema {
        Schema::new(vec![
            Field::new("a", left, true),
            Field::new("b", right, true),
        ])
    }

    fn decimals(values: &[Option<i128>], precision: u8, scale: i8) -> ArrayRef {
        Arc::new(
            Decimal128Array::from(values.to_vec())
                .with_precision_and_scale(precision, scale)
                .expect("valid type"),
        )
    }

    /// Evaluates `a op b` as DataFusion plans it and as the rule rewrites
    /// it; both results, and whether the rule rewrote it.
    fn both(
        op: Operator,
        left: Arc<dyn PhysicalExpr>,
        right: Arc<dyn PhysicalExpr>,
        batch: &RecordBatch,
    ) -> (DfResult<ArrayRef>, DfResult<ArrayRef>, bool) {
        let schema = batch.schema();
        let planned: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(left, op, right));
        let rewritten = rewrite_expr(Arc::clone(&planned), &schema).expect("rewrite");
        let run = |expr: &Arc<dyn PhysicalExpr>| {
            expr.evaluate(batch)
                .and_then(|v| v.into_array(batch.num_rows()))
        };
        (run(&planned), run(&rewritten.data), rewritten.transformed)
    }

    fn batch(a: ArrayRef, b: ArrayRef) -> RecordBatch {
        let schema = schema(a.data_type().clone(), b.data_type().clone());
        RecordBatch::try_new(Arc::new(schema), vec![a, b]).expect("batch")
    }

    fn column(name: &str, index: usize) -> Arc<dyn PhysicalExpr> {
        Arc::new(Column::new(name, index))
    }

    #[test]
    fn sums_and_products_equal_the_checked_ones_whatever_the_scales() {
        let a = decimals(
            &[Some(10_494_950), Some(-90_100), None, Some(0), Some(1)],
            15,
            2,
        );
        let b = decimals(&[Some(6), Some(-10), Some(4), None, Some(99_999)], 15, 3);
        let rows = batch(a, b);
        for op in [Operator::Plus, Operator::Minus, Operator::Multiply] {
            let (planned, rewritten, changed) = both(op, column("a", 0), column("b", 1), &rows);
            assert!(changed, "{op} is rewritten");
            let (expected, actual) = (planned.expect("planned"), rewritten.expect("rewritten"));
            assert_eq!(expected.to_data(), actual.to_data(), "{op}");
        }
        // A constant on either side, of another scale (`1 - a`, `a * 1`).
        let one: Arc<dyn PhysicalExpr> =
            Arc::new(Literal::new(ScalarValue::Decimal128(Some(1), 20, 0)));
        for op in [Operator::Plus, Operator::Minus, Operator::Multiply] {
            let (planned, rewritten, _) = both(op, Arc::clone(&one), column("a", 0), &rows);
            let (expected, actual) = (planned.expect("planned"), rewritten.expect("rewritten"));
            assert_eq!(expected.to_data(), actual.to_data(), "1 {op} a");
            let (planned, rewritten, _) = both(op, column("b", 1), Arc::clone(&one), &rows);
            let (expected, actual) = (planned.expect("planned"), rewritten.expect("rewritten"));
            assert_eq!(expected.to_data(), actual.to_data(), "b {op} 1");
        }
    }

    #[test]
    fn a_batch_that_may_overflow_is_checked_row_by_row() {
        let big = 10i128.pow(37);
        // Only the last row overflows; its magnitude sends the whole batch
        // to the checked kernel, which refuses it as without the rule.
        let a = decimals(&[Some(2), Some(big)], 38, 0);
        let b = decimals(&[Some(3), Some(big)], 38, 0);
        let (planned, rewritten, changed) = both(
            Operator::Multiply,
            column("a", 0),
            column("b", 1),
            &batch(a, b),
        );
        assert!(changed);
        assert!(planned.is_err(), "Arrow refuses the overflow");
        assert!(rewritten.is_err(), "so does the rewritten product");

        // Large magnitudes that do not overflow are exact either way.
        let a = decimals(&[Some(big), Some(-big)], 38, 0);
        let b = decimals(&[Some(9), Some(-17)], 38, 0);
        let (planned, rewritten, _) = both(
            Operator::Multiply,
            column("a", 0),
            column("b", 1),
            &batch(a, b),
        );
        let rewritten = rewritten.expect("in range");
        let (expected, actual) = (planned.expect("in range"), rewritten);
        assert_eq!(expected.to_data(), actual.to_data());
        assert_eq!(actual.as_primitive::<Decimal128Type>().value(1), big * 17);
    }

    #[test]
    fn the_magnitude_bound_is_at_least_the_largest_and_at_most_twice_it() {
        let cases: [&[i128]; 6] = [
            &[0],
            &[1, -1],
            &[10_494_950, -90_100, 7],
            &[-(1 << 40), 3],
            &[i128::MAX, 0],
            &[i128::MIN, 5],
        ];
        for values in cases {
            let largest = values.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
            let bound = magnitude_bound(values);
            assert!(bound >= largest, "{values:?}: {bound} < {largest}");
            assert!(
                bound <= largest.saturating_mul(2).max(1),
                "{values:?}: {bound}"
            );
        }
        assert_eq!(magnitude_bound(&[]), 1);
    }

    #[test]
    fn other_types_and_operators_are_left_alone() {
        let rows = batch(
            Arc::new(arrow::array::Int64Array::from(vec![1, 2])),
            Arc::new(arrow::array::Int64Array::from(vec![3, 4])),
        );
        let (_, _, changed) = both(Operator::Multiply, column("a", 0), column("b", 1), &rows);
        assert!(!changed, "integers keep DataFusion's kernel");
        let rows = batch(decimals(&[Some(1)], 10, 2), decimals(&[Some(3)], 10, 2));
        let (_, _, changed) = both(Operator::Divide, column("a", 0), column("b", 1), &rows);
        assert!(!changed, "division keeps DataFusion's kernel");
    }

    #[test]
    fn scales_far_apart_are_left_to_the_checked_kernel() {
        // A scale difference beyond i8 (a negative scale against a large
        // one) is no factor to scale by: the checked kernel decides.
        let rows = batch(decimals(&[Some(1)], 38, -100), decimals(&[Some(3)], 38, 30));
        let left = ColumnarValue::Array(Arc::clone(rows.column(0)));
        let right = ColumnarValue::Array(Arc::clone(rows.column(1)));
        let outcome = unchecked(Operator::Plus, &left, &right, &DataType::Decimal128(38, 30))
            .expect("no error");
        assert!(outcome.is_none());
    }

    #[test]
    fn a_null_constant_gives_nulls_as_planned() {
        let rows = batch(
            decimals(&[Some(1), None], 10, 2),
            decimals(&[Some(3), Some(4)], 10, 2),
        );
        let null: Arc<dyn PhysicalExpr> =
            Arc::new(Literal::new(ScalarValue::Decimal128(None, 10, 2)));
        let (planned, rewritten, changed) = both(Operator::Plus, column("a", 0), null, &rows);
        assert!(changed);
        let rewritten = rewritten.expect("nulls");
        let (expected, actual) = (planned.expect("nulls"), rewritten);
        assert_eq!(expected.to_data(), actual.to_data());
        assert_eq!(actual.null_count(), 2);
    }

    /// A session with the rule after DataFusion's own, and one without.
    fn sessions(batch: &RecordBatch) -> [datafusion::prelude::SessionContext; 2] {
        use datafusion::execution::session_state::SessionStateBuilder;
        use datafusion::prelude::SessionContext;
        let with_rule = SessionContext::new_with_state(
            SessionStateBuilder::new()
                .with_default_features()
                .with_physical_optimizer_rule(Arc::new(BatchCheckedDecimalArithmetic))
                .build(),
        );
        let sessions = [with_rule, SessionContext::new()];
        for session in &sessions {
            session
                .register_batch("items", batch.clone())
                .expect("register");
        }
        sessions
    }

    #[tokio::test]
    async fn queries_answer_as_without_the_rule_where_it_rewrites_them() {
        use arrow::util::pretty::pretty_format_batches;
        use datafusion::common::tree_node::TreeNodeRecursion;
        // TPC-H's prices, discounts and taxes (two decimal places).
        let n = 10_000i128;
        let price = decimals(
            &(0..n)
                .map(|i| Some(90_000 + i * 1_013 % 10_000_000))
                .collect::<Vec<_>>(),
            15,
            2,
        );
        let discount = decimals(&(0..n).map(|i| Some(i % 11)).collect::<Vec<_>>(), 15, 2);
        // Grouped by a string: a final aggregate's arguments name columns
        // of the rows it was planned on, not of the partial sums it reads.
        let flag: ArrayRef = Arc::new(arrow::array::StringArray::from_iter_values(
            (0..n).map(|i| ["A", "N", "R"][(i % 3) as usize]),
        ));
        let rows = RecordBatch::try_from_iter([("flag", flag), ("a", price), ("b", discount)])
            .expect("batch");
        let sql = "SELECT flag, b, sum(a * (1 - b)) AS total, \
                   sum(a * (1 - b) * (1 + b)) AS charged \
                   FROM items WHERE a * b > 1000 GROUP BY flag, b ORDER BY flag, b";
        let [with_rule, without] = sessions(&rows);
        let frame = with_rule.sql(sql).await.expect("plan");
        let plan = frame
            .clone()
            .create_physical_plan()
            .await
            .expect("physical plan");
        // Every operation of the filter and the sums is rewritten; none is
        // left to DataFusion's kernel (all of them are on decimals here).
        let (mut rewritten, mut left) = (0, 0);
        plan.apply(|node| {
            node.apply_expressions(&mut |expr| {
                expr.apply(|e| {
                    rewritten += usize::from(e.downcast_ref::<BatchCheckedDecimal>().is_some());
                    left += usize::from(e.downcast_ref::<BinaryExpr>().is_some_and(|b| {
                        matches!(
                            b.op(),
                            Operator::Plus | Operator::Minus | Operator::Multiply
                        )
                    }));
                    Ok(TreeNodeRecursion::Continue)
                })
            })?;
            Ok(TreeNodeRecursion::Continue)
        })
        .expect("walk");
        assert_eq!(left, 0, "decimal operations left unrewritten");
        assert!(
            rewritten >= 5,
            "the filter's product and the sums' operations: {rewritten}"
        );
        let answer = pretty_format_batches(&frame.collect().await.expect("run"))
            .expect("format")
            .to_string();
        let expected = pretty_format_batches(
            &without
                .sql(sql)
                .await
                .expect("plan")
                .collect()
                .await
                .expect("run"),
        )
        .expect("format")
        .to_string();
        assert_eq!(answer, expected);
        assert_eq!(
            answer.lines().count(),
            3 * 10 + 4,
            "three flags by ten discounts (zero filtered out): {answer}"
        );
    }
}
