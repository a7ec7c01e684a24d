//! The server's one router: the API under `/api/v1`, Delta Sharing under
//! `/delta-sharing`, signed files under `/files`, health and metrics, and
//! the web app at `/`, with the layers every request goes through.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tower_http::cors::{Any, CorsLayer};

use crate::state::AppState;

/// The whole router.
pub fn router(state: Arc<AppState>) -> Router {
    let web = state.config.web_root();
    let router = Router::new()
        .nest("/api/v1", crate::api::routes(&state))
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
                .layer(axum::middleware::from_fn(crate::error::rejections_as_json))
                .layer(open_cors()),
        );
    // The web app at `/` (its files; anything else is the API's 404).
    let router = match web {
        Some(dir) => router.fallback_service(
            tower_http::services::ServeDir::new(dir)
                .append_index_html_on_directories(true)
                .fallback(axum::handler::HandlerWithoutStateExt::into_service(
                    crate::error::no_such_endpoint,
                )),
        ),
        None => router.fallback(crate::error::no_such_endpoint),
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
    if let Some(hot) = &state.hot_data {
        let figures = hot.figures();
        metrics::counter!("wavelake_hot_data_hits_total").absolute(figures.hits);
        metrics::counter!("wavelake_hot_data_misses_total").absolute(figures.misses);
        metrics::counter!("wavelake_hot_data_bytes_saved_total").absolute(figures.bytes_saved);
        metrics::gauge!("wavelake_hot_data_bytes").set(figures.bytes_held as f64);
        metrics::gauge!("wavelake_hot_data_entries").set(figures.entries_held as f64);
        metrics::gauge!("wavelake_hot_data_budget_bytes").set(figures.budget as f64);
    }
    if let Some(results) = &state.result_cache {
        let figures = results.figures();
        metrics::counter!("wavelake_result_cache_hits_total").absolute(figures.hits);
        metrics::counter!("wavelake_result_cache_misses_total").absolute(figures.misses);
        metrics::counter!("wavelake_result_cache_bypassed_total").absolute(figures.bypassed);
        metrics::counter!("wavelake_result_cache_bytes_served_total")
            .absolute(figures.bytes_served);
        metrics::gauge!("wavelake_result_cache_bytes").set(figures.bytes_held as f64);
        metrics::gauge!("wavelake_result_cache_entries").set(figures.entries_held as f64);
        metrics::gauge!("wavelake_result_cache_budget_bytes").set(figures.budget as f64);
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    )
        .into_response()
}
