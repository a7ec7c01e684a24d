//! A SQL session over Delta tables: registration, queries, and time travel
//! written the way Spark and Databricks users write it
//! (`FROM t VERSION AS OF 3`, `FROM t TIMESTAMP AS OF '2024-01-01'`).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use arrow::array::RecordBatch;
use datafusion::execution::context::SessionContext;
use datafusion::prelude::{DataFrame, SessionConfig};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, Ident, ObjectName, TableFactor, TableVersion, Value, VisitMut, VisitorMut,
};
use futures::StreamExt;

use crate::metadata_tables::{MetadataFunction, MetadataKind};
use crate::profile::QueryProfile;
use crate::scan::DeltaTableProvider;
use crate::snapshot::Snapshot;
use crate::statement::{Access, Body, Statement};
use crate::storage::StorageRef;
use crate::table::Table;
use crate::versions::{DescribedRegistry, TableRegistry, TableVersions, VersionDirectory};
use crate::write_path::{WritePathRef, read_only_build};
use crate::{Error, Result};

mod inserted_values;

static NEXT_TEMP_TABLE: AtomicU64 = AtomicU64::new(0);

/// A fresh name to register a statement's resolved table function or
/// time-travelled table under, while it is planned.
fn temp_table_name() -> String {
    format!(
        "__wavelake_time_travel_{}",
        NEXT_TEMP_TABLE.fetch_add(1, Ordering::Relaxed)
    )
}

/// Opens the storage of a table location (a directory, `s3://…`, …).
pub type StorageOpener = Arc<dyn Fn(&str) -> Result<StorageRef> + Send + Sync>;

/// Where new tables go and how locations are opened.
#[derive(Clone, Default)]
struct Catalog {
    /// The table root: `CREATE TABLE t` without `LOCATION` goes to `root/t`.
    root: Option<String>,
    opener: Option<StorageOpener>,
}

/// Tables of a root registered at once.
const REGISTRATION_CONCURRENCY: usize = 16;

/// How a session is set up.
#[derive(Debug, Clone, Default)]
pub struct SqlSessionOptions {
    /// The namespace unqualified table names resolve in (DataFusion's
    /// `public` when `None`); `CREATE TABLE t` under a root goes to
    /// `root/<namespace>/t`.
    pub default_schema: Option<String>,
    /// For SQL from untrusted clients: no DataFusion DDL (`CREATE EXTERNAL
    /// TABLE`, views, schemas), no `COPY … TO`, no `SET`, and no `CREATE
    /// TABLE … LOCATION` (tables only under the root).
    pub sandboxed: bool,
    /// Memory the session's queries may hold, in bytes (unbounded when
    /// `None`); a query needing more fails with a resources error.
    pub memory_limit: Option<usize>,
    /// A pool the session's memory comes out of, shared with other
    /// sessions ([`crate::memory::shared_pool`]); `memory_limit` then caps
    /// the session's part of it.
    pub shared_memory: Option<Arc<dyn crate::memory::MemoryPool>>,
    /// Only the default namespace exists for this session: creating a table
    /// in another one is refused (tenants' sessions).
    pub confined: bool,
    /// Latest snapshots shared with other sessions of the process, so that
    /// registering a table reads only the commits made since it was last
    /// seen.
    pub snapshot_cache: Option<Arc<crate::SnapshotCache>>,
    /// Ranges of data files and deletion vectors kept in memory across
    /// queries (by every session given the same cache), so they are not
    /// fetched twice: for readers far from their storage, such as browsers.
    pub range_cache: Option<Arc<crate::storage::RangeCache>>,
    /// Immutable files (data, deletion vectors, commits, checkpoints) kept
    /// in storage that outlives the process, read before the table's own
    /// storage: in a page, the Origin Private File System, so a reload
    /// fetches none of them again. Every table the session registers
    /// reads through it.
    pub persistent_cache: Option<Arc<crate::storage::PersistentCache>>,
    /// Decoded column chunks kept in memory across queries (by every
    /// session given the same cache), so a repeated query neither fetches
    /// nor decodes Parquet: for servers.
    pub hot_data: Option<Arc<crate::hot_data::HotData>>,
    /// Lookups evaluate their filter while Parquet is decoded (DataFusion's
    /// `pushdown_filters`, for scans whose filter the log's statistics say
    /// keeps at most one row in ten thousand): the filter's columns are
    /// read first, and the other columns' pages only where rows pass.
    /// Fewer bytes for more work per row: for readers that pay for every
    /// byte, such as pages over HTTP.
    pub late_materialization: bool,
    /// The size of the group of workers each query is spread over
    /// ([`crate::exchange`]): plans get one partition per worker, every
    /// hash join builds one table from its smaller side (sent whole to
    /// every worker, so the larger side stays where it is read), and no
    /// operator waits on partitions another worker runs (no dynamic join
    /// filters). A partition reads only its own files, and no row group is
    /// read by two workers. `None` plans for this process alone.
    pub worker_group: Option<usize>,
    /// The session only reads: statements the classifier does not vouch
    /// for as reads are refused, and every plan is checked to hold no
    /// DML, DDL or session statement (principals that may only read).
    pub read_only: bool,
    /// The shortest retention of removed files and log entries SQL may set
    /// or VACUUM use, in milliseconds
    /// (one hour, the write path's `SAFE_MINIMUM_RETENTION_MS`, when `None`).
    pub minimum_retention_ms: Option<i64>,
    /// Where statements that change tables go (`wavelake-write` provides
    /// one); without it the session only reads.
    pub write_path: Option<WritePathRef>,
    /// Rows a server's write buffer acknowledged and has not committed yet:
    /// queries of a table's latest version read them as well.
    pub buffered_rows: Option<crate::buffered::BufferedRowsRef>,
}

/// A statement planned by [`SqlSession::prepare`], ready to run.
#[derive(Debug, Clone)]
pub struct PlannedQuery {
    plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    task: Arc<datafusion::execution::TaskContext>,
}

impl PlannedQuery {
    /// The schema of the result.
    pub fn schema(&self) -> arrow::datatypes::SchemaRef {
        self.plan.schema()
    }

