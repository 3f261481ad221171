//! GCRA (generic cell rate algorithm): a token bucket with continuous refill
//! and one timestamp of state.

use super::contract::{check_cost, clamp_time, Algorithm, Outcome};
use super::divisor::Divisor;
use super::limits;
use super::twin::MAX_EXACT;
use super::{Adjustment, Tier};
use crate::{ConfigError, Decision, Error, IntoMillis};

/// `rate` units per `period`, with bursts of up to `burst` units (default:
/// `rate`). Each unit costs an emission interval `T = period / rate`; the
/// state is the theoretical arrival time `TAT` of the next unit. A call of
/// `cost` units at `now` is admitted when
///
/// ```text
/// max(TAT, now) + cost × T − now ≤ burst × T
/// ```
///
/// and then sets `TAT = max(TAT, now) + cost × T`. `T` need not be a whole
/// number of milliseconds (3 per second is exact): times are kept as a
/// millisecond plus a fraction in units of `1 / rate` ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// Units per period; divides debts (in `1 / rate` ms) into milliseconds.
    rate: Divisor,
    /// The period in ms: one unit's cost in `1 / rate` ms.
    period: Divisor,
    burst: u64,
    /// `burst × period`: the largest debt at which a call is still admitted.
    tolerance: u64,
}

/// Per-key state: the theoretical arrival time, `tat_ms + tat_frac / rate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraState {
    /// Whole milliseconds of the theoretical arrival time.
    pub tat_ms: u64,
    /// Fraction of a millisecond, in units of `1 / rate` ms (`< rate`).
    pub tat_frac: u64,
}

/// Debts above this take the 128-bit path (only after the clock went back
/// by a very long time); below it every sum stays within u64.
const MAX_NARROW_DEBT: u64 = u64::MAX / 2;

impl Gcra {
    /// `rate` units per `period` with a burst of `rate`,
    /// e.g. `Gcra::new(10, "1 s")`.
    pub fn new(rate: u64, period: impl IntoMillis) -> Result<Self, ConfigError> {
        let rate = limits::nonzero("rate", rate)?;
        limits::at_most("rate", rate.into(), limits::MAX_EXACT)?;
        let period_ms = limits::span("period", period.into_millis()?)?;
        Self::build(rate, period_ms, rate)
    }

    /// Allows bursts of `burst` units (the most admitted at once).
    pub fn with_burst(self, burst: u64) -> Result<Self, ConfigError> {
        Self::build(self.rate.get(), self.period.get(), burst)
    }

    fn build(rate: u64, period_ms: u64, burst: u64) -> Result<Self, ConfigError> {
        let burst = limits::nonzero("burst", burst)?;
        // burst × T, scaled by rate, is the largest debt ever stored.
        limits::exact_product("burst × period", burst, period_ms)?;
        Ok(Self {
            rate: Divisor::new(rate),
            period: Divisor::new(period_ms),
            burst,
            tolerance: burst * period_ms,
        })
    }

    /// The most units admitted at once.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Units per period (for the Lua twin's arguments).
    pub(crate) fn rate(&self) -> u64 {
        self.rate.get()
    }

    /// The period in milliseconds.
    pub(crate) fn period_ms(&self) -> u64 {
        self.period.get()
    }

    /// How far `state`'s TAT is ahead of `now_ms`, in `1 / rate` ms; the
    /// state itself when that exceeds [`MAX_NARROW_DEBT`].
    #[inline]
    fn narrow_debt(&self, state: Option<GcraState>, now_ms: u64) -> Result<u64, GcraState> {
        match state {
            Some(s) if (s.tat_ms, s.tat_frac) > (now_ms, 0) => (s.tat_ms - now_ms)
                .checked_mul(self.rate.get())
                .and_then(|debt| debt.checked_add(s.tat_frac))
                .filter(|&debt| debt <= MAX_NARROW_DEBT)
                .ok_or(s),
            _ => Ok(0),
        }
    }

