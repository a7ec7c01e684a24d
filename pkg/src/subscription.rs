//! `lake.subscribe(table)`: a shared table's commits as they happen, for
//! `for await (const commit of subscription)` (the package adds the async
//! iterator to [`Subscription`]'s prototype).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures::future::{AbortHandle, Abortable, Aborted};
use futures::lock::Mutex;
use wasm_bindgen::prelude::*;
use wavelake_engine::sharing::subscription::Subscription as EngineSubscription;

use crate::error::{from_engine, js_error};

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** One commit of a subscribed table (see {@link Wavelake.subscribe}). */
export interface CommitEvent {
  /** The version the commit made. */
  version: number;
  /** When, in milliseconds since the epoch. */
  timestamp: number | null;
  /** The operation: WRITE, DELETE, UPDATE, MERGE, OPTIMIZE, … */
  operation: string | null;
  /** The operation's parameters. */
  parameters: Record<string, unknown> | null;
  /** The operation's metrics (numbers as strings, as Delta writes them). */
  metrics: Record<string, string> | null;
  /** With `changes: true`: the rows the commit changed, each with `_change_type`. */
  changes?: Record<string, unknown>[];
  /** Whether the commit changed more rows than `changes` holds. */
  changes_truncated?: boolean;
  /** Why `changes` is missing for this commit. */
  changes_error?: { code: string; message: string };
}

/** What {@link Wavelake.subscribe} follows. */
export interface SubscribeOptions {
  /** Include each commit's rows from the change data feed. */
  changes?: boolean;
  /** The first version to receive (default: the next commit). */
  fromVersion?: number;
}

export interface Subscription {
  [Symbol.asyncIterator](): AsyncIterator<CommitEvent>;
}
"#;

/// An open subscription to a table's commits.
#[wasm_bindgen]
pub struct Subscription {
    inner: Rc<Mutex<EngineSubscription>>,
    closed: Rc<Cell<bool>>,
    /// Ends the `next()` that is waiting, when `close()` is called.
    waiting: Rc<RefCell<Option<AbortHandle>>>,
}

impl Subscription {
    /// Wraps the engine's subscription.
    pub fn new(inner: EngineSubscription) -> Self {
        Self {
            inner: Rc::new(Mutex::new(inner)),
            closed: Rc::default(),
            waiting: Rc::default(),
        }
    }
}

#[wasm_bindgen]
impl Subscription {
    /// The next commit, waiting for it; `undefined` once closed. Rejects
    /// with a coded error when the server refuses or the stream cannot be
    /// resumed.
    #[wasm_bindgen(unchecked_return_type = "CommitEvent | undefined")]
    pub async fn next(&self) -> Result<JsValue, JsValue> {
        if self.closed.get() {
            return Ok(JsValue::UNDEFINED);
        }
        let inner = self.inner.clone();
        let (abort, registration) = AbortHandle::new_pair();
        self.waiting.replace(Some(abort));
        let next =
            Abortable::new(async move { inner.lock().await.next().await }, registration).await;
        self.waiting.replace(None);
        match next {
            Err(Aborted) | Ok(Ok(None)) => Ok(JsValue::UNDEFINED),
            Ok(Ok(Some(event))) => {
                let json = serde_json::to_string(&event)
                    .map_err(|e| js_error("INTERNAL", &e.to_string()))?;
                js_sys::JSON::parse(&json)
            }
            Ok(Err(e)) => Err(from_engine(&e)),
        }
    }

    /// Stops following the table: the connection is closed and a waiting
    /// or later `next()` resolves to `undefined`.
    pub fn close(&self) {
        self.closed.set(true);
        if let Some(waiting) = self.waiting.take() {
            waiting.abort();
        }
        let inner = self.inner.clone();
        wasm_bindgen_futures::spawn_local(async move {
            inner.lock().await.close();
        });
    }
}
