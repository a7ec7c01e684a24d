//! The bytes of the Parquet pages that hold a selective query's answer: in
//! each data file of a (single-commit) Delta table, the pages of every
//! column whose rows include one where COLUMN = VALUE, with the dictionary
//! pages they need. The floor for any reader of `SELECT * … WHERE COLUMN =
//! VALUE`; the browser benchmark compares the bytes each engine fetched
//! with it.
//!   answer-pages TABLE_DIR COLUMN VALUE
//! Prints one JSON object.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;

use arrow::array::{Array, Int64Array};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::serialized_reader::ReadOptionsBuilder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, table, column, value] = args.as_slice() else {
        return Err("usage: answer-pages TABLE_DIR COLUMN VALUE".into());
    };
    let value: i64 = value.parse()?;
    let table = Path::new(table);
    let log = std::fs::read_to_string(table.join("_delta_log/00000000000000000000.json"))?;
    let (mut rows, mut page_bytes, mut dictionary_bytes, mut pages, mut files) = (0, 0, 0, 0, 0);
    for line in log.lines() {
        let action: serde_json::Value = serde_json::from_str(line)?;
        let Some(path) = action["add"]["path"].as_str() else {
            continue;
        };
        files += 1;
        let path = table.join(path);
        let matches = matching_rows(&path, column, value)?;
        rows += matches.len();
        let options = ReadOptionsBuilder::new().with_page_index().build();
        let reader = SerializedFileReader::new_with_options(File::open(&path)?, options)?;
        let metadata = reader.metadata();
        let offsets = metadata
            .offset_index()
            .ok_or("the file has no offset index")?;
        let mut needed = BTreeSet::new();
        let mut dictionaries = BTreeSet::new();
        for &(group, row) in &matches {
            for (chunk, index) in offsets[group].iter().enumerate() {
                let locations = index.page_locations();
                let page = locations
                    .iter()
                    .rposition(|p| p.first_row_index <= row)
                    .unwrap_or(0);
                needed.insert((group, chunk, page));
                dictionaries.insert((group, chunk));
            }
        }
        for &(group, chunk, page) in &needed {
            page_bytes += offsets[group][chunk].page_locations()[page].compressed_page_size as u64;
            pages += 1;
        }
        for &(group, chunk) in &dictionaries {
            let meta = metadata.row_group(group).column(chunk);
            if let Some(start) = meta.dictionary_page_offset() {
                dictionary_bytes += (meta.data_page_offset() - start) as u64;
            }
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "files": files,
            "rows": rows,
            "pages": pages,
            "page_bytes": page_bytes,
            "dictionary_bytes": dictionary_bytes,
        })
    );
    Ok(())
}

/// (row group, row within it) of the rows where `column` = `value`.
fn matching_rows(
    path: &Path,
    column: &str,
    value: i64,
) -> Result<Vec<(usize, i64)>, Box<dyn std::error::Error>> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?;
    let schema = builder.parquet_schema();
    let leaf = (0..schema.num_columns())
        .find(|&i| schema.column(i).name() == column)
        .ok_or_else(|| format!("no column {column}"))?;
    let group_rows: Vec<i64> = builder
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows())
        .collect();
    let mask = ProjectionMask::leaves(schema, [leaf]);
    let mut found = Vec::new();
    let mut position = 0i64;
    for batch in builder.with_projection(mask).build()? {
        let batch = batch?;
        let keys = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or("the column is not BIGINT")?;
        for (i, key) in keys.iter().enumerate() {
            if key == Some(value) {
                found.push(position + i as i64);
            }
        }
        position += batch.num_rows() as i64;
    }
    Ok(found
        .into_iter()
        .map(|row| {
            let mut start = 0;
            for (group, &n) in group_rows.iter().enumerate() {
                if row < start + n {
                    return (group, row - start);
                }
                start += n;
            }
            (group_rows.len().saturating_sub(1), 0)
        })
        .collect())
}
