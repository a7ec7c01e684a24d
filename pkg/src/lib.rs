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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::ipc::writer::StreamWriter;
use wasm_bindgen::prelude::*;
use wavelake_engine::Engine;
use wavelake_engine::sharing::{
    QueryOptions, SharedTableName, SharingClient, SharingProfile, open_shared_table,
};
use wavelake_engine::storage::{HttpStorage, StorageRef, UrlMapStorage};

use crate::error::{from_engine, js_error};

#[wasm_bindgen(module = "apache-arrow")]
extern "C" {
    /// `apache-arrow`'s reader of an Arrow IPC stream.
    #[wasm_bindgen(js_name = tableFromIPC)]
    fn table_from_ipc(bytes: &js_sys::Uint8Array) -> JsValue;
}

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** Where a Delta Sharing server is, as in a recipient's profile file. */
export interface SharingProfile {
  /** The server's Delta Sharing endpoint, `https://host/delta-sharing/`. */
  endpoint: string;
  /** The recipient's bearer token. */
  bearerToken: string;
}

/** Options of {@link Wavelake.sql}. */
export interface SqlOptions {
  /** Cancels the query; it then rejects with an error whose code is `ABORTED`. */
  signal?: AbortSignal;
  /** Resolve to the raw Arrow IPC stream bytes instead of an `apache-arrow` Table. */
  ipc?: boolean;
}
"#;

/// A SQL session over Delta tables read straight from storage.
#[wasm_bindgen]
pub struct Wavelake {
    engine: Engine,
    sharing: Option<SharingClient>,
    /// SQL name (`schema.table`) to shared table, for tables not yet opened.
    shared: BTreeMap<String, SharedTableName>,
}

fn engine_error(err: wavelake_engine::Error) -> JsValue {
    from_engine(&err)
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
    pub async fn connect(profile: JsValue) -> Result<Wavelake, JsValue> {
        let profile = SharingProfile {
            share_credentials_version: 1,
            endpoint: string_field(&profile, "endpoint")?,
            bearer_token: string_field(&profile, "bearerToken")?,
            expiration_time: None,
        };
        let client = SharingClient::new(&profile).map_err(engine_error)?;
        let mut shared = BTreeMap::new();
        for table in client.all_tables().await.map_err(engine_error)? {
            shared.insert(format!("{}.{}", table.schema, table.name), table);
        }
        Ok(Self {
            engine: Engine::new(),
            sharing: Some(client),
            shared,
        })
    }

    /// A session with the Delta table published under `baseUrl` (any static
    /// HTTP host that answers range requests) registered as `name`.
    #[wasm_bindgen(js_name = openTable)]
    pub async fn open_table(name: String, base_url: String) -> Result<Wavelake, JsValue> {
        let lake = Self::empty();
        lake.add_table(name, base_url).await?;
        Ok(lake)
    }

    /// A session with no tables yet.
    pub fn empty() -> Wavelake {
        Self {
            engine: Engine::new(),
            sharing: None,
            shared: BTreeMap::new(),
        }
    }

    /// Registers another table on a static host as `name`; resolves to its
    /// latest version.
    #[wasm_bindgen(js_name = addTable)]
    pub async fn add_table(&self, name: String, base_url: String) -> Result<f64, JsValue> {
        let storage = HttpStorage::new(&base_url).map_err(engine_error)?;
        self.register(&name, Arc::new(storage)).await
    }

    /// Registers a table given as presigned URLs: `files` maps each path of
    /// the table (`_delta_log/00000000000000000000.json`, data files,
    /// deletion vectors) to the URL it is read from.
    #[wasm_bindgen(js_name = addTableFromUrls)]
    pub async fn add_table_from_urls(&self, name: String, files: JsValue) -> Result<f64, JsValue> {
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
    /// bytes). Time travel: `SELECT … FROM t VERSION AS OF 3`.
    pub async fn sql(
        &self,
        query: String,
        options: Option<SqlOptions>,
    ) -> Result<JsValue, JsValue> {
        let options: JsValue = options.map(Into::into).unwrap_or(JsValue::UNDEFINED);
        let signal = field(&options, "signal").and_then(|s| s.dyn_into().ok());
        let raw = field(&options, "ipc").and_then(|v| v.as_bool()) == Some(true);
        abort::abortable(signal, async {
            self.open_referenced(&query).await?;
            let frame = self.engine.sql(&query).await.map_err(engine_error)?;
            let schema = Arc::new(frame.schema().as_arrow().clone());
            let batches = frame.collect().await.map_err(|e| engine_error(e.into()))?;
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

    /// The names queries can use: registered tables and, after `connect`,
    /// every shared table.
    pub fn tables(&self) -> Vec<String> {
        let mut names = self.engine.table_names();
        names.extend(self.shared.keys().cloned());
        names.sort();
        names.dedup();
        names
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
        let Some(client) = &self.sharing else {
            return Ok(());
        };
        for name in self.engine.table_references(query) {
            let Some(table) = self.shared.get(&name) else {
                continue;
            };
            if self
                .engine
                .context()
                .table_exist(name.as_str())
                .unwrap_or(false)
            {
                continue;
            }
            let (snapshot, storage) = open_shared_table(client, table, &QueryOptions::default())
                .await
                .map_err(engine_error)?;
            self.engine
                .register_snapshot(&name, snapshot, storage)
                .map_err(engine_error)?;
        }
        Ok(())
    }
}

#[wasm_bindgen]
extern "C" {
    /// Options of `sql`.
    #[wasm_bindgen(typescript_type = "SqlOptions")]
    pub type SqlOptions;
}
