//! Sliding log: exact limit over any window of the given length.

use std::collections::VecDeque;

use super::contract::{check_cost, clamp_time, Algorithm, Outcome};
use super::limits;
use super::{Adjustment, Tier};
use crate::{ConfigError, Decision, Error, IntoMillis};

/// Exact: a call at `now` is admitted when the units admitted in
/// `(now − window, now]` plus its cost are at most `limit`. Keeps one entry
/// per admitted unit (units admitted at the same millisecond share one
/// record), so state is bounded by `limit`, itself at most
/// [`MAX_LOG_LIMIT`](super::limits::MAX_LOG_LIMIT). Denied calls consume nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingLog {
    limit: u64,
    window_ms: u64,
}

/// Units admitted at one millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogEntry {
    /// When they were admitted.
    pub at_ms: u64,
    /// How many.
    pub units: u64,
}

/// Per-key state: admissions still inside the window, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlidingLogState {
    /// The admissions, in time order.
    pub entries: VecDeque<LogEntry>,
    /// Sum of `units` over `entries`.
    pub total: u64,
    /// The latest time the log was evaluated at: a clock going back is
    /// treated as this time, so expired entries cannot come back to life.
    pub latest_ms: u64,
}

impl SlidingLog {
    /// `limit` units in any `window`, e.g. `SlidingLog::new(10, "10 s")`.
    pub fn new(limit: u64, window: impl IntoMillis) -> Result<Self, ConfigError> {
        let limit = limits::nonzero("limit", limit)?;
        limits::at_most("limit", limit.into(), limits::MAX_LOG_LIMIT.into())?;
        let window_ms = limits::span("window", window.into_millis()?)?;
        Ok(Self { limit, window_ms })
    }

    /// The window length in milliseconds.
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }
}

impl SlidingLogState {
    /// How many of the oldest entries, and how many units, have left the
    /// window ending at `at_ms`.
    fn expired(&self, at_ms: u64, window_ms: u64) -> (usize, u64) {
        self.entries
            .iter()
            .take_while(|entry| entry.at_ms + window_ms <= at_ms)
            .fold((0, 0), |(count, units), entry| {
                (count + 1, units + entry.units)
            })
    }

    /// Drops entries that have left the window ending at `at_ms`.
    fn expire(&mut self, at_ms: u64, window_ms: u64) {
        let (count, units) = self.expired(at_ms, window_ms);
        self.entries.drain(..count);
        self.total -= units;
    }

    /// Removes `units` from the newest entries (all of them, at most).
    fn give_back(&mut self, units: u64) {
        let mut left = units.min(self.total);
        self.total -= left;
        while left > 0 {
            let Some(last) = self.entries.back_mut() else {
                break;
            };
            let taken = left.min(last.units);
            last.units -= taken;
            left -= taken;
            if last.units == 0 {
                self.entries.pop_back();
            }
        }
    }

    fn record(&mut self, at_ms: u64, units: u64) {
        match self.entries.back_mut() {
            Some(last) if last.at_ms == at_ms => last.units += units,
            _ => self.entries.push_back(LogEntry { at_ms, units }),
        }
        self.total += units;
    }
}

/// When enough units of `live` (the entries inside the window, oldest
/// first) have left the window for `excess` more to fit. `excess` is at most
/// their total (cost <= limit), so `find` succeeds; falling back to the
/// newest entry keeps this total without a panic.
fn time_when_freed<'a>(
    live: impl Iterator<Item = &'a LogEntry> + Clone,
    excess: u64,
    window_ms: u64,
) -> u64 {
    let mut freed = 0;
    live.clone()
        .find(|entry| {
            freed += entry.units;
            freed >= excess
        })
        .or(live.last())
        .map_or(0, |entry| entry.at_ms + window_ms)
}

impl Algorithm for SlidingLog {
    type State = SlidingLogState;

    fn limit(&self) -> u64 {
        self.limit
    }

