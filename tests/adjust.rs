//! Refunds and penalties: a refund of a call's units right after it leaves
//! no trace, a penalty that fits is a call, and neither pushes a key past
//! its bounds, for every algorithm; the limiter's API over both stores.

use edgelimit::algorithm::{
    Adjustment, Algorithm, FixedWindow, Gcra, Kind, SlidingLog, SlidingWindow, TokenBucket,
};
use edgelimit::{Decision, Limiter, ManualClock};
use proptest::prelude::*;
use testkit::cases::proptest_cases;

const START_MS: u64 = 1_700_000_000_000;

/// One key's state as a store keeps it: dropped once its TTL has passed.
struct Kept<S> {
    state: Option<S>,
    expires: u64,
}

impl<S: Clone> Kept<S> {
    fn new() -> Self {
        Self {
            state: None,
            expires: 0,
        }
    }

    fn live(&mut self, now: u64) -> &mut Option<S> {
        if now >= self.expires {
            self.state = None;
        }
        &mut self.state
    }

    fn decide<A: Algorithm<State = S>>(
        &mut self,
        alg: &A,
        now: u64,
        cost: u64,
    ) -> Option<Decision> {
        let outcome = alg.decide(self.live(now), now, cost).ok()?;
        self.expires = now + outcome.ttl_ms;
        Some(outcome.decision)
    }

    fn adjust<A: Algorithm<State = S>>(&mut self, alg: &A, now: u64, how: Adjustment) -> Decision {
        let outcome = alg.adjust(self.live(now), now, how);
        self.expires = now + outcome.ttl_ms;
        outcome.decision
    }
}

/// Clock steps (forward) and costs of calls.
fn calls() -> impl Strategy<Value = Vec<(u64, u64)>> {
    let step = prop_oneof![5 => 0..200u64, 3 => 0..3_000u64, 1 => 0..20_000u64];
    prop::collection::vec((step, 0..=6u64), 0..30)
}

/// Replays `before`, then at one instant either `changed` or `plain`, then
/// `after` on both: the decisions after must be the same.
fn same_after<A: Algorithm + Clone>(
    alg: &A,
    before: &[(u64, u64)],
    changed: impl Fn(&mut Kept<A::State>, u64) -> bool,
    plain: impl Fn(&mut Kept<A::State>, u64),
    after: &[(u64, u64)],
) -> Result<(), TestCaseError>
where
    A::State: Clone,
{
    let (mut a, mut b) = (Kept::new(), Kept::new());
    let mut now = START_MS;
    for &(step, cost) in before {
        now += step;
        a.decide(alg, now, cost);
        b.decide(alg, now, cost);
    }
    if !changed(&mut a, now) {
        return Ok(());
    }
    plain(&mut b, now);
    for (i, &(step, cost)) in after.iter().enumerate() {
        now += step;
        prop_assert_eq!(
            a.decide(alg, now, cost),
            b.decide(alg, now, cost),
            "call {} after",
            i
        );
    }
    Ok(())
}

/// A call of `cost` admitted and refunded at once is a read (which may
/// start a new token bucket's refill clock, as the call did). Not for a
/// token bucket starting below capacity: there a call, refunded or not, is
/// the key's activity, which keeps a full bucket from being forgotten
/// (a read is not).
fn refunded_call_leaves_no_trace<A: Algorithm + Clone>(
    alg: &A,
    before: &[(u64, u64)],
    cost: u64,
    after: &[(u64, u64)],
) -> Result<(), TestCaseError>
where
    A::State: Clone,
{
    let args = alg.config_args();
    if alg.kind() == Kind::TokenBucket && args[3] < args[0] {
        return Ok(());
    }
    same_after(
        alg,
        before,
        |kept, now| {
            let admitted = kept.decide(alg, now, cost).is_some_and(|d| d.allowed);
            if admitted {
                kept.adjust(alg, now, Adjustment::Refund(cost));
            }
            admitted
        },
        |kept, now| {
            kept.decide(alg, now, 0);
        },
        after,
    )
}

