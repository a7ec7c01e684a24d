//! What the fuzz targets (`engine/fuzz`, cargo-fuzz) and the mutation
//! smoke test (`tests/integration/fuzz_smoke.rs`) feed arbitrary bytes to:
//! every parser and codec that reads input from outside. Each must return
//! a value or an error for any input, never panic or abort.

use std::collections::{HashMap, HashSet};

use arrow::datatypes::{DataType, TimeUnit};

use crate::protocol::dv::decode_roaring_array;
use crate::protocol::{ActionBatch, Add, DeletionVectorDescriptor, DvLocation, Format, Metadata};

/// For the targets whose code contains decoder panics by design (uploads,
/// checkpoints): replaces libFuzzer's panic hook, which aborts on any
/// panic even one the engine catches, with a silent one. A panic escaping
/// the engine still unwinds out of the target's `extern "C"` entry and
/// aborts there, so only those are findings.
pub fn expect_contained_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}

/// A target: arbitrary bytes in, nothing out (only a panic would tell).
pub type Target = fn(&[u8]);

/// The targets, by name.
pub const TARGETS: [(&str, Target); 11] = [
    ("log_actions", log_actions),
    ("checkpoint", checkpoint),
    ("deletion_vector", deletion_vector),
    ("partition_value", partition_value),
    ("statistics", statistics),
    ("sharing_response", sharing_response),
    ("statement", statement),
    ("upload_csv", upload_csv),
    ("upload_json", upload_json),
    ("upload_parquet", upload_parquet),
    ("upload_arrow", upload_arrow),
];

/// A commit file's JSON lines.
pub fn log_actions(data: &[u8]) {
    let _ = ActionBatch::from_json_lines("_delta_log/00000000000000000000.json", data);
}

/// A Parquet checkpoint.
pub fn checkpoint(data: &[u8]) {
    let path = "_delta_log/00000000000000000010.checkpoint.parquet";
    let _ =
        crate::log::checkpoint::decode_parquet_actions(path, bytes::Bytes::copy_from_slice(data));
}

/// Deletion vectors: the first byte picks a roaring array (0), the bytes
/// of a DV file at a descriptor's offset (1) or a descriptor as JSON with
/// its inline bitmap (2).
pub fn deletion_vector(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let _ = decode_roaring_array(rest);
        }
        1 => {
            let descriptor = DeletionVectorDescriptor {
                storage_type: "u".into(),
                path_or_inline_dv: "ab^-aqEH.-t@S}K{vb[*k^".into(),
                offset: Some(1),
                size_in_bytes: rest.len().saturating_sub(5).try_into().unwrap_or(0),
                cardinality: 1,
            };
            let _ = descriptor.decode_stored(rest);
        }
        _ => {
            if let Ok(descriptor) = serde_json::from_slice::<DeletionVectorDescriptor>(rest) {
                let _ = descriptor.size();
                let _ = descriptor.stored_len();
                if let Ok(DvLocation::Inline(bitmap)) = descriptor.location() {
                    let _ = descriptor.decode_bitmap(&bitmap);
                }
            }
        }
    }
}

/// A partition value as the log serializes it; the first byte picks the
/// column type.
pub fn partition_value(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let types = [
        DataType::Boolean,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Float32,
        DataType::Float64,
        DataType::Utf8,
        DataType::Binary,
        DataType::Date32,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        DataType::Timestamp(TimeUnit::Microsecond, None),
        DataType::Decimal128(38, 10),
        DataType::Decimal128(5, 2),
    ];
    let data_type = &types[usize::from(kind) % types.len()];
    let text = String::from_utf8_lossy(rest);
    let _ = wavelake_engine::partition::parse_partition_value(Some(&text), data_type);
}

