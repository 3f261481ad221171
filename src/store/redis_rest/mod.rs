//! Redis over the Upstash REST protocol: each decision is one atomic Lua
//! script, called with EVALSHA.

#[cfg(not(target_arch = "wasm32"))]
mod blocking;
mod json;
mod options;
mod protocol;
mod retry;

#[cfg(not(target_arch = "wasm32"))]
pub use blocking::RedisRestStore;
pub use options::{RestOptions, TimeSource};
