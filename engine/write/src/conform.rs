//! Checking rows against a table before anything is written: every column
//! present and of a type that converts without loss, and NOT NULL columns
//! free of nulls.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, SchemaRef, TimeUnit};

use crate::{Error, Result};

/// `batch` with the table's columns in the table's order and types, or a
/// [`Error::SchemaMismatch`] naming the first column that does not fit.
/// Columns are matched by name, case-insensitively when no exact match.
pub fn conform(batch: &RecordBatch, table: &SchemaRef) -> Result<RecordBatch> {
    let given = batch.schema();
    for field in given.fields() {
        if find(table, field.name()).is_none() {
            return Err(Error::SchemaMismatch(format!(
                "column {} is not in the table (columns: {})",
                field.name(),
                names(table)
            )));
        }
    }
    let mut columns = Vec::with_capacity(table.fields().len());
    for field in table.fields() {
        let Some(index) = find(&given, field.name()) else {
            return Err(Error::SchemaMismatch(format!(
                "column {} of the table is missing from the rows",
                field.name()
            )));
        };
        let column = batch.column(index);
        columns.push(convert(column, field)?);
    }
    check_not_null(&columns, table)?;
    RecordBatch::try_new_with_options(
        table.clone(),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
    .map_err(Error::from)
}

fn find(schema: &SchemaRef, name: &str) -> Option<usize> {
    schema.index_of(name).ok().or_else(|| {
        schema
            .fields()
            .iter()
            .position(|f| f.name().eq_ignore_ascii_case(name))
    })
}

fn names(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn convert(column: &ArrayRef, field: &Field) -> Result<ArrayRef> {
    let (from, to) = (column.data_type(), field.data_type());
    if from == to {
        return Ok(column.clone());
    }
    if !converts_without_loss(from, to) {
        return Err(Error::SchemaMismatch(format!(
            "column {} is {from} but the table stores {to}",
            field.name()
        )));
    }
    if from.equals_datatype(to) {
        return crate::scan::retype(column, to).map_err(Error::from);
    }
    arrow::compute::cast(column, to).map_err(|e| {
        Error::SchemaMismatch(format!("column {} cannot become {to}: {e}", field.name()))
    })
}

/// Whether every value of `from` has an equal value in `to` (widening
/// integers and floats, string and binary encodings, timestamp units,
/// decimals with room, nested types whose parts convert so).
fn converts_without_loss(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    if from.equals_datatype(to) || matches!(from, Null) {
        return true;
    }
    match (from, to) {
        (Int8, Int16 | Int32 | Int64) | (Int16, Int32 | Int64) | (Int32, Int64) => true,
        (UInt8, Int16 | Int32 | Int64) | (UInt16, Int32 | Int64) | (UInt32, Int64) => true,
        (Float16, Float32 | Float64) | (Float32, Float64) => true,
        (Int8 | Int16 | UInt8, Float32) | (Int8 | Int16 | Int32 | UInt8 | UInt16, Float64) => true,
        (Utf8View | LargeUtf8 | Dictionary(_, _), Utf8) => {
            !matches!(from, Dictionary(_, v) if !matches!(v.as_ref(), Utf8 | LargeUtf8 | Utf8View))
        }
        (BinaryView | LargeBinary | FixedSizeBinary(_), Binary) => true,
        (Date64, Date32) => true,
        (Timestamp(_, a), Timestamp(TimeUnit::Microsecond, b)) => a.is_some() == b.is_some(),
        (Decimal128(p1, s1), Decimal128(p2, s2)) => {
            s1 <= s2 && i16::from(*p1) - i16::from(*s1) <= i16::from(*p2) - i16::from(*s2)
        }
        (Int8 | Int16 | Int32 | Int64, Decimal128(p, s)) => {
            let digits = match from {
                Int8 => 3,
                Int16 => 5,
                Int32 => 10,
                _ => 19,
            };
            i16::from(*p) - i16::from(*s) >= digits
        }
        (List(a) | LargeList(a) | ListView(a) | FixedSizeList(a, _), List(b)) => {
            converts_without_loss(a.data_type(), b.data_type())
        }
        (Struct(a), Struct(b)) => {
            a.len() == b.len()
                && a.iter().zip(b.iter()).all(|(x, y)| {
                    x.name() == y.name() && converts_without_loss(x.data_type(), y.data_type())
                })
        }
        (Map(a, _), Map(b, _)) => converts_without_loss(a.data_type(), b.data_type()),
        _ => false,
    }
}

/// A [`Error::ConstraintViolation`] if one of `columns` (the table's, in
/// order) that is NOT NULL (or a NOT NULL
/// field of a struct that is itself present) holds a null.
pub fn check_not_null(columns: &[ArrayRef], table: &SchemaRef) -> Result<()> {
    for (field, column) in table.fields().iter().zip(columns) {
        check_column(field.name(), field, column, None)?;
    }
    Ok(())
}

fn check_column(
    path: &str,
    field: &Field,
    column: &ArrayRef,
    parent_valid: Option<&NullBuffer>,
) -> Result<()> {
    let nulls = column.logical_nulls();
    if !field.is_nullable() {
        let violating = match (&nulls, parent_valid) {
            (None, _) => 0,
            (Some(own), None) => own.null_count(),
            (Some(own), Some(parent)) => (0..column.len())
                .filter(|i| parent.is_valid(*i) && own.is_null(*i))
                .count(),
        };
        if violating > 0 {
            return Err(Error::ConstraintViolation(format!(
                "NOT NULL column {path} would get {violating} null value{}",
                if violating == 1 { "" } else { "s" }
            )));
        }
    }
    if let (DataType::Struct(children), Some(parent)) = (field.data_type(), column.as_struct_opt())
    {
        let valid = NullBuffer::union(parent_valid, nulls.as_ref());
        for (child_field, child) in children.iter().zip(parent.columns()) {
            check_column(
                &format!("{path}.{}", child_field.name()),
                child_field,
                child,
                valid.as_ref(),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int32Array, Int64Array, StringArray, StringViewArray};
    use arrow::datatypes::Schema;

    use super::*;

    fn table() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns).unwrap()
    }

    #[test]
    fn rows_are_reordered_and_widened() {
        let rows = batch(vec![
            (
                "NAME",
                Arc::new(StringViewArray::from(vec!["a"])) as ArrayRef,
            ),
            ("id", Arc::new(Int32Array::from(vec![7]))),
        ]);
        let out = conform(&rows, &table()).unwrap();
        assert_eq!(out.schema(), table());
        assert_eq!(
            out.column(0)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(0),
            7
        );
    }

    #[test]
    fn mismatches_are_named() {
        let unknown = batch(vec![
            ("id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
            ("name", Arc::new(StringArray::from(vec!["a"]))),
            ("extra", Arc::new(Int64Array::from(vec![1]))),
        ]);
        let err = conform(&unknown, &table()).unwrap_err();
        assert!(
            matches!(&err, Error::SchemaMismatch(m) if m.contains("extra")),
            "{err}"
        );

        let missing = batch(vec![(
            "id",
            Arc::new(Int64Array::from(vec![1])) as ArrayRef,
        )]);
        let err = conform(&missing, &table()).unwrap_err();
        assert!(err.to_string().contains("name"), "{err}");

        let wrong = batch(vec![
            ("id", Arc::new(StringArray::from(vec!["1"])) as ArrayRef),
            ("name", Arc::new(StringArray::from(vec!["a"]))),
        ]);
        let err = conform(&wrong, &table()).unwrap_err();
        assert!(err.to_string().contains("column id is Utf8"), "{err}");
    }

    #[test]
    fn not_null_columns_refuse_nulls() {
        let rows = batch(vec![
            (
                "id",
                Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
            ),
            ("name", Arc::new(StringArray::from(vec!["a", "b"]))),
        ]);
        let err = conform(&rows, &table()).unwrap_err();
        assert_eq!(err.code(), "CONSTRAINT_VIOLATION");
        assert!(err.to_string().contains("NOT NULL column id"), "{err}");
    }
}
