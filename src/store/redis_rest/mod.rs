//! Redis over the Upstash REST protocol: each decision is one atomic Lua
//! script, called with EVALSHA. The protocol is sans-IO; the native store
//! drives it with reqwest; the WebAssembly bindings drive it through the
//! host's `fetch`.

#[cfg(not(target_arch = "wasm32"))]
mod blocking;
mod call;
mod exchange;
mod json;
mod options;
mod protocol;
mod retry;

#[cfg(not(target_arch = "wasm32"))]
pub use blocking::RedisRestStore;
pub use options::{RestOptions, TimeSource};
// What the WebAssembly bindings drive.
#[cfg(target_arch = "wasm32")]
pub(crate) use {
    call::{redis_key, ScriptCall},
    exchange::{Exchange, Step},
    json::Json,
    protocol::{command_body, integers, read_reply, Reply},
};
