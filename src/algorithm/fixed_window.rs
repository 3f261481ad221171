//! Fixed window: at most `limit` units per aligned window of `window_ms`.

use super::contract::{check_cost, clamp_time, Algorithm, Outcome};
use super::divisor::Divisor;
use super::limits;
use super::quota::{take_extra, QuotaGrant, QuotaRefund};
use super::{Adjustment, Tier};
use crate::{ConfigError, Decision, Error, IntoMillis};

/// At most `limit` units in each window `[k·window, (k+1)·window)` of Unix
/// time. Cheap and exact per window, but allows up to `2·limit` across a
/// window boundary; see [`SlidingWindow`](super::SlidingWindow) and
/// [`SlidingLog`](super::SlidingLog) for smoother limits.
///
/// Denied calls consume nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedWindow {
    limit: u64,
    window: Divisor,
}

/// Per-key state: the window the count belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedWindowState {
    /// Start of the counted window.
    pub window_start_ms: u64,
    /// Units admitted in it.
    pub count: u64,
}

impl FixedWindow {
    /// `limit` units per `window`, e.g. `FixedWindow::new(10, "10 s")`.
    pub fn new(limit: u64, window: impl IntoMillis) -> Result<Self, ConfigError> {
        let (limit, window) = limits::counted_window(limit, window)?;
        Ok(Self { limit, window })
    }

    /// The window length in milliseconds.
    pub fn window_ms(&self) -> u64 {
        self.window.get()
    }
}

impl Algorithm for FixedWindow {
    type State = FixedWindowState;

    fn limit(&self) -> u64 {
        self.limit
    }

    fn kind(&self) -> super::Kind {
        super::Kind::FixedWindow
    }

    fn key_space(&self) -> String {
        format!("{}:{}", self.kind().code(), self.window_ms())
    }

    fn config_args(&self) -> Vec<u64> {
        vec![self.limit(), self.window_ms()]
    }

    fn tiered(&self, tier: &Tier) -> Result<Self, ConfigError> {
        Self::new(
            tier.counted_limit(self.limit, "fixed window")?,
            std::time::Duration::from_millis(self.window_ms()),
        )
    }

    fn adjust(
        &self,
        state: &mut Option<FixedWindowState>,
        now_ms: u64,
        adjustment: Adjustment,
    ) -> Outcome {
        let now = clamp_time(now_ms);
        let current_start = now - self.window.rem(now);
        // The window a call now counts in (a later one after the clock went
        // back): units of an earlier window are no longer counted anyway.
        let (start, count) = match *state {
            Some(s) if s.window_start_ms >= current_start => (s.window_start_ms, s.count),
            _ => (current_start, 0),
        };
        *state = Some(FixedWindowState {
            window_start_ms: start,
            count: adjustment.apply(count, self.limit),
        });
        self.outcome(state, now_ms, 0)
    }

    #[inline]
    fn decide(
        &self,
        state: &mut Option<FixedWindowState>,
        now_ms: u64,
        cost: u64,
    ) -> Result<Outcome, Error> {
        check_cost(cost, self.limit)?;
        Ok(self.outcome(state, now_ms, cost))
    }

    fn leases_quota(&self) -> bool {
        true
    }

    fn decide_leased(
        &self,
        state: &mut Option<FixedWindowState>,
        now_ms: u64,
        cost: u64,
        want: u64,
        refund: Option<QuotaRefund>,
    ) -> Result<(Outcome, Option<QuotaGrant>), Error> {
        check_cost(cost, self.limit)?;
        // A refund to a window that is over (or never was) returns nothing.
        if let (Some(s), Some(r)) = (state.as_mut(), refund) {
            if s.window_start_ms == r.window_start_ms {
                s.count -= r.units.min(s.count);
            }
        }
        let mut outcome = self.decide(state, now_ms, cost)?;
        let window_ms = self.window.get();
        let grant = state.as_mut().and_then(|s| {
            take_extra(
                &mut outcome,
                cost,
                want,
                &mut s.count,
                s.window_start_ms,
                window_ms,
            )
        });
        Ok((outcome, grant))
    }
}

impl FixedWindow {
    /// A call of `cost` (already checked against the limit) at `now_ms`.
    #[inline]
    fn outcome(&self, state: &mut Option<FixedWindowState>, now_ms: u64, cost: u64) -> Outcome {
        let now_ms = clamp_time(now_ms);
        let current_start = now_ms - self.window.rem(now_ms);
        // A state from a later window means the clock went back: keep
        // counting in that window rather than starting a fresh one.
        let (start, count) = match *state {
            Some(s) if s.window_start_ms >= current_start => (s.window_start_ms, s.count),
            _ => (current_start, 0),
        };
        let end = start.saturating_add(self.window.get());

        let allowed = count + cost <= self.limit;
        let count = if allowed { count + cost } else { count };
        if allowed && cost > 0 {
            *state = Some(FixedWindowState {
                window_start_ms: start,
                count,
            });
        }
        let decision = Decision {
            allowed,
            limit: self.limit,
            // A count above the limit: counted under a larger tier.
            remaining: self.limit.saturating_sub(count),
            reset_ms: if count == 0 { now_ms } else { end },
            // The next window starts empty and cost <= limit, so it fits then.
            retry_after_ms: if allowed { 0 } else { end - now_ms },
            reason: None,
        };
        let ttl_ms = if count == 0 { 0 } else { end - now_ms };
        Outcome { decision, ttl_ms }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        alg: &FixedWindow,
        state: &mut Option<FixedWindowState>,
        now: u64,
        cost: u64,
    ) -> Decision {
        alg.decide(state, now, cost).unwrap().decision
    }

