//! What the app is connected to, and the engine that answers its queries
//! in the page: tables are read straight from storage, never through a
//! query server.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use wavelake_engine::metadata_tables::{MetadataKind, history_batch, snapshot_batch};
use wavelake_engine::server_sql::{Decision, Offload, ServerAnswer, ServerSql};
use wavelake_engine::sharing::{QueryOptions, SharedCatalog, SharingProfile, open_shared_table};
use wavelake_engine::stats::FileStats;
use wavelake_engine::storage::{HttpStorage, PersistentCache, RangeCache};
use wavelake_engine::{
    PlannedQuery, QueryProgress, ScanProfile, Snapshot, SqlSession, SqlSessionOptions,
};

use crate::result_table::ResultTable;
use crate::server_api::{Access, ServerApi};

/// Bytes of pages, footers and deletion vectors a session keeps in memory.
const CACHE_BYTES: u64 = 128 << 20;

/// Bytes of immutable table files the app keeps in the origin's private
/// file system across reloads.
#[cfg(target_arch = "wasm32")]
const PERSISTENT_CACHE_BYTES: u64 = 512 << 20;

/// The directory of the origin's private file system the app keeps them in.
#[cfg(target_arch = "wasm32")]
const PERSISTENT_CACHE_DIRECTORY: &str = "wavelake-app-cache";

/// The app's persistent cache, where the browser has an origin private
/// file system (never natively: the app's native build is for tests).
fn persistent_cache() -> Option<Arc<PersistentCache>> {
    #[cfg(target_arch = "wasm32")]
    {
        wavelake_engine::storage::OpfsBlobStore::new(PERSISTENT_CACHE_DIRECTORY).map(|store| {
            Arc::new(PersistentCache::new(
                Arc::new(store),
                PERSISTENT_CACHE_BYTES,
            ))
        })
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        None
    }
}

/// Removes everything the app's persistent cache holds.
pub async fn clear_persistent_cache() -> Result<(), String> {
    #[cfg(target_arch = "wasm32")]
    if let Some(store) = wavelake_engine::storage::OpfsBlobStore::new(PERSISTENT_CACHE_DIRECTORY) {
        wavelake_engine::storage::remove_all(&store)
            .await
            .map_err(describe)?;
    }
    Ok(())
}

/// Where the tables come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// The Wavelake server the page was served from: its Delta Sharing
    /// endpoint for reading and its API for writing, with one token.
    ThisServer {
        /// The page's origin, `https://host`.
        origin: String,
        /// The bearer token.
        token: String,
    },
    /// A Wavelake or other Delta Sharing server: its sharing endpoint and
    /// a recipient's bearer token.
    Sharing {
        /// `https://host/delta-sharing/`.
        endpoint: String,
        /// The bearer token.
        token: String,
    },
    /// One Delta table on a static host, queried as `name`.
    StaticTable {
        /// The SQL name.
        name: String,
        /// The table's base URL.
        url: String,
    },
}

/// A connected session: an engine and, for a sharing server, the tables it
/// shares.
#[derive(Debug)]
pub struct Session {
    engine: SqlSession,
    catalog: RefCell<Option<SharedCatalog>>,
    /// The sharing profile the catalog was listed with.
    profile: Option<SharingProfile>,
    connection: Connection,
    /// The server's API, when connected to the server that served the page.
    api: Option<ServerApi>,
    /// What the token may do there.
    access: Access,
    /// The SQL API queries too large for the page go to, or why there is
    /// none.
    server_sql: Result<ServerSql, String>,
    /// Column names of the tables opened so far (for completion).
    columns: RefCell<BTreeMap<String, Vec<String>>>,
}

