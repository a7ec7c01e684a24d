//! `GET …/tables/{table}/events`, a Wavelake extension of the protocol
//! (which has no subscriptions): a shared table's new commits as
//! Server-Sent Events, for its recipients, as `/api/v1/…/events` sends
//! them (see [`crate::events`]). Other servers answer 404.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::{Answer, open_shared};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::events::{EventsQuery, first_version, subscribe};
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
    let snapshot = table.snapshot().await?;
    if query.changes && !wavelake_engine::changes::records_changes(snapshot.metadata()) {
        return Err(wavelake_engine::Error::ChangeDataNotRecorded {
            version: snapshot.version(),
            reason: "the table does not record its change data feed".into(),
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
