//! The `wavelake` npm package: SQL over Delta Lake tables, run in the page,
//! the edge function or the Node process that calls it. Tables come from a
//! Delta Sharing server (a profile's endpoint and bearer token), from any
//! static HTTP host (the table's base URL), or from a list of presigned
//! file URLs; their files are read with HTTP range requests and deletion
//! vectors are applied as natively.
//!
//! ```js
//! const lake = await Wavelake.connect({ endpoint, bearerToken });
//! const table = await lake.sql("SELECT count(*) FROM sales.orders");
//! ```

mod abort;
mod error;
mod group;
mod placement;
mod progress;
mod subscription;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::ipc::writer::StreamWriter;
use wasm_bindgen::prelude::*;
use wavelake_engine::sharing::{SharedCatalog, SharingProfile};
use wavelake_engine::storage::{
    HttpStorage, OpfsBlobStore, PersistentCache, RangeCache, StorageRef, UrlMapStorage, remove_all,
};
use wavelake_engine::{SqlSession, SqlSessionOptions};

use crate::error::{from_engine, js_error};
use crate::placement::{RunOn, offload_options};
use wavelake_engine::server_sql::{Decision, Offload};

#[wasm_bindgen(module = "apache-arrow")]
extern "C" {
    /// `apache-arrow`'s reader of an Arrow IPC stream.
    #[wasm_bindgen(js_name = tableFromIPC)]
    fn table_from_ipc(bytes: &js_sys::Uint8Array) -> JsValue;
}

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
import type { Table } from "apache-arrow";

/** What one Delta table scan of a query cost (see {@link Wavelake.explain}). */
export interface ScanReport {
  /** Active files in the table's snapshot. */
  files_total: number;
  /** Files skipped by partition values and file statistics. */
  files_pruned: number;
  /** Files read. */
  files_scanned: number;
  /** Files read that carry a deletion vector. */
  files_with_deletion_vectors: number;
  /** Rows the deletion vectors removed. */
  deletion_vector_rows_removed: number;
  /** Row groups examined in the files read. */
  row_groups_total: number;
  /** Row groups skipped by statistics, bloom filters or the limit. */
  row_groups_pruned: number;
  /** Pages skipped by the page index. */
  pages_pruned: number;
  /** Rows in the pages skipped. */
  page_rows_pruned: number;
  /** Rows the scan produced. */
  output_rows: number;
  /** HTTP requests sent. */
  fetch_requests: number;
  /** Bytes fetched from storage. */
  bytes_fetched: number;
  /** Bytes served from the session's cache instead. */
  bytes_from_cache: number;
}

/** What {@link Wavelake.explain} resolves to. */
export interface QueryReport {
  /** One entry per Delta table scan in the plan. */
  scans: ScanReport[];
  /** Rows in the query's result. */
  rows: number;
  /** The executed plan with its metrics, as `EXPLAIN ANALYZE` prints it. */
  plan: string;
}
/**
 * What a query would read, from the Delta log alone, before anything is
 * fetched (see {@link Wavelake.estimate}).
 */
export interface ReadEstimate {
  /** Bytes of the data files the query keeps (it fetches parts of them). */
  bytes: number;
  /** Data files kept after partition and statistics pruning. */
  files: number;
  /** Data files pruned. */
  filesPruned: number;
  /** Delta table scans in the query. */
  scans: number;
  /** A source other than a Delta table scan, if the query has one. */
  otherSource: string | null;
}
/** Where a query runs (see {@link Wavelake.placement}). */
export interface Placement {
  /** In this page (or process), or on the server. */
  runOn: "page" | "server";
  /** Why, in words. */
  reason: string;
  /** What it would read, from the Delta log (`null` when not estimated). */
  estimate: ReadEstimate | null;
}

/** A query's rows and where and how it ran (see {@link Wavelake.query}). */
export interface QueryResult {
  /** The rows (or, with `{ ipc: true }`, the Arrow IPC stream bytes). */
  table: Table | Uint8Array;
  /** Where it ran: this `page` (or process), the `server`, or the server's `cluster`. */
  ranOn: "page" | "server" | "cluster";
  /** Why it ran in the page or was sent to the server. */
  reason: string;
  /** Where the server ran it and why (`null` in the page). */
  serverReason: string | null;
  /** Milliseconds from the call to the last row. */
  elapsedMs: number;
  /** Bytes of the data files it read after pruning, from the Delta log (`null` when not estimated). */
  bytesRead: number | null;
  /** Bytes the page fetched from storage (0 when the server ran it). */
  bytesFetched: number;
  /** Bytes of the answer received from the server (0 in the page). */
  bytesReceived: number;
}