    fn kind(&self) -> super::Kind {
        super::Kind::SlidingLog
    }

    fn key_space(&self) -> String {
        format!("{}:{}", self.kind().code(), self.window_ms())
    }

    fn config_args(&self) -> Vec<u64> {
        vec![self.limit(), self.window_ms()]
    }

    fn tiered(&self, tier: &Tier) -> Result<Self, ConfigError> {
        Self::new(
            tier.counted_limit(self.limit, "sliding log")?,
            std::time::Duration::from_millis(self.window_ms),
        )
    }

    fn adjust(
        &self,
        state: &mut Option<SlidingLogState>,
        now_ms: u64,
        adjustment: Adjustment,
    ) -> Outcome {
        let now = clamp_time(now_ms);
        let log = state.get_or_insert_with(SlidingLogState::default);
        let at = log.latest_ms.max(now);
        log.expire(at, self.window_ms);
        match adjustment {
            // The latest units go back first: the ones a refunded call took.
            Adjustment::Refund(units) => log.give_back(units),
            Adjustment::Penalty(_) => {
                let charged = adjustment.apply(log.total, self.limit) - log.total;
                if charged > 0 {
                    log.latest_ms = at;
                    log.record(at, charged);
                }
            }
        }
        self.outcome(state, now_ms, 0)
    }

    fn decide(
        &self,
        state: &mut Option<SlidingLogState>,
        now_ms: u64,
        cost: u64,
    ) -> Result<Outcome, Error> {
        check_cost(cost, self.limit)?;
        Ok(self.outcome(state, now_ms, cost))
    }
}

