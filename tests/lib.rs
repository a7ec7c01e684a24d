//! Shared helpers for Wavelake's integration tests: locating and unpacking
//! the golden Delta tables in `../shared/golden`, running queries, and
//! comparing results as multisets of rows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// The golden tables folder, if `../shared` is beside the project.
pub fn golden_root() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/golden");
    root.is_dir().then(|| root.canonicalize().unwrap_or(root))
}

/// Prints why a golden test is skipped and returns `None`, or the root.
pub fn golden_or_skip(test: &str) -> Option<PathBuf> {
    let root = golden_root();
    if root.is_none() {
        eprintln!("SKIPPED {test}: ../shared/golden is not beside the project");
    }
    root
}

/// Where archives are unpacked (outside the repository, reused between runs).
pub fn scratch_dir() -> PathBuf {
    let dir = std::env::var_os("WAVELAKE_TEST_SCRATCH")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("wavelake-tests"));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Unpacks `archive` (a `.tar.zst`) into the scratch dir once; returns the
/// folder it unpacked to.
pub fn unpack(archive: &Path) -> PathBuf {
    let name = archive
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".tar.zst"))
        .expect("a .tar.zst archive");
    let base = scratch_dir().join("golden");
    let done = base.join(format!("{name}.unpacked"));
    let target = base.join(name);
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&target);
        std::fs::create_dir_all(&base).expect("dir");
        let file = std::fs::File::open(archive).expect("archive");
        let decoder = zstd::Decoder::new(file).expect("zstd");
        tar::Archive::new(decoder).unpack(&base).expect("untar");
        std::fs::write(&done, b"").expect("marker");
    }
    target
}

/// Reads every Parquet file in `dir` (not recursing into hidden files).
pub fn read_parquet_dir(dir: &Path) -> Vec<RecordBatch> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("expected dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "parquet")
                && !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    paths.sort();
    let mut batches = Vec::new();
    for path in paths {
        let file = std::fs::File::open(&path).expect("open");
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("parquet")
            .build()
            .expect("reader");
        for batch in reader {
            batches.push(batch.expect("batch"));
        }
    }
    batches
}

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
