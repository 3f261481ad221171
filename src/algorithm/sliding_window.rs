//! Sliding window: the previous window's count, weighted by how much of it
//! still overlaps the sliding window, plus the current window's count.

use super::contract::{check_cost, clamp_time, Algorithm, Outcome};
use super::divisor::Divisor;
use super::limits;
use super::quota::{take_extra, QuotaGrant, QuotaRefund};
use super::{Adjustment, Tier};
use crate::{ConfigError, Decision, Error, IntoMillis};

/// Approximates a window sliding with time using two fixed windows: a call
/// at `elapsed` ms into the current window is admitted when
///
/// ```text
/// previous × (window − elapsed) / window + current + cost ≤ limit
/// ```
///
/// evaluated exactly in integers (no rounding: both sides are multiplied by
/// `window`). Smooths the boundary burst of [`FixedWindow`](super::FixedWindow)
/// with O(1) state. Denied calls consume nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindow {
    limit: u64,
    window: Divisor,
}

/// Per-key state: counts of the current and the previous aligned window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindowState {
    /// Start of the current window.
    pub window_start_ms: u64,
    /// Units admitted in the current window.
    pub current: u64,
    /// Units admitted in the window before it.
    pub previous: u64,
}

impl SlidingWindow {
    /// `limit` units per sliding `window`, e.g. `SlidingWindow::new(10, "10 s")`.
    pub fn new(limit: u64, window: impl IntoMillis) -> Result<Self, ConfigError> {
        let (limit, window) = limits::counted_window(limit, window)?;
        Ok(Self { limit, window })
    }

    /// The window length in milliseconds.
    pub fn window_ms(&self) -> u64 {
        self.window.get()
    }

    /// The state as seen at `now_ms`: windows rolled forward, and the time
    /// clamped to the state's window if the clock went back.
    fn view(&self, state: Option<SlidingWindowState>, now_ms: u64) -> (SlidingWindowState, u64) {
        let w = self.window.get();
        let start = now_ms - self.window.rem(now_ms);
        let rolled = match state {
            Some(s) if s.window_start_ms >= start => s,
            Some(s) if s.window_start_ms + w == start => SlidingWindowState {
                window_start_ms: start,
                current: 0,
                previous: s.current,
            },
            _ => SlidingWindowState {
                window_start_ms: start,
                current: 0,
                previous: 0,
            },
        };
        (rolled, now_ms.max(rolled.window_start_ms))
    }

    /// Earliest time at which `cost` fits, for a denied call.
    fn retry_at(&self, s: &SlidingWindowState, cost: u64) -> u64 {
        let (w, limit) = (self.window.get(), self.limit);
        if s.current + cost <= limit {
            // Fits in this window once the previous window weighs little enough:
            // previous × (w − e) ≤ (limit − current − cost) × w.
            let room = (limit - s.current - cost) * w;
            let elapsed = w - (room / s.previous).min(w);
            s.window_start_ms + elapsed
        } else {
            // In the next window, the current count becomes the weighted one:
            // current × (w − e) ≤ (limit − cost) × w.
            let room = (limit - cost) * w;
            let elapsed = w - (room / s.current).min(w);
            s.window_start_ms + w + elapsed
        }
    }
}

impl Algorithm for SlidingWindow {
    type State = SlidingWindowState;

    fn limit(&self) -> u64 {
        self.limit
    }

    fn kind(&self) -> super::Kind {
        super::Kind::SlidingWindow
    }

    fn key_space(&self) -> String {
        format!("{}:{}", self.kind().code(), self.window_ms())
    }

    fn config_args(&self) -> Vec<u64> {
        vec![self.limit(), self.window_ms()]
    }

    fn tiered(&self, tier: &Tier) -> Result<Self, ConfigError> {
        Self::new(
            tier.counted_limit(self.limit, "sliding window")?,
            std::time::Duration::from_millis(self.window_ms()),
        )
    }

    fn adjust(
        &self,
        state: &mut Option<SlidingWindowState>,
        now_ms: u64,
        adjustment: Adjustment,
    ) -> Outcome {
        // Units are given back to, or charged in, the current window: the
        // previous one's count only weighs less as time passes.
        let (mut s, _) = self.view(*state, clamp_time(now_ms));
        s.current = adjustment.apply(s.current, self.limit);
        *state = Some(s);
        self.outcome(state, now_ms, 0)
    }

