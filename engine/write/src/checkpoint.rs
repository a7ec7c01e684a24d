//! Checkpoints: the state of a table version as one classic Parquet file,
//! `_delta_log/N.checkpoint.parquet`, plus the `_last_checkpoint` hint, so
//! readers replay from it instead of every commit. Written after every
//! `delta.checkpointInterval` commits (10 unless the table says), and on
//! demand.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::log::{LOG_DIR, LogSegment, replay};
use crate::protocol::{Add, Metadata, Remove};
use crate::storage::Storage;
use crate::transaction::{ActionLine, json_lines};
use crate::{Error, Result};

/// Table property: commits between checkpoints.
pub const CHECKPOINT_INTERVAL_PROPERTY: &str = "delta.checkpointInterval";
/// Commits between checkpoints when the table does not say.
pub const DEFAULT_CHECKPOINT_INTERVAL: i64 = 10;
/// Table property: how long removed files stay recorded (and on disk).
pub const DELETED_FILE_RETENTION_PROPERTY: &str = "delta.deletedFileRetentionDuration";
/// Removed files are kept this long when the table does not say: 7 days.
pub const DEFAULT_DELETED_FILE_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

/// What a checkpoint holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The version it describes.
    pub version: i64,
    /// Actions in it.
    pub actions: usize,
    /// Active files in it.
    pub add_files: usize,
    /// Its size in bytes.
    pub size_in_bytes: usize,
}

/// The commits between checkpoints that `metadata` asks for.
pub fn checkpoint_interval(metadata: &Metadata) -> i64 {
    metadata
        .property(CHECKPOINT_INTERVAL_PROPERTY)
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_CHECKPOINT_INTERVAL)
}

/// How long removed files stay recorded, from the table's
/// `delta.deletedFileRetentionDuration` (`interval 7 days`, `168 hours`).
pub fn deleted_file_retention_ms(metadata: &Metadata) -> Result<i64> {
    match metadata.property(DELETED_FILE_RETENTION_PROPERTY) {
        None => Ok(DEFAULT_DELETED_FILE_RETENTION_MS),
        Some(text) => parse_interval_ms(text).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{DELETED_FILE_RETENTION_PROPERTY} = {text:?} is not an interval like \
                 'interval 7 days'"
            ))
        }),
    }
}

/// Parses Delta's interval strings: `interval 7 days`, `1 week`, `36 hours`.
pub fn parse_interval_ms(text: &str) -> Option<i64> {
    let words: Vec<String> = text
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .filter(|w| w != "interval")
        .collect();
    let mut total = 0i64;
    for pair in words.chunks(2) {
        let [amount, unit] = pair else {
            return None;
        };
        let amount: i64 = amount.parse().ok().filter(|a| *a >= 0)?;
        let unit_ms: i64 = match unit.trim_end_matches('s') {
            "millisecond" => 1,
            "second" => 1000,
            "minute" => 60_000,
            "hour" => 3_600_000,
            "day" => 86_400_000,
            "week" => 7 * 86_400_000,
            _ => return None,
        };
        total = total.checked_add(amount.checked_mul(unit_ms)?)?;
    }
    (!words.is_empty()).then_some(total)
}

/// Writes the checkpoint of `version` (the latest when `None`) and points
/// `_last_checkpoint` at it. Removed files still within the retention
/// window are kept in it as tombstones.
pub async fn write_checkpoint(
    storage: &dyn Storage,
    version: Option<i64>,
    now_ms: i64,
) -> Result<CheckpointInfo> {
    let location = storage.location();
    let root = url::Url::parse(&location)
        .map_err(|e| Error::InvalidArgument(format!("bad table location {location}: {e}")))?;
    let segment = LogSegment::load(storage, version).await?;
    let state = replay(storage, &root, &segment).await?;
    let retention = deleted_file_retention_ms(&state.metadata)?;
    let active: std::collections::HashSet<_> = state.files.iter().map(Add::replay_key).collect();
    let mut seen = std::collections::HashSet::new();
    let tombstones: Vec<Remove> = crate::log::tombstones(storage, &segment)
        .await?
        .into_iter()
        .filter(|remove| {
            let recent = remove
                .deletion_timestamp
                .is_none_or(|t| t > now_ms - retention);
            let key = remove.replay_key();
            recent && !active.contains(&key) && seen.insert(key)
        })
        .collect();
    let lines = json_lines(
        [
            ActionLine::Protocol(&state.protocol),
            ActionLine::Metadata(&state.metadata),
        ]
        .into_iter()
        .chain(state.txns.values().map(ActionLine::Txn))
        .chain(state.domains.values().map(ActionLine::DomainMetadata))
        .chain(state.files.iter().map(ActionLine::Add))
        .chain(tombstones.iter().map(ActionLine::Remove)),
    )?;
    let actions = 2 + state.txns.len() + state.domains.len() + state.files.len() + tombstones.len();
    let bytes = encode(&lines)?;
    let size_in_bytes = bytes.len();
    let path = format!("{LOG_DIR}{:020}.checkpoint.parquet", segment.version);
    storage.put(&path, bytes).await?;
    let hint = serde_json::json!({
        "version": segment.version,
        "size": actions,
        "sizeInBytes": size_in_bytes,
        "numOfAddFiles": state.files.len(),
    });
    storage
        .put(
            &format!("{LOG_DIR}_last_checkpoint"),
            Bytes::from(hint.to_string()),
        )
        .await?;
    Ok(CheckpointInfo {
        version: segment.version,
        actions,
        add_files: state.files.len(),
        size_in_bytes,
    })
}

