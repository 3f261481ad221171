//! A rate limiter for JavaScript: decided in place on the memory store (the
//! hot path: one boundary crossing), or handed out as a REST call.

use wasm_bindgen::prelude::*;

use super::algorithm::{AnyAlgorithm, WasmAlgorithm};
use super::convert::count;
use super::error::{js_error, Coded};
use super::io;
use super::rest::{Ask, WasmRestCall};
use super::stores::{Backend, WasmMemoryStore, WasmRestStore};
use crate::store::{Consume, Key, MemoryStore, Peek, RestOptions, Store};
use crate::FailurePolicy;

/// A limiter: an algorithm, a store, a key prefix and a failure policy.
#[wasm_bindgen(js_name = CoreRateLimiter)]
pub struct WasmRateLimiter {
    algorithm: AnyAlgorithm,
    prefix: String,
    backend: Backend,
    failure: FailurePolicy,
}

/// The failure policy JavaScript names by number: 0 error, 1 open, 2 closed.
pub(crate) fn failure_policy(code: u8) -> FailurePolicy {
    match code {
        1 => FailurePolicy::Open,
        2 => FailurePolicy::Closed,
        _ => FailurePolicy::Error,
    }
}

/// Milliseconds from `Date.now()`.
pub(crate) fn now_ms(now: f64) -> u64 {
    now.max(0.0) as u64
}

pub(crate) fn sync_unsupported() -> JsValue {
    js_error(
        "UNSUPPORTED",
        "synchronous calls need the memory store; use the async form with a Redis store",
    )
}

#[wasm_bindgen(js_class = CoreRateLimiter)]
impl WasmRateLimiter {
    /// A limiter on the memory store.
    #[wasm_bindgen(js_name = withMemory)]
    pub fn with_memory(
        algorithm: &WasmAlgorithm,
        store: &WasmMemoryStore,
        prefix: String,
    ) -> WasmRateLimiter {
        Self {
            algorithm: algorithm.inner,
            prefix,
            backend: Backend::Memory(store.inner.clone()),
            failure: FailurePolicy::Error,
        }
    }

    /// A limiter on the REST store.
    #[wasm_bindgen(js_name = withRest)]
    pub fn with_rest(
        algorithm: &WasmAlgorithm,
        store: &WasmRestStore,
        prefix: String,
        failure: u8,
        timeout_ms: Option<f64>,
    ) -> Result<WasmRateLimiter, JsValue> {
        Ok(Self {
            algorithm: algorithm.inner,
            prefix,
            backend: Backend::rest(store, timeout_ms)?,
            failure: failure_policy(failure),
        })
    }

    /// Decides for the id in the key buffer's first `len` bytes (memory
    /// store): 1 admitted, 0 denied, -1 failed (see `takeError`); the
    /// numbers are in the output buffer. `peek` writes nothing.
    pub fn decide(&self, len: usize, cost: f64, now: f64, peek: bool) -> i32 {
        io::status(self.decide_in_memory(len, cost, now_ms(now), peek))
    }

    fn decide_in_memory(
        &self,
        len: usize,
        cost: f64,
        now: u64,
        peek: bool,
    ) -> Result<bool, JsValue> {
        let store = self.memory()?;
        let cost = count("cost", cost)?;
        let algorithm = &self.algorithm;
        let decided = io::with_id(len, |id| {
            let key = self.key(id);
            if peek {
                store.transact(key, now, &Peek { algorithm })
            } else {
                store.transact(key, now, &Consume { algorithm, cost })
            }
        })?;
        let decision = decided.map_err(|error| error.to_js())?;
        io::write(&decision, None);
        Ok(decision.allowed)
    }

    /// Forgets the id in the key buffer (memory store): 1, or -1.
    pub fn remove(&self, len: usize) -> i32 {
        let removed = self.memory().and_then(|store| {
            io::with_id(len, |id| store.remove(self.key(id)))?.map_err(|error| error.to_js())
        });
        io::status(removed.map(|()| true))
    }

    /// The REST call deciding for `id` (REST store).
    #[wasm_bindgen(js_name = restCall)]
    pub fn rest_call(
        &self,
        id: &str,
        cost: f64,
        now: f64,
        peek: bool,
    ) -> Result<WasmRestCall, JsValue> {
        let ask = Ask::Rate {
            algorithm: self.algorithm,
            cost: count("cost", cost)?,
            peek,
        };
        WasmRestCall::new(self.key(id), ask, self.rest()?, self.failure, now_ms(now))
            .map_err(|error| error.to_js())
    }

    /// The REST call forgetting `id` (REST store).
    #[wasm_bindgen(js_name = restRemove)]
    pub fn rest_remove(&self, id: &str) -> Result<WasmRestCall, JsValue> {
        WasmRestCall::new(self.key(id), Ask::Remove, self.rest()?, self.failure, 0)
            .map_err(|error| error.to_js())
    }
}

impl WasmRateLimiter {
    fn key<'a>(&'a self, id: &'a str) -> Key<'a> {
        Key {
            prefix: &self.prefix,
            id,
        }
    }

    fn memory(&self) -> Result<&MemoryStore, JsValue> {
        match &self.backend {
            Backend::Memory(store) => Ok(store),
            Backend::Rest(_) => Err(sync_unsupported()),
        }
    }

    fn rest(&self) -> Result<RestOptions, JsValue> {
        match &self.backend {
            Backend::Rest(options) => Ok(*options),
            Backend::Memory(_) => Err(js_error("UNSUPPORTED", "this limiter's store is in memory")),
        }
    }
}
