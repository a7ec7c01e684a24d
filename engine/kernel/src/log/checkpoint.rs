//! Reading checkpoints: classic (single and multi-part) and v2 (JSON or
//! Parquet, with sidecars), decoded column by column into actions.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StructArray};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema};
use bytes::Bytes;
use futures::future::try_join_all;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::files::{LOG_DIR, LogFile};
use crate::protocol::{
    ActionBatch, Add, CheckpointMetadata, DeletionVectorDescriptor, DomainMetadata, Format,
    Metadata, Protocol, Sidecar, Txn,
};
use crate::storage::Storage;
use crate::{Error, Result};

/// Reads all parts of a checkpoint and the sidecars they point to.
pub async fn read_checkpoint(storage: &dyn Storage, parts: &[LogFile]) -> Result<ActionBatch> {
    let batches = try_join_all(parts.iter().map(|part| async move {
        let bytes = storage.get(&part.path).await?;
        decode_off_thread(&part.path, bytes).await
    }))
    .await?;
    let mut merged = ActionBatch::default();
    for batch in batches {
        merge(&mut merged, batch);
    }
    if !merged.sidecars.is_empty() {
        let sidecars = std::mem::take(&mut merged.sidecars);
        let decoded = try_join_all(sidecars.iter().map(|sidecar| async move {
            let path = sidecar_path(&sidecar.path);
            let bytes = storage.get(&path).await?;
            decode_off_thread(&path, bytes).await
        }))
        .await?;
        for batch in decoded {
            merged.adds.extend(batch.adds);
        }
        merged.sidecars = sidecars;
    }
    Ok(merged)
}

/// [`decode_actions`] on the decode pool.
async fn decode_off_thread(path: &str, bytes: Bytes) -> Result<ActionBatch> {
    let owned = path.to_owned();
    crate::decode_pool::decode(path, bytes.len(), move || decode_actions(&owned, bytes)).await
}

fn sidecar_path(path: &str) -> String {
    if path.contains("://") || path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{LOG_DIR}_sidecars/{path}")
    }
}

fn merge(into: &mut ActionBatch, from: ActionBatch) {
    into.adds.extend(from.adds);
    into.removes.extend(from.removes);
    into.txns.extend(from.txns);
    into.domains.extend(from.domains);
    into.sidecars.extend(from.sidecars);
    if from.metadata.is_some() {
        into.metadata = from.metadata;
    }
    if from.protocol.is_some() {
        into.protocol = from.protocol;
    }
    if from.checkpoint_metadata.is_some() {
        into.checkpoint_metadata = from.checkpoint_metadata;
    }
}

/// Decodes a checkpoint or sidecar file by its extension.
pub fn decode_actions(path: &str, bytes: Bytes) -> Result<ActionBatch> {
    if path.ends_with(".json") {
        ActionBatch::from_json_lines(path, &bytes)
    } else {
        decode_parquet_actions(path, bytes)
    }
}

/// Decodes the actions of a Parquet checkpoint or sidecar. `remove`
/// actions are skipped: in a checkpoint they are only tombstones for VACUUM.
pub fn decode_parquet_actions(path: &str, bytes: Bytes) -> Result<ActionBatch> {
    crate::parquet_guard::contain_decoder_panics(path, || decode_parquet_checkpoint(path, bytes))
}

fn decode_parquet_checkpoint(path: &str, bytes: Bytes) -> Result<ActionBatch> {
    let corrupt = |e: &dyn std::fmt::Display| Error::corrupt(path, e);
    let len = bytes.len() as u64;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(bytes.clone()).map_err(|e| corrupt(&e))?;
    crate::parquet_guard::check_layout(path, builder.metadata(), len)?;
    crate::parquet_guard::check_pages(path, builder.metadata(), &bytes)?;
    let descr = builder.parquet_schema();
    let has_stats_json = descr
        .columns()
        .iter()
        .any(|c| c.path().parts() == ["add", "stats"]);
    let mut wanted = vec![
        "add.path",
        "add.partitionValues",
        "add.size",
        "add.modificationTime",
        "add.dataChange",
        "add.deletionVector",
        "add.baseRowId",
        "add.defaultRowCommitVersion",
        "metaData",
        "protocol",
        "txn",
        "domainMetadata",
        "checkpointMetadata",
        "sidecar",
    ];
    wanted.push(if has_stats_json {
        "add.stats"
    } else {
        "add.stats_parsed"
    });
    let mask = ProjectionMask::columns(descr, wanted);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(16 * 1024)
        .build()
        .map_err(|e| corrupt(&e))?;
    let mut actions = ActionBatch::default();
    for batch in reader {
        let batch = batch.map_err(|e| corrupt(&e))?;
        decode_batch(path, &batch, &mut actions)?;
    }
    Ok(actions)
}

