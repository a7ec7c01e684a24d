//! A whole `query` answer, in either response format, turned into the
//! state of a table whose files are presigned URLs.

use std::borrow::Cow;
use std::collections::HashMap;

use wavelake_kernel::log::TableState;
use wavelake_kernel::protocol::Add;
use wavelake_kernel::{Error, Result};

use crate::lines::{FileLine, ResponseLine};

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
    let mut expire_by = |expires: Option<i64>| {
        if let Some(expires) = expires {
            expires_at = Some(expires_at.map_or(expires, |e: i64| e.min(expires)));
        }
    };
    for (index, text) in body.split(|b| *b == b'\n').enumerate() {
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let number = index + 1;
        let line: ResponseLine =
            serde_json::from_slice(text).map_err(|e| bad(number, e.to_string()))?;
        if let Some(line) = line.protocol {
            protocol = Some(line.into_protocol());
        } else if let Some(line) = line.meta_data {
            metadata = Some(line.into_metadata());
        } else if let Some(line) = line.file {
            let (add, url, expires) = match line {
                FileLine::Delta(file) => {
                    let file = *file;
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
                }
                FileLine::Parquet(file) => {
                    let add = Add {
                        path: file.id,
                        partition_values: file.partition_values.into_owned(),
                        size: file.size,
                        modification_time: 0,
                        data_change: true,
                        stats: file.stats.map(Cow::into_owned),
                        tags: None,
                        deletion_vector: None,
                        base_row_id: None,
                        default_row_commit_version: None,
                        clustering_provider: None,
                    };
                    (add, file.url, file.expiration_timestamp)
                }
            };
            expire_by(expires);
            urls.insert(add.path.clone(), url);
            files.push(add);
        } else if let Some(end) = line.end_stream_action {
            refresh_token = end.refresh_token.filter(|t| !t.is_empty());
            expire_by(end.min_url_expiration_timestamp);
        }
        // Other lines (future kinds) are skipped.
    }
    let protocol = protocol.ok_or_else(|| bad(1, "no protocol line".into()))?;
    let metadata = metadata.ok_or_else(|| bad(2, "no metaData line".into()))?;
    wavelake_kernel::protocol::features::ensure_readable(&protocol)?;
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
