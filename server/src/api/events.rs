//! `GET /api/v1/tables/{namespace}/{table}/events`: the table's new
//! commits as Server-Sent Events, for tokens that may read its namespace
//! (see [`crate::events`]).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::events::EventsQuery;
use crate::names::check_name;
use crate::state::AppState;

/// Subscribes to the table's commits.
pub async fn table_events(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((namespace, table)): Path<(String, String)>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let namespace = state.namespace_for(&principal, Some(&namespace))?;
    check_name("table", &table)?;
    let table = state.table(&state.table_location(&namespace, &table))?;
    crate::events::open(
        &state.watchers,
        &state.subscriptions,
        &principal.id,
        table,
        &query,
        &headers,
    )
    .await
}