    /// Runs the query to its end.
    pub async fn collect(&self) -> Result<Vec<arrow::array::RecordBatch>> {
        Ok(datafusion::physical_plan::collect(self.plan.clone(), self.task.clone()).await?)
    }

    /// This worker's part of the query spread over its group as query
    /// `query` (the session must plan for the group: its `worker_group`).
    pub fn spread(
        &self,
        query: u64,
        hub: Arc<crate::exchange::ExchangeHub>,
        link: Arc<dyn crate::exchange::ExchangeLink>,
    ) -> Result<crate::exchange::SpreadQuery> {
        crate::exchange::SpreadQuery::new(self.plan.clone(), self.task.clone(), query, hub, link)
    }

    /// How far the query has got (callable while `collect` runs).
    pub fn progress(&self) -> crate::QueryProgress {
        crate::QueryProgress::of(&self.plan)
    }

    /// Runs the query to its end, calling `report` with its progress at the
    /// start, every `every` while it changes, and at the end.
    pub async fn collect_reporting(
        &self,
        every: std::time::Duration,
        report: impl Fn(crate::QueryProgress),
    ) -> Result<Vec<arrow::array::RecordBatch>> {
        use futures::future::{Either, select};
        let last = std::cell::Cell::new(None);
        let report_change = || {
            let now = self.progress();
            if last.get() != Some(now) {
                last.set(Some(now));
                report(now);
            }
        };
        report_change();
        let ticker = async {
            loop {
                crate::timer::sleep(every).await;
                report_change();
            }
        };
        let outcome = match select(Box::pin(self.collect()), Box::pin(ticker)).await {
            Either::Left((outcome, _)) => outcome,
            Either::Right(((), work)) => work.await,
        };
        report_change();
        outcome
    }

    /// What the finished query cost, with its result.
    pub fn profile(&self, batches: Vec<arrow::array::RecordBatch>) -> QueryProfile {
        QueryProfile::of(&self.plan, batches)
    }
}

/// A SQL session with Delta tables registered by name.
#[derive(Clone)]
pub struct SqlSession {
    ctx: SessionContext,
    tables: TableRegistry,
    /// Tables whose versions another source describes (shared tables).
    described: DescribedRegistry,
    /// Both registries, for time travel and the metadata functions.
    directory: VersionDirectory,
    catalog: Arc<RwLock<Catalog>>,
    /// Whether VACUUM refuses a retention below the table's.
    retention_check: Arc<std::sync::atomic::AtomicBool>,
    options: Arc<SqlSessionOptions>,
    /// Tables this session committed to but could not reload afterwards
    /// (the store failed): reloaded before the next statement runs.
    stale: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
    /// Tables registered for this session alone
    /// ([`Self::register_private`]), reloaded the same way.
    private: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

impl Default for SqlSession {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for SqlSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSession").finish_non_exhaustive()
    }
}

impl SqlSession {
    /// A new session. In WebAssembly it runs on one partition: nothing may
    /// spawn threads there.
    pub fn new() -> Self {
        Self::with_options(SqlSessionOptions::default())
    }

    /// A new session set up by `options`.
    pub fn with_options(options: SqlSessionOptions) -> Self {
        let mut config = base_config().with_information_schema(true);
        if cfg!(target_arch = "wasm32") {
            config = config.with_target_partitions(1);
        }
        if let Some(size) = options.worker_group {
            config = spread_config(config, size);
        }
        if let Some(schema) = &options.default_schema {
            config = config.with_default_catalog_and_schema("datafusion", schema);
        }
        if options.late_materialization {
            config = config.with_extension(Arc::new(crate::scan::LateMaterialization));
        }
        if let Some(cache) = &options.range_cache {
            config = config.with_extension(cache.clone());
        }
        if let Some(hot) = &options.hot_data {
            config = config.with_extension(hot.clone());
        }
        let builder = datafusion::execution::runtime_env::RuntimeEnvBuilder::new;
        let runtime = match (&options.shared_memory, options.memory_limit) {
            (Some(shared), limit) => {
                let cap = limit.unwrap_or(usize::MAX);
                let pool = crate::memory::CappedPool::new(shared.clone(), cap);
                builder().with_memory_pool(Arc::new(pool)).build_arc().ok()
            }
            (None, Some(limit)) => builder().with_memory_limit(limit, 1.0).build_arc().ok(),
            (None, None) => None,
        };
        let ctx = SessionContext::new_with_state(session_state(config, runtime));
        let tables: TableRegistry = Arc::new(RwLock::new(HashMap::new()));
        let described: DescribedRegistry = Arc::new(RwLock::new(HashMap::new()));
        let directory = VersionDirectory::new(
            tables.clone(),
            described.clone(),
            options.default_schema.clone(),
        );
        for kind in MetadataKind::ALL {
            ctx.register_udtf(
                kind.function_name(),
                Arc::new(MetadataFunction::new(kind, directory.clone())),
            );
        }
        Self {
            ctx,
            tables,
            described,
            directory,
            catalog: Arc::default(),
            retention_check: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            stale: Arc::default(),
            private: Arc::default(),
            options: Arc::new(options),
        }
    }

    /// Lets SQL create tables: `opener` opens the storage of a location.
    pub fn with_storage_opener(self, opener: StorageOpener) -> Self {
        if let Ok(mut catalog) = self.catalog.write() {
            catalog.opener = Some(opener);
        }
        self
    }

    /// Registers every Delta table directly under `root` by its directory
    /// name, and makes `root` where `CREATE TABLE` puts new tables. Needs a
    /// storage opener. Returns the names registered.
    pub async fn register_root(&self, root: &str) -> Result<Vec<String>> {
        let opener = self.opener()?;
        let root = root.trim_end_matches('/').to_owned();
        if let Ok(mut catalog) = self.catalog.write() {
            catalog.root = Some(root.clone());
        }
        let storage = opener(&root)?;
        let candidates = storage
            .list_directories("")
            .await?
            .into_iter()
            .map(|directory| {
                let location = format!("{root}/{directory}");
                (directory, location)
            })
            .collect();
        self.register_locations(candidates).await
    }

