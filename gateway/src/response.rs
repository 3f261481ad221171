//! JSON responses, for the handlers and for errors alike: at the bottom of
//! the crate, so that errors depend on nothing above them.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value as Json;

pub fn json_response(status: StatusCode, body: &Json) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    json_bytes(status, bytes)
}

/// A response whose body is JSON already written.
pub fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
