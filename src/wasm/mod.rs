//! JavaScript bindings (wasm-bindgen): a thin layer over the core. The npm
//! package's `js/` wraps them in the public API.

mod access;
mod algorithm;
mod codes;
mod concurrency;
mod convert;
mod error;
mod io;
mod multi;
mod rate;
mod rest;
mod step;
mod stores;

pub use access::WasmAccessList;
pub use algorithm::WasmAlgorithm;
pub use codes::{Failure, FetchFailure, LeaseCall, ReasonCode, Slot, Status};
pub use concurrency::WasmConcurrency;
pub use io::{core_memory, key_buffer, key_buffer_length, out_buffer, take_error};
pub use multi::WasmMultiLimiter;
pub use rate::WasmRateLimiter;
pub use rest::{WasmRestBatch, WasmRestCall};
pub use stores::{WasmMemoryStore, WasmRestStore};

use wasm_bindgen::prelude::*;

/// The module's allocator: smaller and faster than dlmalloc.
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// Runs when the module is instantiated: seeds lease ids and jitter from the
/// host, since WebAssembly has no entropy of its own.
#[wasm_bindgen(start)]
fn start() {
    crate::random::reseed(convert::random_seed());
}
