//! The `wavelake` npm package: wasm-bindgen bindings over the engine, so
//! JavaScript runs SQL over Delta tables on static HTTP hosts client-side.
//!
//! This first surface opens tables by base URL and returns results as an
//! Arrow IPC stream; the full package API (sharing profiles, explain,
//! cancellation, progress) is built on it.

use std::sync::Arc;

use arrow::ipc::writer::StreamWriter;
use wasm_bindgen::prelude::*;
use wavelake_engine::Engine;
use wavelake_engine::storage::HttpStorage;

/// A SQL session over Delta tables read with HTTP range requests.
#[wasm_bindgen]
pub struct Lake {
    engine: Engine,
}

#[wasm_bindgen]
impl Lake {
    /// A session with no tables.
    #[wasm_bindgen(constructor)]
    pub fn new() -> Self {
        Self {
            engine: Engine::new(),
        }
    }

    /// Registers the Delta table published under `baseUrl` as `name`, at its
    /// latest version; resolves to that version.
    #[wasm_bindgen(js_name = openTable)]
    pub async fn open_table(&self, name: String, base_url: String) -> Result<f64, JsError> {
        let storage = HttpStorage::new(&base_url).map_err(to_js)?;
        let snapshot = self
            .engine
            .register(&name, Arc::new(storage))
            .await
            .map_err(to_js)?;
        Ok(snapshot.version() as f64)
    }

    /// Runs one SQL statement; resolves to its rows as an Arrow IPC stream
    /// (read it with `apache-arrow`'s `tableFromIPC`).
    #[wasm_bindgen(js_name = sqlIpc)]
    pub async fn sql_ipc(&self, sql: String) -> Result<Vec<u8>, JsError> {
        let frame = self.engine.sql(&sql).await.map_err(to_js)?;
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame.collect().await.map_err(|e| to_js(e.into()))?;
        let mut bytes = Vec::new();
        let mut writer =
            StreamWriter::try_new(&mut bytes, &schema).map_err(|e| JsError::new(&e.to_string()))?;
        for batch in &batches {
            writer
                .write(batch)
                .map_err(|e| JsError::new(&e.to_string()))?;
        }
        writer.finish().map_err(|e| JsError::new(&e.to_string()))?;
        drop(writer);
        Ok(bytes)
    }
}

impl Default for Lake {
    fn default() -> Self {
        Self::new()
    }
}

/// A JavaScript `Error` whose message starts with the stable error code.
fn to_js(err: wavelake_engine::Error) -> JsError {
    JsError::new(&format!("{}: {err}", err.code()))
}