/**
 * Where queries go when they read more than a page should: the Wavelake
 * server's SQL API, which runs them in its process or on its cluster.
 */
export interface ServerOptions {
  /**
   * The SQL API (`https://host/api/v1/sql`); by default the one beside a
   * Wavelake sharing endpoint (`https://host/delta-sharing/`).
   */
  sqlUrl?: string;
  /** Bytes a query may read in the page (default 256 MiB). */
  maxPageBytes?: number;
  /**
   * Where queries run when {@link SqlOptions.runOn} does not say: `"page"`
   * (the default: {@link Wavelake.placement} only advises) or `"auto"`
   * (above `maxPageBytes`, on the server).
   */
  runOn?: "page" | "auto";
}

/** Settings of a session. */
export interface SessionOptions {
  /**
   * Bytes of Parquet pages, footers and deletion vectors kept in memory so
   * that repeated queries do not fetch them again (default 64 MiB; 0 keeps
   * none).
   */
  cacheBytes?: number;
  /**
   * Bytes of immutable table files (data pages, footers, deletion vectors,
   * commits, checkpoints) kept in the origin's private file system, so that
   * after a reload a repeated query fetches none of them again (default
   * 256 MiB where the host has one: pages and workers, not Node; 0 keeps
   * none). Shared by every session of the origin; see
   * {@link Wavelake.clearPersistentCache}.
   */
  persistentCacheBytes?: number;
}

/** What the persistent cache did for a session (see {@link Wavelake.persistentCache}). */
export interface PersistentCacheFigures {
  /** Reads answered from the cache. */
  hits: number;
  /** Reads of immutable files that went to the network. */
  misses: number;
  /** Bytes answered from the cache. */
  bytesServed: number;
  /** Bytes written to the cache. */
  bytesWritten: number;
  /** Entries removed to stay within the budget. */
  evictions: number;
  /** Bytes the cache holds. */
  bytesHeld: number;
  /** The byte budget. */
  budget: number;
}

/** Where a Delta Sharing server is, as in a recipient's profile file. */
export interface SharingProfile extends SessionOptions {
  /** The server's Delta Sharing endpoint, `https://host/delta-sharing/`. */
  endpoint: string;
  /** The recipient's bearer token. */
  bearerToken: string;
  /** Where queries too large for the page go (a Wavelake server's SQL API). */
  server?: ServerOptions;
}

/** How far a running query has got. */
export interface QueryProgress {
  /** Data files the query reads, after pruning. */
  filesTotal: number;
  /** Data files it has started reading. */
  filesRead: number;
  /** Bytes fetched from storage so far. */
  bytesFetched: number;
  /** Bytes served from the session's cache instead. */
  bytesFromCache: number;
  /** HTTP range requests sent so far. */
  requests: number;
}

/** Options of {@link Wavelake.sql}. */
export interface SqlOptions {
  /** Cancels the query; it then rejects with an error whose code is `ABORTED`. */
  signal?: AbortSignal;
  /** Called while the query runs (every 100 ms when something changed) and once at its end. */
  onProgress?: (progress: QueryProgress) => void;
  /** Resolve to the raw Arrow IPC stream bytes instead of an `apache-arrow` Table. */
  ipc?: boolean;
  /**
   * `"page"`: run here; `"server"`: send to the server's SQL API; `"auto"`:
   * send it when it reads more than the page's limit. Default: the
   * session's `server.runOn`, else `"page"`. Progress is reported for runs
   * in the page.
   */
  runOn?: "page" | "server" | "auto";
}
"#;

/// A SQL session over Delta tables read straight from storage.
#[wasm_bindgen]
pub struct Wavelake {
    engine: SqlSession,
    /// After `connect`: the recipient's tables, opened when a query names
    /// them.
    shared: Option<SharedCatalog>,
    /// Where queries too large for the page go.
    offload: Offload,
    /// Where queries run when they do not say.
    default_run_on: RunOn,
}

