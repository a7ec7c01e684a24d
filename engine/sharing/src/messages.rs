//! Profiles, listings, history and error answers.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use wavelake_kernel::{CommitEntry, Error, Result};

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

impl From<HistoryItem> for CommitEntry {
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

impl From<CommitEntry> for HistoryItem {
    fn from(commit: CommitEntry) -> Self {
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
}
