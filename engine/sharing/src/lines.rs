//! The lines of `query` and `changes` answers (newline-delimited JSON) in
//! both response formats: `parquet`, where the server describes each file
//! itself, and `delta`, where it hands out the log's actions with their
//! paths replaced by presigned URLs.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use wavelake_kernel::protocol::{Add, AddCdc, Format, Metadata, Protocol, Remove};

/// Partition values by column name (`null` for a null value).
pub type PartitionValues = HashMap<String, Option<String>>;

/// One line of an answer: `{"protocol": …}`, `{"metaData": …}`,
/// `{"file": …}`, the change feed's `{"add" | "cdf" | "remove": …}` or
/// `{"endStreamAction": …}`. Exactly one field is set; a line of a kind
/// this version does not know reads as one with none set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseLine<'a> {
    /// The table's protocol (first line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<ProtocolLine>,
    /// The table's metadata (second line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_data: Option<MetadataLine>,
    /// A data file of a `query` answer, or a change in the `delta` format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileLine<'a>>,
    /// A file added (`changes`, `parquet` format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add: Option<ParquetFile<'a>>,
    /// A change data file (`changes`, `parquet` format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdf: Option<ParquetFile<'a>>,
    /// A file removed (`changes`, `parquet` format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove: Option<ParquetFile<'a>>,
    /// The last line, when the client asked for a refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_stream_action: Option<EndStream>,
}

impl<'a> ResponseLine<'a> {
    /// A `protocol` line.
    pub fn protocol(line: ProtocolLine) -> Self {
        Self {
            protocol: Some(line),
            ..Self::default()
        }
    }

    /// A `metaData` line.
    pub fn metadata(line: MetadataLine) -> Self {
        Self {
            meta_data: Some(line),
            ..Self::default()
        }
    }

    /// A `file` line.
    pub fn file(line: FileLine<'a>) -> Self {
        Self {
            file: Some(line),
            ..Self::default()
        }
    }

    /// An `endStreamAction` line.
    pub fn end_stream(end: EndStream) -> Self {
        Self {
            end_stream_action: Some(end),
            ..Self::default()
        }
    }

    /// The line as one line of JSON (without the newline).
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string(self)
    }
}

/// The `protocol` line: the table's protocol itself (`delta` format), or
/// the reader version the `parquet` format's lines need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, rename_all_fields = "camelCase")]
pub enum ProtocolLine {
    /// The `delta` format.
    Delta {
        /// The table's protocol action.
        delta_protocol: Protocol,
    },
    /// The `parquet` format.
    Parquet {
        /// Always 1.
        min_reader_version: i32,
    },
}

impl ProtocolLine {
    /// The protocol a reader must honour: the table's, or (for the
    /// `parquet` format, which hands out plain Parquet files) none beyond
    /// the first versions.
    pub fn into_protocol(self) -> Protocol {
        match self {
            Self::Delta { delta_protocol } => delta_protocol,
            Self::Parquet { .. } => Protocol {
                min_reader_version: 1,
                min_writer_version: 2,
                reader_features: None,
                writer_features: None,
            },
        }
    }
}

/// The `metaData` line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged, rename_all_fields = "camelCase")]
pub enum MetadataLine {
    /// The `delta` format: the table's metadata action.
    Delta {
        /// The metadata action.
        delta_metadata: Metadata,
        /// The version answered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<i64>,
    },
    /// The `parquet` format.
    Parquet(ParquetMetadata),
}

impl MetadataLine {
    /// The table's metadata as a log action.
    pub fn into_metadata(self) -> Metadata {
        match self {
            Self::Delta { delta_metadata, .. } => delta_metadata,
            Self::Parquet(line) => Metadata {
                id: line.id,
                name: line.name,
                description: line.description,
                format: line.format,
                schema_string: line.schema_string,
                partition_columns: line.partition_columns,
                created_time: None,
                configuration: line.configuration,
            },
        }
    }
}