impl Session {
    /// Connects: lists a sharing server's tables, or opens the static table.
    pub async fn connect(connection: Connection) -> Result<Self, String> {
        let engine = SqlSession::with_options(SqlSessionOptions {
            range_cache: Some(Arc::new(RangeCache::new(CACHE_BYTES))),
            persistent_cache: persistent_cache(),
            // Every byte comes over HTTP.
            late_materialization: true,
            // The page only reads; writes go to the server's SQL API.
            read_only: true,
            ..SqlSessionOptions::default()
        });
        let mut api = None;
        let mut access = Access::default();
        let server_sql = match &connection {
            Connection::ThisServer { origin, token } => {
                let url = format!("{}/api/v1/sql", origin.trim_end_matches('/'));
                ServerSql::new(&url, token).map_err(describe)
            }
            Connection::Sharing { endpoint, token } => {
                ServerSql::beside_sharing_endpoint(endpoint, token).ok_or_else(|| {
                    "this sharing server is not a Wavelake server, so it has no SQL API".to_owned()
                })
            }
            Connection::StaticTable { .. } => {
                Err("the table is on a static host, which has no server to run queries".to_owned())
            }
        };
        let sharing = match &connection {
            Connection::ThisServer { origin, token } => {
                let server = ServerApi::new(origin, token);
                access = server.access().await?;
                api = Some(server);
                Some((
                    format!("{}/delta-sharing/", origin.trim_end_matches('/')),
                    token,
                ))
            }
            Connection::Sharing { endpoint, token } => Some((endpoint.clone(), token)),
            Connection::StaticTable { name, url } => {
                let storage = HttpStorage::new(url).map_err(describe)?;
                engine
                    .register(name, Arc::new(storage))
                    .await
                    .map_err(describe)?;
                None
            }
        };
        let profile = sharing.map(|(endpoint, token)| SharingProfile {
            share_credentials_version: 1,
            endpoint,
            bearer_token: token.clone(),
            expiration_time: None,
        });
        let catalog = match &profile {
            Some(profile) => Some(SharedCatalog::connect(profile).await.map_err(describe)?),
            None => None,
        };
        if let Some(catalog) = &catalog {
            catalog.register_versions(&engine).map_err(describe)?;
        }
        Ok(Self {
            engine,
            catalog: RefCell::new(catalog),
            profile,
            connection,
            api,
            access,
            server_sql,
            columns: RefCell::default(),
        })
    }

    /// What the session is connected to.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The server's API, when the page came from a Wavelake server.
    pub fn api(&self) -> Option<&ServerApi> {
        self.api.as_ref()
    }

    /// What the token may do on the server (nothing elsewhere).
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// The shared catalog, if any (cloned: it is read across awaits).
    fn catalog(&self) -> Option<SharedCatalog> {
        self.catalog.borrow().clone()
    }

    /// Catches up with changes made through the server: lists the shared
    /// tables again, and forgets the opened ones so that they reopen at
    /// their latest version.
    pub async fn refresh(&self) -> Result<(), String> {
        let Some(profile) = &self.profile else {
            return Ok(());
        };
        let catalog = SharedCatalog::connect(profile).await.map_err(describe)?;
        catalog.register_versions(&self.engine).map_err(describe)?;
        let previous = self.catalog();
        let opened: Vec<String> = self.columns.borrow().keys().cloned().collect();
        for name in opened {
            let shared = |c: &SharedCatalog| c.table(&name).is_some();
            if shared(&catalog) || previous.as_ref().is_some_and(shared) {
                self.engine
                    .context()
                    .deregister_table(name.as_str())
                    .map_err(|e| describe(e.into()))?;
            }
        }
        self.columns.borrow_mut().clear();
        *self.catalog.borrow_mut() = Some(catalog);
        Ok(())
    }

    /// Opens `name` at `version` (the latest when `None`) for every view:
    /// later queries read that version too, until another is chosen.
    pub async fn open_table(
        &self,
        name: &str,
        version: Option<i64>,
    ) -> Result<TableSnapshot, String> {
        let catalog = self.catalog();
        let shared = catalog.as_ref().and_then(|c| c.table(name).map(|t| (c, t)));
        let (snapshot, storage) = match shared {
            Some((catalog, table)) => {
                let options = QueryOptions {
                    version,
                    ..QueryOptions::default()
                };
                open_shared_table(catalog.client(), table, &options)
                    .await
                    .map_err(describe)?
            }
            None => {
                let table = self
                    .engine
                    .table(name)
                    .ok_or_else(|| format!("Not found: no table named {name}"))?;
                let snapshot = table.snapshot_at(version).await.map_err(describe)?;
                (snapshot, table.storage().clone())
            }
        };
        self.engine
            .register_snapshot(name, snapshot.clone(), storage)
            .map_err(describe)?;
        self.learn_columns(name, &snapshot.arrow_schema());
        TableSnapshot::of(&snapshot, version.is_none())
    }

