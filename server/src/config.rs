//! Server configuration: one TOML file, overridden by `WAVELAKE_*`
//! environment variables, overridden by flags. Secrets (the admin token,
//! storage credentials) are never printed: `Debug` hides them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// Everything `wavelake serve` is told.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The table root: a directory, `s3://bucket/prefix`, `gs://bucket/prefix`
    /// or `az://container/prefix`. Tables live at
    /// `root/<namespace>/<table>`.
    pub root: String,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Address to speak Arrow Flight SQL on, if any.
    pub flight_listen: Option<SocketAddr>,
    /// The admin token (normally from `WAVELAKE_ADMIN_TOKEN`).
    pub admin_token: Option<String>,
    /// Origins whose pages may call `/api/v1` (CORS; `*` for any; none by
    /// default). Delta Sharing and signed file URLs allow every origin.
    pub cors_origins: Vec<String>,
    /// Per-request limits.
    pub limits: Limits,
    /// `object_store` options for the root (`aws_endpoint`,
    /// `google_service_account`, `azure_storage_account_name`, …).
    pub storage: BTreeMap<String, String>,
    /// The URL clients reach this server at (for signed file URLs and
    /// sharing profiles); `http://<listen>` when unset.
    pub public_url: Option<String>,
    /// Background maintenance.
    pub maintenance: MaintenanceConfig,
    /// Shares and recipients declared here (in addition to those made in
    /// SQL).
    pub sharing: SharingConfig,
    /// The web app's files (`www/` with the built app), served at `/`;
    /// the source tree's `www/` when unset and present.
    pub web_dir: Option<String>,
    /// Seconds between two reads of the tokens and shares other servers on
    /// the same root may have changed.
    pub sync_interval_secs: u64,
    /// Where large queries run.
    pub cluster: ClusterConfig,
    /// Buffered ingest (`POST …/rows`).
    pub ingest: IngestConfig,
    /// Table subscriptions (`GET …/events`).
    pub events: EventsConfig,
}

/// `[events]`: table subscriptions (Server-Sent Events).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// How often a watched table's log is checked for a new commit.
    pub poll_interval_ms: u64,
    /// Subscriptions open at once in all; more are refused `429`.
    pub max_subscriptions: usize,
    /// Subscriptions one token may hold open at once.
    pub max_subscriptions_per_token: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            poll_interval_ms: 250,
            max_subscriptions: 1024,
            max_subscriptions_per_token: 16,
        }
    }
}

/// `[ingest]`: the write-ahead log and buffers of `POST …/rows`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// A local directory for the write-ahead log (it must be on this
    /// machine's disk, whatever the root); `ROOT/_wavelake/wal` for a local
    /// root, `./wavelake-wal` otherwise.
    pub wal_dir: Option<String>,
    /// Flush a table's buffer at least this often (a table's
    /// `wavelake.buffer.flushIntervalMs` property overrides it).
    pub flush_interval_ms: u64,
    /// Flush as soon as this many rows are buffered (a table's
    /// `wavelake.buffer.flushRows` overrides it).
    pub flush_rows: usize,
    /// Refuse appends with `429` beyond this many buffered rows per table.
    pub max_buffered_rows: usize,
    /// `INSERT … VALUES` through the SQL API goes to the table's write
    /// buffer too (acknowledged once durable, committed by the next flush)
    /// instead of making a commit of its own.
    pub buffer_inserts: bool,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            wal_dir: None,
            flush_interval_ms: 1000,
            flush_rows: 100_000,
            max_buffered_rows: 1_000_000,
            buffer_inserts: false,
        }
    }
}

impl IngestConfig {
    /// The write-ahead log's directory for a server on `root`.
    pub fn wal_dir(&self, root: &str) -> std::path::PathBuf {
        match &self.wal_dir {
            Some(dir) => dir.into(),
            None if !root.contains("://") => Path::new(root).join("_wavelake").join("wal"),
            None => match root.strip_prefix("file://") {
                Some(local) => Path::new(local).join("_wavelake").join("wal"),
                None => "wavelake-wal".into(),
            },
        }
    }

