//! The HTTP API under `/api/v1`, health and metrics. Every handler that
//! touches tables takes the caller's [`Principal`] from the bearer token
//! and opens a SQL session limited to what it may see.

pub mod error;
mod openapi;
mod results;
mod sql;
mod tables;
mod tokens;
mod upload;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::auth::Principal;
use crate::state::AppState;
pub use error::ApiError;

/// The whole router.
pub fn router(state: Arc<AppState>) -> Router {
    let admitted = || axum::middleware::from_fn_with_state(state.clone(), admit);
    let api = Router::new()
        .route("/sql", post(sql::run_sql).layer(admitted()))
        .route("/tables", get(tables::list).post(tables::create))
        .route(
            "/tables/{namespace}/{table}",
            get(tables::describe).delete(tables::drop),
        )
        .route("/tables/{namespace}/{table}/history", get(tables::history))
        .route(
            "/tables/{namespace}/{table}/upload",
            post(upload::upload)
                .layer(axum::extract::DefaultBodyLimit::disable())
                .layer(admitted()),
        )
        .route("/tokens", get(tokens::list).post(tokens::issue))
        .route("/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/me", get(me))
        .route("/openapi.json", get(openapi::document))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.limits.max_request_bytes,
        ))
        .layer(axum::middleware::from_fn(error::rejections_as_json))
        .layer(axum::middleware::from_fn(close_after_refusal))
        .fallback(not_found)
        .layer(api_cors(&state.config.cors_origins));
    let web = state.config.web_root();
    let router = Router::new()
        .nest("/api/v1", api)
        .nest(
            "/delta-sharing",
            crate::sharing::routes(&state).layer(open_cors()),
        )
        .route("/health", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .merge(
            Router::new()
                .route("/files/{*resource}", get(crate::files::serve_file))
                .layer(axum::middleware::from_fn(error::rejections_as_json))
                .layer(open_cors()),
        );
    // The web app at `/` (its files; anything else is the API's 404).
    let router = match web {
        Some(dir) => router.fallback_service(
            tower_http::services::ServeDir::new(dir)
                .append_index_html_on_directories(true)
                .fallback(axum::handler::HandlerWithoutStateExt::into_service(
                    not_found,
                )),
        ),
        None => router.fallback(not_found),
    };
    router
        .layer(axum::middleware::from_fn(record_request))
        // No response is ever sniffed into another type (a CSV or a
        // shared file rendered as HTML).
        .layer(
            tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                axum::http::header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        )
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            std::time::Duration::from_secs(state.config.limits.body_idle_timeout_secs),
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// CORS for `/api/v1`: only the configured origins (none by default: the
/// web app is served from the server's own origin), so that a page on
/// another site cannot drive the API with a token it got hold of.
fn api_cors(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers(Any)
        .expose_headers(Any);
    if origins.iter().any(|o| o == "*") {
        return layer.allow_origin(Any);
    }
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    layer.allow_origin(AllowOrigin::list(allowed))
}

/// CORS for Delta Sharing and signed file URLs: any origin, since their
/// clients are pages anywhere (the web app and the npm package open
/// shares of any server) and their authority is a bearer token or a URL
/// signature, never a cookie.
fn open_cors() -> CorsLayer {
    CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::HEAD, Method::OPTIONS])
        .allow_headers(Any)
        .expose_headers(Any)
        .allow_origin(Any)
}

/// Runs a request that runs statements only when the server and its
/// caller have room for one more ([`crate::admission`]); the place is
/// held until the response has been sent.
async fn admit(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    match admission_for(&state, &mut request) {
        Ok(admitted) => hold_until_sent(next.run(request).await, admitted),
        Err(refusal) => ApiError::too_many(refusal).into_response(),
    }
}

/// A place for the caller the request's bearer token names (callers
/// without a valid token share one count; they are refused soon anyway).
/// The principal found is kept in the request, so the handler's
/// [`Principal`] extractor does not authenticate the token again.
pub fn admission_for(
    state: &AppState,
    request: &mut Request,
) -> Result<crate::admission::Admitted, crate::admission::Refusal> {
    let principal =
        bearer_token(request.headers()).and_then(|token| state.tokens.authenticate(token));
    let caller = principal
        .as_ref()
        .map_or_else(|| "anonymous".to_owned(), |p| p.id.clone());
    if let Some(principal) = principal {
        request.extensions_mut().insert(principal);
    }
    state.admission.admit(&caller)
}

/// `response`, whose body keeps `admitted` until it has been sent.
pub fn hold_until_sent(response: Response, admitted: crate::admission::Admitted) -> Response {
    response.map(|body| axum::body::Body::new(HeldBody { body, admitted }))
}

/// A response body holding its statement's admission.
struct HeldBody {
    body: axum::body::Body,
    #[allow(dead_code)] // held, never read
    admitted: crate::admission::Admitted,
}

impl http_body::Body for HeldBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Counts and times every request by route.
async fn record_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("wavelake_http_requests_total", "route" => route.clone(), "method" => method, "status" => status).increment(1);
    metrics::histogram!("wavelake_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Marks a refused request's connection for closing: the refusal may come
/// before the client finished sending its body (an upload over the limit,
/// a missing token), and a client that reused the connection would have
/// its next request cut off by the unread rest.
async fn close_after_refusal(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if !response.status().is_success() {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            HeaderValue::from_static("close"),
        );
    }
    response
}

/// `GET /api/v1/me`: what the caller's token may do, so that a client can
/// offer only what will be allowed.
async fn me(principal: Principal) -> Json<serde_json::Value> {
    let namespaces: Vec<serde_json::Value> = principal
        .namespaces
        .iter()
        .map(|(name, write)| json!({"name": name, "write": write}))
        .collect();
    Json(json!({
        "admin": principal.admin,
        "namespaces": namespaces,
        "recipient": principal.recipient,
    }))
}

async fn live() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the root's storage answers: a listing of the server's own
/// few files (`_wavelake/`), never of the whole root, and no detail beyond
/// "ready" or "unreachable" for anonymous callers.
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let listed = match state.root_storage() {
        Ok(storage) => storage.list("_wavelake/", None).await.map(|_| ()),
        Err(e) => Err(e),
    };
    match listed {
        Ok(_) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: storage unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "storage unreachable"})),
            )
                .into_response()
        }
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see /api/v1/openapi.json")
}

impl FromRequestParts<Arc<AppState>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
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

/// The bearer token of a request's `Authorization` header.
fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))?;
    Some(token.trim())
}

/// Checks a namespace or table name: letters, digits and `_`, so a name can
/// never reach outside its directory.
pub fn check_name(kind: &str, name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "bad {kind} name {name:?}: use letters, digits and _"
        )))
    }
}
