//! Strings and binaries as views inside a query, their declared types at
//! its edges. A query session's tables serve their data files' strings as
//! `Utf8View` (see [`crate::scan::DeltaTableProvider::with_string_views`]),
//! which DataFusion decodes, filters, hashes and groups faster; callers,
//! writers and the log's statistics see the declared `Utf8` and `Binary`.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema};
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::logical_expr::{
    Cast, DescribeTable, Expr, LogicalPlan, LogicalPlanBuilder, TryCast,
};
use datafusion::prelude::cast;

use crate::Result;

/// `data_type` with every view (at any depth) replaced by the type it
/// views: `Utf8View` by `Utf8`, `BinaryView` by `Binary`.
pub fn declared_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::List(field) => DataType::List(declared_field(field)),
        DataType::LargeList(field) => DataType::LargeList(declared_field(field)),
        DataType::FixedSizeList(field, size) => {
            DataType::FixedSizeList(declared_field(field), *size)
        }
        DataType::Struct(fields) => {
            DataType::Struct(fields.iter().map(declared_field).collect::<Fields>())
        }
        DataType::Map(field, sorted) => DataType::Map(declared_field(field), *sorted),
        other => other.clone(),
    }
}

fn declared_field(field: &FieldRef) -> FieldRef {
    match declared_type(field.data_type()) {
        same if &same == field.data_type() => field.clone(),
        declared => Arc::new(Field::clone(field).with_data_type(declared)),
    }
}

/// `expr` with its view literals and casts to views in their declared
/// types: the same condition over a table read without views (the log's
/// statistics, the write path's scans).
pub fn with_declared_literals(expr: Expr) -> datafusion::error::Result<Expr> {
    expr.transform(|e| {
        Ok(match e {
            Expr::Literal(ScalarValue::Utf8View(value), metadata) => {
                Transformed::yes(Expr::Literal(ScalarValue::Utf8(value), metadata))
            }
            Expr::Literal(ScalarValue::BinaryView(value), metadata) => {
                Transformed::yes(Expr::Literal(ScalarValue::Binary(value), metadata))
            }
            Expr::Cast(Cast { expr, field }) if declared_field(&field) != field => {
                Transformed::yes(Expr::Cast(Cast::new_from_field(
                    expr,
                    declared_field(&field),
                )))
            }
            Expr::TryCast(TryCast { expr, field }) if declared_field(&field) != field => {
                Transformed::yes(Expr::TryCast(TryCast::new_from_field(
                    expr,
                    declared_field(&field),
                )))
            }
            other => Transformed::no(other),
        })
    })
    .map(|transformed| transformed.data)
}

/// `plan` with every column whose type has a view cast back to its
/// declared type; `plan` itself when none has. A `DESCRIBE` lists the
/// declared types.
///
/// The casts go below the sorts, limits and plain column selections at the
/// top of the plan: DataFusion spreads a projection that computes over
/// partitions, and one above a sort would lose its order.
pub fn cast_to_declared_types(plan: LogicalPlan) -> Result<LogicalPlan> {
    if let LogicalPlan::DescribeTable(describe) = plan {
        return Ok(LogicalPlan::DescribeTable(declared_description(describe)));
    }
    if !has_views(plan.schema()) {
        return Ok(plan);
    }
    let passes_through = match &plan {
        LogicalPlan::Sort(_) | LogicalPlan::Limit(_) => true,
        LogicalPlan::Projection(projection) => projection.expr.iter().all(is_column),
        _ => false,
    };
    let [input] = plan.inputs()[..] else {
        return cast_on_top(plan);
    };
    if !passes_through {
        return cast_on_top(plan);
    }
    let input = cast_to_declared_types(input.clone())?;
    Ok(plan.with_new_exprs(plan.expressions(), vec![input])?)
}

/// `DESCRIBE` of a table with the types its columns are declared with.
fn declared_description(describe: DescribeTable) -> DescribeTable {
    let fields: Vec<FieldRef> = describe
        .schema
        .fields()
        .iter()
        .map(declared_field)
        .collect();
    DescribeTable {
        schema: Arc::new(Schema::new_with_metadata(
            fields,
            describe.schema.metadata().clone(),
        )),
        output_schema: describe.output_schema,
    }
}

fn has_views(schema: &datafusion::common::DFSchema) -> bool {
    schema
        .fields()
        .iter()
        .any(|field| &declared_type(field.data_type()) != field.data_type())
}

/// Whether `expr` only names a column (perhaps under another name).
fn is_column(expr: &Expr) -> bool {
    match expr {
        Expr::Column(_) => true,
        Expr::Alias(alias) => is_column(&alias.expr),
        _ => false,
    }
}

/// `plan` under a projection that casts its view-typed columns.
fn cast_on_top(plan: LogicalPlan) -> Result<LogicalPlan> {
    let schema = plan.schema().clone();
    let columns = schema.iter().map(|(qualifier, field)| {
        let column = Expr::Column(datafusion::common::Column::from((qualifier, field)));
        let declared = declared_type(field.data_type());
        if &declared == field.data_type() {
            return column;
        }
        cast(column, declared).alias_qualified(qualifier.cloned(), field.name())
    });
    Ok(LogicalPlanBuilder::from(plan).project(columns)?.build()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    #[test]
    fn declared_types_replace_views_at_any_depth() {
        let nested = DataType::Struct(Fields::from(vec![
            Field::new("s", DataType::Utf8View, true),
            Field::new(
                "l",
                DataType::List(Arc::new(Field::new("item", DataType::BinaryView, true))),
                false,
            ),
            Field::new("n", DataType::Int32, true),
        ]));
        let expected = DataType::Struct(Fields::from(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new(
                "l",
                DataType::List(Arc::new(Field::new("item", DataType::Binary, true))),
                false,
            ),
            Field::new("n", DataType::Int32, true),
        ]));
        assert_eq!(declared_type(&nested), expected);
        assert_eq!(declared_type(&DataType::Int64), DataType::Int64);
    }

    #[test]
    fn literals_and_casts_take_declared_types() {
        let expr = col("a")
            .eq(lit(ScalarValue::Utf8View(Some("x".into()))))
            .and(cast(col("b"), DataType::Utf8View).eq(col("c")))
            .or(col("d").eq(lit(ScalarValue::BinaryView(Some(vec![1])))));
        let expected = col("a")
            .eq(lit(ScalarValue::Utf8(Some("x".into()))))
            .and(cast(col("b"), DataType::Utf8).eq(col("c")))
            .or(col("d").eq(lit(ScalarValue::Binary(Some(vec![1])))));
        assert_eq!(with_declared_literals(expr).expect("rewrites"), expected);
    }
}
