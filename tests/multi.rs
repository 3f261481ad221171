//! Several limits as one call (`MultiLimiter`, `AllOf`) and the block after
//! abuse, on the memory store: all or nothing, exact answers, and the
//! limits' states shared with single limiters of the same prefix.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use edgelimit::algorithm::{Algorithm, AllOf, AnyAlgorithm, AnyState, BlockState, MAX_LIMITS};
use edgelimit::{
    AccessList, Clock, ConfigError, Decision, Error, FixedWindow, Gcra, Limiter, ManualClock,
    MemoryStore, MultiLimiter, Reason, SlidingLog, SlidingWindow,
};
use proptest::prelude::*;

#[path = "common/multi_limits.rs"]
mod multi_limits;
use multi_limits::limits;

const T0: u64 = 1_700_000_000_000;

/// Single limiters reading the same states as the multi-limiter's limits.
fn singles(
    limits: &[AnyAlgorithm],
    store: &MemoryStore,
    clock: &ManualClock,
) -> Vec<Limiter<AnyAlgorithm, MemoryStore, ManualClock>> {
    limits
        .iter()
        .map(|l| {
            Limiter::new(*l)
                .with_store(store.clone())
                .with_clock(clock.clone())
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(testkit::cases::proptest_cases(256)))]

    /// The model: a call is admitted exactly when each limit, deciding
    /// alone on its state, would admit it; then each is charged, else none
    /// is. Each limit's own decision is the one it made alone, or, for a
    /// denied call, what it has left when it would have admitted it.
    #[test]
    fn all_or_nothing_as_each_limit_alone_would_say(
        limits in limits(),
        calls in prop::collection::vec((0..400u64, 0..=4u64), 1..60),
    ) {
        let clock = ManualClock::new(T0);
        let store = MemoryStore::new();
        let multi = MultiLimiter::new(limits.clone())
            .unwrap()
            .with_store(store.clone())
            .with_clock(clock.clone());
        let shared = singles(&limits, &store, &clock);
        let mut model: Vec<Option<AnyState>> = vec![None; limits.len()];
        let smallest = limits.iter().map(|l| l.limit()).min().unwrap();
        for (i, &(step, cost)) in calls.iter().enumerate() {
            clock.advance(step);
            let now = clock.now_ms();
            let cost = cost.min(smallest);
            let got = multi.limit_with_cost("id", cost).unwrap();
            let mut after = model.clone();
            let alone: Vec<Decision> = limits
                .iter()
                .zip(&mut after)
                .map(|(l, state)| l.decide(state, now, cost).unwrap().decision)
                .collect();
            let admitted = alone.iter().all(|d| d.allowed);
            prop_assert_eq!(got.decision.allowed, admitted, "call {}", i);
            prop_assert_eq!(got.denied_by, alone.iter().position(|d| !d.allowed));
            if admitted {
                model = after;
                prop_assert_eq!(&got.limits, &alone);
            } else {
                for (j, (d, a)) in got.limits.iter().zip(&alone).enumerate() {
                    let as_is = limits[j].decide(&mut model[j].clone(), now, 0).unwrap();
                    match a.allowed {
                        false => prop_assert_eq!(d, a),
                        true => prop_assert_eq!(*d, as_is.decision),
                    }
                }
                let retry = alone.iter().map(|d| d.retry_after_ms).max().unwrap();
                prop_assert_eq!(got.decision.retry_after_ms, retry);
            }
            let least = got.limits.iter().map(|d| d.remaining).min().unwrap();
            prop_assert_eq!(got.decision.remaining, least);
            let latest = got.limits.iter().map(|d| d.reset_ms).max().unwrap();
            prop_assert_eq!(got.decision.reset_ms, latest);
            // The store holds the model's states: single limiters on them
            // read what the model does.
            for ((s, l), state) in shared.iter().zip(&limits).zip(&model) {
                let read = l.decide(&mut state.clone(), now, 0).unwrap().decision;
                prop_assert_eq!(s.remaining("id").unwrap(), read, "call {}", i);
            }
        }
    }
}

#[test]
fn a_denied_call_charges_no_limit_and_says_which_denied() {
    let clock = ManualClock::new(T0);
    let multi = MultiLimiter::new([
        SlidingWindow::new(3, "1 s").unwrap().into(),
        FixedWindow::new(5, "1 h").unwrap().into(),
    ])
    .unwrap()
    .with_clock(clock.clone());
    for _ in 0..3 {
        assert!(multi.limit("a").unwrap().decision.allowed);
    }
    let denied = multi.limit("a").unwrap();
    assert!(!denied.decision.allowed);
    assert_eq!(denied.denied_by, Some(0));
    assert_eq!(denied.decision.limit, 3);
    assert_eq!(denied.limits[1].remaining, 2, "the hour's quota untouched");
    assert!(denied.limits[1].allowed);
    // Two more in the next windows spend the hour's quota.
    clock.advance(2_000);
    assert!(multi.limit_with_cost("a", 2).unwrap().decision.allowed);
    clock.advance(2_000);
    let hourly = multi.limit("a").unwrap();
    assert_eq!(hourly.denied_by, Some(1));
    assert_eq!(hourly.decision.limit, 5);
    // Until the hour's window ends, whatever the second's says.
    let window_end = (T0 + 4_000) - (T0 + 4_000) % 3_600_000 + 3_600_000;
    assert_eq!(hourly.decision.retry_after_ms, window_end - (T0 + 4_000));
    assert_eq!(hourly.limits[0].remaining, 3);
}

