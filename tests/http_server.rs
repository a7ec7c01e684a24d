//! A static HTTP server for tests: serves a directory with Range support
//! (206 and `Content-Range`, through tower-http's `ServeDir`), CORS for
//! browsers, and a log of every request so tests can check what a reader
//! fetched (no HEAD, no LIST, how many ranges and bytes). It can be told
//! to fail the next requests, to test retries.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, RANGE};
use axum::middleware::Next;
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower_http::cors::CorsLayer;
use tower_http::services::ServeDir;

/// One request the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The URL path (without the query string).
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// The response status.
    pub status: u16,
    /// The response body length, from `Content-Length`.
    pub bytes: u64,
}

/// A running server; it stops when dropped.
pub struct TestHttpServer {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    log: Arc<Mutex<Vec<RequestRecord>>>,
    faults: Arc<Faults>,
    stop: Option<oneshot::Sender<()>>,
}

/// Requests still to fail, and with which status.
#[derive(Debug, Default)]
struct Faults {
    remaining: AtomicU32,
    status: AtomicU32,
    body: Mutex<String>,
}

impl TestHttpServer {
    /// Serves `root` on an ephemeral port of 127.0.0.1.
    pub async fn start(root: &Path) -> std::io::Result<Self> {
        Self::start_on(root, 0).await
    }

    /// Serves `root` on `port` of 127.0.0.1 (0 picks a free one).
    pub async fn start_on(root: &Path, port: u16) -> std::io::Result<Self> {
        let log: Arc<Mutex<Vec<RequestRecord>>> = Arc::default();
        let faults: Arc<Faults> = Arc::default();
        let recorder = log.clone();
        let injected = faults.clone();
        let app = Router::new()
            .fallback_service(ServeDir::new(root))
            .layer(axum::middleware::from_fn(
                move |req: Request, next: Next| {
                    let faults = injected.clone();
                    async move { inject(faults, req, next).await }
                },
            ))
            .layer(axum::middleware::from_fn(
                move |req: Request, next: Next| {
                    let log = recorder.clone();
                    async move { record(log, req, next).await }
                },
            ))
            .layer(CorsLayer::permissive());
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            url,
            log,
            faults,
            stop: Some(stop),
        })
    }

    /// The requests answered so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.log.lock().expect("log").clone()
    }

    /// Answers the next `count` requests with `status` and no body.
    pub fn fail_next(&self, count: u32, status: u16) {
        self.fail_next_with(count, status, "");
    }

    /// Answers the next `count` requests with `status` and `body`.
    pub fn fail_next_with(&self, count: u32, status: u16, body: &str) {
        *self.faults.body.lock().expect("body") = body.to_owned();
        self.faults
            .status
            .store(u32::from(status), Ordering::SeqCst);
        self.faults.remaining.store(count, Ordering::SeqCst);
    }

    /// Forgets the requests answered so far.
    pub fn clear(&self) {
        self.log.lock().expect("log").clear();
    }
}

impl Drop for TestHttpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn inject(faults: Arc<Faults>, req: Request, next: Next) -> Response {
    let failing = faults
        .remaining
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        let status = u16::try_from(faults.status.load(Ordering::SeqCst)).unwrap_or(500);
        let body = faults.body.lock().map(|b| b.clone()).unwrap_or_default();
        let mut response = Response::new(axum::body::Body::from(body));
        *response.status_mut() = axum::http::StatusCode::from_u16(status)
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        return response;
    }
    next.run(req).await
}

async fn record(log: Arc<Mutex<Vec<RequestRecord>>>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let range = req
        .headers()
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let response = next.run(req).await;
    let bytes = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    log.lock().expect("log").push(RequestRecord {
        method,
        path,
        range,
        status: response.status().as_u16(),
        bytes,
    });
    response
}