/// Why a session over static-host tables runs every query itself.
const NO_SERVER: &str = "the tables are on a static host, which has no server to run queries";

/// How one query ran.
struct Outcome {
    /// The rows as an Arrow IPC stream.
    ipc: Vec<u8>,
    ran_on: String,
    reason: String,
    server_reason: Option<String>,
    elapsed_ms: f64,
    bytes_read: Option<u64>,
    bytes_fetched: u64,
    bytes_received: u64,
}

fn engine_error(err: wavelake_engine::Error) -> JsValue {
    from_engine(&err)
}

/// The cache budget when a session's options give none.
const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

/// The persistent cache's budget when a session's options give none.
const DEFAULT_PERSISTENT_CACHE_BYTES: u64 = 256 << 20;

/// The directory of the origin's private file system the package keeps
/// its persistent cache in.
const PERSISTENT_CACHE_DIRECTORY: &str = "wavelake-cache";

/// The persistent cache `options.persistentCacheBytes` asks for, where the
/// host has an origin private file system.
fn persistent_cache(options: &JsValue) -> Result<Option<Arc<PersistentCache>>, JsValue> {
    let budget =
        bytes_field(options, "persistentCacheBytes")?.unwrap_or(DEFAULT_PERSISTENT_CACHE_BYTES);
    if budget == 0 {
        return Ok(None);
    }
    Ok(OpfsBlobStore::new(PERSISTENT_CACHE_DIRECTORY)
        .map(|store| Arc::new(PersistentCache::new(Arc::new(store), budget))))
}

/// A session engine with the range cache `options.cacheBytes` and the
/// persistent cache `options.persistentCacheBytes` ask for.
fn session_engine(options: &JsValue) -> Result<SqlSession, JsValue> {
    let budget = bytes_field(options, "cacheBytes")?.unwrap_or(DEFAULT_CACHE_BYTES);
    Ok(SqlSession::with_options(SqlSessionOptions {
        range_cache: (budget > 0).then(|| Arc::new(RangeCache::new(budget))),
        persistent_cache: persistent_cache(options)?,
        // Every byte comes over HTTP.
        late_materialization: true,
        // The package only reads: the engine's classifier refuses writes.
        read_only: true,
        ..SqlSessionOptions::default()
    }))
}

/// A plain object of counts, `{ name: number, ... }`.
fn number_object(fields: &[(&str, u64)]) -> JsValue {
    let object = js_sys::Object::new();
    for (name, value) in fields {
        // Setting a property on a fresh object cannot fail.
        let _ = js_sys::Reflect::set(&object, &(*name).into(), &JsValue::from_f64(*value as f64));
    }
    object.into()
}

