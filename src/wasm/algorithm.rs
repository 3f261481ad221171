//! The rate algorithms as one JavaScript class, validated when built.

use std::time::Duration;

use wasm_bindgen::prelude::*;

use super::convert::{count, millis};
use super::error::Coded;
use crate::algorithm::{
    Adjustment, AnyState, FixedWindow, Gcra, Kind, Outcome, QuotaGrant, QuotaRefund, SlidingLog,
    SlidingWindow, StateKind, Tier, TokenBucket,
};
use crate::{Algorithm, ConfigError, Error};

/// One of the rate algorithms.
#[derive(Debug, Clone, Copy)]
pub(crate) enum AnyAlgorithm {
    FixedWindow(FixedWindow),
    SlidingWindow(SlidingWindow),
    SlidingLog(SlidingLog),
    TokenBucket(TokenBucket),
    Gcra(Gcra),
}

/// Runs `$body` with `$a` bound to the concrete algorithm.
macro_rules! with_algorithm {
    ($any:expr, |$a:ident| $body:expr) => {
        match $any {
            AnyAlgorithm::FixedWindow($a) => $body,
            AnyAlgorithm::SlidingWindow($a) => $body,
            AnyAlgorithm::SlidingLog($a) => $body,
            AnyAlgorithm::TokenBucket($a) => $body,
            AnyAlgorithm::Gcra($a) => $body,
        }
    };
}

// The bindings choose the algorithm at run time: one algorithm over any
// state lets every store path be compiled once rather than per algorithm,
// which keeps the module small.
impl Algorithm for AnyAlgorithm {
    type State = AnyState;

    fn limit(&self) -> u64 {
        with_algorithm!(self, |a| a.limit())
    }

    fn kind(&self) -> Kind {
        with_algorithm!(self, |a| a.kind())
    }

    fn key_space(&self) -> String {
        with_algorithm!(self, |a| a.key_space())
    }

    fn config_args(&self) -> Vec<u64> {
        with_algorithm!(self, |a| a.config_args())
    }

    fn tiered(&self, tier: &Tier) -> Result<Self, ConfigError> {
        Ok(match self {
            Self::FixedWindow(a) => Self::FixedWindow(a.tiered(tier)?),
            Self::SlidingWindow(a) => Self::SlidingWindow(a.tiered(tier)?),
            Self::SlidingLog(a) => Self::SlidingLog(a.tiered(tier)?),
            Self::TokenBucket(a) => Self::TokenBucket(a.tiered(tier)?),
            Self::Gcra(a) => Self::Gcra(a.tiered(tier)?),
        })
    }

    fn decide(
        &self,
        state: &mut Option<AnyState>,
        now_ms: u64,
        cost: u64,
    ) -> Result<Outcome, Error> {
        with_algorithm!(self, |a| decide_as(a, state, now_ms, cost))
    }

    fn adjust(&self, state: &mut Option<AnyState>, now_ms: u64, adjustment: Adjustment) -> Outcome {
        with_algorithm!(self, |a| {
            let mut typed = state.take().and_then(StateKind::from_any);
            let outcome = a.adjust(&mut typed, now_ms, adjustment);
            *state = typed.map(StateKind::into_any);
            outcome
        })
    }

    fn leases_quota(&self) -> bool {
        with_algorithm!(self, |a| a.leases_quota())
    }

    fn decide_leased(
        &self,
        state: &mut Option<AnyState>,
        now_ms: u64,
        cost: u64,
        want: u64,
        refund: Option<QuotaRefund>,
    ) -> Result<(Outcome, Option<QuotaGrant>), Error> {
        with_algorithm!(self, |a| {
            let mut typed = state.take().and_then(StateKind::from_any);
            let decided = a.decide_leased(&mut typed, now_ms, cost, want, refund);
            *state = typed.map(StateKind::into_any);
            decided
        })
    }
}

/// `algorithm`'s decision on `state`, which starts afresh when it belongs
/// to another algorithm (two limiters sharing a prefix).
fn decide_as<A: Algorithm>(
    algorithm: &A,
    state: &mut Option<AnyState>,
    now_ms: u64,
    cost: u64,
) -> Result<Outcome, Error> {
    let mut typed = state.take().and_then(A::State::from_any);
    let outcome = algorithm.decide(&mut typed, now_ms, cost);
    *state = typed.map(StateKind::into_any);
    outcome
}

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