#[test]
fn a_block_holds_exactly_its_time_and_is_not_prolonged() {
    let clock = ManualClock::new(T0);
    let login = MultiLimiter::new([FixedWindow::new(2, "10 s").unwrap().into()])
        .unwrap()
        .with_block("1 m")
        .unwrap()
        .with_clock(clock.clone());
    assert!(login.limit("u").unwrap().decision.allowed);
    assert!(login.limit("u").unwrap().decision.allowed);
    let first = login.limit("u").unwrap().decision;
    assert!(!first.allowed);
    assert_eq!(first.reason, Some(Reason::Blocked));
    assert_eq!(first.retry_after_ms, 60_000);
    assert_eq!(first.remaining, 0);
    // Denied all along, each time told the block's exact end.
    for t in [1, 9_999, 10_000, 30_000, 59_999] {
        clock.set(T0 + t);
        let d = login.limit("u").unwrap().decision;
        assert!(!d.allowed, "at +{t}");
        assert_eq!(d.reason, Some(Reason::Blocked));
        assert_eq!(d.retry_after_ms, 60_000 - t, "at +{t}");
        assert_eq!(d.reset_ms, T0 + 60_000);
        // A read is still admitted, and told that nothing is left.
        let read = login.remaining("u").unwrap().decision;
        assert_eq!(
            (read.allowed, read.remaining, read.reason),
            (true, 0, Some(Reason::Blocked))
        );
        let zero = login.limit_with_cost("u", 0).unwrap().decision;
        assert_eq!((zero.allowed, zero.remaining), (true, 0));
    }
    // The calls denied while blocked were not charged and did not prolong it.
    clock.set(T0 + 60_000);
    let after = login.limit("u").unwrap();
    assert!(after.decision.allowed);
    assert_eq!(after.decision.reason, None);
    assert_eq!(after.decision.remaining, 1);
    // Denied again by the limit: blocked again, from now.
    assert!(login.limit("u").unwrap().decision.allowed);
    let again = login.limit("u").unwrap().decision;
    assert_eq!((again.allowed, again.retry_after_ms), (false, 60_000));
    // Other ids are not blocked; reset lifts the block.
    assert!(login.limit("v").unwrap().decision.allowed);
    login.reset("u").unwrap();
    assert!(login.limit("u").unwrap().decision.allowed);
}

#[test]
fn a_block_shorter_than_the_limit_waits_for_the_limit() {
    let clock = ManualClock::new(T0 - T0 % 60_000);
    let start = T0 - T0 % 60_000;
    let limiter = MultiLimiter::new([FixedWindow::new(1, "1 m").unwrap().into()])
        .unwrap()
        .with_block("10 s")
        .unwrap()
        .with_clock(clock.clone());
    assert!(limiter.limit("u").unwrap().decision.allowed);
    let denied = limiter.limit("u").unwrap().decision;
    assert_eq!(
        denied.retry_after_ms, 60_000,
        "the window's end, past the block"
    );
    clock.set(start + 10_000);
    let d = limiter.limit("u").unwrap().decision;
    // The block is over; the window denies, and blocks again.
    assert_eq!((d.allowed, d.retry_after_ms), (false, 50_000));
    assert_eq!(d.reason, Some(Reason::Blocked));
}

#[test]
fn a_read_or_an_error_never_blocks() {
    let clock = ManualClock::new(T0);
    let limiter = MultiLimiter::new([FixedWindow::new(1, "1 m").unwrap().into()])
        .unwrap()
        .with_block("1 m")
        .unwrap()
        .with_clock(clock.clone());
    assert!(limiter.limit("u").unwrap().decision.allowed);
    assert!(limiter.limit_with_cost("u", 0).unwrap().decision.allowed);
    assert!(matches!(
        limiter.limit_with_cost("u", 2),
        Err(Error::CostExceedsLimit { cost: 2, limit: 1 })
    ));
    assert_eq!(limiter.remaining("u").unwrap().decision.reason, None);
}