    /// A clock so far behind the state that its debt exceeds u64: denied
    /// (unless a read), computed in 128 bits so retry and TTL stay exact.
    #[cold]
    fn far_behind(&self, state: GcraState, now_ms: u64, cost: u64) -> Outcome {
        let rate = u128::from(self.rate.get());
        let debt = u128::from(state.tat_ms - now_ms) * rate + u128::from(state.tat_frac);
        let wanted = debt + u128::from(cost * self.period.get());
        let ms = |debt: u128| u64::try_from(debt.div_ceil(rate)).unwrap_or(u64::MAX);
        let until_full = ms(debt);
        let decision = Decision {
            allowed: cost == 0,
            limit: self.burst,
            remaining: 0,
            reset_ms: now_ms.saturating_add(until_full),
            retry_after_ms: if cost == 0 {
                0
            } else {
                ms(wanted - u128::from(self.tolerance))
            },
            reason: None,
        };
        Outcome {
            decision,
            ttl_ms: until_full,
        }
    }
}

impl Algorithm for Gcra {
    type State = GcraState;

    fn limit(&self) -> u64 {
        self.burst
    }

    fn kind(&self) -> super::Kind {
        super::Kind::Gcra
    }

    fn key_space(&self) -> String {
        // The state counts in 1 / rate ms: rate and period both matter.
        format!(
            "{}:{}/{}",
            self.kind().code(),
            self.period_ms(),
            self.rate()
        )
    }

    fn config_args(&self) -> Vec<u64> {
        vec![self.rate(), self.period_ms(), self.burst()]
    }

    fn tiered(&self, tier: &Tier) -> Result<Self, ConfigError> {
        // The rate stays: the state counts in 1 / rate ms.
        self.with_burst(tier.counted_limit(self.burst, "GCRA")?)
    }

    fn adjust(
        &self,
        state: &mut Option<GcraState>,
        now_ms: u64,
        adjustment: Adjustment,
    ) -> Outcome {
        let now = clamp_time(now_ms);
        // A debt this large (the clock far behind, past any tolerance) is
        // left alone, as in Lua, whose numbers are exact only below it.
        if let Ok(debt) = self.narrow_debt(*state, now) {
            if debt < MAX_EXACT {
                let period = self.period.get();
                // In whole units of `period`: a refund never gives back more
                // than the debt, a penalty never charges past the tolerance.
                let debt = match adjustment {
                    Adjustment::Refund(units) if units >= self.period.div_ceil(debt) => 0,
                    Adjustment::Refund(units) => debt - units * period,
                    Adjustment::Penalty(_) if debt >= self.tolerance => debt,
                    Adjustment::Penalty(units)
                        if units >= self.period.div_ceil(self.tolerance - debt) =>
                    {
                        self.tolerance
                    }
                    Adjustment::Penalty(units) => debt + units * period,
                };
                let (whole_ms, frac) = self.rate.div_rem(debt);
                *state = (debt > 0).then_some(GcraState {
                    tat_ms: now + whole_ms,
                    tat_frac: frac,
                });
            }
        }
        self.outcome(state, now_ms, 0)
    }

    #[inline]
    fn decide(
        &self,
        state: &mut Option<GcraState>,
        now_ms: u64,
        cost: u64,
    ) -> Result<Outcome, Error> {
        check_cost(cost, self.burst)?;
        Ok(self.outcome(state, now_ms, cost))
    }
}

