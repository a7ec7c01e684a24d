//! The actions of a Delta log (`add`, `remove`, `metaData`, `protocol`, ...),
//! as they appear in JSON commits and checkpoints.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::dv::DeletionVectorDescriptor;

/// A data file that is part of the table (`add` action).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Add {
    /// URI of the file, relative to the table root or absolute, percent-encoded.
    pub path: String,
    /// Partition column (physical name) to serialized value; `None` is null.
    #[serde(default)]
    pub partition_values: HashMap<String, Option<String>>,
    /// Size of the file in bytes.
    pub size: i64,
    /// Milliseconds since the epoch at which the file was written.
    #[serde(default)]
    pub modification_time: i64,
    /// False when the action only rearranges data (compaction).
    #[serde(default)]
    pub data_change: bool,
    /// Column statistics as a JSON document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<String>,
    /// Free-form tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<HashMap<String, Option<String>>>,
    /// Rows of the file that are deleted (merge-on-read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_vector: Option<DeletionVectorDescriptor>,
    /// First row id of the file (row tracking).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_row_id: Option<i64>,
    /// Commit version that added rows without their own commit version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_row_commit_version: Option<i64>,
    /// Name of the clustering implementation that wrote the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clustering_provider: Option<String>,
}

impl Add {
    /// Key under which log replay reconciles this file: its path plus the
    /// unique id of its deletion vector.
    pub fn replay_key(&self) -> FileKey {
        FileKey::new(&self.path, self.deletion_vector.as_ref())
    }
}

/// A data file logically removed from the table (`remove` action).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Remove {
    /// URI of the removed file, as in its `add`.
    pub path: String,
    /// Milliseconds since the epoch at which the file was removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<i64>,
    /// False when the action only rearranges data.
    #[serde(default)]
    pub data_change: bool,
    /// Whether the fields below are present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_file_metadata: Option<bool>,
    /// Partition values of the removed file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_values: Option<HashMap<String, Option<String>>>,
    /// Size of the removed file in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// Statistics of the removed file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<String>,
    /// Free-form tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<HashMap<String, Option<String>>>,
    /// The deletion vector the removed `add` carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_vector: Option<DeletionVectorDescriptor>,
    /// First row id of the file (row tracking).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_row_id: Option<i64>,
    /// Commit version that added rows without their own commit version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_row_commit_version: Option<i64>,
}

impl Remove {
    /// Key under which log replay reconciles this file.
    pub fn replay_key(&self) -> FileKey {
        FileKey::new(&self.path, self.deletion_vector.as_ref())
    }

    /// The `add` the file was, to read its rows (less those its deletion
    /// vector marked) like any data file's.
    pub fn as_add(&self) -> Add {
        Add {
            path: self.path.clone(),
            partition_values: self.partition_values.clone().unwrap_or_default(),
            size: self.size.unwrap_or_default(),
            modification_time: 0,
            data_change: true,
            stats: self.stats.clone(),
            tags: None,
            deletion_vector: self.deletion_vector.clone(),
            base_row_id: None,
            default_row_commit_version: None,
            clustering_provider: None,
        }
    }
}

/// The identity of a logical file during log replay: a canonical path plus
/// the deletion vector's unique id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileKey {
    path: String,
    dv_id: Option<String>,
}

impl FileKey {
    fn new(path: &str, dv: Option<&DeletionVectorDescriptor>) -> Self {
        Self {
            path: canonical_path(path),
            dv_id: dv.map(DeletionVectorDescriptor::unique_id),
        }
    }
}

/// Canonical form of a path for reconciliation: percent-decoded, so that
/// `a%20b` and `a b` name the same file. Absolute paths keep their scheme.
pub fn canonical_path(path: &str) -> String {
    percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned()
}

/// The file format of the table's data files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Format {
    /// Always `parquet` for tables this engine reads.
    pub provider: String,
    /// Format options.
    #[serde(default)]
    pub options: HashMap<String, Option<String>>,
}

impl Default for Format {
    fn default() -> Self {
        Self {
            provider: "parquet".to_owned(),
            options: HashMap::new(),
        }
    }
}

/// The table's metadata: schema, partitioning and properties (`metaData`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// Unique id of the table.
    pub id: String,
    /// User-facing name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// User-facing description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Data file format.
    #[serde(default)]
    pub format: Format,
    /// The schema as Delta's JSON schema string (empty when a broken
    /// writer left it out; the snapshot then refuses the table).
    #[serde(default)]
    pub schema_string: String,
    /// Names of the partition columns (logical names), in order.
    #[serde(default)]
    pub partition_columns: Vec<String>,
    /// Milliseconds since the epoch at which the table was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_time: Option<i64>,
    /// Table properties (`delta.*` and user properties).
    #[serde(default)]
    pub configuration: HashMap<String, Option<String>>,
}

