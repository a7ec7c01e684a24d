//! What every request shares: configuration, tokens, storage and metrics,
//! and the SQL sessions opened per request.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use wavelake_engine::session::StorageOpener;
use wavelake_engine::storage::{ObjectStoreStorage, StorageRef};
use wavelake_engine::write_path::WritePathRef;
use wavelake_engine::{SnapshotCache, SqlSession, SqlSessionOptions, Table};

use crate::auth::bearer_token;
use crate::auth::{Principal, TokenStore};
use crate::config::ServerConfig;
use crate::error::ApiError;

/// The namespace unqualified names go to for admins.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Shared server state.
pub struct AppState {
    /// The configuration.
    pub config: ServerConfig,
    /// Accepted tokens.
    pub tokens: TokenStore,
    /// Opens table locations with the configured storage options.
    pub opener: StorageOpener,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Signs the server's own file URLs.
    pub signer: crate::signing::UrlSigner,
    /// Delta Sharing shares and recipients.
    pub shares: crate::shares::ShareStore,
    /// Latest table snapshots, shared by every request.
    pub snapshots: Arc<SnapshotCache>,
    /// Statements running, in all and per token.
    pub admission: Arc<crate::admission::Admission>,
    /// The memory all running statements share (`server_memory_bytes`).
    pub memory: Arc<dyn wavelake_engine::memory::MemoryPool>,
    /// Decoded column chunks every query shares (`hot_data_bytes`; none
    /// when 0).
    pub hot_data: Option<Arc<wavelake_engine::hot_data::HotData>>,
    /// Results of repeated queries (`result_cache_bytes`; none when 0).
    pub result_cache: Option<Arc<wavelake_engine::result_cache::ResultCache>>,
    /// Why the root may not be written (its store does not make commits
    /// exclusive), found at start; `None` when writes are safe.
    pub writes_refused: Option<String>,
    /// The write buffers of buffered ingest.
    pub buffers: Arc<crate::ingest::Buffers>,
    /// The tables subscribers watch.
    pub watchers: Arc<crate::events::Watchers>,
    /// Subscriptions open, in all and per token.
    pub subscriptions: Arc<crate::admission::Admission>,
    /// Transactions open through the SQL API.
    pub transactions: crate::transactions::Transactions,
}

/// An opener applying `options` (S3 endpoint, credentials, …).
pub fn storage_opener(options: Vec<(String, String)>) -> StorageOpener {
    Arc::new(move |location: &str| {
        if location.starts_with("http://") || location.starts_with("https://") {
            return wavelake_engine::storage::open(location);
        }
        Ok(Arc::new(ObjectStoreStorage::open_with(location, options.clone())?) as StorageRef)
    })
}