/// The metadata of the `parquet` format: the action's fields (schema with
/// logical names), the version answered and the table's size.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParquetMetadata {
    /// The table's id.
    pub id: String,
    /// Its name.
    #[serde(default)]
    pub name: Option<String>,
    /// Its description.
    #[serde(default)]
    pub description: Option<String>,
    /// The data file format.
    #[serde(default)]
    pub format: Format,
    /// The schema (Delta's JSON schema string).
    pub schema_string: String,
    /// The partition columns.
    #[serde(default)]
    pub partition_columns: Vec<String>,
    /// Table properties.
    #[serde(default)]
    pub configuration: HashMap<String, Option<String>>,
    /// The version answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// How many files the version has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_files: Option<i64>,
    /// Their bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
}

/// A `file` line in either format.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FileLine<'a> {
    /// The `delta` format: a log action.
    Delta(Box<DeltaFile>),
    /// The `parquet` format.
    Parquet(ParquetFile<'a>),
}

/// A file as the `parquet` format describes it. Borrowed fields let the
/// server write a line per file of a large table without copying them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParquetFile<'a> {
    /// The presigned URL it is read from.
    pub url: String,
    /// Its id, stable across answers.
    pub id: String,
    /// Its partition values, by logical column name.
    #[serde(default)]
    pub partition_values: Cow<'a, PartitionValues>,
    /// Its bytes.
    pub size: i64,
    /// Its statistics (Delta's JSON statistics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Cow<'a, str>>,
    /// When the URL expires (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_timestamp: Option<i64>,
    /// The commit that made the change (`changes` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// That commit's time (`changes` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

/// A file as the `delta` format hands it out: a log action whose path is
/// the presigned URL.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaFile {
    /// The file's id, stable across answers.
    pub id: String,
    /// The action.
    pub delta_single_action: SingleAction,
    /// The commit that made the change (`changes` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// That commit's time (`changes` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// When the URL expires (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_timestamp: Option<i64>,
}

/// One log action: exactly one field is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SingleAction {
    /// A data file added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add: Option<Add>,
    /// A change data file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdc: Option<AddCdc>,
    /// A data file removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove: Option<Remove>,
}

/// The last line of a `query` answer (`{"endStreamAction": …}`), when the
/// client asked for a refresh token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndStream {
    /// The token that fetches fresh URLs for the same files.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// When the first URL of the answer expires (ms since the epoch).
    #[serde(default)]
    pub min_url_expiration_timestamp: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_back_as_they_were_written() {
        let file = ParquetFile {
            url: "https://host/a.parquet?sig=1".into(),
            id: "f1".into(),
            partition_values: Cow::Owned(HashMap::from([("day".into(), None)])),
            size: 10,
            stats: Some(Cow::Borrowed("{\"numRecords\":2}")),
            expiration_timestamp: Some(2000),
            version: None,
            timestamp: None,
        };
        let text = ResponseLine::file(FileLine::Parquet(file))
            .to_json()
            .unwrap();
        assert_eq!(
            text,
            r#"{"file":{"url":"https://host/a.parquet?sig=1","id":"f1","partitionValues":{"day":null},"size":10,"stats":"{\"numRecords\":2}","expirationTimestamp":2000}}"#
        );
        let back: ResponseLine = serde_json::from_str(&text).unwrap();
        let Some(FileLine::Parquet(file)) = back.file else {
            panic!("{back:?}")
        };
        assert_eq!(file.size, 10);
        assert_eq!(file.partition_values.get("day"), Some(&None));

        let protocol = ResponseLine::protocol(ProtocolLine::Parquet {
            min_reader_version: 1,
        });
        assert_eq!(
            protocol.to_json().unwrap(),
            r#"{"protocol":{"minReaderVersion":1}}"#
        );
    }

    #[test]
    fn a_line_of_an_unknown_kind_reads_as_empty() {
        let line: ResponseLine = serde_json::from_str(r#"{"futureKind":{"x":1}}"#).unwrap();
        assert!(line.protocol.is_none() && line.file.is_none() && line.meta_data.is_none());
    }
}
