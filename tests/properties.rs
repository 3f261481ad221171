//! Property tests: each algorithm's contract over random operation sequences
//! (costs, time steps forwards and backwards, long idle gaps).
//!
//! Two kinds of checks:
//! - generic ones every rate algorithm must satisfy: `remaining`,
//!   `retry_after_ms` and `reset_ms` are exact, the TTL is long enough, cost 0
//!   consumes nothing, impossible costs are errors that change nothing;
//! - per-algorithm ones against an independent model of its definition.
//!
//! `PROPTEST_CASES` raises the number of cases (`make test-long`).

use edgelimit::algorithm::{
    Algorithm, Concurrency, ConcurrencyState, FixedWindow, Gcra, LeaseOp, SlidingLog,
    SlidingWindow, TokenBucket, MAX_TIME_MS,
};
use edgelimit::{Decision, Error};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// One call: move the clock by `step_ms` (may be negative), then ask `cost`.
#[derive(Debug, Clone, Copy)]
struct Call {
    step_ms: i64,
    cost: u64,
}

const START_MS: u64 = 1_700_000_000_000;

/// Clock steps relative to a window: mostly small, some across windows,
/// some long idle gaps, some backwards.
fn step(window_ms: u64) -> impl Strategy<Value = i64> {
    let w = window_ms as i64;
    prop_oneof![
        6 => 0..=w / 4 + 1,
        3 => 0..=3 * w,
        1 => (10 * w)..=(50 * w),
        1 => -(w / 2 + 1)..=0,
        1 => -(3 * w)..=0,
    ]
}

fn calls(window_ms: u64, max_cost: u64, monotone: bool) -> impl Strategy<Value = Vec<Call>> {
    let step = step(window_ms).prop_map(move |s| if monotone { s.abs() } else { s });
    let cost = prop_oneof![6 => 1..=1u64, 2 => 0..=max_cost, 1 => 0..=max_cost + 2];
    prop::collection::vec(
        (step, cost).prop_map(|(step_ms, cost)| Call { step_ms, cost }),
        1..80,
    )
}

/// Decisions equal the GCRA definition in exact rational arithmetic (times
/// scaled by `rate`, so `T = period / rate` is exact).
fn gcra_definition(
    rate: u64,
    period: u64,
    burst: u64,
    decisions: Vec<(u64, u64, Decision)>,
) -> Result<(), TestCaseError> {
    let (r, t_unit, tau) = (
        u128::from(rate),
        u128::from(period),
        u128::from(burst * period),
    );
    let mut tat: u128 = 0; // theoretical arrival time × rate
    for (now, cost, d) in decisions {
        let now_s = u128::from(now) * r;
        let start = tat.max(now_s);
        let next = start + u128::from(cost) * t_unit;
        let allowed = cost == 0 || next - now_s <= tau;
        prop_assert_eq!(d.allowed, allowed, "at {} cost {}", now, cost);
        if allowed && cost > 0 {
            tat = next;
        } else if !allowed {
            let wait = (next - now_s - tau).div_ceil(r);
            prop_assert_eq!(u128::from(d.retry_after_ms), wait);
        }
        let debt = tat.max(now_s) - now_s;
        prop_assert_eq!(u128::from(d.remaining), (tau - debt.min(tau)) / t_unit);
        prop_assert_eq!(u128::from(d.reset_ms), u128::from(now) + debt.div_ceil(r));
    }
    Ok(())
}

/// Replays `calls`, checking the generic contract after every call, and
/// returns `(time, cost, decision)` for each successful call.
fn replay<A: Algorithm>(alg: &A, calls: &[Call]) -> Vec<(u64, u64, Decision)> {
    replay_with(alg, calls, Forget::Exact)
}

/// What forgetting a state after its TTL may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forget {
    /// Nothing: every later decision is the same.
    Exact,
    /// Only make the limiter stricter (a token bucket whose `initial` is
    /// below its capacity restarts at `initial`).
    NeverLooser,
}

