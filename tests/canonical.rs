//! Rows as sorted strings, for comparing query results with expected rows
//! as multisets. Depends on Arrow alone, so the wasm32 tests of `engine/`
//! include this file too.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// Rows of `batches` as sorted strings over the columns named in `columns`
/// (in that order), with timestamps normalised to microseconds in UTC.
pub fn canonical_rows(batches: &[RecordBatch], columns: &[String]) -> Result<Vec<String>, String> {
    let mut rows = Vec::new();
    let options = FormatOptions::default().with_null("NULL");
    for batch in batches {
        let arrays: Vec<ArrayRef> = columns
            .iter()
            .map(|name| {
                let column = batch
                    .column_by_name(name)
                    .ok_or_else(|| format!("column {name} is missing"))?;
                Ok(normalise(column))
            })
            .collect::<Result<_, String>>()?;
        let formatters: Vec<ArrayFormatter> = arrays
            .iter()
            .map(|a| ArrayFormatter::try_new(a.as_ref(), &options).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect();
            rows.push(cells.join(" | "));
        }
    }
    rows.sort();
    Ok(rows)
}

fn normalise(array: &ArrayRef) -> ArrayRef {
    match array.data_type() {
        DataType::Timestamp(_, _) => arrow::compute::cast(
            array,
            &DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
        )
        .unwrap_or_else(|_| array.clone()),
        DataType::Utf8View | DataType::LargeUtf8 => {
            arrow::compute::cast(array, &DataType::Utf8).unwrap_or_else(|_| array.clone())
        }
        DataType::BinaryView | DataType::LargeBinary => {
            arrow::compute::cast(array, &DataType::Binary).unwrap_or_else(|_| array.clone())
        }
        _ => array.clone(),
    }
}

/// Column names of the first batch (or none).
pub fn column_names(batches: &[RecordBatch]) -> Vec<String> {
    batches
        .first()
        .map(|b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        })
        .unwrap_or_default()
}
