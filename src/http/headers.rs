//! The response headers of a decision, as the npm package's
//! `rateLimitHeaders` writes them: the IETF draft's `RateLimit-Policy` and
//! `RateLimit`, the legacy `X-RateLimit-*` trio, and `Retry-After` on a
//! denial.

use http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};

use crate::Decision;

fn seconds(ms: u64) -> u64 {
    ms.div_ceil(1_000)
}

fn put(headers: &mut HeaderMap, name: &'static str, value: String) {
    // Only digits, quotes, `;` and `=` are written: always a valid value.
    if let Ok(value) = HeaderValue::try_from(value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

/// Adds `decision`'s headers at `now_ms` to `headers`; `window_ms` is the
/// policy's window when it has one (`w=` of `RateLimit-Policy`). A decision
/// the failure policy or an access list made carries no usage: only the
/// policy and, for a denial the failure policy made, `Retry-After`.
pub fn rate_limit_headers(
    headers: &mut HeaderMap,
    decision: &Decision,
    window_ms: Option<u64>,
    now_ms: u64,
) {
    let window = window_ms.map_or(String::new(), |ms| format!(";w={}", seconds(ms)));
    put(
        headers,
        "ratelimit-policy",
        format!("\"default\";q={}{window}", decision.limit),
    );
    // u64::MAX: never (a deny list), so no time to come back is given.
    if !decision.allowed && decision.retry_after_ms != u64::MAX {
        let retry = seconds(decision.retry_after_ms).max(1);
        headers.insert(RETRY_AFTER, HeaderValue::from(retry));
    }
    if decision.reason.is_some() {
        return;
    }
    let reset_in = seconds(decision.reset_ms.saturating_sub(now_ms));
    put(
        headers,
        "ratelimit",
        format!("\"default\";r={};t={reset_in}", decision.remaining),
    );
    put(headers, "x-ratelimit-limit", decision.limit.to_string());
    put(
        headers,
        "x-ratelimit-remaining",
        decision.remaining.to_string(),
    );
    put(
        headers,
        "x-ratelimit-reset",
        seconds(decision.reset_ms).to_string(),
    );
}
