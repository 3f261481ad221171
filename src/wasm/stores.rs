//! The stores as JavaScript classes; limiters share them.

use std::time::Duration;

use wasm_bindgen::prelude::*;

use super::convert::count;
use crate::store::{MemoryStore, RestOptions, TimeSource};

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
/// reads the replies and retries.
#[wasm_bindgen(js_name = CoreRestStore)]
#[derive(Clone, Copy)]
pub struct WasmRestStore {
    pub(crate) options: RestOptions,
}

#[wasm_bindgen(js_class = CoreRestStore)]
impl WasmRestStore {
    /// `timeout_ms` per request, `retries` where safe, and Redis's clock
    /// unless `caller_time`.
    #[wasm_bindgen(constructor)]
    pub fn new(timeout_ms: f64, retries: f64, caller_time: bool) -> Result<WasmRestStore, JsValue> {
        Ok(Self {
            options: RestOptions {
                timeout: timeout("timeout", timeout_ms)?,
                retries: count("retries", retries)?.min(u32::MAX.into()) as u32,
                time: if caller_time {
                    TimeSource::Caller
                } else {
                    TimeSource::Redis
                },
                ..RestOptions::default()
            },
        })
    }
}

fn timeout(what: &str, ms: f64) -> Result<Duration, JsValue> {
    Ok(Duration::from_millis(count(what, ms)?.max(1)))
}

/// Where a limiter's state lives.
#[derive(Clone)]
pub(crate) enum Backend {
    Memory(MemoryStore),
    Rest(RestOptions),
}

impl Backend {
    /// The REST backend of `store`, its timeout overridden when given.
    pub(crate) fn rest(store: &WasmRestStore, timeout_ms: Option<f64>) -> Result<Self, JsValue> {
        let mut options = store.options;
        if let Some(ms) = timeout_ms {
            options.timeout = timeout("timeout", ms)?;
        }
        Ok(Self::Rest(options))
    }
}
