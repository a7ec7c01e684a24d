//! The Delta Sharing REST protocol's messages, parsed without IO: profiles,
//! listings, and `query` responses (both formats) turned into the state of
//! a table whose files are presigned URLs.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::log::TableState;
use crate::protocol::{Add, Metadata, Protocol};
use crate::{Error, Result};

/// A recipient's profile (the `.share` file): where the server is and the
/// token to show it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SharingProfile {
    /// Version of the profile format (1).
    #[serde(default = "one")]
    pub share_credentials_version: i64,
    /// The server's Delta Sharing endpoint, `https://host/delta-sharing/`.
    pub endpoint: String,
    /// The bearer token.
    pub bearer_token: String,
    /// When the token expires (ISO 8601), if it does.
    #[serde(default)]
    pub expiration_time: Option<String>,
}

fn one() -> i64 {
    1
}

impl SharingProfile {
    /// Parses a profile file's JSON.
    pub fn parse(text: &str) -> Result<Self> {
        let profile: Self = serde_json::from_str(text)
            .map_err(|e| Error::InvalidArgument(format!("not a Delta Sharing profile: {e}")))?;
        if profile.share_credentials_version > 1 {
            return Err(Error::UnsupportedFeature {
                feature: format!(
                    "Delta Sharing profile version {}",
                    profile.share_credentials_version
                ),
            });
        }
        Ok(profile)
    }
}

/// One table a recipient can read (an item of the table listings).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SharedTableName {
    /// The share.
    pub share: String,
    /// The schema inside it.
    pub schema: String,
    /// The table's name.
    pub name: String,
}

impl SharedTableName {
    /// Parses `share.schema.table`.
    pub fn parse(text: &str) -> Result<Self> {
        let mut parts = text.splitn(3, '.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(share), Some(schema), Some(name))
                if !share.is_empty() && !schema.is_empty() && !name.is_empty() =>
            {
                Ok(Self {
                    share: share.to_owned(),
                    schema: schema.to_owned(),
                    name: name.to_owned(),
                })
            }
            _ => Err(Error::InvalidArgument(format!(
                "a shared table is named share.schema.table, not {text:?}"
            ))),
        }
    }

    /// `share.schema.table`.
    pub fn qualified(&self) -> String {
        format!("{}.{}.{}", self.share, self.schema, self.name)
    }
}

/// A page of a listing (`items` and the token of the next page).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items of this page.
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
    /// Where the next page starts, if there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

impl<T> Page<T> {
    /// The one page of a whole listing.
    pub fn whole(items: Vec<T>) -> Self {
        Self {
            items,
            next_page_token: None,
        }
    }
}

/// A share in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareItem {
    /// Its name.
    pub name: String,
}

/// The answer of `GET /shares/{share}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareResponse {
    /// The share.
    pub share: ShareItem,
}

/// An error answer: `{"errorCode", "message"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorResponse {
    /// The protocol's code (`RESOURCE_DOES_NOT_EXIST`, …).
    pub error_code: String,
    /// What went wrong.
    pub message: String,
}

/// One commit of the `history` extension (Wavelake's, beyond the
/// protocol).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryItem {
    /// The version it made.
    pub version: i64,
    /// When, in milliseconds since the epoch.
    pub timestamp: Option<i64>,
    /// The operation.
    pub operation: Option<String>,
    /// Its parameters.
    pub operation_parameters: Option<Value>,
    /// Its metrics.
    pub operation_metrics: Option<Value>,
    /// The engine that wrote it.
    pub engine_info: Option<String>,
}

impl From<HistoryItem> for crate::CommitEntry {
    fn from(item: HistoryItem) -> Self {
        Self {
            version: item.version,
            timestamp: item.timestamp,
            operation: item.operation,
            parameters: item.operation_parameters.filter(|v| !v.is_null()),
            metrics: item.operation_metrics.filter(|v| !v.is_null()),
            engine_info: item.engine_info,
            commit_info: None,
        }
    }
}

impl From<crate::CommitEntry> for HistoryItem {
    fn from(commit: crate::CommitEntry) -> Self {
        Self {
            version: commit.version,
            timestamp: commit.timestamp,
            operation: commit.operation,
            operation_parameters: commit.parameters,
            operation_metrics: commit.metrics,
            engine_info: commit.engine_info,
        }
    }
}

/// A schema in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaItem {
    /// Its name.
    pub name: String,
    /// Its share.
    pub share: String,
}

/// A table as a `query` response describes it: its state, with each data
/// file's path standing for the presigned URL it is read from.
#[derive(Debug, Clone)]
pub struct SharedFiles {
    /// Protocol, metadata and files (paths are keys of `urls`).
    pub state: TableState,
    /// File path to presigned URL.
    pub urls: HashMap<String, String>,
    /// When the first of the URLs expires (milliseconds since the epoch).
    pub expires_at: Option<i64>,
    /// The token that fetches fresh URLs for the same files (the
    /// `endStreamAction`'s `refreshToken`), when the server gave one.
    pub refresh_token: Option<String>,
}

