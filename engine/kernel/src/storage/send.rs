//! Making IO futures `Send` on every target.
//!
//! DataFusion polls storage futures from `Send` contexts. Natively they are
//! `Send` already; in the browser, `fetch` futures hold JavaScript values, so
//! they run on the local task queue and hand their output over a channel.

use std::future::Future;

use futures::future::BoxFuture;

/// Runs `fut` so that the returned future is `Send`.
#[cfg(not(target_arch = "wasm32"))]
pub fn run_send<F>(fut: F) -> BoxFuture<'static, F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Box::pin(fut)
}

/// Runs `fut` on the browser's task queue; the returned future is `Send`.
#[cfg(target_arch = "wasm32")]
pub fn run_send<F, T>(fut: F) -> BoxFuture<'static, Result<T, crate::Error>>
where
    F: Future<Output = Result<T, crate::Error>> + 'static,
    T: Send + 'static,
{
    let (tx, rx) = futures::channel::oneshot::channel();
    wasm_bindgen_futures::spawn_local(async move {
        let _ = tx.send(fut.await);
    });
    Box::pin(async move {
        rx.await.unwrap_or_else(|_| {
            Err(crate::Error::Storage {
                path: String::new(),
                message: "request was dropped before it finished".into(),
            })
        })
    })
}