/// Encodes JSON action lines as a checkpoint Parquet file.
fn encode(lines: &str) -> Result<Bytes> {
    let schema = checkpoint_schema();
    let reader = arrow::json::ReaderBuilder::new(schema.clone())
        .with_batch_size(8192)
        .build(std::io::Cursor::new(lines.as_bytes()))?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut buffer = Vec::new();
    let failed = |e: parquet::errors::ParquetError| {
        Error::InvalidArgument(format!("cannot write the checkpoint: {e}"))
    };
    let mut writer = ArrowWriter::try_new(&mut buffer, schema, Some(properties)).map_err(failed)?;
    for batch in reader {
        writer.write(&batch?).map_err(failed)?;
    }
    writer.close().map_err(failed)?;
    Ok(Bytes::from(buffer))
}

fn string_map() -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "key_value",
            DataType::Struct(Fields::from(vec![
                Field::new("key", DataType::Utf8, false),
                Field::new("value", DataType::Utf8, true),
            ])),
            false,
        )),
        false,
    )
}

fn deletion_vector() -> DataType {
    DataType::Struct(Fields::from(vec![
        Field::new("storageType", DataType::Utf8, true),
        Field::new("pathOrInlineDv", DataType::Utf8, true),
        Field::new("offset", DataType::Int32, true),
        Field::new("sizeInBytes", DataType::Int32, true),
        Field::new("cardinality", DataType::Int64, true),
    ]))
}

fn strings() -> DataType {
    DataType::List(Arc::new(Field::new("element", DataType::Utf8, true)))
}

fn structure(fields: Vec<Field>) -> DataType {
    DataType::Struct(Fields::from(fields))
}

/// The classic checkpoint schema (stats as JSON).
pub fn checkpoint_schema() -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let long = |name: &str| Field::new(name, DataType::Int64, true);
    let flag = |name: &str| Field::new(name, DataType::Boolean, true);
    Arc::new(Schema::new(vec![
        Field::new(
            "txn",
            structure(vec![text("appId"), long("version"), long("lastUpdated")]),
            true,
        ),
        Field::new(
            "add",
            structure(vec![
                text("path"),
                Field::new("partitionValues", string_map(), true),
                long("size"),
                long("modificationTime"),
                flag("dataChange"),
                text("stats"),
                Field::new("tags", string_map(), true),
                Field::new("deletionVector", deletion_vector(), true),
                long("baseRowId"),
                long("defaultRowCommitVersion"),
                text("clusteringProvider"),
            ]),
            true,
        ),
        Field::new(
            "remove",
            structure(vec![
                text("path"),
                long("deletionTimestamp"),
                flag("dataChange"),
                flag("extendedFileMetadata"),
                Field::new("partitionValues", string_map(), true),
                long("size"),
                Field::new("deletionVector", deletion_vector(), true),
                long("baseRowId"),
                long("defaultRowCommitVersion"),
            ]),
            true,
        ),
        Field::new(
            "metaData",
            structure(vec![
                text("id"),
                text("name"),
                text("description"),
                Field::new(
                    "format",
                    structure(vec![
                        text("provider"),
                        Field::new("options", string_map(), true),
                    ]),
                    true,
                ),
                text("schemaString"),
                Field::new("partitionColumns", strings(), true),
                Field::new("configuration", string_map(), true),
                long("createdTime"),
            ]),
            true,
        ),
        Field::new(
            "protocol",
            structure(vec![
                Field::new("minReaderVersion", DataType::Int32, true),
                Field::new("minWriterVersion", DataType::Int32, true),
                Field::new("readerFeatures", strings(), true),
                Field::new("writerFeatures", strings(), true),
            ]),
            true,
        ),
        Field::new(
            "domainMetadata",
            structure(vec![text("domain"), text("configuration"), flag("removed")]),
            true,
        ),
    ]))
}

/// Whether committing `version` calls for a checkpoint: it is a multiple
/// of the interval.
pub fn is_due(version: i64, interval: i64) -> bool {
    version > 0 && interval > 0 && version % interval == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_intervals_parse() {
        assert_eq!(parse_interval_ms("interval 7 days"), Some(7 * 86_400_000));
        assert_eq!(parse_interval_ms("1 week"), Some(7 * 86_400_000));
        assert_eq!(parse_interval_ms("interval 36 hours"), Some(36 * 3_600_000));
        assert_eq!(
            parse_interval_ms("interval 1 day 2 hours"),
            Some(93_600_000)
        );
        assert_eq!(parse_interval_ms("soon"), None);
        assert_eq!(parse_interval_ms("interval"), None);
        assert_eq!(parse_interval_ms("7 fortnights"), None);
    }

    #[test]
    fn checkpoints_are_due_on_multiples_of_the_interval() {
        assert!(!is_due(0, 10));
        assert!(!is_due(9, 10));
        assert!(is_due(10, 10));
        assert!(is_due(3, 1));
    }
}
