//! Rate limiting HTTP requests with a tower `Layer` (feature `tower`): for
//! axum, hyper and any tower stack, on any store (the async Redis store in
//! a real server).

mod headers;
mod layer;

pub use headers::rate_limit_headers;
pub use layer::{KeyFn, RateLimit, RateLimitLayer};
