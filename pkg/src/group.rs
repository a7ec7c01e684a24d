//! One worker of a group that runs every query together: the package's
//! `group.js` starts a Web Worker (or a Node worker thread) per core, each
//! with its own `GroupWorker`, wires a `MessagePort` between every pair and
//! asks all of them to run each query. Rows cross between workers only as
//! the engine's exchange messages ([`wavelake_engine::exchange`]); worker 0
//! returns the result.

use std::cell::RefCell;
use std::sync::Arc;

use wasm_bindgen::prelude::*;
use wavelake_engine::exchange::{ExchangeHub, ExchangeLink, WorkerGroup};
use wavelake_engine::storage::{HttpStorage, RangeCache, StorageRef};
use wavelake_engine::{SqlSession, SqlSessionOptions};

use crate::error::js_error;
use crate::{
    DEFAULT_CACHE_BYTES, SessionOptions, bytes_field, engine_error, ipc_stream, url_map_storage,
};

thread_local! {
    /// `send(to, bytes)` of this worker's host: a worker has one group.
    static OUTBOX: RefCell<Option<js_sys::Function>> = const { RefCell::new(None) };
}

/// Hands exchange messages to the host's `send`.
#[derive(Debug)]
struct Outbox;

impl ExchangeLink for Outbox {
    fn send(&self, to: usize, message: Vec<u8>) -> wavelake_engine::Result<()> {
        let failed = |reason: String| wavelake_engine::Error::WorkerGroup { reason };
        OUTBOX.with(|outbox| {
            let outbox = outbox.borrow();
            let send = outbox
                .as_ref()
                .ok_or_else(|| failed("this worker has no way to send".into()))?;
            let bytes = js_sys::Uint8Array::from(message.as_slice());
            send.call2(&JsValue::NULL, &JsValue::from(to as u32), &bytes)
                .map(|_| ())
                .map_err(|e| failed(format!("sending to worker {to} failed: {e:?}")))
        })
    }
}

/// One worker of a group (made by `group.js`, not by applications).
#[wasm_bindgen]
pub struct GroupWorker {
    /// Plans for the group: one partition per worker.
    engine: SqlSession,
    /// Plans for this worker alone, for queries the group cannot spread
    /// (worker 0 runs them).
    alone: SqlSession,
    hub: Arc<ExchangeHub>,
}

#[wasm_bindgen]
impl GroupWorker {
    /// Worker `index` of `size`; `send(to, bytes)` carries a message to
    /// worker `to`, whose host passes it to its `deliver`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        index: u32,
        size: u32,
        send: js_sys::Function,
        options: Option<SessionOptions>,
    ) -> Result<GroupWorker, JsValue> {
        let options: JsValue = options.map(Into::into).unwrap_or(JsValue::UNDEFINED);
        let group = WorkerGroup::new(index as usize, size as usize).map_err(engine_error)?;
        let budget = bytes_field(&options, "cacheBytes")?.unwrap_or(DEFAULT_CACHE_BYTES);
        // Both sessions read through one cache: a table's log and pages
        // are fetched once whichever plans the query.
        let cache = (budget > 0).then(|| Arc::new(RangeCache::new(budget)));
        let session = |worker_group| {
            SqlSession::with_options(SqlSessionOptions {
                range_cache: cache.clone(),
                late_materialization: true,
                read_only: true,
                worker_group,
                ..SqlSessionOptions::default()
            })
        };
        OUTBOX.with(|outbox| *outbox.borrow_mut() = Some(send));
        Ok(Self {
            engine: session(Some(group.size())),
            alone: session(None),
            hub: Arc::new(ExchangeHub::new(group)),
        })
    }

    /// Registers the Delta table under `baseUrl` as `name`; its version.
    #[wasm_bindgen(js_name = addTable)]
    pub async fn add_table(
        &self,
        name: String,
        #[wasm_bindgen(js_name = "baseUrl")] base_url: String,
    ) -> Result<f64, JsValue> {
        let storage = HttpStorage::new(&base_url).map_err(engine_error)?;
        self.register(&name, Arc::new(storage)).await
    }

    /// Registers a table given as presigned URLs, as
    /// `Wavelake.addTableFromUrls` does; its version.
    #[wasm_bindgen(js_name = addTableFromUrls)]
    pub async fn add_table_from_urls(
        &self,
        name: String,
        #[wasm_bindgen(unchecked_param_type = "Record<string, string>")] files: JsValue,
    ) -> Result<f64, JsValue> {
        let storage = url_map_storage(&name, files)?;
        self.register(&name, storage).await
    }

    /// Takes a message another worker of the group sent.
    pub fn deliver(&self, message: &[u8]) -> Result<(), JsValue> {
        self.hub.deliver(message).map_err(engine_error)
    }

    /// Ends query `query` on this worker (worker 0 has its result, or
    /// another worker failed).
    pub fn cancel(&self, query: f64, reason: String) {
        self.hub.cancel(query as u64, &reason);
    }

    /// Runs this worker's part of query `query` (the same id and SQL on
    /// every worker): worker 0 resolves to the rows as an Arrow IPC
    /// stream, the others to `undefined` once they sent all they had. A
    /// query the group cannot spread fails with `NOT_SPREADABLE` on every
    /// worker; `runAlone` then runs it on worker 0.
    pub async fn run(&self, query: f64, sql: String) -> Result<Option<Vec<u8>>, JsValue> {
        let planned = self.engine.prepare(&sql).await.map_err(engine_error)?;
        let link: Arc<dyn ExchangeLink> = Arc::new(Outbox);
        let spread = planned
            .spread(query as u64, Arc::clone(&self.hub), link)
            .map_err(engine_error)?;
        match spread.run().await.map_err(engine_error)? {
            Some(batches) => Ok(Some(ipc_stream(&planned.schema(), &batches)?)),
            None => Ok(None),
        }
    }

    /// Bytes of the column chunks `sql` would fetch, from the footers of
    /// the files its scans keep (this worker's range cache then holds
    /// them for the scan): the host spreads only queries worth it.
    #[wasm_bindgen(js_name = readBytes)]
    pub async fn read_bytes(&self, sql: String) -> Result<f64, JsValue> {
        let bytes = self
            .alone
            .estimate_chunk_bytes(&sql)
            .await
            .map_err(engine_error)?;
        Ok(bytes as f64)
    }

    /// Runs `sql` on this worker alone; the rows as an Arrow IPC stream.
    #[wasm_bindgen(js_name = runAlone)]
    pub async fn run_alone(&self, sql: String) -> Result<Vec<u8>, JsValue> {
        let planned = self.alone.prepare(&sql).await.map_err(engine_error)?;
        let batches = planned.collect().await.map_err(engine_error)?;
        ipc_stream(&planned.schema(), &batches)
    }

    async fn register(&self, name: &str, storage: StorageRef) -> Result<f64, JsValue> {
        let snapshot = self
            .engine
            .register(name, Arc::clone(&storage))
            .await
            .map_err(engine_error)?;
        let alone = self
            .alone
            .register(name, storage)
            .await
            .map_err(engine_error)?;
        if alone.version() != snapshot.version() {
            return Err(js_error(
                "COMMIT_CONFLICT",
                &format!("{name} changed while it was opened; open it again"),
            ));
        }
        Ok(snapshot.version() as f64)
    }
}
