//! The HTTP API under `/api/v1`, health and metrics. Every handler that
//! touches tables takes the caller's [`Principal`] from the bearer token
//! and opens a SQL session limited to what it may see.

mod events;
mod openapi;
mod results;
mod rows;
pub(crate) mod sql;
mod tables;
mod tokens;
pub(crate) mod transactions;
mod upload;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::admission::{admission_for, hold_until_sent};
use crate::auth::Principal;
use crate::error::{self, ApiError};
use crate::state::AppState;

/// The routes under `/api/v1`, with their body limit, CORS and error
/// shape.
pub fn routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    let admitted = || axum::middleware::from_fn_with_state(state.clone(), admit);
    Router::new()
        .route("/sql", post(sql::run_sql).layer(admitted()))
        .route("/tables", get(tables::list).post(tables::create))
        .route(
            "/tables/{namespace}/{table}",
            get(tables::describe).delete(tables::drop),
        )
        .route("/tables/{namespace}/{table}/history", get(tables::history))
        .route("/tables/{namespace}/{table}/rows", post(rows::append_rows))
        .route(
            "/tables/{namespace}/{table}/events",
            get(events::table_events),
        )
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
        .fallback(crate::error::no_such_endpoint)
        .layer(api_cors(&state.config.cors_origins))
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

/// Runs a request that runs statements only when the server and its
/// caller have room for one more ([`crate::admission`]); the place is
/// held until the response has been sent.
async fn admit(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    match admission_for(&state.tokens, &state.admission, &mut request) {
        Ok(admitted) => hold_until_sent(next.run(request).await, admitted),
        Err(refusal) => ApiError::too_many(refusal).into_response(),
    }
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
