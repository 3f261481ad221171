//! Several limits as one call, and the block after abuse, for JavaScript:
//! decided in place on the memory store, or handed out as a REST call.
//! Answers are arrays of numbers (see [`numbers`]): a multi-limit call is
//! less hot than a single limit's, and carries a decision per limit.

use std::rc::Rc;

use wasm_bindgen::prelude::*;

use super::access::WasmAccessList;
use super::algorithm::WasmAlgorithm;
use super::codes::ReasonCode;
use super::convert::{count, millis};
use super::error::Coded;
use super::rest::{Ask, MultiAsk, WasmRestCall};
use super::stores::{now_ms, Place, WasmMemoryStore, WasmRestStore};
use crate::algorithm::{AllOf, AnyAlgorithm, MultiDecision};
use crate::store::{key_prefixes, ConsumeAll, Key, Store};
use crate::{AccessList, Decision, Error};

/// Limits decided together over a place (store, key prefix, failure
/// policy): `CoreMultiLimiter`.
#[wasm_bindgen(js_name = CoreMultiLimiter)]
pub struct WasmMultiLimiter {
    all: Rc<AllOf<AnyAlgorithm>>,
    /// Per limit, then for the block: what its keys start with.
    prefixes: Rc<[String]>,
    place: Place,
    access: Option<AccessList>,
}

/// The limits of `algorithms`, blocking for `block` after a denial when
/// given.
fn all_of(algorithms: Vec<WasmAlgorithm>, block: JsValue) -> Result<AllOf<AnyAlgorithm>, JsValue> {
    let all = AllOf::new(algorithms.iter().map(|a| a.inner)).map_err(|e| e.to_js())?;
    if block.is_undefined() {
        return Ok(all);
    }
    let ms = millis("blockFor", &block)?;
    all.with_block(std::time::Duration::from_millis(ms))
        .map_err(|e| e.to_js())
}

fn prefixes(all: &AllOf<AnyAlgorithm>, prefix: &str) -> Rc<[String]> {
    key_prefixes(all, prefix).into()
}

#[wasm_bindgen(js_class = CoreMultiLimiter)]
impl WasmMultiLimiter {
    /// `algorithms` on the memory store.
    #[wasm_bindgen(js_name = withMemory)]
    pub fn with_memory(
        algorithms: Vec<WasmAlgorithm>,
        block: JsValue,
        store: &WasmMemoryStore,
        prefix: String,
    ) -> Result<WasmMultiLimiter, JsValue> {
        let all = all_of(algorithms, block)?;
        Ok(Self {
            prefixes: prefixes(&all, &prefix),
            all: Rc::new(all),
            place: Place::memory(store, &prefix, ""),
            access: None,
        })
    }