fn decode_batch(path: &str, batch: &RecordBatch, out: &mut ActionBatch) -> Result<()> {
    if let Some(add) = struct_column(batch, "add") {
        decode_adds(path, add, out)?;
    }
    if let Some(meta) = struct_column(batch, "metaData") {
        for row in valid_rows(meta) {
            out.metadata = Some(decode_metadata(path, meta, row)?);
        }
    }
    if let Some(protocol) = struct_column(batch, "protocol") {
        for row in valid_rows(protocol) {
            out.protocol = Some(Protocol {
                min_reader_version: required_i32(
                    path,
                    protocol,
                    "protocol",
                    "minReaderVersion",
                    row,
                )?,
                min_writer_version: required_i32(
                    path,
                    protocol,
                    "protocol",
                    "minWriterVersion",
                    row,
                )?,
                reader_features: string_list(child(protocol, "readerFeatures"), row),
                writer_features: string_list(child(protocol, "writerFeatures"), row),
            });
        }
    }
    if let Some(txn) = struct_column(batch, "txn") {
        for row in valid_rows(txn) {
            out.txns.push(Txn {
                app_id: required(path, "txn.appId", string(child(txn, "appId"), row))?,
                version: required_int(path, txn, "txn", "version", row)?,
                last_updated: int(child(txn, "lastUpdated"), row),
            });
        }
    }
    if let Some(domain) = struct_column(batch, "domainMetadata") {
        for row in valid_rows(domain) {
            out.domains.push(DomainMetadata {
                domain: required(
                    path,
                    "domainMetadata.domain",
                    string(child(domain, "domain"), row),
                )?,
                configuration: string(child(domain, "configuration"), row).unwrap_or_default(),
                removed: boolean(child(domain, "removed"), row).unwrap_or(false),
            });
        }
    }
    if let Some(cp) = struct_column(batch, "checkpointMetadata") {
        for row in valid_rows(cp) {
            out.checkpoint_metadata = Some(CheckpointMetadata {
                version: required_int(path, cp, "checkpointMetadata", "version", row)?,
            });
        }
    }
    if let Some(sidecar) = struct_column(batch, "sidecar") {
        for row in valid_rows(sidecar) {
            out.sidecars.push(Sidecar {
                path: required(path, "sidecar.path", string(child(sidecar, "path"), row))?,
                size_in_bytes: int(child(sidecar, "sizeInBytes"), row).unwrap_or(0),
                modification_time: int(child(sidecar, "modificationTime"), row).unwrap_or(0),
            });
        }
    }
    Ok(())
}

fn decode_adds(path: &str, add: &StructArray, out: &mut ActionBatch) -> Result<()> {
    let paths = child(add, "path");
    let partition_values = child(add, "partitionValues");
    let sizes = child(add, "size");
    let mtimes = child(add, "modificationTime");
    let data_change = child(add, "dataChange");
    let stats = child(add, "stats");
    let parsed_stats = child(add, "stats_parsed")
        .map(|s| stats_parsed_to_json(path, s))
        .transpose()?;
    let dvs = child(add, "deletionVector").and_then(|a| a.as_struct_opt());
    let base_row_ids = child(add, "baseRowId");
    let row_commit_versions = child(add, "defaultRowCommitVersion");
    for row in valid_rows(add) {
        let stats = string(stats, row).or_else(|| {
            parsed_stats
                .as_ref()
                .and_then(|rows| rows.get(row).cloned().flatten())
        });
        out.adds.push(Add {
            path: required(path, "add.path", string(paths, row))?,
            partition_values: string_map(partition_values, row).unwrap_or_default(),
            size: required(path, "add.size", int(sizes, row))?,
            modification_time: int(mtimes, row).unwrap_or(0),
            data_change: boolean(data_change, row).unwrap_or(false),
            stats,
            tags: None,
            deletion_vector: dvs
                .map(|dv| decode_dv(path, dv, row))
                .transpose()?
                .flatten(),
            base_row_id: int(base_row_ids, row),
            default_row_commit_version: int(row_commit_versions, row),
            clustering_provider: None,
        });
    }
    Ok(())
}

fn decode_dv(path: &str, dv: &StructArray, row: usize) -> Result<Option<DeletionVectorDescriptor>> {
    if dv.is_null(row) {
        return Ok(None);
    }
    Ok(Some(DeletionVectorDescriptor {
        storage_type: required(
            path,
            "deletionVector.storageType",
            string(child(dv, "storageType"), row),
        )?,
        path_or_inline_dv: required(
            path,
            "deletionVector.pathOrInlineDv",
            string(child(dv, "pathOrInlineDv"), row),
        )?,
        offset: int(child(dv, "offset"), row)
            .map(|o| {
                i32::try_from(o).map_err(|_| {
                    Error::corrupt(path, format!("deletionVector.offset = {o} is out of range"))
                })
            })
            .transpose()?,
        size_in_bytes: required_i32(path, dv, "deletionVector", "sizeInBytes", row)?,
        cardinality: required_int(path, dv, "deletionVector", "cardinality", row)?,
    }))
}