    /// Registers every Delta table at `root/<namespace>/<table>` as
    /// `namespace.table` (only those of `only` when given), and makes
    /// `root` where `CREATE TABLE namespace.table` puts new tables. Returns
    /// the names registered.
    pub async fn register_namespaced_root(
        &self,
        root: &str,
        only: Option<&str>,
    ) -> Result<Vec<String>> {
        let opener = self.opener()?;
        let root = root.trim_end_matches('/').to_owned();
        if let Ok(mut catalog) = self.catalog.write() {
            catalog.root = Some(root.clone());
        }
        let namespaces = match only {
            Some(namespace) => vec![namespace.to_owned()],
            None => opener(&root)?.list_directories("").await?,
        };
        let mut candidates = Vec::new();
        for namespace in namespaces {
            let location = format!("{root}/{namespace}");
            for directory in opener(&location)?.list_directories("").await? {
                let table = format!("{location}/{directory}");
                candidates.push((format!("{namespace}.{directory}"), table));
            }
        }
        self.register_locations(candidates).await
    }

    /// Registers the tables among `(name, location)` candidates (`table`
    /// or `namespace.table`), several at once; needs a storage opener. A
    /// directory without a Delta log is no table; a table that cannot be
    /// read is left out with a warning, so that one broken table does not
    /// take the others down with it. Returns the names registered.
    pub async fn register_locations(
        &self,
        candidates: Vec<(String, String)>,
    ) -> Result<Vec<String>> {
        let opener = self.opener()?;
        let registrations: Vec<_> = candidates
            .into_iter()
            .map(|(name, location)| {
                let opened = opener(&location);
                async move {
                    let outcome = match opened {
                        Ok(storage) => self.register(&name, storage).await.map(|_| ()),
                        Err(e) => Err(e),
                    };
                    (name, location, outcome)
                }
            })
            .collect();
        let outcomes: Vec<_> = futures::stream::iter(registrations)
            .buffer_unordered(REGISTRATION_CONCURRENCY)
            .collect()
            .await;
        let mut names = Vec::new();
        for (name, location, outcome) in outcomes {
            match outcome {
                Ok(()) => names.push(name),
                Err(Error::TableNotFound { .. }) => {}
                Err(e) => tracing::warn!(table = %name, %location, error = %e, "table left out"),
            }
        }
        names.sort();
        Ok(names)
    }

    /// How this session opens table locations (to create tables).
    pub fn opener(&self) -> Result<StorageOpener> {
        self.catalog
            .read()
            .ok()
            .and_then(|c| c.opener.clone())
            .ok_or_else(|| {
                Error::InvalidArgument("this session cannot open table locations".into())
            })
    }

    /// Loads the latest version of the table registered as `name` again,
    /// so queries see commits made since.
    pub async fn refresh(&self, name: &str) -> Result<Snapshot> {
        let key = self.resolve_name(name).ok_or_else(|| Error::UnknownTable {
            name: name.to_owned(),
        })?;
        let table = self.table(&key).ok_or_else(|| Error::UnknownTable {
            name: name.to_owned(),
        })?;
        let private = self.private.lock().is_ok_and(|p| p.contains(&key));
        if private {
            return self.register_private(&key, table.storage().clone()).await;
        }
        self.register(&key, table.storage().clone()).await
    }

    /// Reloads `name` after this session committed to it. The commit is
    /// in whatever happens here: a reload that fails (the store did) is
    /// logged and retried before the next statement, never reported as the
    /// statement's failure, so a client is never told a change it made
    /// failed (and made to apply it twice).
    pub async fn refresh_after_commit(&self, name: &str) {
        if let Err(e) = self.refresh(name).await {
            tracing::warn!(table = name, error = %e, "reloading a table after a commit failed");
            if let Ok(mut stale) = self.stale.lock() {
                stale.insert(name.to_owned());
            }
        }
    }

    /// Reloads the tables [`Self::refresh_after_commit`] could not.
    async fn refresh_stale(&self) -> Result<()> {
        let names: Vec<String> = match self.stale.lock() {
            Ok(stale) => stale.iter().cloned().collect(),
            Err(_) => Vec::new(),
        };
        for name in names {
            self.refresh(&name).await?;
            if let Ok(mut stale) = self.stale.lock() {
                stale.remove(&name);
            }
        }
        Ok(())
    }