    #[test]
    fn admits_limit_per_window_then_resets_at_boundary() {
        let alg = FixedWindow::new(3, "1 s").unwrap();
        let mut s = None;
        for (i, now) in [1000, 1200, 1999].into_iter().enumerate() {
            let d = run(&alg, &mut s, now, 1);
            assert!(d.allowed);
            assert_eq!(d.remaining, 2 - i as u64);
            assert_eq!(d.reset_ms, 2000);
        }
        let denied = run(&alg, &mut s, 1999, 1);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after_ms, 1);
        assert_eq!(denied.remaining, 0);
        let next = run(&alg, &mut s, 2000, 1);
        assert!(next.allowed);
        assert_eq!(next.remaining, 2);
        assert_eq!(next.reset_ms, 3000);
    }

    #[test]
    fn cost_above_one_and_partial_fit() {
        let alg = FixedWindow::new(10, "10 s").unwrap();
        let mut s = None;
        assert_eq!(run(&alg, &mut s, 5, 7).remaining, 3);
        let d = run(&alg, &mut s, 6, 4);
        assert!(!d.allowed, "7 + 4 > 10");
        assert_eq!(d.remaining, 3, "a denial consumes nothing");
        assert_eq!(d.retry_after_ms, 10_000 - 6);
        assert!(run(&alg, &mut s, 7, 3).allowed);
    }

    #[test]
    fn cost_zero_reads_without_consuming() {
        let alg = FixedWindow::new(2, "1m").unwrap();
        let mut s = None;
        let d = run(&alg, &mut s, 100, 0);
        assert_eq!((d.allowed, d.remaining, d.reset_ms), (true, 2, 100));
        assert_eq!(s, None);
        run(&alg, &mut s, 100, 2);
        let d = run(&alg, &mut s, 150, 0);
        assert_eq!((d.allowed, d.remaining, d.reset_ms), (true, 0, 60_000));
    }

    #[test]
    fn cost_above_limit_is_an_error_and_changes_nothing() {
        let alg = FixedWindow::new(5, "1 s").unwrap();
        let mut s = None;
        run(&alg, &mut s, 0, 1);
        let before = s;
        assert_eq!(
            alg.decide(&mut s, 10, 6),
            Err(Error::CostExceedsLimit { cost: 6, limit: 5 })
        );
        assert_eq!(s, before);
    }

    #[test]
    fn clock_going_back_keeps_the_later_window() {
        let alg = FixedWindow::new(2, "1 s").unwrap();
        let mut s = None;
        run(&alg, &mut s, 5000, 2);
        let d = run(&alg, &mut s, 4500, 1);
        assert!(
            !d.allowed,
            "going back a window must not start a fresh count"
        );
        assert_eq!(d.retry_after_ms, 6000 - 4500);
    }

    #[test]
    fn ttl_covers_the_rest_of_the_window() {
        let alg = FixedWindow::new(2, "1 s").unwrap();
        let mut s = None;
        assert_eq!(alg.decide(&mut s, 1250, 1).unwrap().ttl_ms, 750);
        assert_eq!(alg.decide(&mut None, 1250, 0).unwrap().ttl_ms, 0);
    }

    #[test]
    fn leases_take_extra_units_and_refunds_give_them_back() {
        let alg = FixedWindow::new(10, "1 s").unwrap();
        let mut s = None;
        let (o, grant) = alg.decide_leased(&mut s, 1_200, 1, 4, None).unwrap();
        let taken = QuotaGrant {
            units: 3,
            window_start_ms: 1_000,
            expires_at_ms: 2_000,
        };
        assert_eq!((o.decision.remaining, grant), (6, Some(taken)));
        // Two of the three come back to their window.
        let refund = |window_start_ms, units| {
            Some(QuotaRefund {
                window_start_ms,
                units,
            })
        };
        let (o, grant) = alg
            .decide_leased(&mut s, 1_300, 0, 0, refund(1_000, 2))
            .unwrap();
        assert_eq!((o.decision.remaining, grant), (8, None));
        // To a window that is over, nothing comes back.
        let (o, _) = alg
            .decide_leased(&mut s, 1_400, 0, 0, refund(0, 5))
            .unwrap();
        assert_eq!(o.decision.remaining, 8);
        // More than the window counts empties it, no further.
        let (o, _) = alg
            .decide_leased(&mut s, 1_400, 0, 0, refund(1_000, 50))
            .unwrap();
        assert_eq!(o.decision.remaining, 10);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        assert_eq!(
            FixedWindow::new(0, "1 s"),
            Err(ConfigError::Zero { what: "limit" })
        );
        assert_eq!(
            FixedWindow::new(1, "0 s"),
            Err(ConfigError::ZeroDuration { what: "window" })
        );
        assert!(matches!(
            FixedWindow::new(1 << 40, "1 d"),
            Err(ConfigError::TooLarge { .. })
        ));
        assert!(matches!(
            FixedWindow::new(1, "1 fortnight"),
            Err(ConfigError::Duration(_))
        ));
    }
}
