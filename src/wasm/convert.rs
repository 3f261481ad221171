//! JavaScript numbers and durations into the core's integers, refusing
//! anything that is not exactly representable.

use wasm_bindgen::JsValue;

use super::error::{invalid_argument, Coded};
use crate::parse_millis;

/// Largest integer a JavaScript number holds exactly.
const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

/// A non-negative integer count, or an `INVALID_ARGUMENT` error naming `what`.
pub(crate) fn count(what: &str, value: f64) -> Result<u64, JsValue> {
    if value.fract() == 0.0 && (0.0..=MAX_SAFE).contains(&value) {
        Ok(value as u64)
    } else {
        // The value is not shown: formatting floats would grow the module.
        Err(invalid_argument(&format!(
            "{what} must be a whole number from 0 to 2^53 - 1"
        )))
    }
}

/// A duration: whole milliseconds as a number, or text such as `"10 s"`.
pub(crate) fn millis(what: &str, value: &JsValue) -> Result<u64, JsValue> {
    if let Some(text) = value.as_string() {
        return parse_millis(&text).map_err(|error| error.to_js());
    }
    match value.as_f64() {
        Some(ms) => count(what, ms),
        None => Err(invalid_argument(&format!(
            "{what} must be milliseconds or a duration such as \"10 s\""
        ))),
    }
}

/// `Math.random()` bits, to seed the module's generator per isolate.
pub(crate) fn random_seed() -> u64 {
    let high = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    let low = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    (high << 32) | low
}