const STATISTICS_SCHEMA: &str = r#"{"type":"struct","fields":[
  {"name":"l","type":"long","nullable":true,"metadata":{}},
  {"name":"i","type":"integer","nullable":true,"metadata":{}},
  {"name":"d","type":"double","nullable":true,"metadata":{}},
  {"name":"s","type":"string","nullable":true,"metadata":{}},
  {"name":"b","type":"boolean","nullable":true,"metadata":{}},
  {"name":"dt","type":"date","nullable":true,"metadata":{}},
  {"name":"ts","type":"timestamp","nullable":true,"metadata":{}},
  {"name":"tn","type":"timestamp_ntz","nullable":true,"metadata":{}},
  {"name":"dec","type":"decimal(10,2)","nullable":true,"metadata":{}},
  {"name":"st","type":{"type":"struct","fields":[
    {"name":"x","type":"long","nullable":true,"metadata":{}}]},"nullable":true,"metadata":{}}]}"#;

/// A file's statistics (`add.stats`), read for pruning over columns of
/// every type.
pub fn statistics(data: &[u8]) {
    let metadata = Metadata {
        id: "fuzz".into(),
        name: None,
        description: None,
        format: Format::default(),
        schema_string: STATISTICS_SCHEMA.into(),
        partition_columns: vec![],
        created_time: None,
        configuration: HashMap::new(),
    };
    let Ok(target) = crate::target::WriteTarget::new(&metadata) else {
        return;
    };
    let add = Add {
        path: "part-0.parquet".into(),
        partition_values: HashMap::new(),
        size: 1,
        modification_time: 0,
        data_change: true,
        stats: Some(String::from_utf8_lossy(data).into_owned()),
        tags: None,
        deletion_vector: None,
        base_row_id: None,
        default_row_commit_version: None,
        clustering_provider: None,
    };
    let columns: HashSet<String> = ["l", "i", "d", "s", "b", "dt", "ts", "tn", "dec", "st"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    let _ = crate::stats::FilesStatistics::new(&[&add], &target.schemas, &[vec![]], &columns);
}

/// A Delta Sharing query response (NDJSON from a server anywhere).
pub fn sharing_response(data: &[u8]) {
    let _ = wavelake_engine::sharing::protocol::parse_query_response(data, 3);
}

/// The statement classifier.
pub fn statement(data: &[u8]) {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(statement) = wavelake_engine::statement::Statement::parse(sql) {
        let _ = statement.access();
        let _ = statement.writes();
    }
}

/// A table's columns an upload is decoded against, besides the schema
/// inferred from the upload itself: every type a conversion can fail on.
fn upload_table_schema() -> arrow::datatypes::SchemaRef {
    use arrow::datatypes::{Field, Schema};
    std::sync::Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("amount", DataType::Decimal128(10, 2), true),
        Field::new("ok", DataType::Boolean, true),
        Field::new("day", DataType::Date32, true),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("score", DataType::Float64, true),
    ]))
}

/// One upload: its schema inferred and every batch decoded with it, then
/// decoded again against a table's schema.
fn upload(data: &[u8], format: crate::ingest::UploadFormat) {
    use crate::ingest::{decode, infer_schema};
    let source = bytes::Bytes::copy_from_slice(data);
    if let Ok(batches) = infer_schema(&source, format).and_then(|s| decode(&source, format, s)) {
        batches.for_each(drop);
    }
    if let Ok(batches) = decode(&source, format, upload_table_schema()) {
        batches.for_each(drop);
    }
}

/// A CSV upload (with a header line).
pub fn upload_csv(data: &[u8]) {
    upload(data, crate::ingest::UploadFormat::Csv);
}

/// A newline-delimited JSON upload.
pub fn upload_json(data: &[u8]) {
    upload(data, crate::ingest::UploadFormat::Json);
}

/// A Parquet upload.
pub fn upload_parquet(data: &[u8]) {
    upload(data, crate::ingest::UploadFormat::Parquet);
}

/// An Arrow IPC stream upload.
pub fn upload_arrow(data: &[u8]) {
    upload(data, crate::ingest::UploadFormat::Arrow);
}
