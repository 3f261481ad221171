//! The stores as JavaScript classes; limiters share them.

use std::rc::Rc;
use std::time::Duration;

use wasm_bindgen::prelude::*;

use super::algorithm::AnyAlgorithm;
use super::codes::Failure;
use super::convert::count;
use super::error::{js_error, Coded};
use super::rest::{Ask, QuotaAsk, Target, WasmRestCall};
use crate::limiter::quota_book::QuotaBook;
use crate::store::redis_rest::DenyCache;
use crate::store::{Key, MemoryStore, RestOptions, Store, TimeSource};
use crate::FailurePolicy;

/// State in this isolate's memory.
#[wasm_bindgen(js_name = CoreMemoryStore)]
#[derive(Clone)]
pub struct WasmMemoryStore {
    pub(crate) inner: MemoryStore,
}

#[wasm_bindgen(js_class = CoreMemoryStore)]
impl WasmMemoryStore {
    /// Keeps at most `max_keys` keys (default 100 000).
    #[wasm_bindgen(constructor)]
    pub fn new(max_keys: Option<f64>) -> Result<WasmMemoryStore, JsValue> {
        let inner = match max_keys {
            Some(max) => MemoryStore::with_max_keys(count("maxKeys", max)? as usize),
            None => MemoryStore::new(),
        };
        Ok(Self { inner })
    }

    /// Keys held, expired ones included until swept.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> f64 {
        self.inner.len() as f64
    }
}

/// How requests to Redis over REST are made: the JavaScript side holds the
/// URL and token and performs the `fetch`; the core decides what to send,
/// reads the replies and retries, and keeps the deny cache.
#[wasm_bindgen(js_name = CoreRestStore)]
#[derive(Clone)]
pub struct WasmRestStore {
    options: RestOptions,
    deny: Option<Rc<DenyCache>>,
}

#[wasm_bindgen(js_class = CoreRestStore)]
impl WasmRestStore {
    /// `timeout_ms` per request, `retries` where safe, Redis's clock unless
    /// `caller_time`, and denials remembered for up to `deny_cache` ids (0:
    /// none).
    #[wasm_bindgen(constructor)]
    pub fn new(
        timeout_ms: f64,
        retries: f64,
        caller_time: bool,
        deny_cache: f64,
    ) -> Result<WasmRestStore, JsValue> {
        let options = RestOptions {
            timeout: timeout("timeout", timeout_ms)?,
            retries: count("retries", retries)?.min(u32::MAX.into()) as u32,
            time: if caller_time {
                TimeSource::Caller
            } else {
                TimeSource::Redis
            },
            deny_cache: count("denyCache", deny_cache)?
                .try_into()
                .unwrap_or(usize::MAX),
            ..RestOptions::default()
        };
        Ok(Self {
            deny: DenyCache::new(&options).map(Rc::new),
            options,
        })
    }
}

fn timeout(what: &str, ms: f64) -> Result<Duration, JsValue> {
    Ok(Duration::from_millis(count(what, ms)?.max(1)))
}

/// The store a limiter uses: in memory, or Redis with these options.
#[derive(Clone)]
enum Backend {
    Memory(MemoryStore),
    Rest(WasmRestStore),
}

/// Where a limiter keeps its state: the store, the key prefix, and what to
/// answer when the store fails. Both limiter classes are an algorithm over
/// a `Place`.
pub(crate) struct Place {
    prefix: String,
    backend: Backend,
    failure: FailurePolicy,
    /// Quota leases of a rate limiter on Redis, when asked for.
    quota: Option<Rc<QuotaBook>>,
}

impl Place {
    /// In `store`'s memory (which cannot fail).
    pub(crate) fn memory(store: &WasmMemoryStore, prefix: String) -> Self {
        Self {
            prefix,
            backend: Backend::Memory(store.inner.clone()),
            failure: FailurePolicy::Error,
            quota: None,
        }
    }

    /// In Redis, `failure` numbered as [`Failure`], the store's timeout
    /// overridden when `timeout_ms` is given.
    pub(crate) fn rest(
        store: &WasmRestStore,
        prefix: String,
        failure: u8,
        timeout_ms: Option<f64>,
    ) -> Result<Self, JsValue> {
        let mut store = store.clone();
        if let Some(ms) = timeout_ms {
            store.options.timeout = timeout("timeout", ms)?;
        }
        let failure = Failure::policy(failure);
        Ok(Self {
            prefix,
            backend: Backend::Rest(store),
            failure,
            quota: None,
        })
    }

    /// Takes quota leases of `units` (a REST place; the caller checked the
    /// algorithm and the units).
    pub(crate) fn lease_quota(&mut self, units: u64) {
        self.quota = Some(Rc::new(QuotaBook::new(units)));
    }

    /// The call giving one unspent quota lease back at `now`
    /// (`Date.now()`), if any is left.
    pub(crate) fn quota_return(
        &self,
        algorithm: AnyAlgorithm,
        now: f64,
    ) -> Result<Option<WasmRestCall>, JsValue> {
        let Some((id, refund)) = self.quota.as_deref().and_then(QuotaBook::take_one) else {
            return Ok(None);
        };
        let ask = Ask::Quota(QuotaAsk {
            algorithm,
            cost: 0,
            want: 0,
            refund: Some(refund),
        });
        self.rest_call(&id, ask, now)
    }

    /// The stored key of `id`.
    pub(crate) fn key<'a>(&'a self, id: &'a str) -> Key<'a> {
        Key {
            prefix: &self.prefix,
            id,
        }
    }

    /// The memory store, for the synchronous calls.
    pub(crate) fn memory_store(&self) -> Result<&MemoryStore, JsValue> {
        match &self.backend {
            Backend::Memory(store) => Ok(store),
            Backend::Rest(_) => Err(js_error(
                "UNSUPPORTED",
                "synchronous calls need the memory store; use the async form with a Redis store",
            )),
        }
    }

    /// Forgets `id`'s state in memory.
    pub(crate) fn remove_in_memory(&self, id: &str) -> Result<bool, JsValue> {
        let store = self.memory_store()?;
        store.remove(self.key(id)).map_err(|error| error.to_js())?;
        Ok(true)
    }

    /// The REST call asking `ask` for `id` at `now` (`Date.now()`), or
    /// `None` when the deny cache answered (a denial, in the output slots).
    pub(crate) fn rest_call(
        &self,
        id: &str,
        ask: Ask,
        now: f64,
    ) -> Result<Option<WasmRestCall>, JsValue> {
        let Backend::Rest(store) = &self.backend else {
            return Err(js_error("UNSUPPORTED", "this limiter's store is in memory"));
        };
        let target = Target {
            prefix: self.prefix.clone(),
            id: id.to_owned(),
            options: store.options,
            failure: self.failure,
            deny: store.deny.clone(),
            quota: self.quota.clone(),
        };
        WasmRestCall::new(ask, target, now_ms(now)).map_err(|error| error.to_js())
    }
}

/// Milliseconds from `Date.now()`.
pub(crate) fn now_ms(now: f64) -> u64 {
    now.max(0.0) as u64
}