/// A penalty of units a call could take now is that call.
fn fitting_penalty_is_a_call<A: Algorithm + Clone>(
    alg: &A,
    before: &[(u64, u64)],
    units: u64,
    after: &[(u64, u64)],
) -> Result<(), TestCaseError>
where
    A::State: Clone,
{
    same_after(
        alg,
        before,
        |kept, now| {
            let mut probe = Kept {
                state: kept.live(now).clone(),
                expires: kept.expires,
            };
            let fits = probe.decide(alg, now, units).is_some_and(|d| d.allowed);
            if fits {
                kept.adjust(alg, now, Adjustment::Penalty(units));
            }
            fits
        },
        |kept, now| {
            kept.decide(alg, now, units);
        },
        after,
    )
}

/// Every adjustment stays within the bounds: a refund gives back at most
/// its units and never more than the limit, a penalty takes at most its
/// units.
fn bounded<A: Algorithm + Clone>(alg: &A, ops: &[(u64, u64, u8)]) -> Result<(), TestCaseError>
where
    A::State: Clone,
{
    let mut kept = Kept::new();
    let mut now = START_MS;
    for &(step, units, kind) in ops {
        now += step;
        let Some(before) = kept.decide(alg, now, 0) else {
            continue;
        };
        let after = match kind {
            0 => kept.adjust(alg, now, Adjustment::Refund(units)),
            1 => kept.adjust(alg, now, Adjustment::Penalty(units)),
            _ => {
                kept.decide(alg, now, units.min(alg.limit()));
                continue;
            }
        };
        prop_assert!(after.remaining <= alg.limit());
        if kind == 0 {
            prop_assert!(after.remaining >= before.remaining);
            prop_assert!(after.remaining - before.remaining <= units);
        } else {
            prop_assert!(after.remaining <= before.remaining);
            prop_assert!(before.remaining - after.remaining <= units);
        }
    }
    Ok(())
}

fn ops() -> impl Strategy<Value = Vec<(u64, u64, u8)>> {
    prop::collection::vec((0..3_000u64, 0..=12u64, 0..3u8), 1..40)
}

macro_rules! for_each_algorithm {
    ($name:ident, $check:ident, $extra:ty) => {
        proptest! {
            #![proptest_config(ProptestConfig { cases: proptest_cases(300), ..ProptestConfig::default() })]
            #[test]
            fn $name(
                limit in 1..=8u64, span in 1..=5_000u64, refill in 1..=8u64, initial in 0..=8u64,
                before in calls(), extra in any::<$extra>(), after in calls(),
            ) {
                let w = format!("{span}ms");
                let units = 1 + u64::from(extra) % limit;
                $check(&FixedWindow::new(limit, w.as_str()).unwrap(), &before, units, &after)?;
                $check(&SlidingWindow::new(limit, w.as_str()).unwrap(), &before, units, &after)?;
                $check(&SlidingLog::new(limit, w.as_str()).unwrap(), &before, units, &after)?;
                let bucket = TokenBucket::new(limit, refill.min(limit), w.as_str()).unwrap();
                $check(&bucket, &before, units, &after)?;
                $check(&bucket.with_initial(initial.min(limit)).unwrap(), &before, units, &after)?;
                $check(&Gcra::new(limit, w.as_str()).unwrap(), &before, units, &after)?;
                $check(&Gcra::new(3, w.as_str()).unwrap().with_burst(limit).unwrap(), &before, units, &after)?;
            }
        }
    };
}

for_each_algorithm!(
    a_call_refunded_at_once_leaves_no_trace,
    refunded_call_leaves_no_trace,
    u8
);
for_each_algorithm!(a_penalty_that_fits_is_a_call, fitting_penalty_is_a_call, u8);

proptest! {
    #![proptest_config(ProptestConfig { cases: proptest_cases(300), ..ProptestConfig::default() })]
    #[test]
    fn adjustments_stay_within_bounds(limit in 1..=8u64, span in 1..=5_000u64, ops in ops()) {
        let w = format!("{span}ms");
        bounded(&FixedWindow::new(limit, w.as_str()).unwrap(), &ops)?;
        bounded(&SlidingWindow::new(limit, w.as_str()).unwrap(), &ops)?;
        bounded(&SlidingLog::new(limit, w.as_str()).unwrap(), &ops)?;
        bounded(&TokenBucket::new(limit, 1, w.as_str()).unwrap(), &ops)?;
        bounded(&Gcra::new(3, w.as_str()).unwrap().with_burst(limit).unwrap(), &ops)?;
    }
}

