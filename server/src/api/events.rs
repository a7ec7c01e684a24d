//! `GET /api/v1/tables/{namespace}/{table}/events`: the table's new
//! commits as Server-Sent Events, for tokens that may read its namespace
//! (see [`crate::events`]).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::events::{EventsQuery, first_version, subscribe};
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
    let snapshot = table.snapshot().await?;
    if query.changes && !wavelake_engine::changes::records_changes(snapshot.metadata()) {
        return Err(wavelake_engine::Error::ChangeDataNotRecorded {
            version: snapshot.version(),
            reason: "delta.enableChangeDataFeed is not true, so ?changes=true has no rows to \
                     send"
                .into(),
        }
        .into());
    }
    let next = first_version(&headers, &query, snapshot.version())?;
    let slot = state
        .subscriptions
        .admit(&principal.id)
        .map_err(ApiError::too_many)?;
    Ok(subscribe(
        &state.watchers,
        table,
        snapshot.version(),
        next,
        query.changes,
        slot,
    )
    .into_response())
}
