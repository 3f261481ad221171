//! Redis over the Upstash REST protocol: each decision is one atomic Lua
//! script, called with EVALSHA.

#[cfg(not(target_arch = "wasm32"))]
mod blocking;
// The protocol has no transport in WebAssembly yet: the bindings will drive
// it through the host's `fetch`.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
mod json;
mod options;
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
mod protocol;
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
mod retry;

#[cfg(not(target_arch = "wasm32"))]
pub use blocking::RedisRestStore;
pub use options::{RestOptions, TimeSource};
