//! The Wavelake server's own API, for what needs its authority: what a
//! token may do and uploads. Statements go to its SQL API through the
//! engine's `ServerSql`.

use serde_json::Value;

/// What a token may do on the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// Everything.
    pub admin: bool,
    /// The namespaces it may write.
    pub writable: Vec<String>,
}

impl Access {
    /// Whether it may write anything at all.
    pub fn can_write(&self) -> bool {
        self.admin || !self.writable.is_empty()
    }

    /// Reads `GET /api/v1/me`.
    fn from_me(me: &Value) -> Self {
        let writable = me["namespaces"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter(|n| n["write"].as_bool() == Some(true))
                    .filter_map(|n| n["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            admin: me["admin"].as_bool() == Some(true),
            writable,
        }
    }
}

/// A file format the server takes uploads in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadFormat {
    /// CSV with a header line.
    Csv,
    /// Apache Parquet.
    Parquet,
}

impl UploadFormat {
    /// The format a file name says, if it is one the server takes.
    pub fn of_file(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".csv") {
            Some(Self::Csv)
        } else if lower.ends_with(".parquet") {
            Some(Self::Parquet)
        } else {
            None
        }
    }

    fn query_value(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Parquet => "parquet",
        }
    }
}

/// The server's API at an origin, with a bearer token.
#[derive(Debug, Clone)]
pub struct ServerApi {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl ServerApi {
    /// The API of the server at `origin`.
    pub fn new(origin: &str, token: &str) -> Self {
        Self {
            base: format!("{}/api/v1", origin.trim_end_matches('/')),
            token: token.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// What the token may do.
    pub async fn access(&self) -> Result<Access, String> {
        let request = self.http.get(format!("{}/me", self.base));
        let body = self.send(request).await?;
        let me: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("The server's answer is not JSON: {e}"))?;
        Ok(Access::from_me(&me))
    }

    /// Uploads `bytes` into `namespace.table`, creating it when missing;
    /// says what happened.
    pub async fn upload(
        &self,
        namespace: &str,
        table: &str,
        format: UploadFormat,
        bytes: Vec<u8>,
    ) -> Result<String, String> {
        let url = format!(
            "{}/tables/{namespace}/{table}/upload?format={}&create=true",
            self.base,
            format.query_value()
        );
        let body = self.send(self.http.post(url).body(bytes)).await?;
        let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let rows = answer["rows"].as_u64().unwrap_or(0);
        let version = answer["version"].as_i64().unwrap_or(0);
        Ok(if answer["created"].as_bool() == Some(true) {
            format!("Created {namespace}.{table} with {rows} rows.")
        } else {
            format!("Appended {rows} rows to {namespace}.{table} (version {version}).")
        })
    }

    /// Sends an authorized request: the body, or the server's error in
    /// words.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<bytes::Bytes, String> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| format!("The server cannot be reached: {e}"))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("The server's answer was cut off: {e}"))?;
        if status.is_success() {
            return Ok(body);
        }
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("HTTP status {status}"));
        Err(match status.as_u16() {
            401 => format!("Not signed in: {message}"),
            403 => format!("Not allowed: {message}"),
            404 => format!("Not found: {message}"),
            413 => format!("Too large: {message}"),
            _ => format!("The server refused: {message}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_reads_what_the_server_says() {
        let me = serde_json::json!({"admin": false, "namespaces": [
            {"name": "lab", "write": true}, {"name": "ops", "write": false}], "recipient": null});
        let access = Access::from_me(&me);
        assert_eq!(access.writable, ["lab"]);
        assert!(access.can_write());
        let reader = Access::from_me(&serde_json::json!({"admin": false, "namespaces": []}));
        assert!(!reader.can_write());
    }

    #[test]
    fn uploads_take_csv_and_parquet_files() {
        assert_eq!(UploadFormat::of_file("Trips.CSV"), Some(UploadFormat::Csv));
        assert_eq!(
            UploadFormat::of_file("t.parquet"),
            Some(UploadFormat::Parquet)
        );
        assert_eq!(UploadFormat::of_file("t.xlsx"), None);
    }
}