fn replay_with<A: Algorithm>(alg: &A, calls: &[Call], forget: Forget) -> Vec<(u64, u64, Decision)> {
    let mut state = None;
    let mut now = START_MS;
    let mut latest = 0;
    let mut out = Vec::new();
    for call in calls {
        now = now.saturating_add_signed(call.step_ms);
        latest = latest.max(now);
        let before = state.clone();
        match alg.decide(&mut state, now, call.cost) {
            Err(Error::CostExceedsLimit { cost, limit }) => {
                assert!(cost > limit && call.cost == cost && limit == alg.limit());
                assert_eq!(state, before, "an error must not change the state");
            }
            Err(other) => panic!("unexpected error {other:?}"),
            Ok(outcome) => {
                assert!(
                    call.cost <= alg.limit(),
                    "cost above the limit must be an error"
                );
                let d = outcome.decision;
                check_decision(
                    alg,
                    &before,
                    &state,
                    now,
                    latest,
                    call.cost,
                    d,
                    outcome.ttl_ms,
                    forget,
                );
                out.push((now, call.cost, outcome.decision));
            }
        }
    }
    out
}

fn probe<A: Algorithm>(alg: &A, state: &Option<A::State>, now: u64, cost: u64) -> Decision {
    let mut scratch = state.clone();
    alg.decide(&mut scratch, now, cost)
        .expect("probe cost within limit")
        .decision
}

#[allow(clippy::too_many_arguments)]
fn check_decision<A: Algorithm>(
    alg: &A,
    before: &Option<A::State>,
    after: &Option<A::State>,
    now: u64,
    latest: u64,
    cost: u64,
    d: Decision,
    ttl_ms: u64,
    forget: Forget,
) {
    let limit = alg.limit();
    assert_eq!(d.limit, limit);
    assert!(d.remaining <= limit);
    if cost == 0 {
        assert!(d.allowed, "cost 0 is always allowed");
        // A read consumes nothing: what follows is decided as without it.
        for c in [1, limit] {
            assert_eq!(
                probe(alg, after, now, c),
                probe(alg, before, now, c),
                "read changed state"
            );
        }
    }
    // A denial or a read is a pure read: the state stays as it was (a new
    // token bucket below capacity aside, which must start its refill
    // clock). So a copy of a denied key's state decides what follows
    // exactly, as the REST stores' deny cache does.
    // A key without state keeps none, except that warm-up start.
    let fresh_leaves_state = forget == Forget::NeverLooser;
    if (!d.allowed || cost == 0) && (before.is_some() || !fresh_leaves_state) {
        assert_eq!(after, before, "a denial or a read changed the state");
    }
    if d.allowed {
        assert_eq!(d.retry_after_ms, 0);
    } else {
        // retry_after is exact: one millisecond earlier is still too early.
        let r = d.retry_after_ms;
        assert!(r >= 1);
        assert!(
            probe(alg, after, now + r, cost).allowed,
            "retry_after {r} too short: {d:?}"
        );
        assert!(
            !probe(alg, after, now + r - 1, cost).allowed,
            "retry_after {r} too long: {d:?}"
        );
    }
    // remaining is exact, right now.
    if d.remaining > 0 {
        assert!(
            probe(alg, after, now, d.remaining).allowed,
            "remaining too high: {d:?}"
        );
    }
    if d.remaining < limit {
        assert!(
            !probe(alg, after, now, d.remaining + 1).allowed,
            "remaining too low: {d:?}"
        );
    }
    // reset is exact: full at reset_ms, not a millisecond before.
    assert!(d.reset_ms >= now);
    assert_eq!(
        probe(alg, after, d.reset_ms, 0).remaining,
        limit,
        "not full at reset: {d:?}"
    );
    if d.reset_ms > now {
        assert!(
            probe(alg, after, d.reset_ms - 1, 0).remaining < limit,
            "full before reset: {d:?}"
        );
    }
    // The TTL is exact, not merely long enough: a millisecond before it
    // ends the state still matters: not yet full, or (a token bucket that
    // starts below capacity, remembered through its warm-up) full where a
    // fresh key would not be.
    if ttl_ms > 0 {
        let last = now.saturating_add(ttl_ms - 1);
        let kept = probe(alg, after, last, 0).remaining;
        let fresh = probe(alg, &None, last, 0).remaining;
        assert!(
            kept < limit || kept != fresh,
            "ttl {ttl_ms} longer than needed: {d:?}"
        );
    }
    // Once the TTL has passed (and at or after the latest time seen), the
    // state can be forgotten without changing any decision.
    let forget_at = (now + ttl_ms).max(latest);
    for at in [forget_at, forget_at + 1, forget_at + 7_777] {
        for c in [0, 1, limit] {
            let (kept, forgotten) = (probe(alg, after, at, c), probe(alg, &None, at, c));
            match forget {
                Forget::Exact => assert_eq!(kept, forgotten, "ttl {ttl_ms} too short"),
                Forget::NeverLooser if c == 0 => {
                    assert!(forgotten.remaining <= kept.remaining, "forgetting loosened");
                }
                Forget::NeverLooser => {
                    assert!(kept.allowed || !forgotten.allowed, "forgetting loosened");
                }
            }
        }
    }
}

