//! Files for clients of the `parquet` response format, which can apply
//! neither deletion vectors nor column mapping: the server writes, once per
//! file and deletion vector, a plain Parquet copy without the deleted rows
//! and with logical column names, under the table's hidden
//! `_wavelake_shared/` directory (which VACUUM and readers skip), and hands
//! out that file instead.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::col;
use parquet::arrow::ArrowWriter;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use wavelake_engine::protocol::Add;
use wavelake_engine::scan::DeltaTableProvider;
use wavelake_engine::{Snapshot, Table};

/// Where materialized copies live inside a table.
pub const MATERIALIZED_DIR: &str = "_wavelake_shared";

/// A plain copy of one data file.
#[derive(Debug, Clone)]
pub struct Materialized {
    /// Its path, relative to the table root.
    pub path: String,
    /// Its size.
    pub size: i64,
    /// The original statistics with `numRecords` corrected.
    pub stats: Option<String>,
}

/// Whether `add` must be materialized for the parquet format.
pub fn needs_copy(snapshot: &Snapshot, add: &Add) -> bool {
    add.deletion_vector.is_some()
        || snapshot.column_mapping() != wavelake_engine::schema::ColumnMappingMode::None
}

/// The plain copy of `add`, written on first use.
pub async fn materialize(
    table: &Table,
    snapshot: &Snapshot,
    add: &Add,
) -> Result<Materialized, ApiError> {
    let mut key = Sha256::new();
    key.update(add.path.as_bytes());
    if let Some(dv) = &add.deletion_vector {
        key.update(dv.unique_id().as_bytes());
    }
    let key: String = key
        .finalize()
        .iter()
        .take(20)
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = format!("{MATERIALIZED_DIR}/{key}.parquet");
    let storage = table.storage();
    let rows_after = |bytes: &[u8]| -> Result<i64, ApiError> {
        let reader = parquet::file::serialized_reader::SerializedFileReader::new(
            Bytes::copy_from_slice(bytes),
        )
        .map_err(ApiError::internal)?;
        use parquet::file::reader::FileReader;
        Ok(reader.metadata().file_metadata().num_rows())
    };
    let existing = storage.get(&path).await;
    let (size, rows) = match existing {
        Ok(bytes) => (bytes.len() as i64, rows_after(&bytes)?),
        Err(wavelake_engine::Error::NotFound { .. }) => {
            let bytes = copy_without_deleted_rows(table, snapshot, add).await?;
            let rows = rows_after(&bytes)?;
            let size = bytes.len() as i64;
            storage.put(&path, bytes).await?;
            (size, rows)
        }
        Err(e) => return Err(e.into()),
    };
    let stats = add.stats.as_deref().map(|text| {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(mut doc)) => {
                doc.insert("numRecords".into(), Value::from(rows));
                // Bounds stay valid (loose) without the deleted rows; names
                // are logical only when the table maps none.
                if snapshot.column_mapping() != wavelake_engine::schema::ColumnMappingMode::None {
                    doc.retain(|k, _| k == "numRecords");
                }
                Value::Object(doc).to_string()
            }
            _ => text.to_owned(),
        }
    });
    Ok(Materialized { path, size, stats })
}

async fn copy_without_deleted_rows(
    table: &Table,
    snapshot: &Snapshot,
    add: &Add,
) -> Result<Bytes, ApiError> {
    let provider = DeltaTableProvider::new(snapshot.clone(), table.storage().clone())?
        .with_files(HashSet::from([add.path.clone()]));
    let ctx = SessionContext::new();
    let partitions: HashSet<&String> = snapshot.metadata().partition_columns.iter().collect();
    let columns: Vec<_> = snapshot
        .arrow_schema()
        .fields()
        .iter()
        .filter(|f| !partitions.contains(f.name()))
        .map(|f| col(format!("\"{}\"", f.name().replace('"', "\"\""))))
        .collect();
    let frame = ctx
        .read_table(Arc::new(provider))
        .and_then(|frame| frame.select(columns))
        .map_err(wavelake_engine::Error::from)?;
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame
        .collect()
        .await
        .map_err(wavelake_engine::Error::from)?;
    let mut buffer = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buffer, schema, None).map_err(ApiError::internal)?;
    for batch in &batches {
        writer.write(batch).map_err(ApiError::internal)?;
    }
    writer.close().map_err(ApiError::internal)?;
    Ok(Bytes::from(buffer))
}
