//! `/api/v1/tokens` (admin only): issue namespace or admin tokens, list
//! them (never the tokens themselves), revoke.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{Principal, Scope};
use crate::error::ApiError;
use crate::names::check_name;
use crate::state::AppState;

/// `POST /api/v1/tokens` body: a namespace token (`namespace`, `write`) or
/// an admin token (`admin: true`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueToken {
    label: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    write: bool,
    #[serde(default)]
    admin: bool,
}

fn require_admin(principal: &Principal) -> Result<(), ApiError> {
    if principal.admin {
        Ok(())
    } else {
        Err(ApiError::forbidden("only an admin token manages tokens"))
    }
}

/// Issues a token; the answer is the only time it is shown.
pub async fn issue(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Json(request): Json<IssueToken>,
) -> Result<Response, ApiError> {
    require_admin(&principal)?;
    let scopes = match (&request.namespace, request.admin) {
        (None, true) => vec![Scope::Admin],
        (Some(namespace), false) => {
            check_name("namespace", namespace)?;
            vec![Scope::Namespace {
                name: namespace.clone(),
                write: request.write,
            }]
        }
        _ => {
            return Err(ApiError::bad_request(
                "a token is either for a namespace (\"namespace\") or admin (\"admin\": true)",
            ));
        }
    };
    let (id, token) = state
        .tokens
        .issue(&request.label, scopes)
        .await
        .map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(json!({"id": id, "token": token}))).into_response())
}

/// Lists tokens: ids, labels, scopes, creation times.
pub async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&principal)?;
    let tokens: Vec<serde_json::Value> = state
        .tokens
        .records()
        .into_iter()
        .map(|r| json!({"id": r.id, "label": r.label, "scopes": r.scopes, "created_ms": r.created_ms}))
        .collect();
    Ok(Json(json!({"tokens": tokens})))
}

/// Revokes a token by id.
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&principal)?;
    let removed = state
        .tokens
        .revoke_where(|r| r.id == id)
        .await
        .map_err(ApiError::internal)?;
    if removed == 0 {
        return Err(ApiError::not_found(format!("no token {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}