    /// `algorithms` on the REST store.
    #[wasm_bindgen(js_name = withRest)]
    pub fn with_rest(
        algorithms: Vec<WasmAlgorithm>,
        block: JsValue,
        store: &WasmRestStore,
        prefix: String,
        failure: u8,
        timeout_ms: Option<f64>,
    ) -> Result<WasmMultiLimiter, JsValue> {
        let all = all_of(algorithms, block)?;
        Ok(Self {
            prefixes: prefixes(&all, &prefix),
            all: Rc::new(all),
            place: Place::rest(store, (&prefix, ""), failure, timeout_ms)?,
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

    /// The block's duration in milliseconds (0: none).
    #[wasm_bindgen(getter, js_name = blockMs)]
    pub fn block_ms(&self) -> f64 {
        self.all.block_ms() as f64
    }

    /// Decides a call of `cost` for `id` on the memory store (`peek`:
    /// changes nothing, as a cost of 0 would be told): the [`numbers`].
    pub fn decide(&self, id: &str, cost: f64, now: f64, peek: bool) -> Result<Vec<f64>, JsValue> {
        let now = now_ms(now);
        let cost = count("cost", cost)?;
        let store = self.place.memory_store()?;
        self.place.checked_key(id).map_err(|e| e.to_js())?;
        if let Some(listed) = self.listed(id, now).filter(|_| !peek) {
            return Ok(numbers(&listed));
        }
        let keys = self.keys(id);
        let step = ConsumeAll {
            all: &self.all,
            cost,
            peek,
        };
        let decided = store.transact_keys(&keys, now, &step);
        Ok(numbers(&decided.map_err(|e| e.to_js())?))
    }

    /// The REST call deciding for `id` (REST store); its answer's numbers
    /// are the call's `multi` once done.
    #[wasm_bindgen(js_name = restCall)]
    pub fn rest_call(
        &self,
        id: &str,
        cost: f64,
        now: f64,
        peek: bool,
    ) -> Result<WasmRestCall, JsValue> {
        let ask = Ask::Multi(MultiAsk {
            all: self.all.clone(),
            prefixes: self.prefixes.clone(),
            cost: count("cost", cost)?,
            peek,
        });
        let call = self.place.rest_call(id, ask, now, false)?;
        call.ok_or_else(|| {
            Error::Store(crate::StoreError::MalformedReply("no call".into())).to_js()
        })
    }

    /// The numbers the access lists answer for `id`, if they hold it
    /// (nothing asked of the store).
    #[wasm_bindgen(js_name = listed)]
    pub fn listed_numbers(&self, id: &str, now: f64) -> Option<Vec<f64>> {
        self.listed(id, now_ms(now)).map(|d| numbers(&d))
    }

    /// Forgets `id`'s state under every limit, and its block (memory store).
    pub fn remove(&self, id: &str) -> Result<(), JsValue> {
        let store = self.place.memory_store()?;
        self.place.checked_key(id).map_err(|e| e.to_js())?;
        for key in self.keys(id) {
            store.remove(key).map_err(|e| e.to_js())?;
        }
        Ok(())
    }

    /// The REST calls forgetting `id`'s state under every limit, and its
    /// block.
    #[wasm_bindgen(js_name = restRemove)]
    pub fn rest_remove(&self, id: &str) -> Result<Vec<WasmRestCall>, JsValue> {
        let mut calls = Vec::with_capacity(self.prefixes.len());
        for prefix in self.prefixes.iter() {
            let ask = Ask::RemoveKey(prefix.clone());
            calls.extend(self.place.rest_call(id, ask, 0.0, false)?);
        }
        Ok(calls)
    }
}

impl WasmMultiLimiter {
    fn keys<'a>(&'a self, id: &'a str) -> Vec<Key<'a>> {
        self.prefixes
            .iter()
            .map(|prefix| Key { prefix, id })
            .collect()
    }

    fn listed(&self, id: &str, now: u64) -> Option<MultiDecision> {
        let listed = self.access.as_ref()?.check(id)?;
        Some(self.all.alike(|limit| listed.decision(limit, now)))
    }
}

/// Numbers per decision in [`numbers`].
const PER_DECISION: usize = 6;

/// A multi-limit decision as numbers: the call's decision (allowed,
/// limit, remaining, reset, retryAfter, reason), the index of the limit
/// that denied (-1: none), then each limit's decision alike.
pub(crate) fn numbers(decided: &MultiDecision) -> Vec<f64> {
    let mut out = Vec::with_capacity(PER_DECISION * (decided.limits.len() + 1) + 1);
    push(&mut out, &decided.decision);
    out.push(decided.denied_by.map_or(-1.0, |i| i as f64));
    for decision in &decided.limits {
        push(&mut out, decision);
    }
    out
}

fn push(out: &mut Vec<f64>, decision: &Decision) {
    let time = |ms: u64| {
        if ms == u64::MAX {
            f64::INFINITY
        } else {
            ms as f64
        }
    };
    out.extend([
        f64::from(u8::from(decision.allowed)),
        decision.limit as f64,
        decision.remaining as f64,
        time(decision.reset_ms),
        time(decision.retry_after_ms),
        f64::from(ReasonCode::of(decision.reason)),
    ]);
}
