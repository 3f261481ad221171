//! The rate algorithms as one JavaScript class, validated when built.

use std::time::Duration;

use wasm_bindgen::prelude::*;

use super::convert::{count, millis};
use super::error::Coded;
use crate::algorithm::{AnyAlgorithm, FixedWindow, Gcra, SlidingLog, SlidingWindow, TokenBucket};
use crate::{Algorithm, ConfigError};

/// A configured rate algorithm (`Ratelimit.fixedWindow(…)` and friends).
#[wasm_bindgen(js_name = CoreAlgorithm)]
#[derive(Debug, Clone, Copy)]
pub struct WasmAlgorithm {
    pub(crate) inner: AnyAlgorithm,
    window_ms: u64,
}

fn built<T>(result: Result<T, ConfigError>) -> Result<T, JsValue> {
    result.map_err(|error| error.to_js())
}

#[wasm_bindgen(js_class = CoreAlgorithm)]
impl WasmAlgorithm {
    /// `limit` calls per fixed `window`.
    #[wasm_bindgen(js_name = fixedWindow)]
    pub fn fixed_window(limit: f64, window: JsValue) -> Result<WasmAlgorithm, JsValue> {
        let window_ms = millis("window", &window)?;
        let algorithm = built(FixedWindow::new(
            count("limit", limit)?,
            Duration::from_millis(window_ms),
        ))?;
        Ok(Self {
            inner: AnyAlgorithm::FixedWindow(algorithm),
            window_ms,
        })
    }

    /// `limit` calls per sliding `window`.
    #[wasm_bindgen(js_name = slidingWindow)]
    pub fn sliding_window(limit: f64, window: JsValue) -> Result<WasmAlgorithm, JsValue> {
        let window_ms = millis("window", &window)?;
        let algorithm = built(SlidingWindow::new(
            count("limit", limit)?,
            Duration::from_millis(window_ms),
        ))?;
        Ok(Self {
            inner: AnyAlgorithm::SlidingWindow(algorithm),
            window_ms,
        })
    }

    /// Exactly `limit` calls in any `window`.
    #[wasm_bindgen(js_name = slidingLog)]
    pub fn sliding_log(limit: f64, window: JsValue) -> Result<WasmAlgorithm, JsValue> {
        let window_ms = millis("window", &window)?;
        let algorithm = built(SlidingLog::new(
            count("limit", limit)?,
            Duration::from_millis(window_ms),
        ))?;
        Ok(Self {
            inner: AnyAlgorithm::SlidingLog(algorithm),
            window_ms,
        })
    }

    /// `refill` tokens every `interval` up to `capacity`, starting with
    /// `initial` (default full).
    #[wasm_bindgen(js_name = tokenBucket)]
    pub fn token_bucket(
        refill: f64,
        interval: JsValue,
        capacity: f64,
        initial: Option<f64>,
    ) -> Result<WasmAlgorithm, JsValue> {
        let interval_ms = millis("interval", &interval)?;
        let (capacity, refill) = (count("maxTokens", capacity)?, count("refillRate", refill)?);
        let mut algorithm = built(TokenBucket::new(
            capacity,
            refill,
            Duration::from_millis(interval_ms),
        ))?;
        if let Some(initial) = initial {
            algorithm = built(algorithm.with_initial(count("initialTokens", initial)?))?;
        }
        // The policy window: how long an empty bucket takes to fill.
        let window_ms = capacity.div_ceil(refill).saturating_mul(interval_ms);
        Ok(Self {
            inner: AnyAlgorithm::TokenBucket(algorithm),
            window_ms,
        })
    }

    /// `rate` calls per `period`, in bursts of up to `burst` (default `rate`).
    pub fn gcra(rate: f64, period: JsValue, burst: Option<f64>) -> Result<WasmAlgorithm, JsValue> {
        let window_ms = millis("period", &period)?;
        let mut algorithm = built(Gcra::new(
            count("rate", rate)?,
            Duration::from_millis(window_ms),
        ))?;
        if let Some(burst) = burst {
            algorithm = built(algorithm.with_burst(count("burst", burst)?))?;
        }
        Ok(Self {
            inner: AnyAlgorithm::Gcra(algorithm),
            window_ms,
        })
    }

    /// A copy, for a limiter that takes its algorithms (JavaScript's stay
    /// usable).
    pub fn copy(&self) -> WasmAlgorithm {
        *self
    }

    /// The most admitted at once.
    #[wasm_bindgen(getter)]
    pub fn limit(&self) -> f64 {
        self.inner.limit() as f64
    }

    /// The policy window in milliseconds.
    #[wasm_bindgen(getter, js_name = windowMs)]
    pub fn window_ms(&self) -> f64 {
        self.window_ms as f64
    }
}