    /// Follows the commits of shared table `name` from the next one on;
    /// `None` for a table that is not shared (nothing to follow).
    pub async fn subscribe(
        &self,
        name: &str,
    ) -> Result<Option<wavelake_engine::sharing::subscription::Subscription>, String> {
        let Some(catalog) = self.catalog() else {
            return Ok(None);
        };
        if catalog.table(name).is_none() {
            return Ok(None);
        }
        catalog
            .subscribe(
                name,
                &wavelake_engine::sharing::subscription::SubscribeOptions::default(),
            )
            .await
            .map(Some)
            .map_err(describe)
    }

    /// The tables `sql` names, as written.
    pub fn tables_read(&self, sql: &str) -> Vec<String> {
        self.engine.table_references(sql)
    }

    /// The table's commits, newest first, as rows.
    pub async fn history(&self, name: &str) -> Result<Vec<Commit>, String> {
        let catalog = self.catalog();
        let shared = catalog.as_ref().and_then(|c| c.table(name).map(|t| (c, t)));
        let commits = match shared {
            Some((catalog, table)) => {
                catalog.client().history(table).await.map_err(|e| match e {
                    wavelake_engine::Error::TableNotFound { .. } => {
                        "This server does not share table history; you can still read a version \
                     with VERSION AS OF in SQL."
                            .to_owned()
                    }
                    other => describe(other),
                })?
            }
            None => {
                let table = self
                    .engine
                    .table(name)
                    .ok_or_else(|| format!("Not found: no table named {name}"))?;
                table.history().await.map_err(describe)?
            }
        };
        let batch = history_batch(commits).map_err(describe)?;
        Ok(Commit::from_history(&batch))
    }

    /// The column names of every table opened so far, by table name.
    pub fn columns(&self) -> BTreeMap<String, Vec<String>> {
        self.columns.borrow().clone()
    }

    /// Remembers the columns of `name` for completion.
    fn learn_columns(&self, name: &str, schema: &arrow::datatypes::Schema) {
        let names = schema.fields().iter().map(|f| f.name().clone()).collect();
        self.columns.borrow_mut().insert(name.to_owned(), names);
    }

    /// The tables by where they come from: share, then schema (a static
    /// table is under its URL), each with the SQL names of its tables.
    pub fn table_tree(&self) -> Vec<SourceGroup> {
        let mut groups: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        if let Some(catalog) = &*self.catalog.borrow() {
            for (sql_name, table) in catalog.entries() {
                groups
                    .entry((table.share.clone(), table.schema.clone()))
                    .or_default()
                    .push(sql_name.clone());
            }
        }
        if let Connection::StaticTable { name, url } = &self.connection {
            groups
                .entry((url.clone(), String::new()))
                .or_default()
                .push(name.clone());
        }
        groups
            .into_iter()
            .map(|((share, schema), mut tables)| {
                tables.sort();
                SourceGroup {
                    share,
                    schema,
                    tables,
                }
            })
            .collect()
    }

    /// The tables queries can name, sorted.
    pub fn table_names(&self) -> Vec<String> {
        let mut names = self.engine.table_names();
        if let Some(catalog) = &*self.catalog.borrow() {
            names.extend(catalog.names().cloned());
        }
        names.sort();
        names.dedup();
        names
    }

    /// Where `query` should run when the page reads at most
    /// `max_page_bytes`: decided from the Delta log of the tables it names
    /// (opened here), before any data is fetched.
    pub async fn placement(&self, query: &str, max_page_bytes: u64) -> Result<Decision, String> {
        self.open_referenced(query).await?;
        let offload = match &self.server_sql {
            Ok(server) => Offload::to(server.clone(), max_page_bytes),
            Err(why) => Offload::none(why.clone()),
        };
        offload
            .decide(&self.engine, self.catalog().as_ref(), query)
            .await
            .map_err(describe)
    }