    /// The buffer settings these stand for.
    pub fn settings(&self) -> wavelake_write::buffer::BufferSettings {
        wavelake_write::buffer::BufferSettings {
            flush_interval: std::time::Duration::from_millis(self.flush_interval_ms.max(1)),
            flush_rows: self.flush_rows.max(1),
            max_rows: self.max_buffered_rows.max(1),
        }
    }
}

/// `[cluster]`: the DataFusion Ballista cluster large queries go to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// The scheduler, `HOST:PORT`; without one every query runs in the
    /// server.
    pub scheduler: Option<String>,
    /// A query that would read at least this many bytes of data files
    /// (after partition and statistics pruning, from the Delta log) runs
    /// on the cluster; smaller ones run in the server.
    pub min_scan_bytes: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            scheduler: None,
            min_scan_bytes: 1 << 30,
        }
    }
}

/// `[sharing]`: shares and recipients from the configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SharingConfig {
    /// `[[sharing.shares]]`.
    pub shares: Vec<ShareConfig>,
    /// `[[sharing.recipients]]`.
    pub recipients: Vec<RecipientConfig>,
}

/// A share: `tables` are `namespace.table` or `namespace.table as schema.name`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareConfig {
    /// The share's name.
    pub name: String,
    /// Its tables.
    pub tables: Vec<String>,
}

/// A recipient with its token given as a SHA-256 hash (hex), so the file
/// holds no secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientConfig {
    /// The recipient's name.
    pub name: String,
    /// The shares it may read.
    pub shares: Vec<String>,
    /// SHA-256 (hex) of its bearer token.
    pub token_sha256: String,
}

impl std::fmt::Debug for RecipientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecipientConfig")
            .field("name", &self.name)
            .field("shares", &self.shares)
            .finish_non_exhaustive()
    }
}

/// Per-request limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest JSON request body, in bytes.
    pub max_request_bytes: usize,
    /// Largest upload, in bytes.
    pub max_upload_bytes: usize,
    /// Most rows a query returns (more are cut off, and the response says so).
    pub max_result_rows: usize,
    /// Longest a statement may run, in seconds.
    pub query_timeout_secs: u64,
    /// Memory one query may hold, in bytes.
    pub query_memory_bytes: usize,
    /// How long file URLs handed out (Delta Sharing) stay valid, in seconds.
    pub file_url_lifetime_secs: u64,
    /// The shortest retention of removed files and log entries, in seconds,
    /// that SQL may set (`delta.deletedFileRetentionDuration`,
    /// `delta.logRetentionDuration`, `VACUUM RETAIN`) and VACUUM uses, so
    /// files a writer has written but not yet committed are never deleted.
    /// An operator's setting: keep it above `query_timeout_secs`.
    pub minimum_retention_secs: u64,
    /// Memory all running queries and writes together may hold, in bytes;
    /// each one also stays within `query_memory_bytes`.
    pub server_memory_bytes: usize,
    /// Memory for hot data, in bytes: decoded column chunks of recently
    /// read data files, so repeated queries neither fetch nor decode them
    /// (0 turns it off). Held besides `server_memory_bytes`.
    pub hot_data_bytes: u64,
    /// Memory for the result cache, in bytes: the results of queries of
    /// tables whose versions have not changed since, answered again
    /// without running (0 turns it off). Held besides `server_memory_bytes`.
    pub result_cache_bytes: u64,
    /// Statements (SQL, uploads, sharing queries) running at once in all;
    /// more are refused `429` with `Retry-After`.
    pub max_running_statements: usize,
    /// Statements one token may run at once.
    pub max_running_per_token: usize,
    /// Connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers.
    pub header_timeout_secs: u64,
    /// Seconds a request body may pause between two chunks.
    pub body_idle_timeout_secs: u64,
}

