//! `GET …/tables/{table}/events`, a Wavelake extension of the protocol
//! (which has no subscriptions): a shared table's new commits as
//! Server-Sent Events, for its recipients, as `/api/v1/…/events` sends
//! them (see [`crate::events`]). Other servers answer 404.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::{Answer, open_shared};
use crate::auth::Principal;
use crate::events::EventsQuery;
use crate::state::AppState;

/// Subscribes a recipient to a shared table's commits.
pub async fn table_events(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((share, schema, name)): Path<(String, String, String)>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Answer<Response> {
    let (_, table) = open_shared(&state, &principal, &share, &schema, &name).await?;
    Ok(crate::events::open(
        &state.watchers,
        &state.subscriptions,
        &principal.id,
        table,
        &query,
        &headers,
    )
    .await?)
}