fn decode_metadata(path: &str, meta: &StructArray, row: usize) -> Result<Metadata> {
    let format = child(meta, "format").and_then(|f| f.as_struct_opt());
    Ok(Metadata {
        id: required(path, "metaData.id", string(child(meta, "id"), row))?,
        name: string(child(meta, "name"), row),
        description: string(child(meta, "description"), row),
        format: Format {
            provider: format
                .and_then(|f| string(child(f, "provider"), row))
                .unwrap_or_else(|| "parquet".into()),
            options: format
                .and_then(|f| string_map(child(f, "options"), row))
                .unwrap_or_default(),
        },
        schema_string: string(child(meta, "schemaString"), row).unwrap_or_default(),
        partition_columns: string_list(child(meta, "partitionColumns"), row).unwrap_or_default(),
        created_time: int(child(meta, "createdTime"), row),
        configuration: string_map(child(meta, "configuration"), row).unwrap_or_default(),
    })
}

/// Renders typed `stats_parsed` rows as the JSON `stats` documents they
/// stand for, so one statistics parser serves both forms.
fn stats_parsed_to_json(path: &str, stats: &ArrayRef) -> Result<Vec<Option<String>>> {
    let Some(parsed) = stats.as_struct_opt() else {
        return Ok(Vec::new());
    };
    // The struct's own null rows are dropped below; its children become a
    // batch whose columns may all hold nulls.
    let (fields, columns, _) = parsed.clone().into_parts();
    let fields: Vec<Field> = fields
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::corrupt(path, e))?;
    let mut buffer = Vec::new();
    {
        let mut writer = arrow::json::LineDelimitedWriter::new(&mut buffer);
        writer.write(&batch).map_err(|e| Error::corrupt(path, e))?;
        writer.finish().map_err(|e| Error::corrupt(path, e))?;
    }
    let text = String::from_utf8(buffer).map_err(|e| Error::corrupt(path, e))?;
    Ok(text
        .lines()
        .enumerate()
        .map(|(row, line)| (!parsed.is_null(row)).then(|| line.to_owned()))
        .collect())
}

fn struct_column<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a StructArray> {
    batch.column_by_name(name).and_then(|c| c.as_struct_opt())
}

fn child<'a>(parent: &'a StructArray, name: &str) -> Option<&'a ArrayRef> {
    parent.column_by_name(name)
}

fn valid_rows(array: &StructArray) -> impl Iterator<Item = usize> + '_ {
    (0..array.len()).filter(|row| array.is_valid(*row))
}

fn required<T>(path: &str, field: &str, value: Option<T>) -> Result<T> {
    value.ok_or_else(|| Error::corrupt(path, format!("{field} is missing")))
}

/// A required integer field `prefix.field` of struct `parent`.
fn required_int(
    path: &str,
    parent: &StructArray,
    prefix: &str,
    field: &str,
    row: usize,
) -> Result<i64> {
    int(child(parent, field), row)
        .ok_or_else(|| Error::corrupt(path, format!("{prefix}.{field} is missing")))
}

/// A required 32-bit field; an out-of-range value is corruption, not wrap-around.
fn required_i32(
    path: &str,
    parent: &StructArray,
    prefix: &str,
    field: &str,
    row: usize,
) -> Result<i32> {
    let value = required_int(path, parent, prefix, field, row)?;
    i32::try_from(value)
        .map_err(|_| Error::corrupt(path, format!("{prefix}.{field} = {value} is out of range")))
}

fn string(array: Option<&ArrayRef>, row: usize) -> Option<String> {
    let array = array?;
    if array.is_null(row) {
        return None;
    }
    match array.data_type() {
        DataType::Utf8 => Some(array.as_string::<i32>().value(row).to_owned()),
        DataType::LargeUtf8 => Some(array.as_string::<i64>().value(row).to_owned()),
        DataType::Utf8View => Some(array.as_string_view().value(row).to_owned()),
        _ => None,
    }
}

fn int(array: Option<&ArrayRef>, row: usize) -> Option<i64> {
    let array = array?;
    if array.is_null(row) {
        return None;
    }
    match array.data_type() {
        DataType::Int64 => Some(array.as_primitive::<Int64Type>().value(row)),
        DataType::Int32 => Some(i64::from(array.as_primitive::<Int32Type>().value(row))),
        _ => None,
    }
}

fn boolean(array: Option<&ArrayRef>, row: usize) -> Option<bool> {
    let array = array?;
    (!array.is_null(row)).then(|| array.as_boolean_opt().map(|b| b.value(row)))?
}

fn string_list(array: Option<&ArrayRef>, row: usize) -> Option<Vec<String>> {
    let array = array?;
    if array.is_null(row) {
        return None;
    }
    let values = array.as_list_opt::<i32>()?.value(row);
    Some(
        (0..values.len())
            .filter_map(|i| string(Some(&values), i))
            .collect(),
    )
}

fn string_map(array: Option<&ArrayRef>, row: usize) -> Option<HashMap<String, Option<String>>> {
    let array = array?;
    if array.is_null(row) {
        return None;
    }
    let map = array.as_map_opt()?;
    let entries = map.value(row);
    let keys = entries.column(0);
    let values = entries.column(1);
    Some(
        (0..entries.len())
            .filter_map(|i| Some((string(Some(keys), i)?, string(Some(values), i))))
            .collect(),
    )
}
