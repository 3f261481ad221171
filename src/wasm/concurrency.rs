//! The concurrency limiter for JavaScript: leases with expiry, applied in
//! place on the memory store or handed out as a REST call.

use std::time::Duration;

use wasm_bindgen::prelude::*;

use super::codes::LeaseCall;
use super::convert::{count, millis};
use super::error::{invalid_argument, Coded};
use super::io;
use super::rest::{Ask, WasmRestCall};
use super::stores::{now_ms, Place, WasmMemoryStore, WasmRestStore};
use crate::algorithm::LeaseOp;
use crate::random;
use crate::store::SEMAPHORE;
use crate::store::{LeaseStep, Store};
use crate::Concurrency;

/// A semaphore of expiring leases per key, over a place (store, key
/// prefix, failure policy).
#[wasm_bindgen(js_name = CoreConcurrency)]
pub struct WasmConcurrency {
    config: Concurrency,
    place: Place,
    /// This limiter's name in the store's waiter queues.
    owner: u64,
}

/// A waiter's place: its number (0: none yet), the lowest number of its
/// limiter's waiters and of the others (0: none), and how many wait.
#[derive(Clone, Copy)]
struct Queue {
    owner: u64,
    number: f64,
    oldest: f64,
    next: f64,
    waiters: f64,
}

/// What JavaScript asks, numbered as [`LeaseCall`]. A `ttl` of `undefined`
/// means the configured lease.
fn lease_op(op: u8, lease: &str, ttl: &JsValue, queue: Queue) -> Result<LeaseOp, JsValue> {
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
    const ACQUIRE: u8 = LeaseCall::Acquire as u8;
    const RELEASE: u8 = LeaseCall::Release as u8;
    const EXTEND: u8 = LeaseCall::Extend as u8;
    const PEEK: u8 = LeaseCall::Peek as u8;
    const ACQUIRE_UNFAIR: u8 = LeaseCall::AcquireUnfair as u8;
    const WAIT: u8 = LeaseCall::Wait as u8;
    const LEAVE: u8 = LeaseCall::Leave as u8;
    Ok(match op {
        ACQUIRE => LeaseOp::Acquire {
            id: id()?,
            ttl_ms: ttl_ms()?,
        },
        ACQUIRE_UNFAIR => LeaseOp::AcquireUnfair {
            id: id()?,
            ttl_ms: ttl_ms()?,
        },
        WAIT => LeaseOp::Wait {
            id: id()?,
            ttl_ms: ttl_ms()?,
            owner: queue.owner,
            number: count("number", queue.number)?,
            oldest: count("oldest", queue.oldest)?,
            next: count("next", queue.next)?,
            waiters: count("waiters", queue.waiters)?,
        },
        LEAVE => LeaseOp::Leave { owner: queue.owner },
        RELEASE => LeaseOp::Release { id: id()? },
        EXTEND => LeaseOp::Extend {
            id: id()?,
            ttl_ms: ttl_ms()?,
        },
        PEEK => LeaseOp::Peek,
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
        Self::build(max, &lease, Place::memory(store, &prefix, SEMAPHORE))
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
        Self::build(
            max,
            &lease,
            Place::rest(store, (&prefix, SEMAPHORE), failure, timeout_ms)?,
        )
    }

    fn build(max: f64, lease: &JsValue, place: Place) -> Result<Self, JsValue> {
        let lease = Duration::from_millis(millis("leaseTtl", lease)?);
        let config = Concurrency::new(count("max", max)?, lease).map_err(|error| error.to_js())?;
        Ok(Self {
            config,
            place,
            owner: random::next_u64() | 1,
        })
    }

    /// Accepts ids of up to `max_bytes` bytes (default 1024).
    #[wasm_bindgen(js_name = limitIds)]
    pub fn limit_ids(&mut self, max_bytes: f64) -> Result<(), JsValue> {
        self.place.limit_ids(max_bytes)
    }

    /// A fresh lease id, unique with overwhelming likelihood across isolates.
    #[wasm_bindgen(js_name = leaseId)]
    pub fn lease_id() -> String {
        // Never 0, which would read as "no id" in logs.
        (random::next_u64() | 1).to_string()
    }

    fn queue(&self, number: f64, oldest: f64, next: f64, waiters: f64) -> Queue {
        Queue {
            owner: self.owner,
            number,
            oldest,
            next,
            waiters,
        }
    }

    /// Applies a lease operation for `id` (memory store): 1 if the lease is
    /// held (or was granted), else 0, -1 on error; the numbers are in the
    /// output buffer. `number`, `oldest`, `next` and `waiters` are a
    /// waiter's (`Wait`), else 0.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &self,
        id: &str,
        op: u8,
        lease: &str,
        ttl: JsValue,
        now: f64,
        number: f64,
        oldest: f64,
        next: f64,
        waiters: f64,
    ) -> i32 {
        let applied = (|| {
            let store = self.place.memory_store()?;
            let step = LeaseStep {
                config: &self.config,
                op: lease_op(op, lease, &ttl, self.queue(number, oldest, next, waiters))?,
            };
            let key = self.place.checked_key(id).map_err(|error| error.to_js())?;
            let outcome = store
                .transact(key, now_ms(now), &step)
                .map_err(|error| error.to_js())?;
            Ok(io::write_lease(&outcome))
        })();
        io::status(applied)
    }

    /// Drops every lease of `id` (memory store): 1, or -1.
    pub fn remove(&self, id: &str) -> i32 {
        io::status(self.place.remove_in_memory(id))
    }

    /// The REST call applying a lease operation (REST store).
    #[wasm_bindgen(js_name = restCall)]
    #[allow(clippy::too_many_arguments)]
    pub fn rest_call(
        &self,
        id: &str,
        op: u8,
        lease: &str,
        ttl: JsValue,
        now: f64,
        number: f64,
        oldest: f64,
        next: f64,
        waiters: f64,
    ) -> Result<Option<WasmRestCall>, JsValue> {
        let ask = Ask::Lease {
            config: self.config,
            op: lease_op(op, lease, &ttl, self.queue(number, oldest, next, waiters))?,
        };
        self.place.rest_call(id, ask, now, true)
    }

    /// The REST call dropping every lease of `id` (REST store).
    #[wasm_bindgen(js_name = restRemove)]
    pub fn rest_remove(&self, id: &str) -> Result<Option<WasmRestCall>, JsValue> {
        self.place.rest_call(id, Ask::Remove, 0.0, true)
    }
}