#[test]
fn limits_sharing_a_state_or_none_at_all_are_refused() {
    let same_window = MultiLimiter::new([
        FixedWindow::new(10, "1 s").unwrap().into(),
        FixedWindow::new(20, "1 s").unwrap().into(),
    ]);
    assert!(matches!(
        same_window,
        Err(ConfigError::SharedState { space }) if space == "fw:1000"
    ));
    assert!(matches!(
        MultiLimiter::new(Vec::new()),
        Err(ConfigError::Zero { what: "limits" })
    ));
    let many: Vec<AnyAlgorithm> = (1..=MAX_LIMITS as u64 + 1)
        .map(|ms| {
            FixedWindow::new(1, Duration::from_millis(ms))
                .unwrap()
                .into()
        })
        .collect();
    assert!(matches!(
        MultiLimiter::new(many),
        Err(ConfigError::TooLarge { what: "limits", .. })
    ));
    let fw = FixedWindow::new(1, "1 s").unwrap();
    assert!(AllOf::<FixedWindow>::new([fw])
        .unwrap()
        .with_block(Duration::ZERO)
        .is_err());
}

#[test]
fn a_limit_shares_its_state_with_a_single_limiter_of_its_prefix() {
    let store = MemoryStore::new();
    let day = FixedWindow::new(100, "1 d").unwrap();
    let single = Limiter::new(day).with_store(store.clone());
    let multi = MultiLimiter::new([SlidingWindow::new(5, "1 s").unwrap().into(), day.into()])
        .unwrap()
        .with_store(store);
    single.limit_with_cost("k", 40).unwrap();
    let d = multi.limit("k").unwrap();
    assert_eq!(d.limits[1].remaining, 59);
    assert_eq!(single.remaining("k").unwrap().remaining, 59);
}

#[test]
fn lists_and_a_failing_store_answer_for_every_limit() {
    let lists = AccessList::new();
    lists.deny("bad").unwrap();
    lists.allow("good").unwrap();
    let multi = MultiLimiter::new([
        FixedWindow::new(1, "1 s").unwrap().into(),
        Gcra::new(9, "1 s").unwrap().into(),
    ])
    .unwrap()
    .with_access_list(lists);
    let bad = multi.limit("bad").unwrap();
    assert_eq!(bad.decision.reason, Some(Reason::DenyList));
    assert_eq!(bad.limits.len(), 2);
    assert_eq!(bad.limits[1].limit, 9);
    for _ in 0..3 {
        assert_eq!(
            multi.limit("good").unwrap().decision.reason,
            Some(Reason::AllowList)
        );
    }
    let long = "x".repeat(edgelimit::DEFAULT_MAX_ID_BYTES + 1);
    assert!(matches!(multi.limit(&long), Err(Error::IdTooLong { .. })));
}

#[test]
fn the_block_state_is_kept_and_read_back() {
    let all = AllOf::<AnyAlgorithm>::new([FixedWindow::new(1, "1 s").unwrap()])
        .unwrap()
        .with_block("5 s")
        .unwrap();
    let (mut states, mut block) = (vec![None], None);
    assert!(
        all.decide(&mut states, &mut block, 1_000, 1)
            .unwrap()
            .decision
            .decision
            .allowed
    );
    let denied = all.decide(&mut states, &mut block, 1_000, 1).unwrap();
    assert_eq!(block, Some(BlockState { until_ms: 6_000 }));
    assert_eq!(denied.block_ttl, Some(5_000));
    assert_eq!(denied.ttls, vec![None]);
    // A block already over does not count.
    let later = all.decide(&mut states, &mut block, 6_000, 1).unwrap();
    assert!(later.decision.decision.allowed);
}