/// The last line of a `query` response (`{"endStreamAction": …}`), when
/// the client asked for a refresh token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndStream {
    /// The token that fetches fresh URLs for the same files.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// When the first URL of the response expires (ms since the epoch).
    #[serde(default)]
    pub min_url_expiration_timestamp: Option<i64>,
}

/// The line that carries an [`EndStream`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndStreamLine {
    /// The action.
    pub end_stream_action: EndStream,
}

/// The key the deletion-vector file presigned as `url` is read by: the URL
/// without its query (the signature) or scheme. It stays the same across
/// refreshes, and the vectors of many data files stored in one file share
/// it, so a scan fetches them together.
pub fn deletion_vector_key(url: &str) -> String {
    let unsigned = url.split(['?', '#']).next().unwrap_or(url);
    let unschemed = unsigned
        .split_once("://")
        .map_or(unsigned, |(_, rest)| rest);
    format!("deletion-vectors/{unschemed}")
}

/// A file line of the parquet response format.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ParquetFile {
    url: String,
    id: String,
    #[serde(default)]
    partition_values: HashMap<String, Option<String>>,
    size: i64,
    #[serde(default)]
    stats: Option<String>,
    #[serde(default)]
    expiration_timestamp: Option<i64>,
}

/// A file line of the delta response format.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeltaFile {
    id: String,
    delta_single_action: DeltaAction,
    #[serde(default)]
    expiration_timestamp: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct DeltaAction {
    add: Option<Add>,
}

fn from_json<T: serde::de::DeserializeOwned>(value: Value, line: usize) -> Result<T> {
    serde_json::from_value(value).map_err(|e| Error::Corrupt {
        path: "Delta Sharing query response".into(),
        reason: format!("line {line}: {e}"),
    })
}