impl Limits {
    /// [`Self::minimum_retention_secs`] in milliseconds.
    pub fn minimum_retention_ms(&self) -> i64 {
        i64::try_from(self.minimum_retention_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: 1 << 20,
            max_upload_bytes: 1 << 30,
            max_result_rows: 1_000_000,
            query_timeout_secs: 300,
            query_memory_bytes: 2 << 30,
            file_url_lifetime_secs: 3600,
            minimum_retention_secs: 3600,
            server_memory_bytes: 4 << 30,
            hot_data_bytes: 2 << 30,
            result_cache_bytes: 256 << 20,
            max_running_statements: 64,
            max_running_per_token: 8,
            max_connections: 1024,
            header_timeout_secs: 30,
            body_idle_timeout_secs: 30,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            root: "./data".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            flight_listen: None,
            admin_token: None,
            cors_origins: Vec::new(),
            limits: Limits::default(),
            storage: BTreeMap::new(),
            public_url: None,
            maintenance: MaintenanceConfig::default(),
            sharing: SharingConfig::default(),
            web_dir: None,
            sync_interval_secs: 2,
            cluster: ClusterConfig::default(),
            ingest: IngestConfig::default(),
            events: EventsConfig::default(),
        }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("root", &self.root)
            .field("listen", &self.listen)
            .field("flight_listen", &self.flight_listen)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<hidden>"),
            )
            .field("cors_origins", &self.cors_origins)
            .field("limits", &self.limits)
            .field("storage", &self.storage.keys().collect::<Vec<_>>())
            .field("public_url", &self.public_url)
            .field("maintenance", &self.maintenance)
            .field("sharing", &self.sharing)
            .field("web_dir", &self.web_dir)
            .field("sync_interval_secs", &self.sync_interval_secs)
            .field("cluster", &self.cluster)
            .field("ingest", &self.ingest)
            .field("events", &self.events)
            .finish()
    }
}

/// What the command line says (flags win over everything).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config FILE`.
    pub config_file: Option<String>,
    /// `--root DIR`.
    pub root: Option<String>,
    /// `--listen ADDR`.
    pub listen: Option<SocketAddr>,
    /// `--flight-listen ADDR`.
    pub flight_listen: Option<SocketAddr>,
    /// `--cluster HOST:PORT`.
    pub cluster: Option<String>,
}

impl ServerConfig {
    /// The configuration: defaults, then the file, then the environment
    /// (`WAVELAKE_ROOT`, `WAVELAKE_LISTEN`, `WAVELAKE_FLIGHT_LISTEN`, `WAVELAKE_ADMIN_TOKEN`,
    /// `WAVELAKE_PUBLIC_URL`, `WAVELAKE_CORS_ORIGINS`, `WAVELAKE_CLUSTER`), then flags.
    pub fn load(overrides: &Overrides) -> Result<Self> {
        let mut config = match &overrides.config_file {
            Some(path) => Self::from_file(Path::new(path))?,
            None => Self::default(),
        };
        let env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        if let Some(root) = env("WAVELAKE_ROOT") {
            config.root = root;
        }
        if let Some(listen) = env("WAVELAKE_LISTEN") {
            config.listen = listen
                .parse()
                .with_context(|| format!("WAVELAKE_LISTEN={listen:?} is not an address"))?;
        }
        if let Some(token) = env("WAVELAKE_ADMIN_TOKEN") {
            config.admin_token = Some(token);
        }
        if let Some(url) = env("WAVELAKE_PUBLIC_URL") {
            config.public_url = Some(url);
        }
        if let Some(dir) = env("WAVELAKE_WEB_DIR") {
            config.web_dir = Some(dir);
        }
        if let Some(origins) = env("WAVELAKE_CORS_ORIGINS") {
            config.cors_origins = origins.split(',').map(|o| o.trim().to_owned()).collect();
        }
        if let Some(root) = &overrides.root {
            config.root.clone_from(root);
        }
        if let Some(listen) = overrides.listen {
            config.listen = listen;
        }
        if let Some(listen) = env("WAVELAKE_FLIGHT_LISTEN") {
            config.flight_listen =
                Some(listen.parse().with_context(|| {
                    format!("WAVELAKE_FLIGHT_LISTEN={listen:?} is not an address")
                })?);
        }
        if let Some(listen) = overrides.flight_listen {
            config.flight_listen = Some(listen);
        }
        if let Some(scheduler) = env("WAVELAKE_CLUSTER") {
            config.cluster.scheduler = Some(scheduler);
        }
        if let Some(scheduler) = &overrides.cluster {
            config.cluster.scheduler = Some(scheduler.clone());
        }
        config.validate()?;
        Ok(config)
    }