impl Gcra {
    /// A call of `cost` (already checked against the limit) at `now_ms`.
    #[inline]
    fn outcome(&self, state: &mut Option<GcraState>, now_ms: u64, cost: u64) -> Outcome {
        let now_ms = clamp_time(now_ms);
        let debt = match self.narrow_debt(*state, now_ms) {
            Ok(debt) => debt,
            Err(far) => return self.far_behind(far, now_ms, cost),
        };
        let tolerance = self.tolerance;
        // cost ≤ burst, so cost × period ≤ tolerance < 2^53: no overflow.
        let wanted = debt + cost * self.period.get();

        // After the clock went back the debt can exceed the tolerance; a
        // read (cost 0) is still allowed.
        let allowed = cost == 0 || wanted <= tolerance;
        let debt_after = if allowed { wanted } else { debt };
        let (whole_ms, frac) = self.rate.div_rem(debt_after);
        if allowed && cost > 0 {
            *state = Some(GcraState {
                tat_ms: now_ms + whole_ms,
                tat_frac: frac,
            });
        }
        let until_full = whole_ms + u64::from(frac != 0);
        let decision = Decision {
            allowed,
            limit: self.burst,
            remaining: self.period.div(tolerance - debt_after.min(tolerance)),
            reset_ms: now_ms + until_full,
            retry_after_ms: if allowed {
                0
            } else {
                self.rate.div_ceil(wanted - tolerance)
            },
            reason: None,
        };
        Outcome {
            decision,
            ttl_ms: until_full,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(alg: &Gcra, s: &mut Option<GcraState>, now: u64, cost: u64) -> Decision {
        alg.decide(s, now, cost).unwrap().decision
    }

    #[test]
    fn burst_then_one_per_interval() {
        let alg = Gcra::new(2, "1 s").unwrap(); // T = 500 ms, burst 2
        let mut s = None;
        assert_eq!(run(&alg, &mut s, 0, 1).remaining, 1);
        assert_eq!(run(&alg, &mut s, 0, 1).remaining, 0);
        let d = run(&alg, &mut s, 100, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, 400);
        assert_eq!(d.reset_ms, 1000);
        assert!(!run(&alg, &mut s, 499, 1).allowed);
        assert!(run(&alg, &mut s, 500, 1).allowed);
    }

    #[test]
    fn fractional_emission_interval_is_exact() {
        let alg = Gcra::new(3, "1 s").unwrap(); // T = 333⅓ ms
        let mut s = None;
        run(&alg, &mut s, 0, 3);
        assert_eq!(
            s,
            Some(GcraState {
                tat_ms: 1000,
                tat_frac: 0
            })
        );
        // One unit is free again at 333⅓ ms: not at 333, at 334.
        let d = run(&alg, &mut s, 333, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, 1);
        assert!(run(&alg, &mut s, 334, 1).allowed);
        // TAT is now 1333⅓ ms.
        assert_eq!(
            s,
            Some(GcraState {
                tat_ms: 1333,
                tat_frac: 1
            })
        );
    }

    #[test]
    fn custom_burst_and_cost() {
        let alg = Gcra::new(10, "1 s").unwrap().with_burst(5).unwrap(); // T = 100
        let mut s = None;
        assert!(run(&alg, &mut s, 1000, 5).allowed);
        let d = run(&alg, &mut s, 1000, 3);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, 300);
        assert_eq!(run(&alg, &mut s, 1250, 0).remaining, 2);
        assert_eq!(
            alg.decide(&mut s, 1250, 6),
            Err(Error::CostExceedsLimit { cost: 6, limit: 5 })
        );
    }

    #[test]
    fn clock_going_back_mints_nothing() {
        let alg = Gcra::new(1, "1 s").unwrap();
        let mut s = None;
        run(&alg, &mut s, 50_000, 1);
        let d = run(&alg, &mut s, 0, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, 51_000);
    }

    #[test]
    fn clock_far_behind_a_huge_rate_stays_exact() {
        // A debt of 10^7 ms × 2^40 does not fit in 63 bits.
        let alg = Gcra::new(1 << 40, "1ms").unwrap().with_burst(1).unwrap();
        let mut s = None;
        assert!(run(&alg, &mut s, 10_000_000, 1).allowed);
        let before = s;
        let d = run(&alg, &mut s, 0, 1);
        assert!(!d.allowed);
        assert_eq!(
            (d.retry_after_ms, d.reset_ms, d.remaining),
            (10_000_001, 10_000_001, 0)
        );
        assert_eq!(s, before, "a denial changes nothing");
        assert!(run(&alg, &mut s, 0, 0).allowed, "a read is still allowed");
    }

    #[test]
    fn clock_far_behind_at_real_timestamps_and_rates() {
        // 7000 a minute: T = 8 4/7 ms, a burst of 10 is 85 5/7 ms of debt.
        // A clock some 126 000 years ahead fills the burst; back
        // at today's time the debt (in 1/7000 ms) no longer fits in 63 bits.
        let alg = Gcra::new(7000, "1 m").unwrap().with_burst(10).unwrap();
        let (ahead, today) = (4_000_000_000_000_000, 1_700_000_000_000);
        let gap = ahead - today;
        let mut s = None;
        assert!(run(&alg, &mut s, ahead, 10).allowed);
        let before = s;
        // Admitted when the TAT (ahead + 85 5/7) minus 3 × T (25 5/7) is
        // at most a burst ahead of now: at today + gap + 26.
        let o = alg.decide(&mut s, today, 3).unwrap();
        assert_eq!(
            o.decision,
            Decision {
                allowed: false,
                limit: 10,
                remaining: 0,
                reset_ms: ahead + 86,
                retry_after_ms: gap + 26,
                reason: None,
            }
        );
        assert_eq!(o.ttl_ms, gap + 86, "kept until full, not longer");
        assert_eq!(s, before, "a denial changes nothing");
        let o = alg.decide(&mut s, today, 0).unwrap();
        assert_eq!(
            (
                o.decision.allowed,
                o.decision.retry_after_ms,
                o.decision.reset_ms
            ),
            (true, 0, ahead + 86),
            "a read is allowed"
        );
        assert_eq!((o.ttl_ms, s), (gap + 86, before));
    }

    #[test]
    fn ttl_is_time_until_full() {
        let alg = Gcra::new(4, "1 s").unwrap();
        let mut s = None;
        assert_eq!(alg.decide(&mut s, 0, 3).unwrap().ttl_ms, 750);
        assert_eq!(alg.decide(&mut None, 0, 0).unwrap().ttl_ms, 0);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        assert_eq!(Gcra::new(0, "1 s"), Err(ConfigError::Zero { what: "rate" }));
        assert_eq!(
            Gcra::new(1, "1 s").unwrap().with_burst(0),
            Err(ConfigError::Zero { what: "burst" })
        );
        assert!(matches!(
            Gcra::new(1, "1 d").unwrap().with_burst(1 << 40),
            Err(ConfigError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_refund_of_every_unit_used_leaves_no_state() {
        let alg = Gcra::new(10, "1 s").unwrap();
        let mut s = None;
        run(&alg, &mut s, 1_000, 4);
        let outcome = alg.adjust(&mut s, 1_000, Adjustment::Refund(4));
        assert_eq!(s, None, "no debt is no state");
        assert_eq!((outcome.decision.remaining, outcome.ttl_ms), (10, 0));
    }

    #[test]
    fn a_penalty_fills_a_fractional_debt_exactly_to_the_tolerance() {
        let alg = Gcra::new(3, "1 s").unwrap(); // T = 333⅓ ms, burst 3
        let mut s = None;
        run(&alg, &mut s, 0, 1);
        // 1 ms later the debt is 1 000 - 3 (in thirds of a ms): 3 units
        // fill it to 3 000 exactly, not beyond.
        let outcome = alg.adjust(&mut s, 1, Adjustment::Penalty(3));
        assert_eq!(outcome.decision.reset_ms, 1 + 1_000);
        assert_eq!(outcome.decision.remaining, 0);
    }

    #[test]
    fn a_penalty_leaves_a_debt_above_the_tolerance_alone() {
        let alg = Gcra::new(1, "1 s").unwrap().with_burst(2).unwrap();
        // The clock went back 10 s past a state: a debt of 10 s, above 2 s.
        let before = Some(GcraState {
            tat_ms: 20_000,
            tat_frac: 0,
        });
        let mut s = before;
        alg.adjust(&mut s, 10_000, Adjustment::Penalty(1));
        assert_eq!(s, before);
    }

    #[test]
    fn a_debt_of_2_53_or_more_is_left_alone_as_in_lua() {
        let alg = Gcra::new(1, "1 s").unwrap();
        for debt in [MAX_EXACT, MAX_EXACT + 7] {
            let before = Some(GcraState {
                tat_ms: debt,
                tat_frac: 0,
            });
            let mut s = before;
            alg.adjust(&mut s, 0, Adjustment::Refund(1));
            assert_eq!(s, before, "debt {debt}");
        }
        let mut s = Some(GcraState {
            tat_ms: MAX_EXACT - 1_000,
            tat_frac: 0,
        });
        alg.adjust(&mut s, 0, Adjustment::Refund(1));
        assert_eq!(
            s.map(|s| s.tat_ms),
            Some(MAX_EXACT - 2_000),
            "just below: refunded"
        );
    }
}
