//! Per-call limits (`Tier`): the rules of a change of limit, and the bound
//! no sequence of changes can get past: never more in any span than the
//! most generous limit used would have admitted there on its own.

use edgelimit::algorithm::{
    Algorithm, FixedWindow, Gcra, SlidingLog, SlidingWindow, Tier, TokenBucket,
};
use edgelimit::{ConfigError, Error, Limiter, ManualClock};
use proptest::prelude::*;
use testkit::cases::proptest_cases;

/// One call: the clock moves forward `step_ms`, then `cost` units are asked
/// under the limiter's own limit (`tier` 0) or the other one (`tier` 1).
#[derive(Debug, Clone, Copy)]
struct Call {
    step_ms: u64,
    cost: u64,
    tier: usize,
}

const START_MS: u64 = 1_700_000_000_000;

fn calls(span_ms: u64, max_cost: u64) -> impl Strategy<Value = Vec<Call>> {
    let step = prop_oneof![6 => 0..=span_ms / 4 + 1, 3 => 0..=3 * span_ms, 1 => 0..=20 * span_ms];
    let cost = prop_oneof![6 => Just(1u64), 3 => 0..=max_cost];
    prop::collection::vec(
        (step, cost, 0..2usize).prop_map(|(step_ms, cost, tier)| Call {
            step_ms,
            cost,
            tier,
        }),
        1..100,
    )
}

/// Replays `calls` on one key, each under `tiers[call.tier]`, dropping the
/// state once the TTL it reported has passed, as a store does. Returns
/// (time, cost) of every admitted call of a cost the tier can take.
fn admitted<A: Algorithm>(tiers: &[A; 2], calls: &[Call]) -> Vec<(u64, u64)> {
    let mut state: Option<A::State> = None;
    let mut expires = 0;
    let mut now = START_MS;
    let mut out = Vec::new();
    for call in calls {
        now += call.step_ms;
        if now >= expires {
            state = None;
        }
        let alg = &tiers[call.tier];
        let Ok(outcome) = alg.decide(&mut state, now, call.cost) else {
            continue;
        };
        let d = outcome.decision;
        assert!(
            d.remaining <= alg.limit(),
            "remaining {} above the limit",
            d.remaining
        );
        if d.allowed {
            out.push((now, call.cost));
        }
        expires = now + outcome.ttl_ms;
    }
    out
}

/// Units admitted in `[from, to]`.
fn units_between(admitted: &[(u64, u64)], from: u64, to: u64) -> u64 {
    admitted
        .iter()
        .filter(|(t, _)| (from..=to).contains(t))
        .map(|(_, c)| c)
        .sum()
}

/// No window aligned to `window` ms holds more than `bound` admitted units.
fn at_most_per_aligned_window(
    admitted: &[(u64, u64)],
    window: u64,
    bound: u64,
) -> Result<(), TestCaseError> {
    for &(t, _) in admitted {
        let start = t - t % window;
        let used = units_between(admitted, start, start + window - 1);
        prop_assert!(used <= bound, "{} in the window from {}", used, start);
    }
    Ok(())
}

