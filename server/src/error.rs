//! API errors: a status, a stable code and a message that says what is
//! wrong without leaking internals (those go to the log).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// Seconds to wait before retrying (`Retry-After`), for refusals of a
    /// busy server.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 429: the caller or the server runs as many statements as allowed.
    pub fn too_many(refusal: crate::admission::Refusal) -> Self {
        Self {
            retry_after: Some(crate::admission::RETRY_AFTER_SECS),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_REQUESTS",
                refusal.to_string(),
            )
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    /// 503: the server cannot do this now (or, for `UNSAFE_STORAGE`, at
    /// all on this store); the message has no server paths.
    pub fn unavailable(code: &'static str, message: &str) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, redact(message))
    }

    /// 401: no valid token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "a valid bearer token is required (Authorization: Bearer …)",
        )
    }

    /// 403: the token may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    /// 500 without details; the details are logged.
    pub fn internal(details: impl std::fmt::Display) -> Self {
        tracing::error!(error = %details, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "internal error; the server log has the details",
        )
    }
}

impl From<wavelake_engine::Error> for ApiError {
    fn from(err: wavelake_engine::Error) -> Self {
        use wavelake_engine::Error as E;
        if let E::BufferFull { retry_after_ms, .. } = &err {
            let mut refused = Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                err.code(),
                redact(&err.to_string()),
            );
            refused.retry_after = Some(retry_after_ms.div_ceil(1000).max(1));
            return refused;
        }
        let status = match &err {
            E::Sql(_)
            | E::SchemaMismatch(_)
            | E::ConstraintViolation(_)
            | E::InvalidArgument(_)
            | E::InvalidUpload { .. }
            | E::UnsupportedFeature { .. }
            | E::VersionNotFound { .. }
            | E::ChangeDataNotRecorded { .. }
            | E::TimestampOutOfRange { .. } => StatusCode::BAD_REQUEST,
            E::TableNotFound { .. } | E::UnknownTable { .. } => StatusCode::NOT_FOUND,
            E::NotAllowed(_) => StatusCode::FORBIDDEN,
            E::TableExists(_) | E::CommitConflict { .. } | E::AlreadyExists { .. } => {
                StatusCode::CONFLICT
            }
            E::UnsafeStorage { .. }
            | E::CommitOutcomeUnknown { .. }
            | E::ClusterUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            E::LimitExceeded { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            E::DataFusion(df) if is_resources_exhausted(df) => StatusCode::INSUFFICIENT_STORAGE,
            E::DataFusion(_) | E::Arrow(_) => StatusCode::BAD_REQUEST,
            E::Storage { .. }
            | E::NotFound { .. }
            | E::ReadOnly { .. }
            | E::Corrupt { .. }
            | E::InvalidTable { .. }
            | E::DeletionVector { .. } => return Self::internal(&err),
            _ => return Self::internal(&err),
        };
        let code = if status == StatusCode::INSUFFICIENT_STORAGE {
            "MEMORY_LIMIT"
        } else {
            err.code()
        };
        Self::new(status, code, redact(&err.to_string()))
    }
}

fn is_resources_exhausted(err: &datafusion::error::DataFusionError) -> bool {
    matches!(
        err.find_root(),
        datafusion::error::DataFusionError::ResourcesExhausted(_)
    )
}

/// Error text without server paths: anything that looks like an absolute
/// file path or a URL (`file://`, `s3://`, `gs://`, `az://`, …) is cut to its last component.
fn redact(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            let bare = word.trim_matches(|c: char| "\"'(),:;".contains(c));
            let is_path = bare.starts_with('/') && bare.len() > 1 || bare.contains("://");
            if is_path {
                let last = bare.trim_end_matches('/').rsplit('/').next().unwrap_or("");
                word.replace(bare, &format!(".../{last}"))
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The [`ApiError`] a plain-text error response of axum stands for (an
/// extractor's rejection: a body that is not JSON, a missing query
/// parameter, a body over the limit), so that every error a client gets
/// has the API's shape; other responses come back as they are.
pub async fn from_rejection(response: Response) -> Result<ApiError, Response> {
    let status = response.status();
    let plain = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/plain"));
    if !plain || !(status.is_client_error() || status.is_server_error()) {
        return Err(response);
    }
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
        StatusCode::UNPROCESSABLE_ENTITY => "UNPROCESSABLE_REQUEST",
        StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
        StatusCode::REQUEST_TIMEOUT => "REQUEST_TIMEOUT",
        _ if status.is_server_error() => "INTERNAL",
        _ => "BAD_REQUEST",
    };
    Ok(ApiError::new(
        status,
        code,
        redact(String::from_utf8_lossy(&body).trim()),
    ))
}

/// Middleware: extractor rejections in the API's JSON error shape.
pub async fn rejections_as_json(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match from_rejection(next.run(request).await).await {
        Ok(error) => error.into_response(),
        Err(response) => response,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": {"code": self.code, "message": self.message}}));
        let mut response = (self.status, body).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// The answer for a path no route serves.
pub async fn no_such_endpoint() -> ApiError {
    ApiError::not_found("no such endpoint; see /api/v1/openapi.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_paths_do_not_leak() {
        assert_eq!(
            redact("cannot open /srv/lake/acme/t/_delta_log/0.json: gone"),
            "cannot open .../0.json: gone"
        );
        assert_eq!(
            redact("table s3://bucket/x/t missing"),
            "table .../t missing"
        );
        assert_eq!(redact("a / b"), "a / b");
    }
}