impl Metadata {
    /// A table property's value, if set.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.configuration.get(key).and_then(|v| v.as_deref())
    }
}

/// Protocol versions and table features required to read and write
/// (`protocol`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Protocol {
    /// Minimum reader protocol version.
    pub min_reader_version: i32,
    /// Minimum writer protocol version.
    pub min_writer_version: i32,
    /// Reader features (reader version 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reader_features: Option<Vec<String>>,
    /// Writer features (writer version 7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer_features: Option<Vec<String>>,
}

impl Protocol {
    /// Whether the table names `feature` among its reader features.
    pub fn has_reader_feature(&self, feature: &str) -> bool {
        self.reader_features
            .as_ref()
            .is_some_and(|f| f.iter().any(|x| x == feature))
    }

    /// Whether the table names `feature` among its writer features.
    pub fn has_writer_feature(&self, feature: &str) -> bool {
        self.writer_features
            .as_ref()
            .is_some_and(|f| f.iter().any(|x| x == feature))
    }
}

/// The latest version an application committed (`txn`), for idempotent writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Txn {
    /// The application's id.
    pub app_id: String,
    /// The application's own version number.
    pub version: i64,
    /// Milliseconds since the epoch of the commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<i64>,
}

/// A change data file (`cdc`): rows changed by one commit, with their kind
/// in a `_change_type` column (`insert`, `delete`, `update_preimage`,
/// `update_postimage`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddCdc {
    /// URI of the file, relative to the table root or absolute, percent-encoded.
    pub path: String,
    /// Partition column (physical name) to serialized value; `None` is null.
    #[serde(default)]
    pub partition_values: HashMap<String, Option<String>>,
    /// Size of the file in bytes.
    pub size: i64,
    /// Always false: change files do not change the table's data.
    #[serde(default)]
    pub data_change: bool,
    /// Free-form tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<HashMap<String, Option<String>>>,
}

impl AddCdc {
    /// The change file a file writer wrote (and described as an `add`).
    pub fn from_written(file: Add) -> Self {
        Self {
            path: file.path,
            partition_values: file.partition_values,
            size: file.size,
            data_change: false,
            tags: None,
        }
    }

    /// The change file as an `add`, to read it like a data file.
    pub fn as_add(&self) -> Add {
        Add {
            path: self.path.clone(),
            partition_values: self.partition_values.clone(),
            size: self.size,
            modification_time: 0,
            data_change: false,
            stats: None,
            tags: None,
            deletion_vector: None,
            base_row_id: None,
            default_row_commit_version: None,
            clustering_provider: None,
        }
    }
}

/// Configuration of a named metadata domain (`domainMetadata`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainMetadata {
    /// The domain's name.
    pub domain: String,
    /// The domain's configuration, usually JSON.
    pub configuration: String,
    /// True when this action removes the domain.
    #[serde(default)]
    pub removed: bool,
}

/// A v2 checkpoint's pointer to a file of more actions (`sidecar`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sidecar {
    /// Path of the sidecar, relative to `_delta_log/_sidecars/`.
    pub path: String,
    /// Size of the sidecar in bytes.
    pub size_in_bytes: i64,
    /// Milliseconds since the epoch of the sidecar's creation.
    #[serde(default)]
    pub modification_time: i64,
}

/// A v2 checkpoint's header (`checkpointMetadata`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointMetadata {
    /// The version the checkpoint describes.
    pub version: i64,
}

/// One line of a JSON commit: exactly one of the fields is set for a valid
/// action; unknown action kinds are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionLine {
    /// An `add` action.
    pub add: Option<Add>,
    /// A `remove` action.
    pub remove: Option<Remove>,
    /// A `cdc` action.
    pub cdc: Option<AddCdc>,
    /// A `metaData` action.
    pub meta_data: Option<Metadata>,
    /// A `protocol` action.
    pub protocol: Option<Protocol>,
    /// A `txn` action.
    pub txn: Option<Txn>,
    /// A `commitInfo` action, kept as free-form JSON.
    pub commit_info: Option<serde_json::Map<String, serde_json::Value>>,
    /// A `domainMetadata` action.
    pub domain_metadata: Option<DomainMetadata>,
    /// A `sidecar` action (v2 checkpoints only).
    pub sidecar: Option<Sidecar>,
    /// A `checkpointMetadata` action (v2 checkpoints only).
    pub checkpoint_metadata: Option<CheckpointMetadata>,
}