fn limits() -> impl Strategy<Value = (u64, u64)> {
    (1..=20u64, 1..=20u64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: proptest_cases(300), ..ProptestConfig::default() })]

    #[test]
    fn fixed_window_never_admits_more_per_window_than_the_larger_limit(
        (a, b) in limits(), window in 1..=2_000u64, calls in calls(2_000, 20),
    ) {
        let alg = FixedWindow::new(a, format!("{window}ms")).unwrap();
        let tiers = [alg, alg.tiered(&Tier::limit(b)).unwrap()];
        at_most_per_aligned_window(&admitted(&tiers, &calls), window, a.max(b))?;
    }

    #[test]
    fn sliding_window_never_admits_more_per_window_than_the_larger_limit(
        (a, b) in limits(), window in 1..=2_000u64, calls in calls(2_000, 20),
    ) {
        let alg = SlidingWindow::new(a, format!("{window}ms")).unwrap();
        let tiers = [alg, alg.tiered(&Tier::limit(b)).unwrap()];
        at_most_per_aligned_window(&admitted(&tiers, &calls), window, a.max(b))?;
    }

    #[test]
    fn sliding_log_never_admits_more_in_any_window_than_the_larger_limit(
        (a, b) in limits(), window in 1..=2_000u64, calls in calls(2_000, 20),
    ) {
        let alg = SlidingLog::new(a, format!("{window}ms")).unwrap();
        let tiers = [alg, alg.tiered(&Tier::limit(b)).unwrap()];
        let admitted = admitted(&tiers, &calls);
        for &(t, _) in &admitted {
            let used = units_between(&admitted, t.saturating_sub(window - 1), t);
            prop_assert!(used <= a.max(b), "{} in the window ending {}", used, t);
        }
    }

    /// No token minted: from the first call on, never more than the
    /// limiter's own initial tokens plus the faster refill per interval
    /// since, whatever tier each call ran under and however often a full
    /// bucket was forgotten (a new key starts at the limiter's initial).
    #[test]
    fn token_bucket_never_admits_more_than_its_own_initial_plus_the_faster_refill(
        (a, b) in limits(), refills in (1..=20u64, 0..=20u64), initial in 0..=20u64,
        interval in 1..=500u64, calls in calls(500, 20),
    ) {
        let ra = refills.0.min(a);
        let alg = TokenBucket::new(a, ra, format!("{interval}ms")).unwrap().with_initial(initial.min(a)).unwrap();
        let tier = Tier::limit(b).with_refill(ra + refills.1);
        let tiers = [alg, alg.tiered(&tier).unwrap()];
        let admitted = admitted(&tiers, &calls);
        let Some(&(first, _)) = admitted.first() else { return Ok(()) };
        let start = calls.iter().scan(START_MS, |now, c| { *now += c.step_ms; Some(*now) }).next().unwrap();
        for &(to, _) in &admitted {
            let used = units_between(&admitted, first, to);
            let bound = initial.min(a) + (ra + refills.1) * ((to - start) / interval + 1);
            prop_assert!(used <= bound, "{} by {}, bound {}", used, to, bound);
        }
    }

    /// From any admission on, never more than the larger burst plus the
    /// units the rate adds over the time since.
    #[test]
    fn gcra_never_admits_more_than_the_larger_burst_plus_the_rate(
        (a, b) in limits(), rate in 1..=20u64, period in 1..=2_000u64, calls in calls(2_000, 20),
    ) {
        let alg = Gcra::new(rate, format!("{period}ms")).unwrap().with_burst(a).unwrap();
        let tiers = [alg, alg.tiered(&Tier::limit(b)).unwrap()];
        let admitted = admitted(&tiers, &calls);
        for (i, &(from, _)) in admitted.iter().enumerate() {
            for &(to, _) in &admitted[i..] {
                let used = units_between(&admitted, from, to);
                let bound = a.max(b) + (to - from) * rate / period;
                prop_assert!(used <= bound, "{} in [{}, {}], bound {}", used, from, to, bound);
            }
        }
    }
}

fn limiter<A: Algorithm>(alg: A) -> Limiter<A, edgelimit::MemoryStore, ManualClock> {
    Limiter::new(alg).with_clock(ManualClock::new(START_MS))
}

#[test]
fn a_lower_limit_counts_the_usage_already_made() {
    let limiter = limiter(FixedWindow::new(1_000, "1 m").unwrap());
    let free = Tier::limit(10);
    assert!(limiter.limit_with_cost("u", 50).unwrap().allowed);
    let d = limiter.limit_under("u", 1, &free).unwrap();
    assert!(!d.allowed);
    assert_eq!((d.limit, d.remaining), (10, 0));
    let window_end = START_MS - START_MS % 60_000 + 60_000;
    assert_eq!(d.retry_after_ms, window_end - START_MS);
    // The denial changed nothing: under the configured limit 950 are left.
    assert_eq!(limiter.limit("u").unwrap().remaining, 949);
}

#[test]
fn a_smaller_bucket_clamps_its_tokens_and_a_larger_one_mints_none() {
    let limiter = limiter(TokenBucket::new(10, 1, "1 s").unwrap());
    let pro = Tier::limit(100).with_refill(10);
    // A new key starts with the limiter's own 10 tokens, whatever its tier.
    let d = limiter.limit_under("u", 1, &pro).unwrap();
    assert_eq!((d.allowed, d.limit, d.remaining), (true, 100, 9));
    limiter.clock().advance(10_000);
    assert_eq!(limiter.limit_under("u", 0, &pro).unwrap().remaining, 100);
    // Back to 10: a draw leaves 9 of the 100 (the rest is gone) ...
    let d = limiter.limit("u").unwrap();
    assert_eq!((d.allowed, d.limit, d.remaining), (true, 10, 9));
    // ... and the larger bucket gets them back only by refilling.
    assert_eq!(limiter.limit_under("u", 0, &pro).unwrap().remaining, 9);
    limiter.clock().advance(2_000);
    assert_eq!(limiter.limit_under("u", 0, &pro).unwrap().remaining, 29);
}

#[test]
fn a_larger_bucket_idle_past_its_warm_up_starts_over_at_the_limiters_initial() {
    let limiter = limiter(TokenBucket::new(10, 1, "1 s").unwrap());
    let pro = Tier::limit(100).with_refill(10);
    assert_eq!(
        limiter.limit_under("u", 100 - 90, &pro).unwrap().remaining,
        0
    );
    // Full after 10 s, then kept for the 9 s a new key takes to fill from
    // the limiter's 10 tokens: meanwhile a client calling is never worse off.
    limiter.clock().advance(18_999);
    assert_eq!(limiter.limit_under("u", 0, &pro).unwrap().remaining, 100);
    limiter.clock().advance(19_000);
    assert_eq!(limiter.limit_under("u", 0, &pro).unwrap().remaining, 10);
}

