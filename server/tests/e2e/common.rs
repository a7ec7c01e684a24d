//! The real `wavelake serve` process for end-to-end tests: started on a
//! free loopback port with a configuration, driven over HTTP, killed when
//! dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};

pub const ADMIN: &str = "admin-token-for-the-tests-0123456789";

/// How long a test waits for one answer. reqwest's default (30 s) is
/// shorter than a debug build's cluster query takes on two cores while the
/// other end-to-end tests (Chromium, moto, uploads) run beside it.
pub const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(240);

/// An HTTP client that waits [`ANSWER_TIMEOUT`] for an answer.
pub fn test_client() -> Client {
    Client::builder()
        .timeout(ANSWER_TIMEOUT)
        .build()
        .expect("an HTTP client")
}

pub struct Server {
    pub child: Child,
    pub url: String,
    /// `grpc://host:port` when the configuration says `flight_listen`.
    pub flight_url: Option<String>,
    pub client: Client,
}

impl Server {
    /// Starts `wavelake serve` with `config` (TOML) on a free port.
    pub fn start(dir: &std::path::Path, config: &str) -> Self {
        Self::start_with(dir, config, &[])
    }

    /// Like [`Self::start`], with extra environment variables.
    pub fn start_with(dir: &std::path::Path, config: &str, environment: &[(&str, String)]) -> Self {
        let config_path = dir.join("wavelake.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_wavelake"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config_path)
            .env("WAVELAKE_ADMIN_TOKEN", ADMIN)
            .env("RUST_LOG", "warn")
            .envs(environment.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the server starts");
        let stdout = child.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout);
        let mut flight_url = None;
        let url = loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(url) = line
                .trim()
                .strip_prefix("wavelake flight sql listening on ")
            {
                flight_url = Some(url.to_owned());
                continue;
            }
            break line
                .trim()
                .strip_prefix("wavelake listening on ")
                .unwrap_or_else(|| panic!("unexpected line {line:?}"))
                .to_owned();
        };
        Self {
            child,
            url,
            flight_url,
            client: test_client(),
        }
    }

    /// The server's `/metrics` text.
    pub fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.url))
            .send()
            .unwrap()
            .text()
            .unwrap()
    }

    pub fn sql(&self, token: &str, sql: &str) -> (StatusCode, Value) {
        self.sql_in(token, sql, None)
    }

    pub fn sql_in(&self, token: &str, sql: &str, namespace: Option<&str>) -> (StatusCode, Value) {
        let mut body = json!({"sql": sql});
        if let Some(namespace) = namespace {
            body["namespace"] = json!(namespace);
        }
        let response = self
            .client
            .post(format!("{}/api/v1/sql", self.url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .unwrap_or_else(|error| panic!("{sql}: {error}"));
        let status = response.status();
        (status, response.json().unwrap_or(Value::Null))
    }

    /// Runs `sql` as [`Self::sql`] does; also what the result cache did
    /// (its response header).
    pub fn sql_cached(&self, token: &str, sql: &str) -> (StatusCode, Value, Option<String>) {
        let response = self
            .client
            .post(format!("{}/api/v1/sql", self.url))
            .bearer_auth(token)
            .json(&json!({"sql": sql}))
            .send()
            .unwrap_or_else(|error| panic!("{sql}: {error}"));
        let status = response.status();
        let cache = response
            .headers()
            .get("x-wavelake-result-cache")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (status, response.json().unwrap_or(Value::Null), cache)
    }

    pub fn get(&self, token: Option<&str>, path: &str) -> (StatusCode, Value) {
        let mut request = self.client.get(format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().unwrap();
        let status = response.status();
        (status, response.json().unwrap_or(Value::Null))
    }

    /// POSTs `body` (JSON) to `path`; the status and the answer as text.
    pub fn post_text(&self, token: &str, path: &str, body: &str) -> (StatusCode, String) {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .unwrap();
        let status = response.status();
        (status, response.text().unwrap_or_default())
    }

    pub fn token(&self, namespace: &str, write: bool) -> String {
        let response: Value = self
            .client
            .post(format!("{}/api/v1/tokens", self.url))
            .bearer_auth(ADMIN)
            .json(&json!({"label": format!("{namespace} {write}"), "namespace": namespace, "write": write}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        response["token"].as_str().unwrap().to_owned()
    }

    /// Creates recipient `name` with a grant on `share`; its profile (JSON).
    pub fn recipient(&self, name: &str, share: &str) -> String {
        let (_, created) = self.sql(ADMIN, &format!("CREATE RECIPIENT {name}"));
        let profile = created["rows"][0]["profile"].as_str().unwrap().to_owned();
        let grant = format!("GRANT SELECT ON SHARE {share} TO RECIPIENT {name}");
        assert_eq!(self.sql(ADMIN, &grant).0, StatusCode::OK, "{grant}");
        profile
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn local_config(root: &std::path::Path) -> String {
    format!(
        "root = {:?}\n[limits]\nmax_result_rows = 50\nmax_upload_bytes = 100000\n",
        root.to_str().unwrap()
    )
}

pub fn upload(
    server: &Server,
    token: &str,
    format: &str,
    key: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut request = server
        .client
        .post(format!(
            "{}/api/v1/tables/acme/orders/upload?format={format}",
            server.url
        ))
        .bearer_auth(token)
        .body(body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().unwrap();
    let status = response.status();
    (status, response.json().unwrap_or(Value::Null))
}

/// Rows for uploads: ids from `start`, `count` of them.
pub fn upload_batch(start: i64, count: i64) -> arrow::array::RecordBatch {
    use std::sync::Arc;
    let schema = Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int64, false),
        arrow::datatypes::Field::new("day", arrow::datatypes::DataType::Date32, true),
        arrow::datatypes::Field::new("total", arrow::datatypes::DataType::Float64, true),
    ]));
    arrow::array::RecordBatch::try_new(
        schema,
        vec![
            Arc::new(arrow::array::Int64Array::from_iter_values(
                start..start + count,
            )),
            Arc::new(arrow::array::Date32Array::from_iter_values(
                (0..count).map(|_| 19_723),
            )),
            Arc::new(arrow::array::Float64Array::from_iter_values(
                (0..count).map(|i| i as f64),
            )),
        ],
    )
    .unwrap()
}

/// The table's row count and latest version, as the admin sees them.
pub fn count_and_version(server: &Server, table: &str) -> (i64, i64) {
    let (status, body) = server.sql(
        ADMIN,
        &format!("SELECT (SELECT count(*) FROM {table}) AS n, (SELECT max(version) FROM delta_history('{table}')) AS v"),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        body["rows"][0]["n"].as_i64().unwrap(),
        body["rows"][0]["v"].as_i64().unwrap(),
    )
}
