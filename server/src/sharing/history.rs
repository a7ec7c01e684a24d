//! `GET …/tables/{table}/history`, a Wavelake extension of the protocol:
//! the table's commits (version, time, operation, parameters, metrics), so
//! that a recipient can see how a table came to be and choose a version to
//! read. Other servers answer 404, which clients take as "no history".

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use wavelake_engine::sharing::{HistoryItem, Page};

use super::{Answer, open_shared, version_header};
use crate::auth::Principal;
use crate::state::AppState;

/// Every commit still in the table's log, oldest first.
pub async fn table_history(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((share, schema, name)): Path<(String, String, String)>,
) -> Answer<(
    [(&'static str, axum::http::HeaderValue); 1],
    Json<Page<HistoryItem>>,
)> {
    let (_, table) = open_shared(&state, &principal, &share, &schema, &name).await?;
    let history = table.history().await?;
    let latest = history.last().map_or(0, |commit| commit.version);
    let items = history.into_iter().map(HistoryItem::from).collect();
    Ok((version_header(latest), Json(Page::whole(items))))
}
