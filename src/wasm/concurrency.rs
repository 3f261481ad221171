//! The concurrency limiter for JavaScript: leases with expiry, applied in
//! place on the memory store or handed out as a REST call.

use std::time::Duration;

use wasm_bindgen::prelude::*;

use super::convert::{count, millis};
use super::error::{invalid_argument, js_error, Coded};
use super::io;
use super::rate::{failure_policy, now_ms, sync_unsupported};
use super::rest::{Ask, WasmRestCall};
use super::stores::{Backend, WasmMemoryStore, WasmRestStore};
use crate::algorithm::LeaseOp;
use crate::limiter::random;
use crate::store::{Key, LeaseStep, RestOptions, Store};
use crate::{Concurrency, Decision, FailurePolicy};

/// A semaphore of expiring leases per key.
#[wasm_bindgen(js_name = CoreConcurrency)]
pub struct WasmConcurrency {
    config: Concurrency,
    prefix: String,
    backend: Backend,
    failure: FailurePolicy,
}

/// What JavaScript asks: 0 acquire, 1 release, 2 extend, 3 peek. A `ttl`
/// of `undefined` means the configured lease.
fn lease_op(op: u8, lease: &str, ttl: &JsValue) -> Result<LeaseOp, JsValue> {
    let id = || {
        lease
            .parse::<u64>()
            .map_err(|_| invalid_argument("a lease id is the decimal string acquire gave"))
    };
    let ttl_ms = || match ttl.is_undefined() {
        true => Ok(0),
        false => match millis("leaseTtl", ttl)? {
            0 => Err(invalid_argument("leaseTtl must be longer than 0 ms")),
            ms => Ok(ms),
        },
    };
    Ok(match op {
        0 => LeaseOp::Acquire {
            id: id()?,
            ttl_ms: ttl_ms()?,
        },
        1 => LeaseOp::Release { id: id()? },
        2 => LeaseOp::Extend {
            id: id()?,
            ttl_ms: ttl_ms()?,
        },
        3 => LeaseOp::Peek,
        _ => return Err(invalid_argument("unknown lease operation")),
    })
}

#[wasm_bindgen(js_class = CoreConcurrency)]
impl WasmConcurrency {
    /// `max` leases of `lease` each, in memory.
    #[wasm_bindgen(js_name = withMemory)]
    pub fn with_memory(
        max: f64,
        lease: JsValue,
        store: &WasmMemoryStore,
        prefix: String,
    ) -> Result<WasmConcurrency, JsValue> {
        Self::build(max, &lease, Backend::Memory(store.inner.clone()), prefix, 0)
    }

    /// `max` leases of `lease` each, in Redis.
    #[wasm_bindgen(js_name = withRest)]
    pub fn with_rest(
        max: f64,
        lease: JsValue,
        store: &WasmRestStore,
        prefix: String,
        failure: u8,
        timeout_ms: Option<f64>,
    ) -> Result<WasmConcurrency, JsValue> {
        let backend = Backend::rest(store, timeout_ms)?;
        Self::build(max, &lease, backend, prefix, failure)
    }

    fn build(
        max: f64,
        lease: &JsValue,
        backend: Backend,
        prefix: String,
        failure: u8,
    ) -> Result<Self, JsValue> {
        let lease = Duration::from_millis(millis("leaseTtl", lease)?);
        let config = Concurrency::new(count("max", max)?, lease).map_err(|error| error.to_js())?;
        Ok(Self {
            config,
            prefix,
            backend,
            failure: failure_policy(failure),
        })
    }

    /// A fresh lease id, unique with overwhelming likelihood across isolates.
    #[wasm_bindgen(js_name = leaseId)]
    pub fn lease_id() -> String {
        // Never 0, which would read as "no id" in logs.
        (random::next_u64() | 1).to_string()
    }

    /// Applies a lease operation for `id` (memory store): 1 if the lease is
    /// held (or was granted), else 0, -1 on error; the numbers are in the
    /// output buffer.
    pub fn apply(&self, id: &str, op: u8, lease: &str, ttl: JsValue, now: f64) -> i32 {
        let applied = (|| {
            let Backend::Memory(store) = &self.backend else {
                return Err(sync_unsupported());
            };
            let step = LeaseStep {
                config: &self.config,
                op: lease_op(op, lease, &ttl)?,
            };
            let outcome = store
                .transact(self.key(id), now_ms(now), &step)
                .map_err(|error| error.to_js())?;
            let decision = Decision {
                allowed: outcome.allowed,
                ..outcome.decision
            };
            io::write(&decision, outcome.expires_at_ms);
            Ok(decision.allowed)
        })();
        io::status(applied)
    }

    /// Drops every lease of `id` (memory store): 1, or -1.
    pub fn remove(&self, id: &str) -> i32 {
        let removed = match &self.backend {
            Backend::Memory(store) => store.remove(self.key(id)).map_err(|error| error.to_js()),
            Backend::Rest(_) => Err(sync_unsupported()),
        };
        io::status(removed.map(|()| true))
    }

    /// The REST call applying a lease operation (REST store).
    #[wasm_bindgen(js_name = restCall)]
    pub fn rest_call(
        &self,
        id: &str,
        op: u8,
        lease: &str,
        ttl: JsValue,
        now: f64,
    ) -> Result<WasmRestCall, JsValue> {
        let ask = Ask::Lease {
            config: self.config,
            op: lease_op(op, lease, &ttl)?,
        };
        WasmRestCall::new(self.key(id), ask, self.rest()?, self.failure, now_ms(now))
            .map_err(|error| error.to_js())
    }

    /// The REST call dropping every lease of `id` (REST store).
    #[wasm_bindgen(js_name = restRemove)]
    pub fn rest_remove(&self, id: &str) -> Result<WasmRestCall, JsValue> {
        WasmRestCall::new(self.key(id), Ask::Remove, self.rest()?, self.failure, 0)
            .map_err(|error| error.to_js())
    }
}

impl WasmConcurrency {
    fn key<'a>(&'a self, id: &'a str) -> Key<'a> {
        Key {
            prefix: &self.prefix,
            id,
        }
    }

    fn rest(&self) -> Result<RestOptions, JsValue> {
        match &self.backend {
            Backend::Rest(options) => Ok(*options),
            Backend::Memory(_) => Err(js_error("UNSUPPORTED", "this limiter's store is in memory")),
        }
    }
}