impl AppState {
    /// Whether `principal` may change tables in `namespace`: it needs the
    /// right, and the root's store must make commits exclusive.
    pub fn may_write(&self, principal: &Principal, namespace: &str) -> Result<(), ApiError> {
        if let Some(reason) = &self.writes_refused {
            return Err(ApiError::unavailable("UNSAFE_STORAGE", reason));
        }
        if principal.can_write(namespace) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this token may not change namespace {namespace}"
            )))
        }
    }

    /// The storage of the table root.
    pub fn root_storage(&self) -> wavelake_engine::Result<StorageRef> {
        (self.opener)(&self.config.root)
    }

    /// The namespace a request works in: the one it names, else the
    /// token's only namespace, else (admins) `default`.
    pub fn namespace_for(
        &self,
        principal: &Principal,
        named: Option<&str>,
    ) -> Result<String, ApiError> {
        let namespace = match named {
            Some(named) => named.to_owned(),
            None if principal.admin => DEFAULT_NAMESPACE.to_owned(),
            None => match principal.namespaces.keys().collect::<Vec<_>>().as_slice() {
                [only] => (*only).clone(),
                _ => {
                    return Err(ApiError::bad_request(
                        "this token has several namespaces (or none): say which in \"namespace\"",
                    ));
                }
            },
        };
        crate::names::check_name("namespace", &namespace)?;
        if !principal.can_read(&namespace) {
            return Err(ApiError::forbidden(format!(
                "this token cannot see namespace {namespace}"
            )));
        }
        Ok(namespace)
    }

    /// The namespaces `principal` may read: every directory of the root for
    /// admins, else the token's own.
    pub async fn readable_namespaces(
        &self,
        principal: &Principal,
    ) -> wavelake_engine::Result<Vec<String>> {
        let names = if principal.admin {
            self.root_storage()?.list_directories("").await?
        } else {
            principal.namespaces.keys().cloned().collect()
        };
        Ok(names
            .into_iter()
            .filter(|n| crate::names::check_name("namespace", n).is_ok() && principal.can_read(n))
            .collect())
    }

    /// The tables of `namespace`: its directories that hold a Delta log.
    pub async fn namespace_tables(&self, namespace: &str) -> wavelake_engine::Result<Vec<String>> {
        let root = self.root_storage()?;
        let mut tables = Vec::new();
        for table in root.list_directories(&format!("{namespace}/")).await? {
            let log = format!("{namespace}/{table}/_delta_log/");
            let has_log = root
                .list(&log, None)
                .await?
                .is_some_and(|files| !files.is_empty());
            if has_log && crate::names::check_name("table", &table).is_ok() {
                tables.push(table);
            }
        }
        Ok(tables)
    }

    /// The table at `location`, its snapshots through the shared cache.
    pub fn table(&self, location: &str) -> wavelake_engine::Result<Table> {
        Ok(Table::new((self.opener)(location)?)?.with_cache(Some(self.snapshots.clone())))
    }

    /// The write buffer of `namespace.table` (opened on first use).
    pub async fn buffer(
        &self,
        namespace: &str,
        table: &str,
    ) -> wavelake_engine::Result<Arc<wavelake_write::buffer::TableBuffer>> {
        self.buffers
            .buffer(namespace, table, || {
                self.table(&self.table_location(namespace, table))
            })
            .await
    }

    /// Where table `table` of namespace `namespace` lives: `ROOT/ns/table`.
    pub fn table_location(&self, namespace: &str, table: &str) -> String {
        format!(
            "{}/{namespace}/{table}",
            self.config.root.trim_end_matches('/')
        )
    }

    /// A sandboxed session within the server's limits and caches, able to
    /// open the root's tables.
    fn sandboxed_engine(
        &self,
        default_schema: Option<String>,
        confined: bool,
        read_only: bool,
    ) -> SqlSession {
        // A principal that may only read gets a session without a write
        // path at all, besides the classifier's refusal.
        let write_path: Option<WritePathRef> =
            (!read_only).then(|| Arc::new(wavelake_write::DeltaWriter) as WritePathRef);
        SqlSession::with_options(SqlSessionOptions {
            default_schema,
            sandboxed: true,
            memory_limit: Some(self.config.limits.query_memory_bytes),
            shared_memory: Some(self.memory.clone()),
            confined,
            snapshot_cache: Some(self.snapshots.clone()),
            range_cache: None,
            // The server reads its storage directly; nothing outlives it.
            persistent_cache: None,
            // Local and object storage: decoding costs more than bytes.
            late_materialization: false,
            hot_data: self.hot_data.clone(),
            read_only,
            minimum_retention_ms: Some(self.config.limits.minimum_retention_ms()),
            write_path,
            buffered_rows: Some(self.buffers.clone()),
            // The server's queries use its threads, not a worker group.
            worker_group: None,
        })
        .with_storage_opener(self.opener.clone())
    }

    /// A read-only SQL session over what Delta Sharing `recipient` may
    /// read: every table of its shares as `schema.table`, the name sharing
    /// clients give it (a name two shares give different tables is the
    /// table of the share listed last, as clients see it).
    pub async fn recipient_session(&self, recipient: &str) -> Result<SqlSession, ApiError> {
        let engine = self.sandboxed_engine(None, true, true);
        let catalog = self.shares.snapshot().await;
        let mut tables = std::collections::BTreeMap::new();
        for share in catalog.visible_shares(Some(recipient)) {
            for table in catalog.shares.get(&share).map_or(&[][..], |s| &s.tables) {
                let location = self.table_location(&table.namespace, &table.table);
                tables.insert(format!("{}.{}", table.schema, table.name), location);
            }
        }
        engine
            .register_locations(tables.into_iter().collect())
            .await
            .map_err(ApiError::from)?;
        Ok(engine)
    }

    /// A sandboxed SQL session for `principal` in `namespace`: admins see
    /// every namespace, others only this one; read-only for a principal
    /// that may not write it.
    pub async fn session(
        &self,
        principal: &Principal,
        namespace: &str,
    ) -> Result<SqlSession, ApiError> {
        let engine = self.sandboxed_engine(
            Some(namespace.to_owned()),
            !principal.admin,
            self.may_write(principal, namespace).is_err(),
        );
        let only = (!principal.admin).then_some(namespace);
        engine
            .register_namespaced_root(&self.config.root, only)
            .await
            .map_err(ApiError::from)?;
        Ok(engine)
    }
}

/// The caller of a request, from its bearer token (or the principal the
/// admission check found already).
impl axum::extract::FromRequestParts<Arc<AppState>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let token = bearer_token(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        state
            .tokens
            .authenticate(token)
            .ok_or_else(ApiError::unauthorized)
    }
}
