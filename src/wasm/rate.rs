//! A rate limiter for JavaScript: decided in place on the memory store (the
//! hot path: one boundary crossing), or handed out as a REST call.

use wasm_bindgen::prelude::*;

use super::access::WasmAccessList;
use super::algorithm::WasmAlgorithm;
use super::convert::count;
use super::error::Coded;
use super::io;
use super::rest::{Ask, WasmRestCall};
use super::step::RateStep;
use super::stores::{now_ms, Place, WasmMemoryStore, WasmRestStore};
use crate::algorithm::AnyAlgorithm;
use crate::algorithm::{Adjustment, Algorithm, Tier};
use crate::limiter::rate::validate_quota_lease as lease_units_valid;
use crate::store::{Adjust, Consume, Peek, Store};
use crate::{AccessList, Decision, Error};

/// A limiter: an algorithm over a place (store, key prefix, failure policy).
#[wasm_bindgen(js_name = CoreRateLimiter)]
pub struct WasmRateLimiter {
    algorithm: AnyAlgorithm,
    place: Place,
    /// Deny and allow lists, decided before the store.
    access: Option<AccessList>,
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
            place: Place::memory(store, &prefix, &algorithm.inner.key_space()),
            access: None,
        }
    }

    /// A limiter on the REST store; `lease_units`: take quota leases of
    /// that many units (fixed and sliding windows).
    #[wasm_bindgen(js_name = withRest)]
    pub fn with_rest(
        algorithm: &WasmAlgorithm,
        store: &WasmRestStore,
        prefix: String,
        failure: u8,
        timeout_ms: Option<f64>,
        lease_units: Option<f64>,
    ) -> Result<WasmRateLimiter, JsValue> {
        let space = algorithm.inner.key_space();
        let mut place = Place::rest(store, (&prefix, &space), failure, timeout_ms)?;
        if let Some(units) = lease_units {
            let units = count("lease.units", units)?;
            lease_units_valid(&algorithm.inner, units).map_err(|error| error.to_js())?;
            place.lease_quota(units);
        }
        Ok(Self {
            algorithm: algorithm.inner,
            place,
            access: None,
        })
    }

    /// Accepts ids of up to `max_bytes` bytes (default 1024).
    #[wasm_bindgen(js_name = limitIds)]
    pub fn limit_ids(&mut self, max_bytes: f64) -> Result<(), JsValue> {
        self.place.limit_ids(max_bytes)
    }

    /// Decides ids on `lists` before asking the store.
    #[wasm_bindgen(js_name = useAccessList)]
    pub fn use_access_list(&mut self, lists: &WasmAccessList) {
        self.access = Some(lists.inner.clone());
    }

    /// The lists' decision for `id` at `now` under `algorithm`'s limit, if
    /// they hold it.
    fn listed(&self, algorithm: &AnyAlgorithm, id: &str, now: u64) -> Option<Decision> {
        let listed = self.access.as_ref()?.check(id)?;
        Some(listed.decision(algorithm.limit(), now))
    }

    /// The algorithm of a call under its own `limit` and (token buckets)
    /// `refill` (see `Tier`).
    fn tiered(&self, limit: Option<f64>, refill: Option<f64>) -> Result<AnyAlgorithm, JsValue> {
        let tier = Tier::of(
            limit.map(|n| count("limit", n)).transpose()?,
            refill.map(|n| count("refillRate", n)).transpose()?,
        );
        self.algorithm
            .tiered(&tier)
            .map_err(|error| Error::Tier(error).to_js())
    }

    /// The call giving one unspent quota lease back (REST store), or
    /// `undefined` when none is left.
    #[wasm_bindgen(js_name = restReturnQuota)]
    pub fn rest_return_quota(&self, now: f64) -> Result<Option<WasmRestCall>, JsValue> {
        self.place.quota_return(self.algorithm, now)
    }

    /// Decides for the id in the key buffer's first `len` bytes (memory
    /// store) and answers its [`CoreStatus`](super::Status) (failed: see
    /// `takeError`); the numbers are in the output buffer. `peek` writes
    /// nothing.
    pub fn decide(&self, len: usize, cost: f64, now: f64, peek: bool) -> i32 {
        io::status(self.decide_in_memory(&self.algorithm, len, cost, now_ms(now), peek))
    }

    /// [`decide`](Self::decide) under the call's own `limit` and (token
    /// buckets) `refill` instead of the configured ones, on the same state
    /// (see `Tier`).
    #[wasm_bindgen(js_name = decideUnder)]
    pub fn decide_under(
        &self,
        len: usize,
        cost: f64,
        now: f64,
        limit: Option<f64>,
        refill: Option<f64>,
    ) -> i32 {
        io::status(
            self.tiered(limit, refill)
                .and_then(|tiered| self.decide_in_memory(&tiered, len, cost, now_ms(now), false)),
        )
    }

    fn decide_in_memory(
        &self,
        algorithm: &AnyAlgorithm,
        len: usize,
        cost: f64,
        now: u64,
        peek: bool,
    ) -> Result<bool, JsValue> {
        let cost = count("cost", cost)?;
        let step = match peek {
            true => RateStep::Peek(Peek { algorithm }),
            false => RateStep::Consume(Consume { algorithm, cost }),
        };
        self.in_memory(len, now, &step)
    }

    /// Runs `step` on the memory store for the id in the key buffer's first
    /// `len` bytes, the lists first for a call; writes the decision.
    fn in_memory(&self, len: usize, now: u64, step: &RateStep<'_>) -> Result<bool, JsValue> {
        let store = self.place.memory_store()?;
        let decided = io::with_id(len, |id| {
            let key = self.place.checked_key(id)?;
            if let RateStep::Consume(Consume { algorithm, .. }) = step {
                if let Some(listed) = self.listed(algorithm, id, now) {
                    return Ok(listed);
                }
            }
            store.transact(key, now, step)
        })?;
        Ok(io::write(&decided.map_err(|error| error.to_js())?))
    }

    /// Gives back (`penalty` false) or charges (`true`) `units` for the id
    /// in the key buffer's first `len` bytes (memory store), answering as
    /// [`decide`](Self::decide) does with the numbers after it.
    pub fn adjust(&self, len: usize, units: f64, now: f64, penalty: bool) -> i32 {
        io::status(self.adjust_in_memory(len, units, now_ms(now), penalty))
    }

    fn adjust_in_memory(
        &self,
        len: usize,
        units: f64,
        now: u64,
        penalty: bool,
    ) -> Result<bool, JsValue> {
        let step = RateStep::Adjust(Adjust {
            algorithm: &self.algorithm,
            adjustment: adjustment(units, penalty)?,
        });
        self.in_memory(len, now, &step)
    }

    /// The REST call giving back or charging `units` (see
    /// [`adjust`](Self::adjust)) for the id in the key buffer (REST store).
    #[wasm_bindgen(js_name = restAdjust)]
    pub fn rest_adjust(
        &self,
        len: usize,
        units: f64,
        now: f64,
        penalty: bool,
    ) -> Result<Option<WasmRestCall>, JsValue> {
        let ask = Ask::Adjust {
            algorithm: self.algorithm,
            adjustment: adjustment(units, penalty)?,
        };
        io::with_id(len, |id| self.place.rest_call(id, ask, now, true))?
    }

    /// Forgets the id in the key buffer (memory store): 1, or -1.
    pub fn remove(&self, len: usize) -> i32 {
        io::status(
            io::with_id(len, |id| self.place.remove_in_memory(id)).and_then(|removed| removed),
        )
    }

    /// The REST call deciding for the id in the key buffer's first `len`
    /// bytes (REST store).
    #[wasm_bindgen(js_name = restCall)]
    pub fn rest_call(
        &self,
        len: usize,
        cost: f64,
        now: f64,
        peek: bool,
    ) -> Result<Option<WasmRestCall>, JsValue> {
        self.rest_call_as(self.algorithm, len, cost, now, peek, true)
    }

    /// [`restCall`](Self::rest_call) under the call's own `limit` and
    /// `refill` (see [`decideUnder`](Self::decide_under)); quota leases are
    /// not used.
    #[wasm_bindgen(js_name = restCallUnder)]
    pub fn rest_call_under(
        &self,
        len: usize,
        cost: f64,
        now: f64,
        limit: Option<f64>,
        refill: Option<f64>,
    ) -> Result<Option<WasmRestCall>, JsValue> {
        self.rest_call_as(self.tiered(limit, refill)?, len, cost, now, false, false)
    }

    fn rest_call_as(
        &self,
        algorithm: AnyAlgorithm,
        len: usize,
        cost: f64,
        now: f64,
        peek: bool,
        leased: bool,
    ) -> Result<Option<WasmRestCall>, JsValue> {
        let ask = Ask::Rate {
            algorithm,
            cost: count("cost", cost)?,
            peek,
        };
        io::with_id(len, |id| {
            if self.access.is_some() && !peek {
                // A valid id first: a listed one is answered here, in the
                // output slots, as the deny cache does.
                self.place.checked_key(id).map_err(|error| error.to_js())?;
                if let Some(listed) = self.listed(&algorithm, id, now_ms(now)) {
                    io::write(&listed);
                    return Ok(None);
                }
            }
            self.place.rest_call(id, ask, now, leased)
        })?
    }

    /// The REST call forgetting `id` (REST store).
    #[wasm_bindgen(js_name = restRemove)]
    pub fn rest_remove(&self, id: &str) -> Result<Option<WasmRestCall>, JsValue> {
        self.place.rest_call(id, Ask::Remove, 0.0, true)
    }
}

/// A refund (or with `penalty`, a penalty) of `units`.
fn adjustment(units: f64, penalty: bool) -> Result<Adjustment, JsValue> {
    let units = count("units", units)?;
    Ok(match penalty {
        true => Adjustment::Penalty(units),
        false => Adjustment::Refund(units),
    })
}

/// How long to sleep after a denial asking for `retry_after` ms, or -1 when
/// that is past `deadline` (times in ms): the core's backoff, jitter
/// included, so blocking waits behave alike in Rust and in JavaScript.
#[wasm_bindgen]
pub fn backoff(retry_after: f64, now: f64, deadline: f64) -> f64 {
    crate::limiter::wait::backoff_ms(now_ms(retry_after), now_ms(now), now_ms(deadline))
        .map_or(-1.0, |ms| ms as f64)
}
