//! Errors a request can end in, each with its HTTP status. Every one is
//! answered as `{"error": "..."}` so clients can always parse the body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::conn::ConnError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error("Unauthorized")]
    Unauthorized,
    #[error("Method not allowed")]
    MethodNotAllowed,
    /// Malformed request: bad JSON, wrong types, empty command.
    #[error("{0}")]
    BadRequest(String),
    /// Refused by the allow-list or a read-only token.
    #[error("{0}")]
    Forbidden(String),
    #[error("ERR request body too large (limit {0} bytes)")]
    PayloadTooLarge(usize),
    /// Redis answered the command with an error (on `POST /` and path style).
    #[error("{0}")]
    Command(String),
    /// Redis refused the command for now (CLUSTERDOWN, TRYAGAIN, LOADING…):
    /// it did not run, and may succeed if sent again.
    #[error("{0}")]
    Refused(String),
    #[error("ERR redis unavailable: {0}")]
    Unavailable(#[from] ConnError),
    #[error("ERR request timed out after {0} ms")]
    Timeout(u64),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadRequest(_) | ApiError::Command(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) | ApiError::Refused(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.to_string() });
        crate::response::json_response(self.status(), &body)
    }
}
