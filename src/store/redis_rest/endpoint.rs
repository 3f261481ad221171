//! Where a native REST store connects: a URL checked when the store is
//! built, or the credentials Upstash's (and Vercel KV's) tools put in the
//! environment.

use crate::StoreError;

/// The environment variables `from_env` reads, in order of preference:
/// Upstash's names, then Vercel KV's.
pub(crate) const ENV_NAMES: [(&str, &str); 2] = [
    ("UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN"),
    ("KV_REST_API_URL", "KV_REST_API_TOKEN"),
];

/// `url` without its trailing slashes, or [`StoreError::NotFound`] when it is
/// not an `http://` or `https://` URL: a wrong URL is found when the store is
/// built, not on its first request.
pub(crate) fn checked_url(url: String) -> Result<String, StoreError> {
    let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
    let host = url.split_once("://").map_or("", |(_, rest)| rest);
    if !scheme_ok || host.is_empty() || host.starts_with('/') {
        let shown: String = url.chars().take(80).collect();
        return Err(StoreError::NotFound(format!(
            "\"{shown}\" is not an http(s) URL"
        )));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// The URL and token from the environment.
pub(crate) fn from_env() -> Result<(String, String), StoreError> {
    for (url, token) in ENV_NAMES {
        if let (Ok(url), Ok(token)) = (std::env::var(url), std::env::var(token)) {
            return Ok((url, token));
        }
    }
    Err(StoreError::NotFound(
        "UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN are not set".into(),
    ))
}