    #[inline]
    fn decide(
        &self,
        state: &mut Option<SlidingWindowState>,
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
        state: &mut Option<SlidingWindowState>,
        now_ms: u64,
        cost: u64,
        want: u64,
        refund: Option<QuotaRefund>,
    ) -> Result<(Outcome, Option<QuotaGrant>), Error> {
        check_cost(cost, self.limit)?;
        let w = self.window.get();
        if let (Some(_), Some(r)) = (*state, refund.filter(|r| r.units > 0)) {
            // Given back to the window the units were taken from, current or
            // previous (where they still weigh); the rolled view is kept.
            let (mut s, _) = self.view(*state, clamp_time(now_ms));
            if s.window_start_ms == r.window_start_ms {
                s.current -= r.units.min(s.current);
            } else if s.window_start_ms == r.window_start_ms.saturating_add(w) {
                s.previous -= r.units.min(s.previous);
            }
            *state = Some(s);
        }
        let mut outcome = self.decide(state, now_ms, cost)?;
        // remaining × w ≤ capacity − usage: the extra units fit.
        let grant = state.as_mut().and_then(|s| {
            take_extra(
                &mut outcome,
                cost,
                want,
                &mut s.current,
                s.window_start_ms,
                w,
            )
        });
        Ok((outcome, grant))
    }
}