fn field(options: &JsValue, name: &str) -> Option<JsValue> {
    js_sys::Reflect::get(options, &name.into())
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

/// A number of bytes, 0 or more, when `options` has `name`.
fn bytes_field(options: &JsValue, name: &str) -> Result<Option<u64>, JsValue> {
    let Some(value) = field(options, name) else {
        return Ok(None);
    };
    match value.as_f64() {
        Some(bytes) if bytes >= 0.0 && bytes.is_finite() => Ok(Some(bytes as u64)),
        _ => Err(js_error(
            "INVALID_ARGUMENT",
            &format!("{name} must be a number of bytes, 0 or more"),
        )),
    }
}

fn string_field(options: &JsValue, name: &str) -> Result<String, JsValue> {
    field(options, name)
        .and_then(|v| v.as_string())
        .ok_or_else(|| js_error("INVALID_ARGUMENT", &format!("{name} is required")))
}

#[wasm_bindgen]
impl Wavelake {
    /// Connects to a Wavelake or any Delta Sharing server: every table
    /// shared with the recipient becomes queryable as `schema.table` (its
    /// files are fetched when a query first names it).
    pub async fn connect(
        #[wasm_bindgen(unchecked_param_type = "SharingProfile")] profile: JsValue,
    ) -> Result<Wavelake, JsValue> {
        let engine = session_engine(&profile)?;
        let endpoint = string_field(&profile, "endpoint")?;
        let token = string_field(&profile, "bearerToken")?;
        let server_options = field(&profile, "server").unwrap_or(JsValue::UNDEFINED);
        let (offload, default_run_on) = offload_options(&server_options, &endpoint, &token)?;
        let profile = SharingProfile {
            share_credentials_version: 1,
            endpoint,
            bearer_token: token,
            expiration_time: None,
        };
        let catalog = SharedCatalog::connect(&profile)
            .await
            .map_err(engine_error)?;
        catalog.register_versions(&engine).map_err(engine_error)?;
        Ok(Self {
            engine,
            shared: Some(catalog),
            offload,
            default_run_on,
        })
    }

    /// A session with the Delta table published under `baseUrl` (any static
    /// HTTP host that answers range requests) registered as `name`.
    #[wasm_bindgen(js_name = openTable)]
    pub async fn open_table(
        name: String,
        #[wasm_bindgen(js_name = "baseUrl")] base_url: String,
        options: Option<SessionOptions>,
    ) -> Result<Wavelake, JsValue> {
        let lake = Self::empty(options)?;
        lake.add_table(name, base_url).await?;
        Ok(lake)
    }

    /// A session with no tables yet.
    pub fn empty(options: Option<SessionOptions>) -> Result<Wavelake, JsValue> {
        let options: JsValue = options.map(Into::into).unwrap_or(JsValue::UNDEFINED);
        Ok(Self {
            engine: session_engine(&options)?,
            shared: None,
            offload: Offload::none(NO_SERVER),
            default_run_on: RunOn::Page,
        })
    }

    /// Registers another table on a static host as `name`; resolves to its
    /// latest version.
    #[wasm_bindgen(js_name = addTable)]
    pub async fn add_table(
        &self,
        name: String,
        #[wasm_bindgen(js_name = "baseUrl")] base_url: String,
    ) -> Result<f64, JsValue> {
        let storage = HttpStorage::new(&base_url).map_err(engine_error)?;
        self.register(&name, Arc::new(storage)).await
    }

    /// Registers a table given as presigned URLs: `files` maps each path of
    /// the table (`_delta_log/00000000000000000000.json`, data files,
    /// deletion vectors) to the URL it is read from.
    #[wasm_bindgen(js_name = addTableFromUrls)]
    pub async fn add_table_from_urls(
        &self,
        name: String,
        #[wasm_bindgen(unchecked_param_type = "Record<string, string>")] files: JsValue,
    ) -> Result<f64, JsValue> {
        let storage = url_map_storage(&name, files)?;
        self.register(&name, storage).await
    }

    /// Runs one SQL query — in this page or process, or with `runOn` on
    /// the server (see {@link Wavelake.placement}) — and resolves to an
    /// `apache-arrow` Table (or, with `{ ipc: true }`, the Arrow IPC stream
    /// bytes). Time travel: `SELECT … FROM t VERSION AS OF 3` or
    /// `TIMESTAMP AS OF '2024-01-01 00:00:00'`; a table's history:
    /// `SELECT * FROM delta_history('t')`. `onProgress` hears the files and
    /// bytes read as they are; `signal` cancels.
    #[wasm_bindgen(unchecked_return_type = "Table | Uint8Array")]
    pub async fn sql(
        &self,
        query: String,
        options: Option<SqlOptions>,
    ) -> Result<JsValue, JsValue> {
        let options: JsValue = options.map(Into::into).unwrap_or(JsValue::UNDEFINED);
        let outcome = self.run(&query, &options).await?;
        Ok(rows(&outcome.ipc, &options))
    }

    /// Runs one SQL query as {@link Wavelake.sql} does and resolves to its
    /// rows with where it ran (`page`, `server` or `cluster`), why, the
    /// time it took and the bytes it read, fetched and received.
    #[wasm_bindgen(unchecked_return_type = "QueryResult")]
    pub async fn query(
        &self,
        query: String,
        options: Option<SqlOptions>,
    ) -> Result<JsValue, JsValue> {
        let options: JsValue = options.map(Into::into).unwrap_or(JsValue::UNDEFINED);
        let outcome = self.run(&query, &options).await?;
        let result = serde_json::json!({
            "ranOn": outcome.ran_on,
            "reason": outcome.reason,
            "serverReason": outcome.server_reason,
            "elapsedMs": outcome.elapsed_ms,
            "bytesRead": outcome.bytes_read,
            "bytesFetched": outcome.bytes_fetched,
            "bytesReceived": outcome.bytes_received,
        });
        let object = js_sys::JSON::parse(&result.to_string())?;
        js_sys::Reflect::set(&object, &"table".into(), &rows(&outcome.ipc, &options))?;
        Ok(object)
    }

    /// Where `query` would run with `runOn: "auto"`, and why, decided from
    /// the Delta log before any data is fetched: `{ runOn, reason,
    /// estimate }`. A page can offer to send a large query to the server.
    #[wasm_bindgen(unchecked_return_type = "Placement")]
    pub async fn placement(&self, query: String) -> Result<JsValue, JsValue> {
        self.open_referenced(&query).await?;
        let decision = self
            .offload
            .decide(&self.engine, self.shared.as_ref(), &query)
            .await
            .map_err(engine_error)?;
        let placement = serde_json::json!({
            "runOn": if decision.to_server { "server" } else { "page" },
            "reason": decision.reason,
            "estimate": decision.estimate,
        });
        js_sys::JSON::parse(&placement.to_string())
    }

    /// Runs a query and reports what it cost: `{ scans, rows, plan }`, with
    /// per Delta scan the files, row groups and pages pruned, rows removed
    /// by deletion vectors, requests sent and bytes fetched, and the plan
    /// with its metrics as `EXPLAIN ANALYZE` prints it.
    #[wasm_bindgen(unchecked_return_type = "QueryReport")]
    pub async fn explain(&self, query: String) -> Result<JsValue, JsValue> {
        self.open_referenced(&query).await?;
        let profile = self.engine.profile(&query).await.map_err(engine_error)?;
        let rows: usize = profile.batches.iter().map(|b| b.num_rows()).sum();
        let report = serde_json::json!({
            "scans": profile.scans,
            "rows": rows,
            "plan": profile.plan,
        });
        js_sys::JSON::parse(&report.to_string())
    }

    /// What a query would read, from the Delta log alone, before any data
    /// file or deletion vector is fetched: `{ bytes, files, filesPruned,
    /// scans, otherSource }`. A page can decide from it whether to run the
    /// query itself or send it to a server.
    #[wasm_bindgen(unchecked_return_type = "ReadEstimate")]
    pub async fn estimate(&self, query: String) -> Result<JsValue, JsValue> {
        self.open_referenced(&query).await?;
        let estimate = self
            .engine
            .estimate_reads(&query)
            .await
            .map_err(engine_error)?;
        let json =
            serde_json::to_string(&estimate).map_err(|e| js_error("INTERNAL", &e.to_string()))?;
        js_sys::JSON::parse(&json)
    }

    /// The shares the recipient can read (after `connect`).
    pub async fn shares(&self) -> Result<Vec<String>, JsValue> {
        self.client()?.shares().await.map_err(engine_error)
    }

    /// The schemas of one of the recipient's shares (after `connect`).
    pub async fn schemas(&self, share: String) -> Result<Vec<String>, JsValue> {
        self.client()?.schemas(&share).await.map_err(engine_error)
    }

    /// Follows a shared table's commits (after `connect`, on a Wavelake
    /// server): each `next()` (or each turn of `for await`) is the next
    /// commit, with its rows from the change data feed when
    /// `options.changes` is true. A dropped connection resumes after the
    /// last commit received.
    pub async fn subscribe(
        &self,
        table: String,
        #[wasm_bindgen(unchecked_param_type = "SubscribeOptions")] options: Option<JsValue>,
    ) -> Result<subscription::Subscription, JsValue> {
        let catalog = self.shared.as_ref().ok_or_else(|| {
            js_error(
                "INVALID_ARGUMENT",
                "subscribe needs a session connected to a Wavelake server",
            )
        })?;
        let options = options.unwrap_or(JsValue::UNDEFINED);
        let changes = field(&options, "changes")
            .map(|v| {
                v.as_bool()
                    .ok_or_else(|| js_error("INVALID_ARGUMENT", "changes must be true or false"))
            })
            .transpose()?
            .unwrap_or(false);
        let from_version = field(&options, "fromVersion")
            .map(|v| match v.as_f64() {
                Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= 9.0e15 => Ok(n as i64),
                _ => Err(js_error(
                    "INVALID_ARGUMENT",
                    "fromVersion must be a version: a whole number, 0 or more",
                )),
            })
            .transpose()?;
        let options = wavelake_engine::sharing::subscription::SubscribeOptions {
            changes,
            from_version,
        };
        let followed = catalog
            .subscribe(&table, &options)
            .await
            .map_err(engine_error)?;
        Ok(subscription::Subscription::new(followed))
    }

    /// What the persistent cache did for this session and holds, or
    /// `null` when the session has none (the host has no origin private
    /// file system, or `persistentCacheBytes` was 0).
    #[wasm_bindgen(js_name = persistentCache, unchecked_return_type = "PersistentCacheFigures | null")]
    pub async fn persistent_cache(&self) -> Result<JsValue, JsValue> {
        let Some(cache) = &self.engine.options().persistent_cache else {
            return Ok(JsValue::NULL);
        };
        let held = cache.measure().await.map_err(engine_error)?;
        let figures = cache.figures();
        Ok(number_object(&[
            ("hits", figures.hits),
            ("misses", figures.misses),
            ("bytesServed", figures.bytes_served),
            ("bytesWritten", figures.bytes_written),
            ("evictions", figures.evictions),
            ("bytesHeld", held),
            ("budget", figures.budget),
        ]))
    }

    /// Removes everything the persistent cache holds for this origin
    /// (resolves once it is gone; does nothing where there is none).
    #[wasm_bindgen(js_name = clearPersistentCache)]
    pub async fn clear_persistent_cache() -> Result<(), JsValue> {
        let Some(store) = OpfsBlobStore::new(PERSISTENT_CACHE_DIRECTORY) else {
            return Ok(());
        };
        remove_all(&store).await.map_err(engine_error)
    }

    /// The names queries can use: registered tables and, after `connect`,
    /// every shared table.
    pub fn tables(&self) -> Vec<String> {
        let mut names = self.engine.table_names();
        if let Some(catalog) = &self.shared {
            names.extend(catalog.names().cloned());
        }
        names.sort();
        names.dedup();
        names
    }

    fn client(&self) -> Result<&wavelake_engine::sharing::SharingClient, JsValue> {
        self.shared
            .as_ref()
            .map(SharedCatalog::client)
            .ok_or_else(|| {
                js_error(
                    "INVALID_ARGUMENT",
                    "this session is not connected to a Delta Sharing server",
                )
            })
    }

    /// Runs `query` where `options.runOn` (or the session) says.
    async fn run(&self, query: &str, options: &JsValue) -> Result<Outcome, JsValue> {
        let signal = field(options, "signal").and_then(|s| s.dyn_into().ok());
        let on_progress = field(options, "onProgress").and_then(|f| f.dyn_into().ok());
        let run_on = RunOn::parse(field(options, "runOn"))?.unwrap_or(self.default_run_on);
        let started = js_sys::Date::now();
        abort::abortable(signal, async {
            if run_on != RunOn::Server {
                self.open_referenced(query).await?;
            }
            let mut decision = self.decide(query, run_on).await?;
            if decision.to_server {
                match self.server()?.run(query, None).await {
                    Ok(answer) => {
                        return Ok(Outcome {
                            bytes_received: answer.ipc.len() as u64,
                            ipc: answer.ipc.to_vec(),
                            ran_on: answer.ran_on,
                            reason: decision.reason,
                            server_reason: Some(answer.reason),
                            elapsed_ms: js_sys::Date::now() - started,
                            bytes_read: answer.read_bytes.or(decision.estimate.map(|e| e.bytes)),
                            bytes_fetched: 0,
                        });
                    }
                    // Deciding alone, the package runs the query itself
                    // when the server turns out to have no SQL API.
                    Err(e @ wavelake_engine::Error::NoSqlApi { .. }) if run_on == RunOn::Auto => {
                        self.open_referenced(query).await?;
                        decision = Decision {
                            to_server: false,
                            reason: format!("{}, but {e}", decision.reason),
                            ..decision
                        };
                    }
                    Err(e) => return Err(engine_error(e)),
                }
            }
            let planned = self.engine.prepare(query).await.map_err(engine_error)?;
            let batches = progress::collect(&planned, on_progress)
                .await
                .map_err(engine_error)?;
            let ipc = ipc_stream(&planned.schema(), &batches)?;
            Ok(Outcome {
                ipc,
                ran_on: "page".into(),
                reason: decision.reason,
                server_reason: None,
                elapsed_ms: js_sys::Date::now() - started,
                bytes_read: decision.estimate.map(|e| e.bytes),
                bytes_fetched: planned.progress().bytes_fetched,
                bytes_received: 0,
            })
        })
        .await
    }

    /// Where `query` goes when asked to run `run_on`.
    async fn decide(&self, query: &str, run_on: RunOn) -> Result<Decision, JsValue> {
        let asked = |to_server: bool, reason: &str| Decision {
            to_server,
            reason: reason.to_owned(),
            estimate: None,
        };
        match run_on {
            RunOn::Page => Ok(asked(false, "asked to run in the page")),
            RunOn::Server => {
                self.server()?;
                Ok(asked(true, "asked to run on the server"))
            }
            RunOn::Auto => self
                .offload
                .decide(&self.engine, self.shared.as_ref(), query)
                .await
                .map_err(engine_error),
        }
    }

    /// The server's SQL API, or an `INVALID_ARGUMENT` error saying why
    /// there is none.
    fn server(&self) -> Result<&wavelake_engine::server_sql::ServerSql, JsValue> {
        self.offload.server().map_err(|why| {
            js_error(
                "INVALID_ARGUMENT",
                &format!("this query cannot run on a server: {why}"),
            )
        })
    }

    /// Registers the table in `storage` as `name`; its latest version.
    async fn register(&self, name: &str, storage: StorageRef) -> Result<f64, JsValue> {
        let snapshot = self
            .engine
            .register(name, storage)
            .await
            .map_err(engine_error)?;
        Ok(snapshot.version() as f64)
    }

    /// Opens the shared tables a query names that are not open yet.
    async fn open_referenced(&self, query: &str) -> Result<(), JsValue> {
        match &self.shared {
            Some(catalog) => catalog
                .open_referenced(&self.engine, query)
                .await
                .map_err(engine_error),
            None => Ok(()),
        }
    }
}

/// The storage of table `name` given as presigned URLs: `files` maps each
/// path of the table to the URL it is read from.
fn url_map_storage(name: &str, files: JsValue) -> Result<StorageRef, JsValue> {
    let mut urls = HashMap::new();
    for entry in js_sys::Object::entries(&files.into()).iter() {
        let pair: js_sys::Array = entry.into();
        if let (Some(path), Some(url)) = (pair.get(0).as_string(), pair.get(1).as_string()) {
            urls.insert(path, url);
        }
    }
    let any_url = urls
        .values()
        .next()
        .cloned()
        .ok_or_else(|| js_error("INVALID_ARGUMENT", "files must map table paths to URLs"))?;
    let reader: StorageRef = Arc::new(HttpStorage::new(&any_url).map_err(engine_error)?);
    Ok(Arc::new(UrlMapStorage::new(
        format!("urls://{name}/"),
        urls,
        reader,
    )))
}

/// `batches` as an Arrow IPC stream.
fn ipc_stream(
    schema: &arrow::datatypes::SchemaRef,
    batches: &[arrow::array::RecordBatch],
) -> Result<Vec<u8>, JsValue> {
    let arrow_error = |e: arrow::error::ArrowError| js_error("ARROW_ERROR", &e.to_string());
    let mut bytes = Vec::new();
    let mut writer = StreamWriter::try_new(&mut bytes, schema).map_err(arrow_error)?;
    for batch in batches {
        writer.write(batch).map_err(arrow_error)?;
    }
    writer.finish().map_err(arrow_error)?;
    drop(writer);
    Ok(bytes)
}

/// The rows of an IPC stream as the caller asked: an `apache-arrow` Table,
/// or with `{ ipc: true }` the bytes.
fn rows(ipc: &[u8], options: &JsValue) -> JsValue {
    let array = js_sys::Uint8Array::from(ipc);
    if field(options, "ipc").and_then(|v| v.as_bool()) == Some(true) {
        array.into()
    } else {
        table_from_ipc(&array)
    }
}

#[wasm_bindgen]
extern "C" {
    /// Options of `sql`.
    #[wasm_bindgen(typescript_type = "SqlOptions")]
    pub type SqlOptions;

    /// Options of a session.
    #[wasm_bindgen(typescript_type = "SessionOptions")]
    pub type SessionOptions;
}
