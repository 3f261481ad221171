//! The stores as JavaScript classes; limiters share them.

use std::rc::Rc;
use std::time::Duration;

use wasm_bindgen::prelude::*;

use super::codes::Failure;
use super::convert::count;
use super::error::{js_error, Coded};
use super::rest::{Ask, QuotaAsk, Target, WasmRestCall};
use crate::algorithm::AnyAlgorithm;
use crate::error::check_id;
use crate::limiter::quota_book::QuotaBook;
use crate::store::redis_rest::DenyCache;
use crate::store::{
    key_prefix, Key, MemoryStore, RestOptions, Store, TimeSource, DEFAULT_MAX_BYTES,
    DEFAULT_MAX_KEYS,
};
use crate::{Error, FailurePolicy, DEFAULT_MAX_ID_BYTES};

/// State in this isolate's memory.
#[wasm_bindgen(js_name = CoreMemoryStore)]
#[derive(Clone)]
pub struct WasmMemoryStore {
    pub(crate) inner: MemoryStore,
}

#[wasm_bindgen(js_class = CoreMemoryStore)]
impl WasmMemoryStore {
    /// Keeps at most `max_keys` keys (default 100 000) and about
    /// `max_bytes` bytes of state (default 32 MiB).
    #[wasm_bindgen(constructor)]
    pub fn new(max_keys: Option<f64>, max_bytes: Option<f64>) -> Result<WasmMemoryStore, JsValue> {
        let max_keys = bound("maxKeys", max_keys, DEFAULT_MAX_KEYS)?;
        let max_bytes = bound("maxBytes", max_bytes, DEFAULT_MAX_BYTES)?;
        let inner = MemoryStore::with_bounds(max_keys, max_bytes).map_err(|error| error.to_js())?;
        Ok(Self { inner })
    }

    /// Bytes of state held, as the bound counts them.
    #[wasm_bindgen(getter)]
    pub fn bytes(&self) -> f64 {
        self.inner.bytes() as f64
    }

    /// Keys held, expired ones included until swept.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> f64 {
        self.inner.len() as f64
    }
}

/// A memory store bound: `default` when not given; a count the module's
/// memory can address otherwise (`INVALID_CONFIG` past it: 2^32 keys would
/// silently wrap to 0 in 32-bit WebAssembly).
fn bound(what: &str, value: Option<f64>, default: usize) -> Result<usize, JsValue> {
    let Some(value) = value else {
        return Ok(default);
    };
    let n = count(what, value)?;
    usize::try_from(n)
        .ok()
        .filter(|&n| n <= u32::MAX as usize >> 1)
        .ok_or_else(|| {
            js_error(
                "INVALID_CONFIG",
                &format!("{what} must be at most 2^31 - 1 in WebAssembly"),
            )
        })
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
    /// The longest id accepted, in bytes.
    max_id_bytes: usize,
    backend: Backend,
    failure: FailurePolicy,
    /// Quota leases of a rate limiter on Redis, when asked for.
    quota: Option<Rc<QuotaBook>>,
}

impl Place {
    /// In `store`'s memory (which cannot fail), keys under `prefix` and
    /// `space` (see [`key_prefix`]).
    pub(crate) fn memory(store: &WasmMemoryStore, prefix: &str, space: &str) -> Self {
        Self {
            prefix: key_prefix(prefix, space),
            max_id_bytes: DEFAULT_MAX_ID_BYTES,
            backend: Backend::Memory(store.inner.clone()),
            failure: FailurePolicy::Error,
            quota: None,
        }
    }

    /// In Redis, `failure` numbered as [`Failure`], the store's timeout
    /// overridden when `timeout_ms` is given.
    pub(crate) fn rest(
        store: &WasmRestStore,
        (prefix, space): (&str, &str),
        failure: u8,
        timeout_ms: Option<f64>,
    ) -> Result<Self, JsValue> {
        let mut store = store.clone();
        if let Some(ms) = timeout_ms {
            store.options.timeout = timeout("timeout", ms)?;
        }
        let failure = Failure::policy(failure);
        Ok(Self {
            prefix: key_prefix(prefix, space),
            max_id_bytes: DEFAULT_MAX_ID_BYTES,
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
        self.rest_call(&id, ask, now, true)
    }

    /// Accepts ids of up to `max_bytes` bytes (`maxIdBytes`, at least 1).
    pub(crate) fn limit_ids(&mut self, max_bytes: f64) -> Result<(), JsValue> {
        match count("maxIdBytes", max_bytes)? {
            0 => Err(js_error("INVALID_CONFIG", "maxIdBytes must be at least 1")),
            max => {
                self.max_id_bytes = usize::try_from(max).unwrap_or(usize::MAX);
                Ok(())
            }
        }
    }

    /// The stored key of `id`.
    pub(crate) fn key<'a>(&'a self, id: &'a str) -> Key<'a> {
        Key {
            prefix: &self.prefix,
            id,
        }
    }

    /// The stored key of `id`, or [`Error::IdTooLong`].
    pub(crate) fn checked_key<'a>(&'a self, id: &'a str) -> Result<Key<'a>, Error> {
        check_id(id, self.max_id_bytes)?;
        Ok(self.key(id))
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
        let key = self.checked_key(id).map_err(|error| error.to_js())?;
        store.remove(key).map_err(|error| error.to_js())?;
        Ok(true)
    }

    /// The REST call asking `ask` for `id` at `now` (`Date.now()`), or
    /// `None` when the deny cache answered (a denial, in the output slots).
    /// `leased`: through the quota leases, if the limiter takes them.
    pub(crate) fn rest_call(
        &self,
        id: &str,
        ask: Ask,
        now: f64,
        leased: bool,
    ) -> Result<Option<WasmRestCall>, JsValue> {
        let Backend::Rest(store) = &self.backend else {
            return Err(js_error("UNSUPPORTED", "this limiter's store is in memory"));
        };
        check_id(id, self.max_id_bytes).map_err(|error| error.to_js())?;
        let target = Target {
            prefix: self.prefix.clone(),
            id: id.to_owned(),
            options: store.options,
            failure: self.failure,
            deny: store.deny.clone(),
            quota: self.quota.clone().filter(|_| leased),
        };
        WasmRestCall::new(ask, target, now_ms(now)).map_err(|error| error.to_js())
    }
}

/// Milliseconds from `Date.now()`.
pub(crate) fn now_ms(now: f64) -> u64 {
    now.max(0.0) as u64
}