    /// Runs `query` on the server (sent there for `reason`, at `started`
    /// in milliseconds), which runs it in its process or on its cluster.
    pub async fn run_on_server(
        &self,
        query: &str,
        reason: String,
        started: f64,
    ) -> Result<Answer, String> {
        let (answer, batches) = self.send(query).await?;
        let table = ResultTable::from_batches(&batches).map_err(|e| e.to_string())?;
        let ran = Ran {
            site: if answer.ran_on == "cluster" {
                Site::Cluster
            } else {
                Site::Server
            },
            reason,
            server_reason: Some(answer.reason),
            elapsed_ms: now_ms() - started,
            bytes_read: answer.read_bytes,
            bytes_fetched: 0,
            bytes_received: answer.ipc.len() as u64,
        };
        Ok(Answer {
            table,
            batches,
            scans: Vec::new(),
            plan: format!("The query ran on {}; its plan is there.", ran.site.name()),
            ran: Some(ran),
        })
    }

    /// Runs a statement that changes tables on the server the page came
    /// from, when the token may write.
    pub async fn write_on_server(&self, statement: &str) -> Result<Answer, String> {
        if self.api.is_none() || !self.access.can_write() {
            return Err(
                "Not allowed: this statement changes tables, which only a Wavelake server does \
                 for a token that may write. Sign in to the server with such a token."
                    .into(),
            );
        }
        let (_, batches) = self.send(statement).await?;
        let table = ResultTable::from_batches(&batches).map_err(|e| e.to_string())?;
        Ok(Answer {
            table,
            batches,
            scans: Vec::new(),
            plan: "The statement ran on the server.".into(),
            ran: None,
        })
    }

    /// Sends one statement to the server's SQL API: its answer and rows.
    async fn send(&self, statement: &str) -> Result<(ServerAnswer, Vec<RecordBatch>), String> {
        let server = self
            .server_sql
            .as_ref()
            .map_err(|why| format!("Not possible: {why}"))?;
        // Unqualified names resolve in the namespace of the first table
        // named (a token may have several).
        let namespace = self
            .engine
            .table_references(statement)
            .into_iter()
            .find_map(|name| name.split_once('.').map(|(schema, _)| schema.to_owned()))
            .filter(|_| matches!(self.connection, Connection::ThisServer { .. }));
        let answer = server
            .run(statement, namespace.as_deref())
            .await
            .map_err(describe)?;
        let batches = answer.batches().map_err(describe)?;
        Ok((answer, batches))
    }

    /// Opens the shared tables `query` names that are not open yet.
    async fn open_referenced(&self, query: &str) -> Result<(), String> {
        if let Some(catalog) = self.catalog() {
            catalog
                .open_referenced(&self.engine, query)
                .await
                .map_err(describe)?;
        }
        Ok(())
    }

    /// Plans one query (opening the shared tables it names); its progress
    /// can be read while [`run`] runs it.
    pub async fn prepare(&self, query: &str) -> Result<PlannedQuery, String> {
        self.open_referenced(query).await?;
        for name in self.engine.table_references(query) {
            if self.columns.borrow().contains_key(&name) {
                continue;
            }
            if let Ok(provider) = self.engine.context().table_provider(name.as_str()).await {
                self.learn_columns(&name, &provider.schema());
            }
        }
        self.engine.prepare(query).await.map_err(describe)
    }
}

/// Tables of one schema of one share, as the sidebar lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceGroup {
    /// The share (or a static table's URL).
    pub share: String,
    /// The schema (empty for a static table).
    pub schema: String,
    /// SQL names of its tables, sorted.
    pub tables: Vec<String>,
}

/// One version of a table, as the table page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSnapshot {
    /// Its version.
    pub version: i64,
    /// Whether it is the latest.
    pub latest: bool,
    /// Columns: type, nullability, partitioning, column mapping.
    pub schema: ResultTable,
    /// Active files: size, rows, statistics, deleted rows.
    pub files: ResultTable,
    /// Partition columns.
    pub partition_columns: Vec<String>,
    /// Column mapping mode (`none`, `name` or `id`).
    pub column_mapping: String,
    /// Rows in the active files, less those deletion vectors remove
    /// (`None` when a file lacks statistics).
    pub rows: Option<i64>,
}