/// Parses a `query` response (newline-delimited JSON in either format) of
/// the table at `version` (the `Delta-Table-Version` header).
pub fn parse_query_response(body: &[u8], version: i64) -> Result<SharedFiles> {
    let bad = |line: usize, reason: String| Error::Corrupt {
        path: "Delta Sharing query response".into(),
        reason: format!("line {line}: {reason}"),
    };
    let mut protocol = None;
    let mut metadata = None;
    let mut files = Vec::new();
    let mut urls = HashMap::new();
    let mut expires_at: Option<i64> = None;
    let mut refresh_token = None;
    let mut expire_by = |expires: i64| {
        expires_at = Some(expires_at.map_or(expires, |e: i64| e.min(expires)));
    };
    for (index, line) in body.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let number = index + 1;
        let mut value: Value =
            serde_json::from_slice(line).map_err(|e| bad(number, e.to_string()))?;
        if let Some(line) = value.get_mut("protocol").map(Value::take) {
            protocol = Some(match line.get("deltaProtocol") {
                Some(delta) => from_json(delta.clone(), number)?,
                // The parquet format: no reader features to honour.
                None => Protocol {
                    min_reader_version: 1,
                    min_writer_version: 2,
                    reader_features: None,
                    writer_features: None,
                },
            });
        } else if let Some(line) = value.get_mut("metaData").map(Value::take) {
            metadata = Some(match line.get("deltaMetadata") {
                Some(delta) => from_json::<Metadata>(delta.clone(), number)?,
                None => from_json::<Metadata>(line, number)?,
            });
        } else if let Some(line) = value.get_mut("file").map(Value::take) {
            let (add, url, expires) = if line.get("deltaSingleAction").is_some() {
                let file: DeltaFile = from_json(line, number)?;
                let Some(mut add) = file.delta_single_action.add else {
                    return Err(bad(number, "a file line without an add action".into()));
                };
                let url = std::mem::replace(&mut add.path, file.id);
                if let Some(dv) = &mut add.deletion_vector
                    && dv.storage_type == "p"
                {
                    let key = deletion_vector_key(&dv.path_or_inline_dv);
                    let dv_url = std::mem::replace(&mut dv.path_or_inline_dv, key.clone());
                    urls.insert(key, dv_url);
                }
                (add, url, file.expiration_timestamp)
            } else {
                let file: ParquetFile = from_json(line, number)?;
                let add = Add {
                    path: file.id,
                    partition_values: file.partition_values,
                    size: file.size,
                    modification_time: 0,
                    data_change: true,
                    stats: file.stats,
                    tags: None,
                    deletion_vector: None,
                    base_row_id: None,
                    default_row_commit_version: None,
                    clustering_provider: None,
                };
                (add, file.url, file.expiration_timestamp)
            };
            if let Some(expires) = expires {
                expire_by(expires);
            }
            urls.insert(add.path.clone(), url);
            files.push(add);
        } else if let Some(line) = value.get_mut("endStreamAction").map(Value::take) {
            let end: EndStream = from_json(line, number)?;
            refresh_token = end.refresh_token.filter(|t| !t.is_empty());
            if let Some(expires) = end.min_url_expiration_timestamp {
                expire_by(expires);
            }
        }
        // Other lines (end-of-stream markers, future kinds) are skipped.
    }
    let protocol = protocol.ok_or_else(|| bad(1, "no protocol line".into()))?;
    let metadata = metadata.ok_or_else(|| bad(2, "no metaData line".into()))?;
    crate::protocol::features::ensure_readable(&protocol)?;
    Ok(SharedFiles {
        state: TableState {
            version,
            protocol,
            metadata,
            files,
            txns: HashMap::new(),
            domains: HashMap::new(),
            timestamp: None,
        },
        urls,
        expires_at,
        refresh_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_and_names_parse_or_say_why_not() {
        let profile = SharingProfile::parse(
            r#"{"shareCredentialsVersion":1,"endpoint":"https://h/delta-sharing/","bearerToken":"t"}"#,
        )
        .expect("parses");
        assert_eq!(profile.bearer_token, "t");
        assert!(SharingProfile::parse("{}").is_err());
        let newer = r#"{"shareCredentialsVersion":9,"endpoint":"e","bearerToken":"t"}"#;
        assert!(matches!(
            SharingProfile::parse(newer),
            Err(Error::UnsupportedFeature { .. })
        ));
        let name = SharedTableName::parse("s.sch.t.with.dots").expect("parses");
        assert_eq!(name.name, "t.with.dots");
        assert!(SharedTableName::parse("s.t").is_err());
    }

    #[test]
    fn both_response_formats_become_table_states() {
        let parquet = br#"{"protocol":{"minReaderVersion":1}}
{"metaData":{"id":"m","format":{"provider":"parquet"},"schemaString":"{\"type\":\"struct\",\"fields\":[{\"name\":\"id\",\"type\":\"long\",\"nullable\":true,\"metadata\":{}}]}","partitionColumns":[],"configuration":{},"version":3}}
{"file":{"url":"https://s3/a.parquet?sig=1","id":"f1","partitionValues":{},"size":10,"stats":"{\"numRecords\":2}","expirationTimestamp":2000}}
{"file":{"url":"https://s3/b.parquet?sig=2","id":"f2","partitionValues":{},"size":20,"expirationTimestamp":1000}}
"#;
        let shared = parse_query_response(parquet, 3).expect("parses");
        assert_eq!(shared.state.version, 3);
        assert_eq!(shared.state.files.len(), 2);
        assert_eq!(shared.urls["f1"], "https://s3/a.parquet?sig=1");
        assert_eq!(shared.expires_at, Some(1000));
        let delta = br#"{"protocol":{"deltaProtocol":{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["deletionVectors"],"writerFeatures":["deletionVectors"]}}}
{"metaData":{"deltaMetadata":{"id":"m","format":{"provider":"parquet","options":{}},"schemaString":"{\"type\":\"struct\",\"fields\":[]}","partitionColumns":[],"configuration":{}},"version":5}}
{"file":{"id":"f1","deltaSingleAction":{"add":{"path":"https://s3/a.parquet?sig=1","partitionValues":{},"size":10,"modificationTime":1,"dataChange":true,"deletionVector":{"storageType":"p","pathOrInlineDv":"https://s3/dv.bin?sig=3","offset":1,"sizeInBytes":36,"cardinality":2}}},"expirationTimestamp":1500}}
{"endStreamAction":{"refreshToken":"r1","minUrlExpirationTimestamp":1400}}
"#;
        let shared = parse_query_response(delta, 5).expect("parses");
        assert!(shared.state.protocol.has_reader_feature("deletionVectors"));
        assert_eq!(shared.state.files[0].path, "f1");
        assert_eq!(shared.urls["f1"], "https://s3/a.parquet?sig=1");
        // The DV is read by a key that outlives its URL.
        let dv = shared.state.files[0].deletion_vector.as_ref().expect("dv");
        assert_eq!(dv.path_or_inline_dv, "deletion-vectors/s3/dv.bin");
        assert_eq!(
            shared.urls[&dv.path_or_inline_dv],
            "https://s3/dv.bin?sig=3"
        );
        assert_eq!(shared.refresh_token.as_deref(), Some("r1"));
        assert_eq!(shared.expires_at, Some(1400));
    }

    #[test]
    fn broken_responses_name_the_line() {
        for body in [
            &b"{not json"[..],
            b"{\"protocol\":{\"minReaderVersion\":1}}\n",
            b"{\"protocol\":{\"deltaProtocol\":{\"minReaderVersion\":3,\"minWriterVersion\":7,\"readerFeatures\":[\"futureFeature\"]}}}\n{\"metaData\":{\"deltaMetadata\":{\"id\":\"m\",\"schemaString\":\"\"}}}\n",
        ] {
            assert!(parse_query_response(body, 0).is_err());
        }
    }
}