#[test]
fn a_twin_gets_the_units_and_the_mode_before_the_configuration() {
    use edgelimit::store::{Adjust, Transition};
    let algorithm = FixedWindow::new(5, "1 s").unwrap();
    for (adjustment, units, mode) in [
        (Adjustment::Refund(3), "3", "2"),
        (Adjustment::Penalty(7), "7", "3"),
    ] {
        let remote = Adjust {
            algorithm: &algorithm,
            adjustment,
        }
        .remote()
        .unwrap();
        assert_eq!(remote.args, [units, mode, "5", "1000"]);
        assert!(!remote.idempotent, "sent twice, a refund gives back twice");
    }
}

fn limiter<A: Algorithm>(alg: A) -> Limiter<A, edgelimit::MemoryStore, ManualClock> {
    Limiter::new(alg).with_clock(ManualClock::new(START_MS))
}

#[test]
fn a_refund_beyond_the_use_gives_back_the_use_and_no_more() {
    let limiter = limiter(TokenBucket::new(10, 1, "1 s").unwrap());
    assert_eq!(limiter.limit_with_cost("u", 4).unwrap().remaining, 6);
    assert_eq!(limiter.refund("u", 100).unwrap().remaining, 10);
    // A full bucket stays full: nothing minted.
    assert_eq!(limiter.refund("u", 5).unwrap().remaining, 10);
    assert_eq!(limiter.limit_with_cost("u", 10).unwrap().remaining, 0);
}

#[test]
fn a_penalty_charges_up_to_the_limit_and_the_key_waits_as_after_a_full_use() {
    let limiter = limiter(FixedWindow::new(5, "1 m").unwrap());
    let window_end = START_MS - START_MS % 60_000 + 60_000;
    let d = limiter.penalize("u", 50).unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 0));
    let d = limiter.limit("u").unwrap();
    assert_eq!(
        (d.allowed, d.retry_after_ms),
        (false, window_end - START_MS)
    );
    limiter.clock().set(window_end);
    assert!(
        limiter.limit("u").unwrap().allowed,
        "the next window is clean"
    );
}

#[test]
fn a_sliding_log_gives_back_its_newest_units_first() {
    let limiter = limiter(SlidingLog::new(3, "10 s").unwrap());
    limiter.limit("u").unwrap();
    limiter.clock().advance(5_000);
    limiter.limit_with_cost("u", 2).unwrap();
    assert_eq!(limiter.refund("u", 1).unwrap().remaining, 1);
    // The unit from the start leaves at 10 s: room for 2 then, not 3.
    limiter.clock().advance(5_000);
    let d = limiter.limit_with_cost("u", 0).unwrap();
    assert_eq!(d.remaining, 2);
}

#[test]
fn a_gcra_refund_moves_its_arrival_time_back_never_before_now() {
    let limiter = limiter(Gcra::new(1, "1 s").unwrap().with_burst(3).unwrap());
    assert_eq!(limiter.limit_with_cost("u", 3).unwrap().remaining, 0);
    let d = limiter.refund("u", 2).unwrap();
    assert_eq!((d.remaining, d.reset_ms), (2, START_MS + 1_000));
    assert_eq!(limiter.refund("u", 9).unwrap().remaining, 3);
    assert_eq!(limiter.penalize("u", 9).unwrap().reset_ms, START_MS + 3_000);
}

#[test]
fn an_adjustment_in_a_later_window_counts_from_that_window_not_an_earlier_ones() {
    // A store may hand over a state whose window is over (Redis keeps a key
    // a grace beyond its end under the caller's clock): its units no longer
    // count.
    let alg = FixedWindow::new(5, "1 s").unwrap();
    let mut state = Some(edgelimit::algorithm::FixedWindowState {
        window_start_ms: START_MS,
        count: 5,
    });
    let later = START_MS + 1_000;
    let outcome = alg.adjust(&mut state, later, Adjustment::Penalty(2));
    assert_eq!(outcome.decision.remaining, 3);
    assert_eq!(
        state,
        Some(edgelimit::algorithm::FixedWindowState {
            window_start_ms: later,
            count: 2
        })
    );
    let mut refunded = Some(edgelimit::algorithm::FixedWindowState {
        window_start_ms: START_MS,
        count: 5,
    });
    assert_eq!(
        alg.adjust(&mut refunded, later, Adjustment::Refund(1))
            .decision
            .remaining,
        5
    );
}
