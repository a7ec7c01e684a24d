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
mod progress;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::ipc::writer::StreamWriter;
use wasm_bindgen::prelude::*;
use wavelake_engine::sharing::{SharedCatalog, SharingProfile};
use wavelake_engine::storage::{HttpStorage, RangeCache, StorageRef, UrlMapStorage};
use wavelake_engine::{Engine, EngineOptions};

use crate::error::{from_engine, js_error};

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
/** Settings of a session. */
export interface SessionOptions {
  /**
   * Bytes of Parquet pages, footers and deletion vectors kept in memory so
   * that repeated queries do not fetch them again (default 64 MiB; 0 keeps
   * none).
   */
  cacheBytes?: number;
}

/** Where a Delta Sharing server is, as in a recipient's profile file. */
export interface SharingProfile extends SessionOptions {
  /** The server's Delta Sharing endpoint, `https://host/delta-sharing/`. */
  endpoint: string;
  /** The recipient's bearer token. */
  bearerToken: string;
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
}
"#;

/// A SQL session over Delta tables read straight from storage.
#[wasm_bindgen]
pub struct Wavelake {
    engine: Engine,
    /// After `connect`: the recipient's tables, opened when a query names
    /// them.
    shared: Option<SharedCatalog>,
}

fn engine_error(err: wavelake_engine::Error) -> JsValue {
    from_engine(&err)
}

/// The cache budget when a session's options give none.
const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

/// A session engine with the range cache `options.cacheBytes` asks for.
fn session_engine(options: &JsValue) -> Result<Engine, JsValue> {
    let budget = match field(options, "cacheBytes") {
        None => DEFAULT_CACHE_BYTES,
        Some(value) => match value.as_f64() {
            Some(bytes) if bytes >= 0.0 && bytes.is_finite() => bytes as u64,
            _ => {
                return Err(js_error(
                    "INVALID_ARGUMENT",
                    "cacheBytes must be a number of bytes, 0 or more",
                ));
            }
        },
    };
    Ok(Engine::with_options(EngineOptions {
        range_cache: (budget > 0).then(|| Arc::new(RangeCache::new(budget))),
        // The package only reads: the engine's classifier refuses writes.
        read_only: true,
        ..EngineOptions::default()
    }))
}

fn field(options: &JsValue, name: &str) -> Option<JsValue> {
    js_sys::Reflect::get(options, &name.into())
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
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
        let profile = SharingProfile {
            share_credentials_version: 1,
            endpoint: string_field(&profile, "endpoint")?,
            bearer_token: string_field(&profile, "bearerToken")?,
            expiration_time: None,
        };
        let catalog = SharedCatalog::connect(&profile)
            .await
            .map_err(engine_error)?;
        catalog.register_versions(&engine).map_err(engine_error)?;
        Ok(Self {
            engine,
            shared: Some(catalog),
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
        let mut urls = HashMap::new();
        for entry in js_sys::Object::entries(&files.into()).iter() {
            let pair: js_sys::Array = entry.into();
            if let (Some(path), Some(url)) = (pair.get(0).as_string(), pair.get(1).as_string()) {
                urls.insert(path, url);
            }
        }
        let any_url =
            urls.values().next().cloned().ok_or_else(|| {
                js_error("INVALID_ARGUMENT", "files must map table paths to URLs")
            })?;
        let reader: StorageRef = Arc::new(HttpStorage::new(&any_url).map_err(engine_error)?);
        let storage = UrlMapStorage::new(format!("urls://{name}/"), urls, reader);
        self.register(&name, Arc::new(storage)).await
    }

    /// Runs one SQL query in this page or process; resolves to an
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
        let signal = field(&options, "signal").and_then(|s| s.dyn_into().ok());
        let raw = field(&options, "ipc").and_then(|v| v.as_bool()) == Some(true);
        let on_progress = field(&options, "onProgress").and_then(|f| f.dyn_into().ok());
        abort::abortable(signal, async {
            self.open_referenced(&query).await?;
            let planned = self.engine.prepare(&query).await.map_err(engine_error)?;
            let schema = planned.schema();
            let batches = progress::collect(&planned, on_progress)
                .await
                .map_err(engine_error)?;
            let mut bytes = Vec::new();
            let mut writer = StreamWriter::try_new(&mut bytes, &schema)
                .map_err(|e| js_error("ARROW_ERROR", &e.to_string()))?;
            for batch in &batches {
                writer
                    .write(batch)
                    .map_err(|e| js_error("ARROW_ERROR", &e.to_string()))?;
            }
            writer
                .finish()
                .map_err(|e| js_error("ARROW_ERROR", &e.to_string()))?;
            drop(writer);
            let array = js_sys::Uint8Array::from(bytes.as_slice());
            Ok(if raw {
                array.into()
            } else {
                table_from_ipc(&array)
            })
        })
        .await
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

#[wasm_bindgen]
extern "C" {
    /// Options of `sql`.
    #[wasm_bindgen(typescript_type = "SqlOptions")]
    pub type SqlOptions;

    /// Options of a session.
    #[wasm_bindgen(typescript_type = "SessionOptions")]
    pub type SessionOptions;
}