    /// Names of the registered tables, sorted.
    pub fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .tables
            .read()
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The DataFusion context underneath.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Registers the table in `storage` as `name` (`table` or
    /// `namespace.table`), at its latest version.
    pub async fn register(&self, name: &str, storage: StorageRef) -> Result<Snapshot> {
        let table = Table::new(self.through_persistent_cache(storage))?
            .with_cache(self.options.snapshot_cache.clone());
        self.register_table(name, table, self.options.buffered_rows.clone())
            .await
    }

    /// `storage` read through the session's persistent cache, when it has
    /// one.
    fn through_persistent_cache(&self, storage: StorageRef) -> StorageRef {
        match &self.options.persistent_cache {
            Some(cache) => Arc::new(crate::storage::PersistentStorage::new(
                storage,
                cache.clone(),
            )),
            None => storage,
        }
    }

    /// Registers the table in `storage` as `name` for this session alone:
    /// a transaction's view of a table, whose uncommitted versions must
    /// reach no shared snapshot cache and no write buffer.
    pub async fn register_private(&self, name: &str, storage: StorageRef) -> Result<Snapshot> {
        let snapshot = self
            .register_table(name, Table::new(storage)?, None)
            .await?;
        if let Ok(mut private) = self.private.lock() {
            private.insert(name.to_owned());
        }
        Ok(snapshot)
    }

    /// Registers `table` at its latest version as `name`, reading the rows
    /// `buffered` holds for it too.
    async fn register_table(
        &self,
        name: &str,
        table: Table,
        buffered: Option<crate::buffered::BufferedRowsRef>,
    ) -> Result<Snapshot> {
        let snapshot = table.snapshot().await?;
        let provider = DeltaTableProvider::new(snapshot.clone(), table.storage().clone())?
            .with_string_views()
            .with_write_path(self.options.write_path.clone())
            .with_buffered_rows(buffered);
        let reference = self.table_reference(name)?;
        self.ctx.deregister_table(reference.clone())?;
        self.ctx.register_table(reference, Arc::new(provider))?;
        self.tables
            .write()
            .map_err(|_| Error::InvalidArgument("table registry is poisoned".into()))?
            .insert(name.to_owned(), table);
        Ok(snapshot)
    }

    /// Registers `snapshot` (a table without a log to replay: one a Delta
    /// Sharing server described) as `name`, its files read from `storage`.
    /// Such a table can be queried, not written.
    pub fn register_snapshot(
        &self,
        name: &str,
        snapshot: Snapshot,
        storage: StorageRef,
    ) -> Result<()> {
        let provider = DeltaTableProvider::new(snapshot, self.through_persistent_cache(storage))?
            .with_string_views();
        let reference = self.table_reference(name)?;
        self.ctx.deregister_table(reference.clone())?;
        self.ctx.register_table(reference, Arc::new(provider))?;
        Ok(())
    }

    /// Lets time travel and the metadata functions reach the versions of
    /// `name`, a table without a log this session reads (one a Delta
    /// Sharing server describes). Querying it still needs
    /// [`Self::register_snapshot`].
    pub fn register_versions(&self, name: &str, versions: Arc<dyn TableVersions>) -> Result<()> {
        self.described
            .write()
            .map_err(|_| Error::InvalidArgument("table registry is poisoned".into()))?
            .insert(name.to_owned(), versions);
        Ok(())
    }

    /// Whether `name` has versions this session can reach (see
    /// [`Self::register_versions`]).
    pub fn has_versions(&self, name: &str) -> bool {
        self.directory.lookup(name).is_some()
    }

    /// DataFusion's reference for a registry name, creating the namespace
    /// (a schema of the default catalog) on first use.
    pub fn table_reference(&self, name: &str) -> Result<datafusion::common::TableReference> {
        let Some((schema, table)) = name.split_once('.') else {
            return Ok(datafusion::common::TableReference::bare(name));
        };
        let catalog = self
            .ctx
            .catalog("datafusion")
            .ok_or_else(|| Error::Sql("the default catalog is missing".into()))?;
        if catalog.schema(schema).is_none() {
            catalog.register_schema(
                schema,
                Arc::new(datafusion::catalog::MemorySchemaProvider::new()),
            )?;
        }
        Ok(datafusion::common::TableReference::partial(schema, table))
    }

    /// The registry name `name` refers to: itself, or qualified by the
    /// default namespace.
    pub fn resolve_name(&self, name: &str) -> Option<String> {
        let tables = self.tables.read().ok()?;
        if tables.contains_key(name) {
            return Some(name.to_owned());
        }
        let qualified = format!("{}.{name}", self.options.default_schema.as_deref()?);
        tables.contains_key(&qualified).then_some(qualified)
    }

    /// The session's options.
    pub fn options(&self) -> &SqlSessionOptions {
        &self.options
    }

    /// Where `CREATE TABLE` puts tables without a `LOCATION`, if anywhere.
    pub fn table_root(&self) -> Option<String> {
        self.catalog.read().ok().and_then(|c| c.root.clone())
    }

    /// Whether VACUUM refuses a retention shorter than the table's (on
    /// unless a statement turned it off).
    pub fn retention_check(&self) -> bool {
        self.retention_check
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Turns VACUUM's retention check on or off for this session.
    pub fn set_retention_check(&self, enabled: bool) {
        self.retention_check
            .store(enabled, std::sync::atomic::Ordering::Relaxed);
    }

    /// Removes the table registered as `key` (a registry name, see
    /// [`Self::resolve_name`]) from the session.
    pub fn unregister(&self, key: &str) -> Result<()> {
        self.ctx.deregister_table(self.table_reference(key)?)?;
        if let Ok(mut tables) = self.tables.write() {
            tables.remove(key);
        }
        Ok(())
    }

    /// The table registered as `name`.
    pub fn table(&self, name: &str) -> Option<Table> {
        let key = self.resolve_name(name)?;
        self.tables.read().ok()?.get(&key).cloned()
    }

    /// The version of the table registered as `name` that this session's
    /// queries read (the one it loaded; a commit of its own reloads it).
    pub async fn registered_version(&self, name: &str) -> Option<i64> {
        let key = self.resolve_name(name)?;
        let provider = self
            .ctx
            .table_provider(self.table_reference(&key).ok()?)
            .await
            .ok()?;
        provider
            .as_ref()
            .downcast_ref::<DeltaTableProvider>()
            .map(|delta| delta.snapshot().version())
    }

    /// Plans one SQL statement. DDL and DML (CREATE, DROP, INSERT, DELETE,
    /// UPDATE) run here, before the frame is returned; the frame then holds
    /// their result, one row with the number of rows affected.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        self.execute(Statement::parse(sql)?).await
    }

    /// Runs a statement [`Statement::parse`] classified (the one the caller
    /// authorized), as [`SqlSession::sql`] does.
    pub async fn execute(&self, statement: Statement) -> Result<DataFrame> {
        if self.options.read_only && statement.access() == Access::Write {
            return Err(Error::NotAllowed(
                "this session may only read, and the statement changes tables or the session"
                    .into(),
            ));
        }
        self.refresh_stale().await?;
        let target = statement.dml_target().map(str::to_owned);
        match statement.into_body() {
            Body::Command(command) => {
                let batch = self.run_command(command).await?;
                Ok(self.ctx.read_batch(batch)?)
            }
            Body::DataFusion(statement) => {
                let frame = self.plan_statement(*statement).await?;
                let Some(target) = target else {
                    return Ok(frame);
                };
                let frame = inserted_values::nullable_inserted_values(frame)?;
                let batches = frame.collect().await?;
                self.refresh_after_commit(&target).await;
                Ok(self.ctx.read_batches(batches)?)
            }
        }
    }

    /// The rows an `INSERT INTO t [(columns)] VALUES …` would append,
    /// evaluated without writing: the table as the statement names it
    /// (`t`, `ns.t`) and the rows in its columns' order and types (a NULL
    /// in a NOT NULL column is left for the writer to refuse). `None` for
    /// any other statement, an `INSERT OVERWRITE` or an `INSERT … SELECT`
    /// that reads a table. For writers that take rows elsewhere (a
    /// server's write buffer).
    pub async fn inserted_rows(
        &self,
        statement: &Statement,
    ) -> Result<Option<(String, Vec<RecordBatch>)>> {
        use datafusion::common::tree_node::TreeNode;
        use datafusion::logical_expr::dml::InsertOp;
        use datafusion::logical_expr::{DmlStatement, LogicalPlan, WriteOp};
        let Some(target) = statement.dml_target().map(str::to_owned) else {
            return Ok(None);
        };
        let Body::DataFusion(ast) = statement.clone().into_body() else {
            return Ok(None);
        };
        let frame = self.plan_statement(*ast).await?;
        let frame = inserted_values::nullable_inserted_values(frame)?;
        let (state, plan) = frame.into_parts();
        let LogicalPlan::Dml(DmlStatement {
            op: WriteOp::Insert(InsertOp::Append),
            input,
            ..
        }) = plan
        else {
            return Ok(None);
        };
        let reads_a_table = input.exists(|node| Ok(matches!(node, LogicalPlan::TableScan(_))))?;
        if reads_a_table {
            return Ok(None);
        }
        let rows = DataFrame::new(state, input.as_ref().clone())
            .collect()
            .await?;
        Ok(Some((target, rows)))
    }

    /// Hands one of Wavelake's own statements to the write path; refused
    /// without one.
    async fn run_command(&self, command: crate::command::Command) -> Result<RecordBatch> {
        match &self.options.write_path {
            Some(write_path) => write_path.run_command(self, command).await,
            None => Err(read_only_build()),
        }
    }

    /// Plans `sql`, which must be a query (the engine built it from parts
    /// of a statement it parsed: a `CREATE TABLE … AS` or MERGE query).
    pub async fn plan_query(&self, sql: &str) -> Result<DataFrame> {
        self.plan_statement(parse_query(sql)?).await
    }

    /// Plans one parsed statement with DataFusion: each `table_changes(…)`
    /// call it makes is resolved to the feed's files and each table it reads
    /// `VERSION AS OF` or `TIMESTAMP AS OF` to its snapshot first (by the
    /// name as written, qualified or not), then the plan is checked.
    async fn plan_statement(&self, mut statement: DfStatement) -> Result<DataFrame> {
        let DfStatement::Statement(inner) = &mut statement else {
            return self.plan_checked(statement).await;
        };
        let mut temp_names = Vec::new();
        let resolved = self.resolve_table_functions(inner, &mut temp_names).await;
        let planned = match resolved {
            Ok(()) => self.plan_checked(statement).await,
            Err(e) => Err(e),
        };
        for temp in &temp_names {
            let _ = self.ctx.deregister_table(temp.as_str());
        }
        planned
    }

    /// Registers, under fresh names in `temp_names`, what the statement's
    /// `table_changes(…)` calls and time-travelled tables read, and points
    /// the statement at them.
    async fn resolve_table_functions(
        &self,
        inner: &mut datafusion::sql::sqlparser::ast::Statement,
        temp_names: &mut Vec<String>,
    ) -> Result<()> {
        let calls = crate::change_feed::find_calls(inner)?;
        let mut feed_names = Vec::new();
        for call in calls {
            let Some(table) = self.table(&call.table) else {
                return Err(if self.directory.lookup(&call.table).is_some() {
                    Error::Sql(format!(
                        "{}: {:?} is a shared table; ask its sharing server for its changes",
                        crate::change_feed::FUNCTION_NAME,
                        call.table
                    ))
                } else {
                    Error::UnknownTable { name: call.table }
                });
            };
            let (start, end) = call.versions(&table).await?;
            let feed = table.changes(start, end).await?;
            let frame = crate::change_feed::feed_frame(&self.ctx, &table, feed).await?;
            let temp = temp_table_name();
            self.ctx.register_table(temp.as_str(), frame.into_view())?;
            temp_names.push(temp.clone());
            feed_names.push(temp);
        }
        crate::change_feed::replace_calls(inner, &feed_names);

        let mut finder = VersionFinder::default();
        let _ = inner.visit(&mut finder);
        let found = finder.found?;
        let mut version_names = Vec::new();
        for (table_name, version) in found {
            let Some(table) = self.directory.lookup(&table_name) else {
                let known = self.ctx.table_exist(table_name.as_str()).unwrap_or(false);
                return Err(if known {
                    Error::Sql(format!(
                        "time travel needs a Delta table; {table_name:?} is not one"
                    ))
                } else {
                    Error::UnknownTable { name: table_name }
                });
            };
            let (snapshot, storage) = self.resolve_version(table.as_ref(), &version).await?;
            let temp = temp_table_name();
            let provider = DeltaTableProvider::new(snapshot, storage)?.with_string_views();
            self.ctx.register_table(temp.as_str(), Arc::new(provider))?;
            temp_names.push(temp.clone());
            version_names.push(temp);
        }
        let mut replacer = VersionReplacer {
            names: version_names.into_iter(),
        };
        let _ = inner.visit(&mut replacer);
        Ok(())
    }

    /// Plans a statement that may not time travel (a `TIMESTAMP AS OF`
    /// expression), and checks the plan.
    async fn plan_without_time_travel(&self, mut statement: DfStatement) -> Result<DataFrame> {
        if let DfStatement::Statement(inner) = &mut statement {
            let mut finder = VersionFinder::default();
            let _ = inner.visit(&mut finder);
            if !finder.found?.is_empty() {
                return Err(Error::Sql(
                    "time travel is not supported in this part of a statement".into(),
                ));
            }
        }
        self.plan_checked(statement).await
    }

    /// Plans a statement whose time travel is resolved, and checks the plan.
    async fn plan_checked(&self, statement: DfStatement) -> Result<DataFrame> {
        self.check_statement(&statement)?;
        self.check_tables_exist(&statement)?;
        let plan = self.ctx.state().statement_to_plan(statement).await?;
        self.check_plan(&plan)?;
        // Tables serve strings as views; callers get the declared types.
        let plan = crate::string_views::cast_to_declared_types(plan)?;
        Ok(self.ctx.execute_logical_plan(plan).await?)
    }

    /// Refuses a query or DML statement that names a table this session
    /// does not have, as [`Error::UnknownTable`] (which callers answer
    /// with 404), before DataFusion plans it. CTEs and table functions
    /// (`delta_history('t')`) are not tables to look for.
    fn check_tables_exist(&self, statement: &DfStatement) -> Result<()> {
        use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
        let DfStatement::Statement(inner) = statement else {
            return Ok(());
        };
        let reads_or_changes_rows = matches!(
            inner.as_ref(),
            SqlStatement::Query(_)
                | SqlStatement::Insert(_)
                | SqlStatement::Update { .. }
                | SqlStatement::Delete(_)
        );
        if !reads_or_changes_rows {
            return Ok(());
        }
        // A statement DataFusion cannot resolve gets DataFusion's error; a
        // reference to a schema that does not exist is an unknown table.
        let Ok(references) = self.ctx.state().resolve_table_references(statement) else {
            return Ok(());
        };
        for reference in references {
            let is_function = match &reference {
                datafusion::common::TableReference::Bare { table } => {
                    self.ctx.table_function(table).is_ok()
                }
                _ => false,
            };
            if !is_function && !self.ctx.table_exist(reference.clone()).unwrap_or(false) {
                return Err(Error::UnknownTable {
                    name: reference.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Refuses, before planning, the DataFusion statements a sandboxed or
    /// read-only session never runs: `COPY … TO` and `CREATE EXTERNAL
    /// TABLE` touch files on the host (a build without their file formats
    /// could not even plan them, and must still say "not allowed").
    fn check_statement(&self, statement: &DfStatement) -> Result<()> {
        if !self.options.read_only && !self.options.sandboxed {
            return Ok(());
        }
        match statement {
            DfStatement::CopyTo(_) => {
                Err(Error::NotAllowed("COPY writes files on the server".into()))
            }
            DfStatement::CreateExternalTable(_) => Err(Error::NotAllowed(
                "CREATE EXTERNAL TABLE reads files on the server".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Checks a plan before it runs: DELETE and UPDATE plans must keep
    /// their whole condition (see [`check_dml_condition`]); in a read-only
    /// session no plan may change anything; in a sandboxed one no plan may
    /// touch server files or the session itself (DataFusion DDL, `SET`,
    /// `COPY … TO`).
    fn check_plan(&self, plan: &datafusion::logical_expr::LogicalPlan) -> Result<()> {
        use datafusion::common::tree_node::TreeNodeRecursion;
        use datafusion::execution::context::SQLOptions;
        use datafusion::logical_expr::LogicalPlan;
        let mut dml_checked = Ok(());
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::Dml(dml) = node {
                dml_checked = check_dml_condition(dml);
                if dml_checked.is_err() {
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        dml_checked?;
        if !self.options.read_only && !self.options.sandboxed {
            return Ok(());
        }
        // Read-only sessions run no DML either.
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(!self.options.read_only)
            .with_allow_statements(false)
            .verify_plan(plan)
            .map_err(|e| Error::NotAllowed(e.strip_backtrace()))?;
        let mut copies = false;
        plan.apply_with_subqueries(|node| {
            copies |= matches!(node, LogicalPlan::Copy(_));
            Ok(TreeNodeRecursion::Continue)
        })?;
        if copies {
            return Err(Error::NotAllowed("COPY writes files on the server".into()));
        }
        Ok(())
    }

    /// Runs one SQL statement and collects its result.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        Ok(self.sql(sql).await?.collect().await?)
    }

    /// The tables one SQL statement names, as written (`t`, `ns.t`); a
    /// statement that does not parse names none (running it reports why).
    pub fn table_references(&self, sql: &str) -> Vec<String> {
        let Ok(Body::DataFusion(statement)) = Statement::parse(sql).map(Statement::into_body)
        else {
            return Vec::new();
        };
        let statement = *statement;
        self.ctx
            .state()
            .resolve_table_references(&statement)
            .map(|references| references.iter().map(ToString::to_string).collect())
            .unwrap_or_default()
    }

    /// Runs one SQL statement and reports what it cost: files, row groups
    /// and pages pruned, rows removed by deletion vectors, bytes fetched.
    pub async fn profile(&self, sql: &str) -> Result<QueryProfile> {
        let planned = self.prepare(sql).await?;
        let batches = planned.collect().await?;
        Ok(planned.profile(batches))
    }

    /// What the query `sql` would read, from the Delta log alone (nothing
    /// is fetched but what planning needs); statements that write or run
    /// commands have no estimate.
    pub async fn estimate_reads(&self, sql: &str) -> Result<crate::ReadEstimate> {
        let (state, optimized) = self.optimized_query(sql).await?;
        Ok(crate::ReadEstimate::of(&optimized, &state))
    }

    /// Bytes of the column chunks the query `sql` would fetch, from the
    /// footers of the files the log keeps (see
    /// [`crate::read_estimate::chunk_bytes`]): what decides whether a query
    /// is worth spreading over workers.
    pub async fn estimate_chunk_bytes(&self, sql: &str) -> Result<u64> {
        let (state, optimized) = self.optimized_query(sql).await?;
        crate::read_estimate::chunk_bytes(&optimized, &state).await
    }

    /// The query `sql` planned and optimized, for an estimate; statements
    /// that write or run commands have none.
    async fn optimized_query(
        &self,
        sql: &str,
    ) -> Result<(
        datafusion::execution::session_state::SessionState,
        datafusion::logical_expr::LogicalPlan,
    )> {
        let statement = Statement::parse(sql)?;
        if statement.access() == Access::Write {
            return Err(Error::InvalidArgument(
                "only a query has a read estimate; this statement writes".into(),
            ));
        }
        let Body::DataFusion(statement) = statement.into_body() else {
            return Err(Error::InvalidArgument(
                "only a query has a read estimate; this is a command".into(),
            ));
        };
        let (state, plan) = self.plan_statement(*statement).await?.into_parts();
        let optimized = state.optimize(&plan)?;
        Ok((state, optimized))
    }

    /// Plans one statement without running it; its progress can then be
    /// read while [`PlannedQuery::collect`] runs.
    pub async fn prepare(&self, sql: &str) -> Result<PlannedQuery> {
        let frame = self.sql(sql).await?;
        let task = Arc::new(frame.task_ctx());
        let plan = frame.create_physical_plan().await?;
        Ok(PlannedQuery { plan, task })
    }

    async fn resolve_version(
        &self,
        table: &dyn TableVersions,
        version: &TableVersion,
    ) -> Result<(Snapshot, StorageRef)> {
        match version {
            TableVersion::VersionAsOf(expr) => {
                let v = literal_text(expr)
                    .and_then(|t| t.parse::<i64>().ok())
                    .ok_or_else(|| {
                        Error::Sql(format!("VERSION AS OF needs a whole number, not {expr}"))
                    })?;
                table.version(Some(v)).await
            }
            TableVersion::TimestampAsOf(expr) | TableVersion::ForSystemTimeAsOf(expr) => {
                let millis = self.evaluate_timestamp(expr).await?;
                table.version_at_timestamp(millis).await
            }
            other => Err(Error::Sql(format!(
                "unsupported time travel clause {other}"
            ))),
        }
    }

    /// Evaluates a `TIMESTAMP AS OF` expression to milliseconds since the
    /// epoch (UTC), with DataFusion so that expressions work too.
    async fn evaluate_timestamp(&self, expr: &SqlExpr) -> Result<i64> {
        use arrow::array::{Array, AsArray};
        if let Some(millis) = literal_text(expr)
            .as_deref()
            .and_then(parse_timestamp_millis)
        {
            return Ok(millis);
        }
        use arrow::datatypes::TimestampMillisecondType;
        let query = format!("SELECT CAST(CAST(({expr}) AS TIMESTAMP) AS TIMESTAMP(3))");
        let batches = self
            .plan_without_time_travel(parse_query(&query)?)
            .await
            .map_err(|e| match e {
                Error::NotAllowed(_) => e,
                e => Error::Sql(format!("TIMESTAMP AS OF {expr}: {e}")),
            })?
            .collect()
            .await?;
        let column = batches
            .first()
            .map(|b| b.column(0).clone())
            .ok_or_else(|| Error::Sql(format!("TIMESTAMP AS OF {expr} gave no value")))?;
        let values = column
            .as_primitive_opt::<TimestampMillisecondType>()
            .ok_or_else(|| Error::Sql(format!("TIMESTAMP AS OF {expr} is not a timestamp")))?;
        if values.is_empty() || values.is_null(0) {
            return Err(Error::Sql(format!("TIMESTAMP AS OF {expr} is null")));
        }
        Ok(values.value(0))
    }
}

/// `sql` as a DataFusion statement that only reads (a query the engine
/// built from parts of a statement it parsed).
fn parse_query(sql: &str) -> Result<DfStatement> {
    let statement = Statement::parse(sql)?;
    match (statement.access(), statement.into_body()) {
        (Access::Read, Body::DataFusion(statement)) => Ok(*statement),
        _ => Err(Error::Sql(format!("expected a query, not {sql}"))),
    }
}

/// Refuses a DELETE or UPDATE plan whose condition DataFusion could not
/// hand the table whole: it passes the table only the filters over the
/// table itself, so a condition with a subquery (planned as a join) or an
/// `UPDATE … FROM` would lose its condition and change every row.
fn check_dml_condition(dml: &datafusion::logical_expr::DmlStatement) -> Result<()> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::{Expr, LogicalPlan, WriteOp};
    let what = match dml.op {
        WriteOp::Delete => "DELETE",
        WriteOp::Update => "UPDATE",
        _ => return Ok(()),
    };
    let mut refusal = None;
    dml.input.apply_with_subqueries(|node| {
        let simple = match node {
            LogicalPlan::Projection(_) | LogicalPlan::Filter(_) | LogicalPlan::SubqueryAlias(_) => {
                true
            }
            LogicalPlan::TableScan(scan) => scan.table_name.resolved_eq(&dml.table_name),
            _ => false,
        };
        let subquery = node.expressions().iter().any(|expr| {
            expr.exists(|e| {
                Ok(matches!(
                    e,
                    Expr::ScalarSubquery(_)
                        | Expr::InSubquery(_)
                        | Expr::Exists(_)
                        | Expr::OuterReferenceColumn(..)
                ))
            })
            .unwrap_or(true)
        });
        if subquery {
            refusal = Some(format!(
                "{what} with a subquery in its condition is not supported; use MERGE INTO"
            ));
        } else if !simple {
            refusal = Some(format!(
                "{what} that reads other tables (FROM, joins) is not supported; use MERGE INTO"
            ));
        }
        Ok(if refusal.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    match refusal {
        Some(reason) => Err(Error::Sql(reason)),
        None => Ok(()),
    }
}

/// DataFusion's state for a session: every function family this build has.
/// Natively also DataFusion's file formats and `CREATE EXTERNAL TABLE`
/// factories (a trusted `wavelake sql` may `COPY … TO 'out.csv'`; the
/// sandbox refuses both). Other builds (the page, the edge) get Parquet,
/// the one format a Delta table holds, and no factories, so they link
/// neither the CSV, JSON nor Arrow file readers and writers.
/// DataFusion's settings before the session's own: natively those of
/// `DATAFUSION_*` environment variables over the defaults (as DataFusion's
/// own CLI reads them, e.g. `DATAFUSION_EXECUTION_TARGET_PARTITIONS`); a
/// variable DataFusion cannot read is reported and the defaults kept; hash
/// joins on few partitions build one shared table
/// ([`crate::join_build::shared_build_sides`]). The
/// environment is read once per process, not per session (the server makes
/// one per request).
fn base_config() -> SessionConfig {
    #[cfg(not(target_arch = "wasm32"))]
    {
        static FROM_ENV: std::sync::OnceLock<SessionConfig> = std::sync::OnceLock::new();
        FROM_ENV
            .get_or_init(|| {
                let mut config = SessionConfig::from_env().unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "DATAFUSION_* settings ignored");
                    SessionConfig::new()
                });
                // Footers are read exactly (length, footer, page index)
                // unless the environment says how much to read at once:
                // the server's storage answers small requests quickly.
                if std::env::var_os("DATAFUSION_EXECUTION_PARQUET_METADATA_SIZE_HINT").is_none() {
                    config.options_mut().execution.parquet.metadata_size_hint = None;
                }
                crate::join_build::shared_build_sides(config)
            })
            .clone()
    }
    #[cfg(target_arch = "wasm32")]
    {
        let mut config = SessionConfig::new();
        // A page pays for every byte: read the last 128 KiB of a data file
        // for its footer and page index (TPC-H SF1's largest, `lineitem`'s,
        // are 88 KB) rather than DataFusion's 512 KiB.
        config.options_mut().execution.parquet.metadata_size_hint = Some(FOOTER_BYTES_IN_A_PAGE);
        config
    }
}

/// How many bytes from the end of a data file a page reads for its footer
/// and page index at once.
#[cfg(target_arch = "wasm32")]
const FOOTER_BYTES_IN_A_PAGE: usize = 128 * 1024;

/// Planning for a query spread over `size` workers.
fn spread_config(config: SessionConfig, size: usize) -> SessionConfig {
    let mut config = config
        .with_target_partitions(size.max(1))
        .with_round_robin_repartition(false)
        .with_extension(Arc::new(crate::scan::WholeRowGroups));
    let options = config.options_mut();
    // A partition reads only its own files: another worker's partitions
    // cannot take them over.
    options.execution.enable_file_stream_work_stealing = false;
    let optimizer = &mut options.optimizer;
    optimizer.hash_join_single_partition_threshold = usize::MAX;
    optimizer.hash_join_single_partition_threshold_rows = usize::MAX;
    optimizer.enable_join_dynamic_filter_pushdown = false;
    optimizer.enable_aggregate_dynamic_filter_pushdown = false;
    config
}

fn session_state(
    config: SessionConfig,
    runtime: Option<Arc<datafusion::execution::runtime_env::RuntimeEnv>>,
) -> datafusion::execution::session_state::SessionState {
    #[cfg(any(feature = "native", not(feature = "bare-session")))]
    use datafusion::execution::SessionStateDefaults;
    use datafusion::execution::session_state::SessionStateBuilder;
    #[cfg(feature = "native")]
    let (formats, factories) = (
        SessionStateDefaults::default_file_formats(),
        SessionStateDefaults::default_table_factories(),
    );
    #[cfg(not(feature = "native"))]
    let (formats, factories) = {
        use datafusion::datasource::file_format::FileFormatFactory;
        use datafusion::datasource::file_format::parquet::ParquetFormatFactory;
        let parquet: Arc<dyn FileFormatFactory> = Arc::new(ParquetFormatFactory::new());
        (vec![parquet], HashMap::new())
    };
    let builder = SessionStateBuilder::new()
        .with_config(config)
        .with_table_factories(factories);
    // The size benchmark's floor: nothing DataFusion registers by default.
    #[cfg(feature = "bare-session")]
    let mut builder = {
        drop(formats);
        builder
    };
    #[cfg(not(feature = "bare-session"))]
    let mut builder = builder
        .with_file_formats(formats)
        .with_expr_planners(SessionStateDefaults::default_expr_planners())
        .with_scalar_functions(SessionStateDefaults::default_scalar_functions())
        .with_higher_order_functions(SessionStateDefaults::default_higher_order_functions())
        .with_aggregate_functions(SessionStateDefaults::default_aggregate_functions())
        .with_window_functions(SessionStateDefaults::default_window_functions())
        .with_table_function_list(SessionStateDefaults::default_table_functions());
    if let Some(runtime) = runtime {
        builder = builder.with_runtime_env(runtime);
    }
    builder
        .with_optimizer_rules(crate::semi_join_reduction::optimizer_rules())
        .with_physical_optimizer_rule(Arc::new(crate::filter_order::CheapConditionsFirst))
        .with_physical_optimizer_rule(Arc::new(crate::scan::SelectiveRowTests))
        .with_physical_optimizer_rule(Arc::new(
            crate::decimal_arithmetic::BatchCheckedDecimalArithmetic,
        ))
        .with_query_planner(Arc::new(crate::shared_subplan::SharedSubplanPlanner))
        .build()
}

/// Parses `YYYY-MM-DD[ HH:MM:SS[.fff]]` or RFC 3339 text as UTC milliseconds.
pub fn parse_timestamp_millis(text: &str) -> Option<i64> {
    use chrono::{NaiveDate, NaiveDateTime};
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_millis());
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

fn literal_text(expr: &SqlExpr) -> Option<String> {
    match expr {
        SqlExpr::Value(v) => match &v.value {
            Value::Number(n, _) => Some(n.clone()),
            Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Collects the tables that carry a time travel clause, in visit order,
/// by their names as written (`t`, `ns.t`); a name that is no table name
/// (three parts, say) is an error.
struct VersionFinder {
    found: Result<Vec<(String, TableVersion)>>,
}

impl Default for VersionFinder {
    fn default() -> Self {
        Self {
            found: Ok(Vec::new()),
        }
    }
}

impl VisitorMut for VersionFinder {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            version: Some(version),
            ..
        } = factor
        {
            match (&mut self.found, crate::command::object_name(name)) {
                (Ok(found), Ok(table)) => found.push((table, version.clone())),
                (found, Err(e)) => {
                    *found = Err(e);
                    return ControlFlow::Break(());
                }
                (Err(_), _) => return ControlFlow::Break(()),
            }
        }
        ControlFlow::Continue(())
    }
}

/// Points each time-travelled table at its registered snapshot.
struct VersionReplacer<I> {
    names: I,
}

impl<I: Iterator<Item = String>> VisitorMut for VersionReplacer<I> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, version, .. } = factor
            && version.is_some()
            && let Some(temp) = self.names.next()
        {
            *name = ObjectName::from(vec![Ident::new(temp)]);
            *version = None;
        }
        ControlFlow::Continue(())
    }
}