impl TableSnapshot {
    fn of(snapshot: &Snapshot, latest: bool) -> Result<Self, String> {
        let table = |kind| {
            let batch = snapshot_batch(kind, snapshot).map_err(describe)?;
            ResultTable::from_batches(&[batch]).map_err(|e| e.to_string())
        };
        let rows = snapshot.files().iter().try_fold(0i64, |total, file| {
            let records = i64::try_from(FileStats::of(file)?.num_records?).ok()?;
            let deleted = file.deletion_vector.as_ref().map_or(0, |dv| dv.cardinality);
            Some(total + records - deleted)
        });
        Ok(Self {
            version: snapshot.version(),
            latest,
            schema: table(MetadataKind::Schema)?,
            files: table(MetadataKind::Files)?,
            partition_columns: snapshot.metadata().partition_columns.clone(),
            column_mapping: format!("{:?}", snapshot.column_mapping()).to_lowercase(),
            rows,
        })
    }
}

/// One commit on a table's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The version it made.
    pub version: i64,
    /// When, as UTC text.
    pub time: Option<String>,
    /// The operation.
    pub operation: Option<String>,
    /// Its metrics (JSON text).
    pub metrics: Option<String>,
}

impl Commit {
    /// The commits of a `delta_history` batch, in its order.
    fn from_history(batch: &RecordBatch) -> Vec<Self> {
        let Ok(table) = ResultTable::from_batches(std::slice::from_ref(batch)) else {
            return Vec::new();
        };
        let column = |name: &str| table.columns.iter().position(|c| c.name == name);
        let (version, time, operation, metrics) = (
            column("version"),
            column("timestamp"),
            column("operation"),
            column("operation_metrics"),
        );
        let cell = |row: &[Option<String>], index: Option<usize>| {
            index.and_then(|i| row.get(i).cloned().flatten())
        };
        table
            .rows
            .iter()
            .filter_map(|row| {
                Some(Self {
                    version: cell(row, version)?.parse().ok()?,
                    time: cell(row, time),
                    operation: cell(row, operation),
                    metrics: cell(row, metrics),
                })
            })
            .collect()
    }
}

/// A finished query: its rows and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The rows, as the grid shows them.
    pub table: ResultTable,
    /// The rows as Arrow batches (for the Parquet download).
    pub batches: Vec<RecordBatch>,
    /// Per Delta scan: files, row groups and pages pruned, DV rows removed,
    /// requests and bytes.
    pub scans: Vec<ScanProfile>,
    /// The executed plan with its metrics (`EXPLAIN ANALYZE`).
    pub plan: String,
    /// Where and how a query ran (`None` for a statement that changed
    /// tables).
    pub ran: Option<Ran>,
}

/// Where a query ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// In this page.
    Page,
    /// In the server's process.
    Server,
    /// On the server's cluster.
    Cluster,
}

impl Site {
    /// Where, in words.
    pub fn name(self) -> &'static str {
        match self {
            Self::Page => "this page",
            Self::Server => "the server",
            Self::Cluster => "the server's cluster",
        }
    }
}

/// Where a query ran, why, and what it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Ran {
    /// Where.
    pub site: Site,
    /// Why it ran in the page or was sent to the server.
    pub reason: String,
    /// Where the server ran it and why.
    pub server_reason: Option<String>,
    /// Milliseconds from the run to the last row.
    pub elapsed_ms: f64,
    /// Bytes of the data files read after pruning, from the Delta log.
    pub bytes_read: Option<u64>,
    /// Bytes the page fetched from storage.
    pub bytes_fetched: u64,
    /// Bytes of the answer received from the server.
    pub bytes_received: u64,
}

impl Ran {
    /// One line for the result view: where, why, time and bytes.
    pub fn summary(&self) -> String {
        let mut line = format!("Ran on {}", self.site.name());
        if self.site == Site::Page {
            line = "Ran in this page".into();
        }
        let seconds = self.elapsed_ms / 1000.0;
        line.push_str(&format!(" in {seconds:.2} s"));
        if let Some(read) = self.bytes_read {
            let there = if self.site == Site::Page {
                ""
            } else {
                " there"
            };
            line.push_str(&format!(", reading {}{there}", human_bytes(read)));
        }
        if self.site == Site::Page {
            line.push_str(&format!(", {} fetched", human_bytes(self.bytes_fetched)));
        } else {
            line.push_str(&format!(", {} received", human_bytes(self.bytes_received)));
        }
        line.push_str(&format!(". Why: {}", self.reason));
        if let Some(server) = &self.server_reason {
            line.push_str(&format!("; the server: {server}"));
        }
        line.push('.');
        line
    }
}

