//! The WebAssembly bindings (`edgelimit::wasm`) called the way the npm
//! package's JS calls them: ids written into the key buffer through a view
//! of the module's memory, decisions read from the output slots, errors
//! read as JS values, REST calls fed canned HTTP replies.
//!
//! `make test-wasm` runs this under Node and under headless Chromium.
#![cfg(target_arch = "wasm32")]

mod algorithms;
mod concurrency;
mod memory;
mod rest;
mod support;