impl SlidingLog {
    /// A call of `cost` (already checked against the limit) at `now_ms`.
    #[inline]
    fn outcome(&self, state: &mut Option<SlidingLogState>, now_ms: u64, cost: u64) -> Outcome {
        let now_ms = clamp_time(now_ms);
        let window = self.window_ms;
        // Never evaluate before the latest time an admission was recorded
        // at: a clock going back must not bring back room already used.
        let at = state
            .as_ref()
            .map_or(now_ms, |log| log.latest_ms.max(now_ms));
        let (expired, expired_units) = state.as_ref().map_or((0, 0), |log| log.expired(at, window));
        let in_window = state.as_ref().map_or(0, |log| log.total) - expired_units;

        let allowed = in_window + cost <= self.limit;
        if allowed && cost > 0 {
            // Only an admission changes the log: a denial or a read is a
            // pure read, so a copy of the log decides later calls exactly.
            let log = state.get_or_insert_with(SlidingLogState::default);
            log.expire(at, window);
            log.latest_ms = at;
            log.record(at, cost);
        }
        let skip = if allowed && cost > 0 { 0 } else { expired };
        let live = state.iter().flat_map(|log| log.entries.iter().skip(skip));
        let used = if allowed { in_window + cost } else { in_window };
        let retry_after_ms = if allowed {
            0
        } else {
            time_when_freed(live.clone(), used + cost - self.limit, window) - now_ms
        };
        let newest_end = live.last().map(|e| e.at_ms + window);
        let decision = Decision {
            allowed,
            limit: self.limit,
            // More used than the limit: admitted under a larger tier.
            remaining: self.limit.saturating_sub(used),
            reset_ms: newest_end.unwrap_or(now_ms),
            retry_after_ms,
            reason: None,
        };
        let ttl_ms = newest_end.map_or(0, |end| end - now_ms);
        Outcome { decision, ttl_ms }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(alg: &SlidingLog, s: &mut Option<SlidingLogState>, now: u64, cost: u64) -> Decision {
        alg.decide(s, now, cost).unwrap().decision
    }

    #[test]
    fn exact_over_any_window() {
        let alg = SlidingLog::new(3, "1 s").unwrap();
        let mut s = None;
        assert!(run(&alg, &mut s, 100, 1).allowed);
        assert!(run(&alg, &mut s, 600, 2).allowed);
        let d = run(&alg, &mut s, 1099, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, 1, "the unit from 100 leaves at 1100");
        let d = run(&alg, &mut s, 1100, 1);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        let d = run(&alg, &mut s, 1200, 2);
        assert!(!d.allowed);
        assert_eq!(
            d.retry_after_ms,
            1600 - 1200,
            "both units from 600 must leave"
        );
    }

    #[test]
    fn units_at_one_millisecond_share_an_entry() {
        let alg = SlidingLog::new(10, "1 s").unwrap();
        let mut s = None;
        run(&alg, &mut s, 5, 2);
        run(&alg, &mut s, 5, 3);
        run(&alg, &mut s, 6, 1);
        let log = s.as_ref().unwrap();
        assert_eq!(log.entries.len(), 2);
        assert_eq!(log.total, 6);
    }

    #[test]
    fn reset_ttl_and_empty_state() {
        let alg = SlidingLog::new(2, "1 s").unwrap();
        let mut s = None;
        let o = alg.decide(&mut s, 100, 1).unwrap();
        assert_eq!((o.decision.reset_ms, o.ttl_ms), (1100, 1000));
        let o = alg.decide(&mut s, 2000, 0).unwrap();
        assert_eq!(
            (o.decision.remaining, o.decision.reset_ms, o.ttl_ms),
            (2, 2000, 0)
        );
        assert_eq!(s.unwrap().entries.len(), 1, "a read changes nothing");
    }

    #[test]
    fn only_admissions_change_the_log() {
        let alg = SlidingLog::new(2, "1 s").unwrap();
        let mut s = None;
        run(&alg, &mut s, 0, 2);
        let before = s.clone();
        for (now, cost) in [(500, 1), (1500, 0), (900, 2), (1200, 0)] {
            run(&alg, &mut s, now, cost);
            assert_eq!(s, before, "a denial or a read at {now} is a pure read");
        }
        // Admitted at 1500: the entries of 0 leave, the time is recorded.
        assert!(run(&alg, &mut s, 1500, 1).allowed);
        let log = s.unwrap();
        assert_eq!((log.total, log.latest_ms, log.entries.len()), (1, 1500, 1));
    }

    #[test]
    fn clock_going_back_mints_nothing() {
        let alg = SlidingLog::new(2, "1 s").unwrap();
        let mut s = None;
        run(&alg, &mut s, 5000, 2);
        let d = run(&alg, &mut s, 100, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, 6000 - 100);
        // Once an admission at 1500 has emptied the log, a call "at 500" is
        // decided as of 1500, and what it takes counts until 2500, not 1500.
        let mut s = None;
        run(&alg, &mut s, 0, 2);
        run(&alg, &mut s, 1500, 1);
        assert!(run(&alg, &mut s, 500, 1).allowed);
        let d = run(&alg, &mut s, 1600, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, 900);
    }

    #[test]
    fn limits_are_validated() {
        assert!(SlidingLog::new(limits::MAX_LOG_LIMIT, "1 s").is_ok());
        assert!(matches!(
            SlidingLog::new(limits::MAX_LOG_LIMIT + 1, "1 s"),
            Err(ConfigError::TooLarge { .. })
        ));
        assert_eq!(
            SlidingLog::new(1, "1 s").unwrap().decide(&mut None, 0, 2),
            Err(Error::CostExceedsLimit { cost: 2, limit: 1 })
        );
    }

    #[test]
    fn a_penalty_on_a_full_log_records_nothing() {
        let alg = SlidingLog::new(2, "10 s").unwrap();
        let mut s = None;
        run(&alg, &mut s, 0, 2);
        let before = s.clone();
        let outcome = alg.adjust(&mut s, 5_000, Adjustment::Penalty(1));
        assert_eq!(s, before, "no empty entry, the latest time unmoved");
        assert_eq!(outcome.decision.reset_ms, 10_000);
    }
}
