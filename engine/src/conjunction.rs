//! A filter's `AND` evaluated as one test of every condition. DataFusion
//! evaluates `a AND b` by evaluating `a`, and when it keeps few rows,
//! copying every column of the rows it kept, evaluating `b` on the copy and
//! spreading the answers back a row at a time; a chain of conditions does
//! that once per condition. For conditions that compare numbers or dates
//! that costs more than the comparisons it saves: TPC-H Q6 spent a fifth
//! of its time copying and spreading between its five comparisons. Here
//! conditions are evaluated on the whole batch and their answers combined a
//! word at a time while they keep many rows; once they keep few, the rows
//! kept are copied once, of only the columns the remaining conditions
//! read, those conditions are evaluated on the copy, and the answers are
//! spread back once. A row passes when every condition is true, as a
//! filter keeps it.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch, RecordBatchOptions};
use arrow::buffer::{BooleanBuffer, MutableBuffer};
use arrow::compute::FilterBuilder;
use arrow::datatypes::{DataType, Schema};
use arrow::util::bit_util;
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::{collect_columns, conjunction};

/// The remaining conditions are evaluated on copies of the kept rows once
/// the conditions before them keep at most this share of the batch
/// (DataFusion's own threshold for evaluating on fewer rows).
const NARROW_AT_MOST: f64 = 0.2;

/// The conditions of a filter's `AND`, each true for the rows it keeps.
/// Evaluates to `true` where every condition is true and `false` elsewhere
/// (never null): the rows a filter keeps, which is its only use.
#[derive(Debug)]
pub(crate) struct Conjunction {
    conditions: Vec<Arc<dyn PhysicalExpr>>,
    /// For each condition, it and the ones after it over only the columns
    /// they read; `None` where they read none.
    rests: Vec<Option<Narrowed>>,
    /// The same `AND` as DataFusion plans it, for display.
    planned: Arc<dyn PhysicalExpr>,
}

/// Conditions rewritten to read a batch of only `columns` (in that order).
#[derive(Debug)]
struct Narrowed {
    columns: Vec<usize>,
    conditions: Vec<Arc<dyn PhysicalExpr>>,
}

impl Conjunction {
    /// The conjunction of `conditions`, evaluated in the order given.
    pub(crate) fn try_new(conditions: Vec<Arc<dyn PhysicalExpr>>) -> DfResult<Self> {
        let planned = conjunction(conditions.iter().cloned());
        let rests = (0..conditions.len())
            .map(|first| Narrowed::try_new(&conditions[first..]))
            .collect::<DfResult<Vec<_>>>()?;
        Ok(Self {
            conditions,
            rests,
            planned,
        })
    }
}

impl PartialEq for Conjunction {
    fn eq(&self, other: &Self) -> bool {
        self.conditions.len() == other.conditions.len()
            && self
                .conditions
                .iter()
                .zip(&other.conditions)
                .all(|(a, b)| a.as_ref() == b.as_ref())
    }
}

impl Eq for Conjunction {}

impl Hash for Conjunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.conditions.iter().for_each(|c| c.hash(state));
    }
}

impl fmt::Display for Conjunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.planned.fmt(f)
    }
}

impl PhysicalExpr for Conjunction {
    fn data_type(&self, _input_schema: &Schema) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn nullable(&self, _input_schema: &Schema) -> DfResult<bool> {
        Ok(false)
    }

    fn evaluate(&self, batch: &RecordBatch) -> DfResult<ColumnarValue> {
        let rows = batch.num_rows();
        let mut kept: Option<BooleanBuffer> = None;
        for (condition, rest) in self.conditions.iter().zip(&self.rests) {
            if let Some(so_far) = &kept {
                let count = so_far.count_set_bits();
                if count == 0 {
                    break;
                }
                if let Some(rest) = rest
                    && count as f64 <= NARROW_AT_MOST * rows as f64
                {
                    kept = Some(rest.evaluate(batch, so_far)?);
                    break;
                }
            }
            let passed = true_rows(condition.evaluate(batch)?, rows)?;
            kept = Some(match kept {
                Some(so_far) => &so_far & &passed,
                None => passed,
            });
        }
        let kept = kept.unwrap_or_else(|| BooleanBuffer::new_set(rows));
        Ok(ColumnarValue::Array(Arc::new(BooleanArray::new(
            kept, None,
        ))))
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        self.conditions.iter().collect()
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> DfResult<Arc<dyn PhysicalExpr>> {
        if children.len() != self.conditions.len() {
            return Err(DataFusionError::Internal(format!(
                "a conjunction of {} conditions was given {}",
                self.conditions.len(),
                children.len()
            )));
        }
        Ok(Arc::new(Conjunction::try_new(children)?))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.planned.fmt_sql(f)
    }
}

impl Narrowed {
    /// `conditions` over a batch of only the columns they read; `None` when
    /// they read none (nothing to narrow).
    fn try_new(conditions: &[Arc<dyn PhysicalExpr>]) -> DfResult<Option<Self>> {
        let mut columns: Vec<usize> = conditions
            .iter()
            .flat_map(|condition| collect_columns(condition).into_iter().map(|c| c.index()))
            .collect();
        if columns.is_empty() {
            return Ok(None);
        }
        columns.sort_unstable();
        columns.dedup();
        let conditions = conditions
            .iter()
            .map(|condition| reindexed(condition, &columns))
            .collect::<DfResult<Vec<_>>>()?;
        Ok(Some(Self {
            columns,
            conditions,
        }))
    }