#[test]
fn a_faster_tier_seeing_a_full_bucket_does_not_make_the_limiter_forget_it() {
    let limiter = limiter(TokenBucket::new(10, 1, "1 s").unwrap());
    let fast = Tier::refill(10);
    assert!(limiter.limit_with_cost("u", 10).unwrap().allowed);
    // A second later the faster refill sees a full bucket, a new key's
    // equal; the limiter's own has 1 token, and must keep counting.
    limiter.clock().advance(1_000);
    assert_eq!(limiter.limit_under("u", 0, &fast).unwrap().remaining, 10);
    assert_eq!(limiter.limit_with_cost("u", 0).unwrap().remaining, 1);
    limiter.clock().advance(2_000);
    assert_eq!(limiter.limit_with_cost("u", 0).unwrap().remaining, 3);
}

#[test]
fn a_tier_refilling_slower_than_the_limiter_is_refused() {
    let limiter = limiter(TokenBucket::new(10, 5, "1 s").unwrap());
    let slow = limiter.limit_under("u", 1, &Tier::refill(2));
    assert!(
        matches!(slow, Err(Error::Tier(ConfigError::Exceeds { .. }))),
        "{slow:?}"
    );
    // A capacity below the refill fills in one interval: accepted.
    assert_eq!(
        limiter
            .limit_under("u", 1, &Tier::limit(3))
            .unwrap()
            .remaining,
        2
    );
}

#[test]
fn a_larger_gcra_burst_counts_the_debt_already_made() {
    let limiter = limiter(Gcra::new(10, "1 s").unwrap());
    assert!(limiter.limit_with_cost("u", 10).unwrap().allowed);
    assert!(!limiter.limit("u").unwrap().allowed);
    let d = limiter.limit_under("u", 1, &Tier::limit(30)).unwrap();
    assert_eq!((d.allowed, d.limit, d.remaining), (true, 30, 19));
}

#[test]
fn a_tier_that_is_no_configuration_is_a_typed_error_and_decides_nothing() {
    let window = limiter(SlidingWindow::new(5, "1 s").unwrap());
    let zero = window.limit_under("u", 1, &Tier::limit(0));
    assert!(
        matches!(zero, Err(Error::Tier(ConfigError::Zero { .. }))),
        "{zero:?}"
    );
    let refill = window.limit_under("u", 1, &Tier::limit(5).with_refill(2));
    assert!(
        matches!(refill, Err(Error::Tier(ConfigError::NotFor { .. }))),
        "{refill:?}"
    );
    let gcra = limiter(Gcra::new(10, "100 d").unwrap());
    let inexact = gcra.limit_under("u", 1, &Tier::limit(1 << 40));
    assert!(
        matches!(inexact, Err(Error::Tier(ConfigError::TooLarge { .. }))),
        "{inexact:?}"
    );
    let bucket = limiter(TokenBucket::new(10, 5, "1 s").unwrap());
    let zero = bucket.limit_under("u", 1, &Tier::refill(0));
    assert!(
        matches!(zero, Err(Error::Tier(ConfigError::Zero { .. }))),
        "{zero:?}"
    );
    // Nothing was decided: the keys are untouched.
    assert_eq!(window.limit("u").unwrap().remaining, 4);
    assert_eq!(gcra.limit("u").unwrap().remaining, 9);
    assert_eq!(bucket.limit("u").unwrap().remaining, 9);
}

#[test]
fn a_cost_above_the_tiers_limit_is_refused_as_above_the_configured_one() {
    let limiter = limiter(FixedWindow::new(100, "1 m").unwrap());
    let d = limiter.limit_under("u", 11, &Tier::limit(10));
    assert_eq!(
        d,
        Err(Error::CostExceedsLimit {
            cost: 11,
            limit: 10
        })
    );
    assert!(
        limiter
            .limit_under("u", 11, &Tier::limit(20))
            .unwrap()
            .allowed
    );
}

#[test]
fn tiers_of_one_limiter_share_one_state_per_key() {
    let limiter = limiter(SlidingLog::new(3, "10 s").unwrap());
    for (tier, left) in [(5, 4), (3, 1), (10, 7)] {
        let d = limiter.limit_under("u", 1, &Tier::limit(tier)).unwrap();
        assert_eq!(d.remaining, left, "limit {tier}");
    }
    let d = limiter.limit("u").unwrap();
    assert_eq!((d.allowed, d.remaining), (false, 0), "3 used of 3");
}
