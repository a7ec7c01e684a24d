//! `INSERT … VALUES` rows planned as nullable, so that the write path's
//! own NOT NULL check sees them.
//!
//! DataFusion types the rows of `INSERT INTO t VALUES …` by `t`'s schema,
//! nullability included, and builds them into a batch while planning: a
//! NULL for a NOT NULL column then fails inside Arrow with a message, not
//! an error a caller can branch on. Planned as nullable, the rows reach
//! the writer, which refuses them as [`crate::Error::ConstraintViolation`]
//! naming the column (the same check every other write path goes through).

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result as DfResult};
use datafusion::logical_expr::{DmlStatement, LogicalPlan, Values, WriteOp};
use datafusion::prelude::DataFrame;

/// `frame` with the `VALUES` rows under an INSERT typed as nullable; any
/// other plan unchanged.
pub(super) fn nullable_inserted_values(frame: DataFrame) -> DfResult<DataFrame> {
    let (state, plan) = frame.into_parts();
    let LogicalPlan::Dml(DmlStatement {
        op: WriteOp::Insert(_),
        ..
    }) = &plan
    else {
        return Ok(DataFrame::new(state, plan));
    };
    let relaxed = plan
        .transform_up(|node| match node {
            LogicalPlan::Values(values) if has_required_field(&values.schema) => {
                let schema = nullable(&values.schema)?;
                Ok(Transformed::yes(LogicalPlan::Values(Values {
                    schema,
                    values: values.values,
                })))
            }
            other => Ok(Transformed::no(other)),
        })?
        .data;
    // The nodes above the rows (casts to the table's types) take their
    // nullability from them.
    let relaxed = relaxed
        .transform_up(|node| {
            let recomputed = node.recompute_schema()?;
            Ok(Transformed::yes(recomputed))
        })?
        .data;
    Ok(DataFrame::new(state, relaxed))
}

fn has_required_field(schema: &DFSchema) -> bool {
    schema.fields().iter().any(|field| !field.is_nullable())
}

/// `schema` with every top-level field nullable, qualifiers kept.
fn nullable(schema: &DFSchema) -> DfResult<Arc<DFSchema>> {
    let fields = schema
        .iter()
        .map(|(qualifier, field)| {
            (
                qualifier.cloned(),
                Arc::new(field.as_ref().clone().with_nullable(true)),
            )
        })
        .collect();
    Ok(Arc::new(DFSchema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    )?))
}