    /// The rows of `batch` for which every condition is true, evaluated
    /// only on the rows `kept` marks (the others are false).
    fn evaluate(&self, batch: &RecordBatch, kept: &BooleanBuffer) -> DfResult<BooleanBuffer> {
        let mask = BooleanArray::new(kept.clone(), None);
        let filter = FilterBuilder::new(&mask).optimize().build();
        let columns = self
            .columns
            .iter()
            .map(|index| {
                let column = batch.columns().get(*index).ok_or_else(|| {
                    DataFusionError::Internal(format!("no column {index} in the batch"))
                })?;
                Ok(filter.filter(column.as_ref())?)
            })
            .collect::<DfResult<Vec<_>>>()?;
        let schema = Arc::new(batch.schema().project(&self.columns)?);
        let narrow_rows = filter.count();
        let options = RecordBatchOptions::new().with_row_count(Some(narrow_rows));
        let narrow = RecordBatch::try_new_with_options(schema, columns, &options)?;
        let mut passed: Option<BooleanBuffer> = None;
        for condition in &self.conditions {
            if passed.as_ref().is_some_and(|p| p.count_set_bits() == 0) {
                break;
            }
            let this = true_rows(condition.evaluate(&narrow)?, narrow_rows)?;
            passed = Some(match passed {
                Some(so_far) => &so_far & &this,
                None => this,
            });
        }
        let passed = passed.unwrap_or_else(|| BooleanBuffer::new_set(narrow_rows));
        // Spread the answers back to the rows they were evaluated for.
        let rows = batch.num_rows();
        let mut bits = MutableBuffer::from_len_zeroed(rows.div_ceil(8));
        let slice = bits.as_slice_mut();
        for (row, pass) in kept.set_indices().zip(passed.iter()) {
            if pass {
                bit_util::set_bit(slice, row);
            }
        }
        Ok(BooleanBuffer::new(bits.into(), 0, rows))
    }
}

/// `expr` reading column `columns[i]` of a batch as its column `i`.
fn reindexed(expr: &Arc<dyn PhysicalExpr>, columns: &[usize]) -> DfResult<Arc<dyn PhysicalExpr>> {
    Ok(Arc::clone(expr)
        .transform_down(|node| {
            let Some(column) = node.downcast_ref::<Column>() else {
                return Ok(Transformed::no(node));
            };
            let position = columns
                .binary_search(&column.index())
                .map_err(|_| DataFusionError::Internal(format!("column {column} not collected")))?;
            Ok(Transformed::yes(
                Arc::new(Column::new(column.name(), position)) as Arc<dyn PhysicalExpr>,
            ))
        })?
        .data)
}

/// The rows for which a condition's value is true (not false, not null).
fn true_rows(value: ColumnarValue, rows: usize) -> DfResult<BooleanBuffer> {
    match value {
        ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))) => Ok(BooleanBuffer::new_set(rows)),
        ColumnarValue::Scalar(ScalarValue::Boolean(_)) => Ok(BooleanBuffer::new_unset(rows)),
        ColumnarValue::Scalar(other) => Err(DataFusionError::Internal(format!(
            "a filter condition evaluated to {}",
            other.data_type()
        ))),
        ColumnarValue::Array(array) => {
            let Some(values) = array.as_boolean_opt() else {
                return Err(DataFusionError::Internal(format!(
                    "a filter condition evaluated to {}",
                    array.data_type()
                )));
            };
            if values.len() != rows {
                return Err(DataFusionError::Internal(format!(
                    "a filter condition gave {} rows for {rows}",
                    values.len()
                )));
            }
            Ok(match values.nulls() {
                Some(nulls) => values.values() & nulls.inner(),
                None => values.values().clone(),
            })
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use arrow::array::{Int64Array, StringViewArray};
    use arrow::datatypes::Field;
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{LikeExpr, binary, col, lit};
    use proptest::prelude::*;

    use super::*;

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("m", DataType::Int64, true),
            Field::new("s", DataType::Utf8View, true),
        ]))
    }

    fn batch(rows: &[(Option<i64>, Option<i64>, Option<String>)]) -> RecordBatch {
        let n: Int64Array = rows.iter().map(|r| r.0).collect();
        let m: Int64Array = rows.iter().map(|r| r.1).collect();
        let s: StringViewArray = rows.iter().map(|r| r.2.clone()).collect();
        RecordBatch::try_new(schema(), vec![Arc::new(n), Arc::new(m), Arc::new(s)]).unwrap()
    }

    /// `n < a`, `m >= b` and `s LIKE 'x%'`, in that order.
    fn conditions(a: i64, b: i64) -> Vec<Arc<dyn PhysicalExpr>> {
        let schema = schema();
        let n = binary(col("n", &schema).unwrap(), Operator::Lt, lit(a), &schema).unwrap();
        let m = binary(col("m", &schema).unwrap(), Operator::GtEq, lit(b), &schema).unwrap();
        let s: Arc<dyn PhysicalExpr> = Arc::new(LikeExpr::new(
            false,
            false,
            col("s", &schema).unwrap(),
            lit(ScalarValue::Utf8View(Some("x%".into()))),
        ));
        vec![n, m, s]
    }

    /// The rows DataFusion's own `AND` of the same conditions keeps.
    fn kept_by_datafusion(conditions: &[Arc<dyn PhysicalExpr>], batch: &RecordBatch) -> Vec<bool> {
        let planned = conjunction(conditions.iter().cloned());
        let value = planned
            .evaluate(batch)
            .unwrap()
            .into_array(batch.num_rows())
            .unwrap();
        value.as_boolean().iter().map(|v| v == Some(true)).collect()
    }

    fn kept(conjunction: &Conjunction, batch: &RecordBatch) -> Vec<bool> {
        let value = conjunction
            .evaluate(batch)
            .unwrap()
            .into_array(batch.num_rows())
            .unwrap();
        assert_eq!(value.null_count(), 0);
        value.as_boolean().iter().map(|v| v == Some(true)).collect()
    }

    fn row() -> impl Strategy<Value = (Option<i64>, Option<i64>, Option<String>)> {
        (
            proptest::option::weighted(0.9, 0i64..100),
            proptest::option::weighted(0.9, 0i64..100),
            proptest::option::weighted(0.9, "[xy][a-z]{0,20}"),
        )
    }

    proptest! {
        /// Whatever share of rows the cheap conditions keep (so whether the
        /// costly one is evaluated on all rows or only the kept ones), the
        /// rows kept are DataFusion's.
        #[test]
        fn keeps_the_rows_datafusion_keeps(
            rows in proptest::collection::vec(row(), 0..300),
            a in 0i64..110,
            b in 0i64..110,
        ) {
            let batch = batch(&rows);
            let conditions = conditions(a, b);
            let conjunction = Conjunction::try_new(conditions.clone()).unwrap();
            prop_assert_eq!(kept(&conjunction, &batch), kept_by_datafusion(&conditions, &batch));
        }
    }

    #[test]
    fn the_rest_read_only_their_columns_of_the_kept_rows() {
        let rows: Vec<_> = (0..100)
            .map(|i| {
                (
                    Some(i),
                    Some(i % 7),
                    Some(if i % 3 == 0 {
                        "xa".to_string()
                    } else {
                        "ya".to_string()
                    }),
                )
            })
            .collect();
        let batch = batch(&rows);
        // n < 10 keeps a tenth: the other two are tested on those rows alone.
        let conjunction = Conjunction::try_new(conditions(10, 0)).unwrap();
        let rest = conjunction.rests[1].as_ref().unwrap();
        assert_eq!(rest.columns, vec![1, 2]);
        let rest: Vec<String> = rest.conditions.iter().map(|c| c.to_string()).collect();
        assert_eq!(rest, ["m@0 >= 0", "s@1 LIKE x%"]);
        let expected: Vec<bool> = (0..100).map(|i| i < 10 && i % 3 == 0).collect();
        assert_eq!(kept(&conjunction, &batch), expected);
    }

    #[test]
    fn shows_and_rebuilds_as_the_planned_conjunction() {
        let conjunction = Arc::new(Conjunction::try_new(conditions(10, 5)).unwrap());
        assert_eq!(
            conjunction.to_string(),
            "n@0 < 10 AND m@1 >= 5 AND s@2 LIKE x%"
        );
        let children = conjunction.children().into_iter().cloned().collect();
        let rebuilt = Arc::clone(&conjunction)
            .with_new_children(children)
            .unwrap();
        let rebuilt = rebuilt.downcast_ref::<Conjunction>().unwrap();
        assert_eq!(rebuilt, conjunction.as_ref());
        assert!(Arc::clone(&conjunction).with_new_children(vec![]).is_err());
    }

    #[test]
    fn a_condition_of_another_type_is_an_error() {
        let schema = schema();
        let not_boolean = col("n", &schema).unwrap();
        let conjunction = Conjunction::try_new(vec![not_boolean]).unwrap();
        let batch = batch(&[(Some(1), Some(1), None)]);
        assert!(conjunction.evaluate(&batch).is_err());
    }
}