    /// The directory the web app is served from: `web_dir`, or the source
    /// tree's `www/` when it exists; `None` serves no app.
    pub fn web_root(&self) -> Option<std::path::PathBuf> {
        match &self.web_dir {
            Some(dir) => Some(dir.into()),
            None => {
                let tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("../www");
                tree.join("index.html").is_file().then_some(tree)
            }
        }
    }

    fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("bad configuration {}", path.display()))
    }

    fn validate(&self) -> Result<()> {
        if self.root.trim().is_empty() {
            bail!("the table root is empty");
        }
        if let Some(token) = &self.admin_token
            && token.len() < 16
        {
            bail!("the admin token must be at least 16 characters");
        }
        let limits = &self.limits;
        let counts = [
            ("limits.max_result_rows", limits.max_result_rows as u64),
            ("limits.query_timeout_secs", limits.query_timeout_secs),
            (
                "limits.server_memory_bytes",
                limits.server_memory_bytes as u64,
            ),
            (
                "limits.max_running_statements",
                limits.max_running_statements as u64,
            ),
            (
                "limits.max_running_per_token",
                limits.max_running_per_token as u64,
            ),
            ("limits.max_connections", limits.max_connections as u64),
            ("limits.header_timeout_secs", limits.header_timeout_secs),
            (
                "limits.body_idle_timeout_secs",
                limits.body_idle_timeout_secs,
            ),
            ("sync_interval_secs", self.sync_interval_secs),
            ("events.poll_interval_ms", self.events.poll_interval_ms),
            (
                "events.max_subscriptions",
                self.events.max_subscriptions as u64,
            ),
            (
                "events.max_subscriptions_per_token",
                self.events.max_subscriptions_per_token as u64,
            ),
        ];
        if let Some((name, _)) = counts.iter().find(|(_, value)| *value == 0) {
            bail!("{name} must be above 0");
        }
        Ok(())
    }

    /// The base URL clients reach the server at.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }
}

/// `[maintenance]` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaintenanceConfig {
    /// Seconds between rounds; 0 turns background maintenance off.
    pub interval_secs: u64,
    /// Compact small files.
    pub optimize: bool,
    /// Vacuum with each table's retention.
    pub vacuum: bool,
    /// Write a checkpoint when a table has gone `delta.checkpointInterval`
    /// commits without one (tables other writers commit to).
    pub checkpoint: bool,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        Self {
            interval_secs: 3600,
            optimize: true,
            vacuum: true,
            checkpoint: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_sets_what_it_names_and_secrets_stay_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wavelake.toml");
        std::fs::write(
            &path,
            "root = \"s3://lake/tables\"\nlisten = \"0.0.0.0:9000\"\n\
             [limits]\nmax_result_rows = 10\n[storage]\naws_secret_access_key = \"s3cr3t\"\n",
        )
        .unwrap();
        let config = ServerConfig::from_file(&path).unwrap();
        assert_eq!(config.root, "s3://lake/tables");
        assert_eq!(config.limits.max_result_rows, 10);
        assert_eq!(config.limits.query_timeout_secs, 300);
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        std::fs::write(&path, "rooot = \"x\"\n").unwrap();
        let err = ServerConfig::from_file(&path).unwrap_err();
        assert!(format!("{err:#}").contains("rooot"), "{err:#}");
    }
}