fn limit_and_window() -> impl Strategy<Value = (u64, u64)> {
    (1..=20u64, prop_oneof![1..=10u64, 10..=5_000u64])
}

proptest! {
    // Failures are kept in tests/properties.proptest-regressions, committed.
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn fixed_window_contract((limit, window) in limit_and_window(), calls in calls(5_000, 20, false)) {
        let alg = FixedWindow::new(limit, format!("{window}ms")).unwrap();
        replay(&alg, &calls);
    }

    /// With time moving forwards, each window admits exactly
    /// `min(limit, demand)` when calls cost 1: never more, and nothing is
    /// lost to denied calls.
    #[test]
    fn fixed_window_admits_exactly_the_limit_per_window(
        (limit, window) in limit_and_window(),
        steps in prop::collection::vec(step(50).prop_map(i64::abs), 1..150),
    ) {
        let alg = FixedWindow::new(limit, format!("{window}ms")).unwrap();
        let calls: Vec<Call> = steps.into_iter().map(|step_ms| Call { step_ms, cost: 1 }).collect();
        let decisions = replay(&alg, &calls);
        let mut per_window = std::collections::BTreeMap::<u64, (u64, u64)>::new();
        for (t, _, d) in &decisions {
            let slot = per_window.entry(t / window).or_default();
            slot.0 += 1;
            slot.1 += u64::from(d.allowed);
        }
        for (demand, allowed) in per_window.values() {
            prop_assert_eq!(*allowed, (*demand).min(limit));
        }
    }

    #[test]
    fn sliding_window_contract((limit, window) in limit_and_window(), calls in calls(5_000, 20, false)) {
        let alg = SlidingWindow::new(limit, format!("{window}ms")).unwrap();
        replay(&alg, &calls);
    }

    /// With time moving forwards, decisions match the weighted two-window
    /// formula computed from the admission history.
    #[test]
    fn sliding_window_matches_its_formula((limit, window) in limit_and_window(), calls in calls(5_000, 20, true)) {
        let alg = SlidingWindow::new(limit, format!("{window}ms")).unwrap();
        let decisions = replay(&alg, &calls);
        let mut history: Vec<(u64, u64)> = Vec::new();
        for (t, cost, d) in decisions {
            let index = t / window;
            let count = |i: u64| history.iter().filter(|(h, _)| h / window == i).map(|(_, c)| c).sum::<u64>();
            let (current, previous) = (count(index), if index > 0 { count(index - 1) } else { 0 });
            let elapsed = t % window;
            let used = u128::from(previous) * u128::from(window - elapsed) + u128::from(current) * u128::from(window);
            let capacity = u128::from(limit) * u128::from(window);
            let expect = cost == 0 || used + u128::from(cost) * u128::from(window) <= capacity;
            prop_assert_eq!(d.allowed, expect, "at {} cost {}", t, cost);
            if d.allowed {
                history.push((t, cost));
            }
            let used = used + if d.allowed { u128::from(cost) * u128::from(window) } else { 0 };
            prop_assert_eq!(u128::from(d.remaining), (capacity - used.min(capacity)) / u128::from(window));
        }
    }

    /// Never more than `limit` units in any window of the given length,
    /// counting each unit at the time it was admitted (the latest time an
    /// admission was recorded at, when the clock went back).
    #[test]
    fn sliding_log_never_exceeds_the_limit_in_any_window(
        (limit, window) in limit_and_window(),
        calls in calls(5_000, 20, false),
    ) {
        let alg = SlidingLog::new(limit, format!("{window}ms")).unwrap();
        let decisions = replay(&alg, &calls);
        let mut latest = 0;
        let mut taken: Vec<(u64, u64)> = Vec::new();
        for (t, cost, d) in decisions {
            let at = latest.max(t);
            let in_window: u64 = taken.iter().filter(|(when, _)| when + window > at).map(|(_, c)| c).sum();
            prop_assert_eq!(d.allowed, in_window + cost <= limit, "exact, not just bounded");
            if d.allowed && cost > 0 {
                latest = at;
                taken.push((at, cost));
            }
        }
    }

    #[test]
    fn token_bucket_contract(
        capacity in 1..=20u64,
        refill_ratio in 1..=20u64,
        interval in prop_oneof![1..=10u64, 10..=2_000u64],
        calls in calls(2_000, 20, false),
    ) {
        let refill = refill_ratio.min(capacity);
        let alg = TokenBucket::new(capacity, refill, format!("{interval}ms")).unwrap();
        replay(&alg, &calls);
    }

    /// Never more than `initial + refill × ⌊elapsed / interval⌋`, where
    /// elapsed runs from the first call to the latest time seen: a clock
    /// going back never mints tokens.
    #[test]
    fn token_bucket_never_admits_more_than_capacity_plus_refills(
        capacity in 1..=20u64,
        refill_ratio in 1..=20u64,
        initial_ratio in 0..=20u64,
        interval in 1..=500u64,
        calls in calls(500, 20, false),
    ) {
        let refill = refill_ratio.min(capacity);
        let initial = initial_ratio.min(capacity);
        let alg = TokenBucket::new(capacity, refill, format!("{interval}ms"))
            .unwrap()
            .with_initial(initial)
            .unwrap();
        let forget = if initial < capacity { Forget::NeverLooser } else { Forget::Exact };
        let decisions = replay_with(&alg, &calls, forget);
        // A key's interval starts at its first call, but a read of a full new
        // bucket leaves no state (hence no mark of time): count from the
        // first call that leaves state.
        let leaves_state = |cost: u64| cost > 0 || initial < capacity;
        let Some(start) = decisions.iter().position(|(_, cost, _)| leaves_state(*cost)) else { return Ok(()) };
        let first = decisions[start].0;
        let mut latest = first;
        let mut total = 0;
        for (t, cost, d) in decisions.into_iter().skip(start) {
            latest = latest.max(t);
            if d.allowed {
                total += cost;
            }
            let bound = initial + refill * ((latest - first) / interval);
            prop_assert!(total <= bound, "{} admitted, bound {}", total, bound);
        }
    }

    #[test]
    fn gcra_contract(
        rate in 1..=50u64,
        period in prop_oneof![1..=10u64, 10..=5_000u64],
        burst in 1..=20u64,
        calls in calls(5_000, 20, false),
    ) {
        let alg = Gcra::new(rate, format!("{period}ms")).unwrap().with_burst(burst).unwrap();
        replay(&alg, &calls);
    }

    /// Decisions equal the GCRA definition.
    #[test]
    fn gcra_matches_its_definition(
        rate in 1..=50u64,
        period in prop_oneof![1..=10u64, 10..=5_000u64],
        burst in 1..=20u64,
        calls in calls(5_000, 20, false),
    ) {
        let alg = Gcra::new(rate, format!("{period}ms")).unwrap().with_burst(burst).unwrap();
        gcra_definition(rate, period, burst, replay(&alg, &calls))?;
    }

    /// A clock that ran far ahead (towards the latest time the core
    /// computes with) and came back to today's: the debt, in `1 / rate` ms,
    /// then exceeds 63 bits. Decisions, retry, reset and TTL stay exact
    /// (the contract's checks) and match the definition.
    #[test]
    fn gcra_far_behind_matches_its_definition(
        (rate, ahead) in (4_096..=1_000_000u64)
            .prop_flat_map(|rate| (Just(rate), (1 << 63) / rate + 1..=MAX_TIME_MS - START_MS)),
        period in prop_oneof![1..=10u64, 10..=3_600_000u64],
        burst in 1..=20u64,
        costs in prop::collection::vec(0..=20u64, 2..8),
        back in prop::collection::vec((-1_000..=1_000i64, 0..=20u64), 1..8),
    ) {
        let alg = Gcra::new(rate, format!("{period}ms")).unwrap().with_burst(burst).unwrap();
        let far = |cost| Call { step_ms: 0, cost };
        let mut calls = vec![Call { step_ms: ahead as i64, cost: costs[0] }];
        calls.extend(costs[1..].iter().copied().map(far));
        calls.push(Call { step_ms: -(ahead as i64), cost: costs[1] });
        calls.extend(back.into_iter().map(|(step_ms, cost)| Call { step_ms, cost }));
        gcra_definition(rate, period, burst, replay(&alg, &calls))?;
    }

    /// Waiters of several owners (processes), each owner serving its own
    /// queue in an order that need not be the order of their numbers (its
    /// waiters' first tries raced to the store): whenever the slots free
    /// up, some owner's first waiter is granted, every round of tries, and
    /// the owners are served by their oldest waiting number.
    #[test]
    fn waiting_owners_never_block_each_other(
        max in 1..=3u64,
        arrivals in prop::collection::vec((1..=3u64, any::<u64>()), 1..40),
    ) {
        let alg = Concurrency::new(max, "1 m").unwrap();
        let mut state: Option<ConcurrencyState> = None;
        for id in 0..max {
            let held = alg.apply(&mut state, 0, LeaseOp::Acquire { id: 1_000 + id, ttl_ms: 0 });
            prop_assert!(held.allowed);
        }
        // Every waiter's first try, in arrival order: denied, numbered.
        let mut queues: std::collections::BTreeMap<u64, Vec<(u64, u64)>> = Default::default();
        for (n, &(owner, shuffle)) in arrivals.iter().enumerate() {
            let waiters = queues.get(&owner).map_or(0, Vec::len) as u64 + 1;
            let op = LeaseOp::Wait { id: n as u64, ttl_ms: 0, owner, number: 0, oldest: 0, next: 0, waiters };
            let out = alg.apply(&mut state, 0, op);
            prop_assert!(!out.allowed && out.number > 0);
            // The owner's own queue order: a waiter may have joined it
            // before one numbered earlier.
            let queue = queues.entry(owner).or_default();
            let at = (shuffle % (queue.len() as u64 + 1)) as usize;
            queue.insert(at, (n as u64, out.number));
        }
        for id in 0..max {
            alg.apply(&mut state, 0, LeaseOp::Release { id: 1_000 + id });
        }
        let mut served = 0;
        while queues.values().any(|q| !q.is_empty()) {
            // The owner whose oldest waiter came first is owed the slot.
            let owed = queues
                .iter()
                .filter(|(_, q)| !q.is_empty())
                .min_by_key(|(_, q)| q.iter().map(|w| w.1).min())
                .map(|(&owner, _)| owner)
                .unwrap();
            let mut granted = Vec::new();
            for (&owner, queue) in queues.iter_mut() {
                let Some(&(id, number)) = queue.first() else { continue };
                let waiters = queue.len() as u64;
                let oldest = queue.iter().map(|w| w.1).min().unwrap_or(0);
                let next = queue[1..].iter().map(|w| w.1).min().unwrap_or(0);
                let op = LeaseOp::Wait { id, ttl_ms: 0, owner, number, oldest, next, waiters };
                if alg.apply(&mut state, 0, op).allowed {
                    queue.remove(0);
                    granted.push((owner, id));
                }
            }
            prop_assert!(!granted.is_empty(), "no owner's waiter got a free slot: {:?}", queues);
            prop_assert!(granted.iter().any(|&(owner, _)| owner == owed), "{:?} before {}", granted, owed);
            for (_, id) in granted {
                served += 1;
                alg.apply(&mut state, 0, LeaseOp::Release { id });
            }
        }
        prop_assert_eq!(served, arrivals.len());
    }

    /// Random acquire/release/extend from a few holders, clock going both
    /// ways: never more live leases than `max`, and every answer equals a
    /// model tracking each holder's expiry.
    #[test]
    fn concurrency_never_exceeds_max(
        max in 1..=5u64,
        lease in 1..=1_000u64,
        ops in prop::collection::vec((step(1_000), 0..4u8, 0..8u64, 0..2_000u64), 1..120),
    ) {
        let alg = Concurrency::new(max, format!("{lease}ms")).unwrap();
        let mut state: Option<ConcurrencyState> = None;
        let mut model: std::collections::BTreeMap<u64, u64> = Default::default();
        let mut now = START_MS;
        let mut latest = 0;
        for (step_ms, kind, id, ttl) in ops {
            now = now.saturating_add_signed(step_ms);
            latest = latest.max(now);
            model.retain(|_, expires| *expires > latest);
            let ttl_eff = if ttl == 0 { lease } else { ttl };
            let op = match kind {
                0 | 1 => LeaseOp::Acquire { id, ttl_ms: ttl },
                2 => LeaseOp::Release { id },
                _ => LeaseOp::Extend { id, ttl_ms: ttl },
            };
            let out = alg.apply(&mut state, now, op);
            let expected = match op {
                LeaseOp::Acquire { .. } => {
                    let held = model.len() as u64;
                    match model.get_mut(&id) {
                        Some(expires) => { *expires = (*expires).max(latest + ttl_eff); true }
                        None if held < max => { model.insert(id, latest + ttl_eff); true }
                        None => false,
                    }
                }
                LeaseOp::Release { .. } => model.remove(&id).is_some(),
                LeaseOp::Extend { .. } => match model.get_mut(&id) {
                    Some(expires) => { *expires = latest + ttl_eff; true }
                    None => false,
                },
                LeaseOp::Peek => true,
                other => unreachable!("not generated: {other:?}"),
            };
            prop_assert_eq!(out.allowed, expected, "{:?} at {}", op, now);
            prop_assert_eq!(out.expires_at_ms, if expected { model.get(&id).copied() } else { None });
            let live = state.as_ref().map_or(0, |s| s.leases.len() as u64);
            prop_assert!(live <= max);
            prop_assert_eq!(live, model.len() as u64);
            prop_assert_eq!(out.decision.remaining, max - live);
            // Only a refused acquire is a denial, to be retried when the
            // first lease ends; reset and TTL run to the last one.
            let denied = matches!(op, LeaseOp::Acquire { .. }) && !expected;
            let (first, last) = (model.values().min(), model.values().max());
            prop_assert_eq!(out.decision.allowed, !denied);
            prop_assert_eq!(
                out.decision.retry_after_ms,
                if denied { first.unwrap() - now } else { 0 }
            );
            prop_assert_eq!(out.decision.reset_ms, last.copied().unwrap_or(now));
            prop_assert_eq!(out.ttl_ms, last.map_or(0, |last| last - now));
        }
    }
}
