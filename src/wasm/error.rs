//! The one conversion from Rust errors to JavaScript: an `Error` named
//! `EdgelimitError` whose `code` is stable (match on it, not the message).

use js_sys::Reflect;
use wasm_bindgen::JsValue;

use crate::{ConfigError, DurationError, Error, StoreError};

/// A JavaScript `Error` with a stable `code`.
pub(crate) fn js_error(code: &str, message: &str) -> JsValue {
    let error = js_sys::Error::new(message);
    error.set_name("EdgelimitError");
    // Setting a property on a fresh Error cannot fail.
    let _ = Reflect::set(&error, &"code".into(), &code.into());
    error.into()
}

/// A Rust error that crosses into JavaScript.
pub(crate) trait Coded: std::fmt::Display {
    /// Its stable code.
    fn code(&self) -> &'static str;

    /// As a JavaScript error.
    fn to_js(&self) -> JsValue {
        js_error(self.code(), &self.to_string())
    }
}

impl Coded for ConfigError {
    fn code(&self) -> &'static str {
        match self {
            Self::Duration(_) => "INVALID_DURATION",
            // A list entry is given at run time too (`lists.deny(entry)`).
            Self::ListEntry { .. } => "INVALID_ARGUMENT",
            _ => "INVALID_CONFIG",
        }
    }
}

impl Coded for DurationError {
    fn code(&self) -> &'static str {
        "INVALID_DURATION"
    }
}

impl Coded for StoreError {
    fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "STORE_UNAUTHORIZED",
            Self::Forbidden(_) => "STORE_FORBIDDEN",
            Self::NotFound(_) => "STORE_NOT_FOUND",
            Self::ScriptMissing { .. } => "STORE_SCRIPT_MISSING",
            Self::Command(_) => "STORE_COMMAND",
            Self::Timeout { .. } => "STORE_TIMEOUT",
            Self::Unreachable(_) => "STORE_UNREACHABLE",
            Self::Unavailable(_) => "STORE_UNAVAILABLE",
            Self::Busy(_) => "STORE_BUSY",
            Self::MalformedReply(_) => "STORE_MALFORMED_REPLY",
            Self::BlockingInAsyncRuntime | Self::NoAsyncRuntime | Self::Unsupported(_) => {
                "UNSUPPORTED"
            }
        }
    }
}

impl Coded for Error {
    fn code(&self) -> &'static str {
        match self {
            Self::CostExceedsLimit { .. } => "COST_EXCEEDS_LIMIT",
            Self::IdTooLong { .. } => "INVALID_ARGUMENT",
            Self::Store(error) => error.code(),
            // A call's own limit: an argument of that call.
            Self::Tier(_) => "INVALID_ARGUMENT",
        }
    }
}

/// An argument JavaScript passed that the core cannot take.
pub(crate) fn invalid_argument(message: &str) -> JsValue {
    js_error("INVALID_ARGUMENT", message)
}