/// All actions of one commit or checkpoint part, grouped by kind.
#[derive(Debug, Default, Clone)]
pub struct ActionBatch {
    /// `add` actions.
    pub adds: Vec<Add>,
    /// `remove` actions.
    pub removes: Vec<Remove>,
    /// `cdc` actions.
    pub cdcs: Vec<AddCdc>,
    /// The `metaData` action, if any.
    pub metadata: Option<Metadata>,
    /// The `protocol` action, if any.
    pub protocol: Option<Protocol>,
    /// `txn` actions.
    pub txns: Vec<Txn>,
    /// The `commitInfo` action, if any.
    pub commit_info: Option<serde_json::Map<String, serde_json::Value>>,
    /// `domainMetadata` actions.
    pub domains: Vec<DomainMetadata>,
    /// `sidecar` actions.
    pub sidecars: Vec<Sidecar>,
    /// The `checkpointMetadata` action, if any.
    pub checkpoint_metadata: Option<CheckpointMetadata>,
}

/// The longest action line a log file may hold. Real actions are far
/// smaller (an `add` with statistics for a thousand columns is about
/// 100 KiB); a longer line is refused before it is parsed, so that a
/// corrupt or hostile log cannot make a reader parse hundreds of MB.
pub const MAX_ACTION_LINE_BYTES: usize = 64 << 20;

impl ActionBatch {
    /// Adds one parsed line to the batch.
    pub fn push(&mut self, line: ActionLine) {
        if let Some(a) = line.add {
            self.adds.push(a);
        }
        if let Some(r) = line.remove {
            self.removes.push(r);
        }
        if let Some(c) = line.cdc {
            self.cdcs.push(c);
        }
        if line.meta_data.is_some() {
            self.metadata = line.meta_data;
        }
        if line.protocol.is_some() {
            self.protocol = line.protocol;
        }
        if let Some(t) = line.txn {
            self.txns.push(t);
        }
        if line.commit_info.is_some() {
            self.commit_info = line.commit_info;
        }
        if let Some(d) = line.domain_metadata {
            self.domains.push(d);
        }
        if let Some(s) = line.sidecar {
            self.sidecars.push(s);
        }
        if line.checkpoint_metadata.is_some() {
            self.checkpoint_metadata = line.checkpoint_metadata;
        }
    }

    /// Parses newline-delimited JSON actions (a commit file or a JSON
    /// checkpoint). Blank lines are allowed; anything else that is not a
    /// JSON object is an error naming `path` and the line number.
    pub fn from_json_lines(path: &str, bytes: &[u8]) -> crate::Result<Self> {
        let mut batch = Self::default();
        for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
            if line.len() > MAX_ACTION_LINE_BYTES {
                return Err(crate::Error::LimitExceeded {
                    what: "a Delta log action".into(),
                    limit: format!("{MAX_ACTION_LINE_BYTES} bytes"),
                    detail: format!("line {} of {path} has {} bytes", index + 1, line.len()),
                });
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let parsed: ActionLine = serde_json::from_slice(line)
                .map_err(|e| crate::Error::corrupt(path, format!("line {}: {e}", index + 1)))?;
            batch.push(parsed);
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_action_kind_and_ignores_unknown_ones() {
        let log = br#"{"commitInfo":{"timestamp":1,"operation":"WRITE"}}
{"protocol":{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["deletionVectors"],"writerFeatures":["deletionVectors"]}}
{"metaData":{"id":"x","format":{"provider":"parquet","options":{}},"schemaString":"{\"type\":\"struct\",\"fields\":[]}","partitionColumns":[],"configuration":{}}}
{"add":{"path":"a%20b.parquet","partitionValues":{"p":null},"size":10,"modificationTime":1,"dataChange":true}}
{"remove":{"path":"c.parquet","deletionTimestamp":5,"dataChange":true}}
{"txn":{"appId":"app","version":3}}
{"cdc":{"path":"x","partitionValues":{},"size":1,"dataChange":false}}

{"domainMetadata":{"domain":"d","configuration":"{}","removed":false}}
"#;
        let batch = ActionBatch::from_json_lines("0.json", log).expect("parses");
        assert_eq!(batch.adds.len(), 1);
        assert_eq!(batch.adds[0].partition_values.get("p"), Some(&None));
        assert_eq!(batch.removes.len(), 1);
        assert_eq!(batch.cdcs[0].path, "x");
        assert_eq!(batch.txns[0].version, 3);
        assert!(
            batch
                .protocol
                .as_ref()
                .is_some_and(|p| p.has_reader_feature("deletionVectors"))
        );
        assert_eq!(batch.domains.len(), 1);
        assert!(batch.commit_info.is_some());
        assert_eq!(canonical_path(&batch.adds[0].path), "a b.parquet");
    }

    #[test]
    fn malformed_line_names_file_and_line() {
        let err = ActionBatch::from_json_lines("00003.json", b"{\"add\":{}}\n{not json")
            .expect_err("must fail");
        let text = err.to_string();
        assert!(text.contains("00003.json"), "{text}");
        assert!(text.contains("line 1"), "{text}");
    }
}
