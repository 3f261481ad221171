//! Any rate algorithm, chosen at run time.

use super::{
    Adjustment, Algorithm, AnyState, FixedWindow, Gcra, Kind, Outcome, QuotaGrant, QuotaRefund,
    SlidingLog, SlidingWindow, StateKind, Tier, TokenBucket,
};
use crate::{ConfigError, Error};

/// One of the rate algorithms, chosen at run time: for limiters that
/// combine algorithms of several kinds (a [`MultiLimiter`](crate::MultiLimiter)'s
/// limits) or read them from configuration.
///
/// ```
/// use edgelimit::{AnyAlgorithm, Algorithm, FixedWindow, SlidingWindow};
///
/// let limits: Vec<AnyAlgorithm> = vec![
///     SlidingWindow::new(10, "1 s")?.into(),
///     FixedWindow::new(1_000, "1 d")?.into(),
/// ];
/// assert_eq!(limits[1].limit(), 1_000);
/// # Ok::<(), edgelimit::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnyAlgorithm {
    /// A [`FixedWindow`].
    FixedWindow(FixedWindow),
    /// A [`SlidingWindow`].
    SlidingWindow(SlidingWindow),
    /// A [`SlidingLog`].
    SlidingLog(SlidingLog),
    /// A [`TokenBucket`].
    TokenBucket(TokenBucket),
    /// A [`Gcra`].
    Gcra(Gcra),
}

macro_rules! from_algorithm {
    ($($variant:ident),*) => {$(
        impl From<$variant> for AnyAlgorithm {
            fn from(algorithm: $variant) -> Self {
                Self::$variant(algorithm)
            }
        }
    )*};
}

from_algorithm!(FixedWindow, SlidingWindow, SlidingLog, TokenBucket, Gcra);

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

// One algorithm over any state: the WebAssembly bindings compile every
// store path once rather than per algorithm, which keeps the module small.
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
