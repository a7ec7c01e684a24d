//! What the app is connected to, and the engine that answers its queries
//! in the page: tables are read straight from storage, never through a
//! query server.

use std::sync::Arc;

use std::time::Duration;
use wavelake_engine::sharing::{SharedCatalog, SharingProfile};
use wavelake_engine::storage::{HttpStorage, RangeCache};

use wavelake_engine::{Engine, EngineOptions, PlannedQuery, QueryProgress, ScanProfile};

use crate::result_table::ResultTable;

/// Bytes of pages, footers and deletion vectors a session keeps in memory.
const CACHE_BYTES: u64 = 128 << 20;

/// Where the tables come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
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
    engine: Engine,
    catalog: Option<SharedCatalog>,
    connection: Connection,
}

impl Session {
    /// Connects: lists a sharing server's tables, or opens the static table.
    pub async fn connect(connection: Connection) -> Result<Self, String> {
        let engine = Engine::with_options(EngineOptions {
            range_cache: Some(Arc::new(RangeCache::new(CACHE_BYTES))),
            ..EngineOptions::default()
        });
        let catalog = match &connection {
            Connection::Sharing { endpoint, token } => {
                let profile = SharingProfile {
                    share_credentials_version: 1,
                    endpoint: endpoint.clone(),
                    bearer_token: token.clone(),
                    expiration_time: None,
                };
                Some(SharedCatalog::connect(&profile).await.map_err(describe)?)
            }
            Connection::StaticTable { name, url } => {
                let storage = HttpStorage::new(url).map_err(describe)?;
                engine
                    .register(name, Arc::new(storage))
                    .await
                    .map_err(describe)?;
                None
            }
        };
        Ok(Self {
            engine,
            catalog,
            connection,
        })
    }

    /// What the session is connected to.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The tables queries can name, sorted.
    pub fn table_names(&self) -> Vec<String> {
        let mut names = self.engine.table_names();
        if let Some(catalog) = &self.catalog {
            names.extend(catalog.names().cloned());
        }
        names.sort();
        names.dedup();
        names
    }

    /// Plans one query (opening the shared tables it names); its progress
    /// can be read while [`run`] runs it.
    pub async fn prepare(&self, query: &str) -> Result<PlannedQuery, String> {
        if let Some(catalog) = &self.catalog {
            catalog
                .open_referenced(&self.engine, query)
                .await
                .map_err(describe)?;
        }
        self.engine.prepare(query).await.map_err(describe)
    }
}

/// A finished query: its rows and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The rows, as the grid shows them.
    pub table: ResultTable,
    /// Per Delta scan: files, row groups and pages pruned, DV rows removed,
    /// requests and bytes.
    pub scans: Vec<ScanProfile>,
    /// The executed plan with its metrics (`EXPLAIN ANALYZE`).
    pub plan: String,
}

/// How often a running query's progress is reported.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(150);

/// Runs a planned query in the page, telling `report` how far it has got
/// while it runs.
pub async fn run(planned: &PlannedQuery, report: impl Fn(QueryProgress)) -> Result<Answer, String> {
    let batches = planned
        .collect_reporting(PROGRESS_INTERVAL, report)
        .await
        .map_err(describe)?;
    let table = ResultTable::from_batches(&batches).map_err(|e| e.to_string())?;
    let profile = planned.profile(batches);
    Ok(Answer {
        table,
        scans: profile.scans,
        plan: profile.plan,
    })
}

/// An engine error in words a user understands, led by what kind it is.
pub fn describe(err: wavelake_engine::Error) -> String {
    let kind = match err.code() {
        "UNAUTHORIZED" => "Not allowed",
        "EXPIRED_URL" => "A file link expired",
        "TABLE_NOT_FOUND" | "FILE_NOT_FOUND" => "Not found",
        "SQL_ERROR" | "QUERY_ERROR" => "The query cannot run",
        "UNSUPPORTED_FEATURE" => "Not supported",
        "INVALID_ARGUMENT" => "Check the input",
        _ => "Something went wrong",
    };
    format!("{kind}: {err}")
}
