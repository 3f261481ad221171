//! Redis over the Upstash REST protocol: each decision is one atomic Lua
//! script, called with EVALSHA. The protocol is sans-IO; the native stores
//! drive it with reqwest (blocking, or async with batching); the
//! WebAssembly bindings drive it through the host's `fetch`.

mod batch;
#[cfg(not(target_arch = "wasm32"))]
mod batcher;
#[cfg(not(target_arch = "wasm32"))]
mod block;
#[cfg(not(target_arch = "wasm32"))]
mod blocking;
#[cfg(not(target_arch = "wasm32"))]
mod body;
mod call;
mod deny_cache;
#[cfg(not(target_arch = "wasm32"))]
mod endpoint;
mod exchange;
mod json;
#[cfg(not(target_arch = "wasm32"))]
mod nonblocking;
mod options;
mod protocol;
mod retry;

#[cfg(not(target_arch = "wasm32"))]
pub use blocking::RedisRestStore;
#[cfg(not(target_arch = "wasm32"))]
pub use nonblocking::AsyncRedisRestStore;
pub use options::{Batching, Grouping, RestOptions, TimeSource, DEFAULT_DENY_CACHE};
// What the WebAssembly bindings drive.
#[cfg(target_arch = "wasm32")]
pub(crate) use {
    batch::Batch,
    call::{conclude, conclude_keys, decode, redis_key, ScriptCall},
    deny_cache::DenyCache,
    exchange::{Exchange, Request, Step},
    json::Json,
    protocol::{command_body, Reply},
};

/// Entry points for the fuzz targets (`make fuzz`, `fuzz/`): the readers of
/// whatever a REST server answers. Not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    /// Reads `body` as a reply to one command and as a pipeline of
    /// `entries`, as the stores do: must never panic, whatever the input.
    pub fn read_replies(status: u16, body: &str, entries: usize) {
        let _ = super::protocol::read_reply(status, body);
        let _ = super::protocol::read_pipeline(status, body, entries);
        if let Some(json) = super::json::parse(body) {
            let _ = super::protocol::integers(&json);
        }
    }
}