/// Bytes as megabytes with one decimal.
pub fn megabytes(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

/// Bytes in the unit that reads best: `812 bytes`, `6.2 kB`, `4.3 MB`,
/// `1.25 GB`.
pub fn human_bytes(bytes: u64) -> String {
    let value = bytes as f64;
    match bytes {
        0..1_000 => format!("{bytes} bytes"),
        1_000..1_000_000 => format!("{:.1} kB", value / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", value / 1e6),
        _ => format!("{:.2} GB", value / 1e9),
    }
}

/// Why a table page's preview runs in the page: it reads a few rows.
pub fn previewed() -> Decision {
    Decision {
        to_server: false,
        reason: "a table's preview reads a few rows".into(),
        estimate: None,
    }
}

/// Milliseconds on the page's clock.
pub fn now_ms() -> f64 {
    #[cfg(target_arch = "wasm32")]
    {
        js_sys::Date::now()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }
}

/// How often a running query's progress is reported.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(150);

/// Runs a planned query in the page (kept there by `decision`, at
/// `started` in milliseconds), telling `report` how far it has got while
/// it runs.
pub async fn run(
    planned: &PlannedQuery,
    decision: Decision,
    started: f64,
    report: impl Fn(QueryProgress),
) -> Result<Answer, String> {
    let batches = planned
        .collect_reporting(PROGRESS_INTERVAL, report)
        .await
        .map_err(describe)?;
    let table = ResultTable::from_batches(&batches).map_err(|e| e.to_string())?;
    let profile = planned.profile(batches.clone());
    let ran = Ran {
        site: Site::Page,
        reason: decision.reason,
        server_reason: None,
        elapsed_ms: now_ms() - started,
        bytes_read: decision.estimate.map(|e| e.bytes),
        bytes_fetched: planned.progress().bytes_fetched,
        bytes_received: 0,
    };
    Ok(Answer {
        table,
        batches,
        scans: profile.scans,
        plan: profile.plan,
        ran: Some(ran),
    })
}

/// An engine error in words a user understands, led by what kind it is.
pub fn describe(err: wavelake_engine::Error) -> String {
    let kind = match err.code() {
        "UNAUTHORIZED" | "NOT_ALLOWED" => "Not allowed",
        "EXPIRED_URL" => "A file link expired",
        "TABLE_NOT_FOUND" | "FILE_NOT_FOUND" => "Not found",
        "SQL_ERROR" | "QUERY_ERROR" => "The query cannot run",
        "UNSUPPORTED_FEATURE" => "Not supported",
        "INVALID_ARGUMENT" => "Check the input",
        _ => "Something went wrong",
    };
    format!("{kind}: {err}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_in_their_unit() {
        assert_eq!(human_bytes(812), "812 bytes");
        assert_eq!(human_bytes(6_248), "6.2 kB");
        assert_eq!(human_bytes(4_263_376), "4.3 MB");
        assert_eq!(human_bytes(1_250_000_000), "1.25 GB");
    }

    #[test]
    fn the_summary_says_where_why_how_long_and_how_many_bytes() {
        let mut ran = Ran {
            site: Site::Page,
            reason: "it reads 2000000 bytes in 2 files, within the page's limit".into(),
            server_reason: None,
            elapsed_ms: 1250.0,
            bytes_read: Some(2_000_000),
            bytes_fetched: 300_000,
            bytes_received: 0,
        };
        assert_eq!(
            ran.summary(),
            "Ran in this page in 1.25 s, reading 2.0 MB, 300.0 kB fetched. Why: it reads 2000000 \
             bytes in 2 files, within the page's limit."
        );
        ran.site = Site::Cluster;
        ran.reason = "you chose to send it to the server".into();
        ran.server_reason =
            Some("it reads 2000000 bytes in 2 files, at least the threshold".into());
        ran.bytes_received = 1_500;
        assert_eq!(
            ran.summary(),
            "Ran on the server's cluster in 1.25 s, reading 2.0 MB there, 1.5 kB received. Why: \
             you chose to send it to the server; the server: it reads 2000000 bytes in 2 files, at \
             least the threshold."
        );
    }
}