impl SlidingWindow {
    /// A call of `cost` (already checked against the limit) at `now_ms`.
    #[inline]
    fn outcome(&self, state: &mut Option<SlidingWindowState>, now_ms: u64, cost: u64) -> Outcome {
        let now_ms = clamp_time(now_ms);
        let (w, limit) = (self.window.get(), self.limit);
        let (mut s, at) = self.view(*state, now_ms);
        let elapsed = at - s.window_start_ms;
        // All quantities below are scaled by w; validation keeps them < 2^53.
        let weighted_previous = s.previous * (w - elapsed);
        let capacity = limit * w;

        // A clock gone back within the window weighs the previous window more,
        // which can put usage above capacity; a read (cost 0) is still allowed.
        let allowed = cost == 0 || weighted_previous + (s.current + cost) * w <= capacity;
        if allowed && cost > 0 {
            s.current += cost;
            *state = Some(s);
        }
        let used = weighted_previous + s.current * w;
        let end = s.window_start_ms + w;
        let (reset_ms, ttl_end) = if s.current > 0 {
            (end + w, end + w)
        } else if s.previous > 0 {
            (end, end)
        } else {
            (now_ms, now_ms)
        };
        let decision = Decision {
            allowed,
            limit,
            remaining: self.window.div(capacity - used.min(capacity)),
            reset_ms,
            retry_after_ms: if allowed {
                0
            } else {
                self.retry_at(&s, cost) - now_ms
            },
            reason: None,
        };
        Outcome {
            decision,
            ttl_ms: ttl_end - now_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        alg: &SlidingWindow,
        s: &mut Option<SlidingWindowState>,
        now: u64,
        cost: u64,
    ) -> Decision {
        alg.decide(s, now, cost).unwrap().decision
    }

    #[test]
    fn previous_window_weighs_by_overlap() {
        let alg = SlidingWindow::new(10, "1 s").unwrap();
        let mut s = None;
        assert!(run(&alg, &mut s, 500, 10).allowed);
        // At 1250 the previous window (10) weighs 750/1000: 7.5 used, 2 fit.
        let d = run(&alg, &mut s, 1250, 0);
        assert_eq!(d.remaining, 2);
        assert!(run(&alg, &mut s, 1250, 2).allowed);
        let denied = run(&alg, &mut s, 1250, 1);
        assert!(!denied.allowed);
        // Needs 10 × (1000 − e) ≤ (10 − 2 − 1) × 1000 → e ≥ 300 → 1300.
        assert_eq!(denied.retry_after_ms, 50);
        assert!(!run(&alg, &mut s, 1299, 1).allowed);
        assert!(run(&alg, &mut s, 1300, 1).allowed);
    }

    #[test]
    fn retry_in_next_window_when_current_is_full() {
        let alg = SlidingWindow::new(4, "100ms").unwrap();
        let mut s = None;
        run(&alg, &mut s, 0, 4);
        let d = run(&alg, &mut s, 10, 2);
        assert!(!d.allowed);
        // Next window: 4 × (100 − e) ≤ (4 − 2) × 100 → e ≥ 50 → 150.
        assert_eq!(d.retry_after_ms, 140);
        assert!(!run(&alg, &mut s, 149, 2).allowed);
        assert!(run(&alg, &mut s, 150, 2).allowed);
    }

    #[test]
    fn reset_and_ttl_cover_two_windows_after_a_hit() {
        let alg = SlidingWindow::new(5, "1 s").unwrap();
        let mut s = None;
        let o = alg.decide(&mut s, 1200, 1).unwrap();
        assert_eq!(o.decision.reset_ms, 3000);
        assert_eq!(o.ttl_ms, 1800);
        let o = alg.decide(&mut s, 2100, 0).unwrap();
        assert_eq!(o.decision.reset_ms, 3000);
        assert_eq!(
            o.decision.remaining, 4,
            "1 × 900/1000 rounds up to one used"
        );
        let o = alg.decide(&mut s, 3000, 0).unwrap();
        assert_eq!(
            (o.decision.remaining, o.decision.reset_ms, o.ttl_ms),
            (5, 3000, 0)
        );
    }

    #[test]
    fn a_read_changes_nothing_as_time_moves() {
        let alg = SlidingWindow::new(5, "1 s").unwrap();
        let mut s = None;
        alg.decide(&mut s, 0, 0).unwrap();
        assert_eq!(s, None, "a read of a new key leaves no state");
        alg.decide(&mut s, 1_700_000_000_200, 2).unwrap();
        let written = s;
        // Later in the window, in the next one (where the count becomes the
        // previous window's) and long after: the state stays as written.
        for later in [300, 1_100, 1_999, 5_000] {
            let d = alg.decide(&mut s, 1_700_000_000_000 + later, 0).unwrap();
            assert!(d.decision.allowed);
            assert_eq!(s, written, "read at +{later} ms");
        }
    }

    #[test]
    fn idle_gap_forgets_everything() {
        let alg = SlidingWindow::new(2, "1 s").unwrap();
        let mut s = None;
        run(&alg, &mut s, 0, 2);
        assert!(run(&alg, &mut s, 5000, 2).allowed);
    }

    #[test]
    fn clock_going_back_mints_nothing() {
        let alg = SlidingWindow::new(3, "1 s").unwrap();
        let mut s = None;
        run(&alg, &mut s, 2500, 3);
        let d = run(&alg, &mut s, 1500, 1);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
    }

    #[test]
    fn cost_above_limit_is_an_error() {
        let alg = SlidingWindow::new(3, "1 s").unwrap();
        assert_eq!(
            alg.decide(&mut None, 0, 4),
            Err(Error::CostExceedsLimit { cost: 4, limit: 3 })
        );
    }

    #[test]
    fn refunds_go_back_to_the_window_they_were_taken_from() {
        let alg = SlidingWindow::new(10, "1 s").unwrap();
        let mut s = None;
        let refund = |window_start_ms, units| {
            Some(QuotaRefund {
                window_start_ms,
                units,
            })
        };
        let lease = |s: &mut Option<SlidingWindowState>, now, want, refund| {
            let (outcome, grant) = alg.decide_leased(s, now, 0, want, refund).unwrap();
            assert_eq!(grant, None, "a read takes nothing");
            outcome.decision.remaining
        };
        let (o, grant) = alg.decide_leased(&mut s, 1_200, 1, 4, None).unwrap();
        assert_eq!((o.decision.remaining, grant.map(|g| g.units)), (6, Some(3)));
        // One of the three back to the current window: 3 counted.
        assert_eq!(lease(&mut s, 1_300, 0, refund(1_000, 1)), 7);
        // In the next window the 3 weigh 3 × 800 / 1000 = 2.4: one more
        // back to the previous window leaves 2 × 0.8 = 1.6.
        assert_eq!(lease(&mut s, 2_200, 0, None), 7);
        let before = s;
        assert_eq!(lease(&mut s, 2_200, 0, refund(1_000, 0)), 7);
        assert_eq!(s, before, "nothing to give back changes nothing");
        assert_eq!(lease(&mut s, 2_200, 0, refund(0, 1)), 7, "a window gone");
        assert_eq!(lease(&mut s, 2_200, 0, refund(1_000, 1)), 8);
        // More than the window counts empties it, no further.
        assert_eq!(lease(&mut s, 2_200, 0, refund(1_000, 50)), 10);
    }

    #[test]
    fn overflow_prone_config_is_rejected() {
        assert!(matches!(
            SlidingWindow::new(u64::MAX, "1 s"),
            Err(ConfigError::TooLarge { .. })
        ));
    }
}