#[test]
fn threads_on_one_id_never_charge_a_denied_call() {
    let store = MemoryStore::new();
    let tally = SlidingLog::new(100_000, "1 h").unwrap();
    let multi = Arc::new(
        MultiLimiter::new([
            FixedWindow::new(500, "1 h").unwrap().into(),
            Gcra::new(1_000, "1 s")
                .unwrap()
                .with_burst(300)
                .unwrap()
                .into(),
            tally.into(),
        ])
        .unwrap()
        .with_store(store.clone()),
    );
    let admitted = Arc::new(AtomicU64::new(0));
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (multi, admitted) = (multi.clone(), admitted.clone());
            s.spawn(move || {
                for _ in 0..2_000 {
                    if multi.limit("hot").unwrap().decision.allowed {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let admitted = admitted.load(Ordering::Relaxed);
    assert!(admitted <= 500);
    let left = Limiter::new(tally)
        .with_store(store)
        .remaining("hot")
        .unwrap();
    assert_eq!(100_000 - left.remaining, admitted);
}

#[test]
fn a_block_ends_at_its_end_exactly_whatever_the_store_keeps() {
    // A store may hand over a block at the instant it ends (Redis keeps a
    // key a grace beyond it under the caller's clock): it no longer holds.
    let all = AllOf::<AnyAlgorithm>::new([FixedWindow::new(1, "1 s").unwrap()])
        .unwrap()
        .with_block("5 s")
        .unwrap();
    let ended = Some(BlockState { until_ms: 6_000 });
    let (mut states, mut block) = (vec![None], ended);
    let outcome = all.decide(&mut states, &mut block, 6_000, 1).unwrap();
    assert!(outcome.decision.decision.allowed);
    assert_eq!(outcome.decision.decision.reason, None);
    let looked = all.peek(&[None], ended, 6_000).unwrap();
    assert_eq!(looked.decision.reason, None);
    assert_eq!(looked.decision.remaining, 1);
    // A millisecond before, it does.
    let before = all.peek(&[None], ended, 5_999).unwrap();
    assert_eq!(before.decision.reason, Some(Reason::Blocked));
    assert_eq!(before.decision.remaining, 0);
    let denied = all
        .decide(&mut [None], &mut ended.clone(), 5_999, 1)
        .unwrap();
    assert_eq!(denied.decision.decision.retry_after_ms, 1);
}

#[test]
fn a_block_starts_from_the_clamped_time_as_the_limits_count() {
    // Past the largest time the core counts in, the limits see that time;
    // the block (as in the Lua twin) runs from it too.
    let all = AllOf::<AnyAlgorithm>::new([FixedWindow::new(1, "1 s").unwrap()])
        .unwrap()
        .with_block("5 s")
        .unwrap();
    let late = edgelimit::algorithm::MAX_TIME_MS + 3_000;
    let (mut states, mut block) = (vec![None], None);
    assert!(
        all.decide(&mut states, &mut block, late, 1)
            .unwrap()
            .decision
            .decision
            .allowed
    );
    let denied = all.decide(&mut states, &mut block, late, 1).unwrap();
    assert_eq!(denied.decision.decision.reason, Some(Reason::Blocked));
    assert_eq!(
        block,
        Some(BlockState {
            until_ms: edgelimit::algorithm::MAX_TIME_MS + 5_000
        })
    );
}

#[test]
fn any_algorithm_answers_as_the_one_it_holds() {
    let window: AnyAlgorithm = FixedWindow::new(3, "1 s").unwrap().into();
    let sliding: AnyAlgorithm = SlidingWindow::new(3, "1 s").unwrap().into();
    let gcra: AnyAlgorithm = Gcra::new(3, "1 s").unwrap().into();
    let log: AnyAlgorithm = SlidingLog::new(3, "1 s").unwrap().into();
    assert!(window.leases_quota() && sliding.leases_quota());
    assert!(!gcra.leases_quota() && !log.leases_quota());
    assert_eq!(gcra.key_space(), Gcra::new(3, "1 s").unwrap().key_space());
    assert_eq!(window.config_args(), [3, 1_000]);
}

/// Writes a state to each key with a TTL, or records the states it is
/// handed.
struct Probe {
    write: Option<u64>,
    seen: std::sync::Mutex<Vec<Option<AnyState>>>,
}

impl edgelimit::store::KeysTransition for Probe {
    type Output = ();

    fn apply(
        &self,
        states: &mut [Option<AnyState>],
        _now_ms: u64,
    ) -> Result<((), Vec<Option<u64>>), Error> {
        *self.seen.lock().unwrap() = states.to_vec();
        let state = AnyState::Block(BlockState { until_ms: 1 });
        for slot in states.iter_mut() {
            *slot = self.write.map(|_| state.clone());
        }
        Ok(((), vec![self.write; states.len()]))
    }

    fn held(&self, _: &(), _: usize) -> u64 {
        0
    }

    fn remote(&self) -> Result<edgelimit::store::Remote, Error> {
        unreachable!("memory only")
    }

    fn decode(&self, _: &[i64]) -> Result<(), edgelimit::StoreError> {
        unreachable!("memory only")
    }
}

#[test]
fn the_memory_store_hands_several_keys_their_states_until_they_expire() {
    use edgelimit::store::{Key, Store};
    let store = MemoryStore::new();
    let keys = [
        Key {
            prefix: "a:",
            id: "x",
        },
        Key {
            prefix: "b:",
            id: "x",
        },
    ];
    let probe = |write| Probe {
        write,
        seen: Default::default(),
    };
    store
        .transact_keys(&keys, 1_000, &probe(Some(100)))
        .unwrap();
    let look = |now| {
        let p = probe(None);
        store.transact_keys(&keys, now, &p).unwrap();
        let seen = p.seen.lock().unwrap().clone();
        seen
    };
    let kept = Some(AnyState::Block(BlockState { until_ms: 1 }));
    assert_eq!(look(1_099), [kept.clone(), kept]);
    // Expired at 1 100 exactly, as a single key's state is.
    assert_eq!(look(1_100), [None, None]);
}
