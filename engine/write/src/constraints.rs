//! CHECK constraints (Delta's `checkConstraints` writer feature): each is
//! a table property `delta.constraints.<name>` holding a SQL boolean
//! expression over the table's columns, which every row written must make
//! true (false and NULL both violate it, as in Delta). Added with `ALTER
//! TABLE t ADD CONSTRAINT c CHECK (…)` once every existing row passes,
//! dropped with `ALTER TABLE t DROP CONSTRAINT c`; Spark's tables carry
//! them the same way.

use std::sync::{Arc, OnceLock};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::DFSchema;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::physical_expr::PhysicalExpr;

use crate::protocol::Metadata;
use crate::{Error, Result};

/// Prefix of the table properties that hold CHECK constraints.
pub const CONSTRAINT_PREFIX: &str = "delta.constraints.";

/// The table property holding constraint `name` (Delta keeps constraint
/// names lowercase).
pub fn property_key(name: &str) -> String {
    format!("{CONSTRAINT_PREFIX}{}", name.to_ascii_lowercase())
}

/// One CHECK constraint, ready to evaluate.
#[derive(Debug, Clone)]
pub struct CheckConstraint {
    /// Its name (the property key after [`CONSTRAINT_PREFIX`]).
    pub name: String,
    /// The SQL expression, as stored.
    pub expression: String,
    physical: Arc<dyn PhysicalExpr>,
}

/// The CHECK constraints of a table.
#[derive(Debug, Clone, Default)]
pub struct CheckConstraints {
    constraints: Vec<CheckConstraint>,
}

/// A session that only plans expressions (every built-in function).
fn planner() -> &'static SessionState {
    static STATE: OnceLock<SessionState> = OnceLock::new();
    STATE.get_or_init(|| SessionStateBuilder::new().with_default_features().build())
}

/// `expression` (SQL) as a boolean expression over `schema`, or why not.
pub fn compile(name: &str, expression: &str, schema: &SchemaRef) -> Result<Arc<dyn PhysicalExpr>> {
    let refuse = |why: String| {
        Error::InvalidArgument(format!("CHECK constraint {name} ({expression}): {why}"))
    };
    let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
    let logical = planner()
        .create_logical_expr(expression, &df_schema)
        .map_err(|e| refuse(e.to_string()))?;
    let physical = planner()
        .create_physical_expr(logical, &df_schema)
        .map_err(|e| refuse(e.to_string()))?;
    match physical.data_type(schema.as_ref()) {
        Ok(DataType::Boolean) => Ok(physical),
        Ok(other) => Err(refuse(format!("it is {other}, not a condition"))),
        Err(e) => Err(refuse(e.to_string())),
    }
}

impl CheckConstraints {
    /// The constraints `metadata` declares, over the table's logical
    /// `schema`.
    pub fn of(metadata: &Metadata, schema: &SchemaRef) -> Result<Self> {
        let mut constraints = Vec::new();
        let mut keys: Vec<&String> = metadata
            .configuration
            .keys()
            .filter(|k| k.to_ascii_lowercase().starts_with(CONSTRAINT_PREFIX))
            .collect();
        keys.sort();
        for key in keys {
            let name = key[CONSTRAINT_PREFIX.len()..].to_owned();
            let Some(Some(expression)) = metadata.configuration.get(key) else {
                continue;
            };
            let physical = compile(&name, expression, schema)?;
            constraints.push(CheckConstraint {
                name,
                expression: expression.clone(),
                physical,
            });
        }
        Ok(Self { constraints })
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.constraints.is_empty()
    }

    /// Refuses `batch` (the table's logical columns) when a row breaks a
    /// constraint, naming the constraint and the first such row.
    pub fn check(&self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        for constraint in &self.constraints {
            let outcome = constraint
                .physical
                .evaluate(batch)
                .and_then(|value| value.into_array(batch.num_rows()))?;
            let Some(passed) = outcome.as_boolean_opt() else {
                return Err(Error::ConstraintViolation(format!(
                    "CHECK constraint {} ({}) did not give true or false",
                    constraint.name, constraint.expression
                )));
            };
            let failed = (0..passed.len()).find(|&i| passed.is_null(i) || !passed.value(i));
            if let Some(row) = failed {
                return Err(Error::ConstraintViolation(format!(
                    "CHECK constraint {} ({}) is violated by row {}: {}",
                    constraint.name,
                    constraint.expression,
                    row + 1,
                    describe_row(batch, row)
                )));
            }
        }
        Ok(())
    }
}

/// `name = value` for each column of row `row`.
pub(crate) fn describe_row(batch: &RecordBatch, row: usize) -> String {
    let options = FormatOptions::default().with_null("NULL");
    batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, column)| {
            let value = ArrayFormatter::try_new(column.as_ref(), &options)
                .map(|f| f.value(row).to_string())
                .unwrap_or_else(|_| "?".into());
            format!("{} = {value}", field.name())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;
    use crate::protocol::Format;

    fn metadata(constraints: &[(&str, &str)]) -> Metadata {
        Metadata {
            id: "t".into(),
            name: None,
            description: None,
            format: Format::default(),
            schema_string: String::new(),
            partition_columns: Vec::new(),
            created_time: None,
            configuration: constraints
                .iter()
                .map(|(k, v)| (format!("{CONSTRAINT_PREFIX}{k}"), Some((*v).to_owned())))
                .collect::<HashMap<_, _>>(),
        }
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn rows(ids: Vec<Option<i64>>, names: Vec<Option<&str>>) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    }

    #[test]
    fn the_first_row_breaking_a_constraint_is_named() {
        let checks = CheckConstraints::of(
            &metadata(&[("positive", "id > 0"), ("named", "length(name) > 1")]),
            &schema(),
        )
        .unwrap();
        checks
            .check(&rows(vec![Some(1), Some(2)], vec![Some("ann"), Some("bo")]))
            .unwrap();
        let err = checks
            .check(&rows(
                vec![Some(1), Some(-4)],
                vec![Some("ann"), Some("bo")],
            ))
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::ConstraintViolation(_)), "{err:?}");
        assert!(
            text.contains("positive") && text.contains("row 2") && text.contains("id = -4"),
            "{text}"
        );
        // NULL is no pass, as in Delta.
        let err = checks
            .check(&rows(vec![None], vec![Some("ann")]))
            .unwrap_err();
        assert!(err.to_string().contains("id = NULL"), "{err}");
    }

    #[test]
    fn constraints_that_are_no_conditions_are_refused() {
        for (expression, words) in [
            ("id + 1", "not a condition"),
            ("nope > 1", "nope"),
            ("id >", "id >"),
        ] {
            let err = CheckConstraints::of(&metadata(&[("c", expression)]), &schema()).unwrap_err();
            assert!(err.to_string().contains(words), "{expression}: {err}");
        }
    }
}
