//! The in-memory store: expiry, the bound on keys, eviction order, sharing,
//! and exactness under many threads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use edgelimit::algorithm::Algorithm;
use edgelimit::{
    Acquire, Clock, Concurrency, ConcurrencyLimiter, FixedWindow, Gcra, Limiter, ManualClock,
    MemoryStore, SlidingLog, SlidingWindow, TokenBucket,
};

const T0: u64 = 1_700_000_000_000;

fn limiter<A: Algorithm>(
    alg: A,
    store: &MemoryStore,
    clock: &ManualClock,
) -> Limiter<A, MemoryStore, ManualClock> {
    Limiter::new(alg)
        .with_store(store.clone())
        .with_clock(clock.clone())
}

#[test]
fn idle_keys_expire_and_are_reclaimed() {
    let store = MemoryStore::new();
    let clock = ManualClock::new(T0);
    let fw = limiter(FixedWindow::new(2, "1 s").unwrap(), &store, &clock);
    fw.limit_with_cost("a", 2).unwrap();
    assert!(!fw.limit("a").unwrap().allowed);
    assert_eq!(store.len(), 1);

    clock.set(T0 - T0 % 1000 + 1000); // the next window: the key has expired
    assert_eq!(
        fw.remaining("a").unwrap().remaining,
        2,
        "an expired key reads as new"
    );
    store.purge_expired(clock.now_ms());
    assert!(store.is_empty(), "expired keys are reclaimed");
}

#[test]
fn a_key_expires_at_the_very_millisecond_its_ttl_ends() {
    // As in Redis. A bucket warming up from empty shows it: remembered, it
    // would read full then; forgotten, it starts again from empty.
    let store = MemoryStore::new();
    let clock = ManualClock::new(T0);
    let warm_up = TokenBucket::new(2, 1, "1 s")
        .unwrap()
        .with_initial(0)
        .unwrap();
    let tb = limiter(warm_up, &store, &clock);
    let read = || tb.limit_with_cost("k", 0).unwrap().remaining;
    assert_eq!(read(), 0);
    clock.set(T0 + 1_999);
    assert_eq!(read(), 1);
    // Full at T0 + 2 s, then remembered for its warm-up (2 s more): a
    // caller waiting is never sent back to empty before that.
    clock.set(T0 + 3_999);
    assert_eq!(read(), 2, "remembered full through its warm-up");
    clock.set(T0 + 4_000);
    assert_eq!(read(), 0, "starts again");
}

#[test]
fn a_dropped_state_stays_dropped_when_the_clock_goes_back() {
    // A full bucket's state is dropped (TTL 0), as Redis deletes a key:
    // seen from an earlier time it is not there either.
    let store = MemoryStore::new();
    let clock = ManualClock::new(T0);
    let tb = limiter(TokenBucket::new(2, 1, "1 s").unwrap(), &store, &clock);
    tb.limit("k").unwrap();
    clock.set(T0 + 1_000);
    assert_eq!(tb.remaining("k").unwrap().remaining, 2, "full again");
    clock.set(T0 + 500);
    let d = tb.limit("k").unwrap();
    assert_eq!(
        (d.remaining, d.reset_ms),
        (1, T0 + 1_500),
        "a new key: its interval starts now"
    );
}

#[test]
fn a_state_with_nothing_to_keep_takes_no_room() {
    let store = MemoryStore::new();
    let clock = ManualClock::new(T0);
    let config = Concurrency::new(2, "1 s").unwrap();
    let jobs = ConcurrencyLimiter::with_parts(config, store.clone(), clock.clone(), "jobs:");
    assert_eq!(jobs.peek("idle").unwrap().remaining, 2);
    let fw = limiter(FixedWindow::new(3, "1 s").unwrap(), &store, &clock);
    assert_eq!(fw.remaining("idle").unwrap().remaining, 3);
    assert!(store.is_empty(), "{} keys held", store.len());
}

#[test]
fn keys_well_within_the_bound_are_all_kept() {
    // 1000 keys in a store for 8192, whatever the number of shards and
    // however the keys hash: none is evicted.
    let store = MemoryStore::with_max_keys(8_192);
    assert_eq!(store.max_keys(), 8_192);
    let clock = ManualClock::new(T0);
    let log = limiter(SlidingLog::new(3, "1 h").unwrap(), &store, &clock);
    for i in 0..1_000 {
        log.limit(&format!("user-{i}")).unwrap();
    }
    assert_eq!(store.len(), 1_000);
    for i in 0..1_000 {
        assert_eq!(log.remaining(&format!("user-{i}")).unwrap().remaining, 2);
    }
    let debug = format!("{store:?}");
    assert!(
        debug.starts_with("MemoryStore { shards: ")
            && debug.contains(", max_keys: 8192, max_bytes: "),
        "{debug}"
    );
}

#[test]
fn keys_are_spread_over_the_shards_so_half_the_bound_is_all_kept() {
    // Each shard holds its share of the bound: keys hashed to few shards
    // would be evicted long before the store is full. Half the bound is
    // kept whole however many shards there are (a shard's share is at
    // least 8 standard deviations above the keys it gets).
    let store = MemoryStore::with_max_keys(8_192);
    let clock = ManualClock::new(T0);
    let fw = limiter(FixedWindow::new(3, "1 h").unwrap(), &store, &clock);
    for i in 0..4_096 {
        fw.limit(&format!("user-{i}")).unwrap();
    }
    assert_eq!(store.len(), 4_096);
    for i in 0..4_096 {
        assert_eq!(fw.remaining(&format!("user-{i}")).unwrap().remaining, 2);
    }
}

#[test]
fn keys_of_one_id_under_many_prefixes_are_spread_over_the_shards_too() {
    // A shard is picked by the whole key, not by its id alone: one user's
    // keys in many limiters (one a route, say) fill the store as any keys
    // do. Half the bound is kept whole, as above.
    let store = MemoryStore::with_max_keys(8_192);
    let clock = ManualClock::new(T0);
    let route = |i: usize| {
        limiter(FixedWindow::new(3, "1 h").unwrap(), &store, &clock)
            .with_prefix(format!("route-{i}:"))
    };
    for i in 0..4_096 {
        route(i).limit("user").unwrap();
    }
    assert_eq!(store.len(), 4_096);
    for i in 0..4_096 {
        assert_eq!(route(i).remaining("user").unwrap().remaining, 2);
    }
}

#[test]
fn a_full_store_evicts_exactly_an_eighth_the_soonest_to_expire_first() {
    // 64 keys: a single shard, whatever the machine. 4 keys expire within
    // the second, 60 together at the end of the hour.
    let store = MemoryStore::with_max_keys(64);
    assert_eq!(store.max_keys(), 64);
    let clock = ManualClock::new(T0 - T0 % 3_600_000);
    let brief = limiter(FixedWindow::new(5, "1 s").unwrap(), &store, &clock).with_prefix("s:");
    let hourly = limiter(FixedWindow::new(5, "1 h").unwrap(), &store, &clock).with_prefix("h:");
    for i in 0..4 {
        brief.limit(&i.to_string()).unwrap();
    }
    for i in 0..60 {
        hourly.limit(&i.to_string()).unwrap();
    }
    assert_eq!(store.len(), 64);
    hourly.limit("one more").unwrap();
    // An eighth (8) made room: the 4 brief keys, then 4 of the tied ones.
    assert_eq!(store.len(), 64 - 8 + 1);
    let kept = |l: &Limiter<FixedWindow, MemoryStore, ManualClock>, n: usize| {
        (0..n)
            .filter(|i| l.remaining(&i.to_string()).unwrap().remaining < 5)
            .count()
    };
    assert_eq!((kept(&brief, 4), kept(&hourly, 60)), (0, 56));
}

#[test]
fn a_small_store_keeps_exactly_as_many_keys_as_asked() {
    for max_keys in [1, 7, 50, 64] {
        assert_eq!(MemoryStore::with_max_keys(max_keys).max_keys(), max_keys);
    }
    assert_eq!(MemoryStore::with_max_keys(0).max_keys(), 1, "at least one");
}

#[test]
fn expired_keys_make_room_first() {
    let store = MemoryStore::with_max_keys(1_000);
    let clock = ManualClock::new(T0);
    let gcra = limiter(Gcra::new(10, "1 s").unwrap(), &store, &clock);
    let daily = limiter(FixedWindow::new(1_000, "1d").unwrap(), &store, &clock).with_prefix("d:");
    for i in 0..100 {
        daily.limit(&format!("kept-{i}")).unwrap();
    }
    for i in 0..900 {
        gcra.limit(&format!("old-{i}")).unwrap();
    }
    clock.advance(5_000); // every old key is full again, hence expired
    for i in 0..900 {
        gcra.limit(&format!("new-{i}")).unwrap();
    }
    assert!(store.len() <= 1_000);
    for i in 0..100 {
        let left = daily.remaining(&format!("kept-{i}")).unwrap().remaining;
        assert_eq!(left, 999, "a live key outlived the expired ones");
    }
}

/// The case: after the clock steps back past a state's TTL, an
/// unrelated new key must not drop a state the Redis twin keeps.
#[test]
fn a_clock_stepping_back_finds_what_redis_finds() {
    let store = MemoryStore::new();
    let clock = ManualClock::new(T0 + 100_000);
    let gcra = limiter(Gcra::new(1, "10 s").unwrap(), &store, &clock);
    assert!(gcra.limit("a").unwrap().allowed);
    clock.set(T0 + 200_000);
    assert!(gcra.limit("b").unwrap().allowed);
    clock.set(T0);
    let again = gcra.limit("a").unwrap();
    assert!(!again.allowed, "{again:?}");
    assert_eq!(again.retry_after_ms, 110_000);
}

#[test]
fn a_flood_of_distinct_keys_stays_within_the_bound() {
    for max_keys in [1, 50, 1_000, 5_000] {
        let store = MemoryStore::with_max_keys(max_keys);
        assert!(store.max_keys() <= max_keys);
        let clock = ManualClock::new(T0);
        let sw = limiter(SlidingWindow::new(5, "1 h").unwrap(), &store, &clock);
        for i in 0..50_000u32 {
            sw.limit(&i.to_string()).unwrap();
            if i % 997 == 0 {
                assert!(
                    store.len() <= store.max_keys(),
                    "{} keys > {}",
                    store.len(),
                    max_keys
                );
            }
        }
        assert!(store.len() <= store.max_keys());
        // The newest key is always kept.
        assert_eq!(sw.remaining("49999").unwrap().remaining, 4);
    }
}

#[test]
fn eviction_of_keys_expiring_together_takes_only_what_is_needed() {
    // Every key of one fixed window expires at the window's end: a flood
    // must evict an eighth of a shard at a time, not every tied key.
    let store = MemoryStore::with_max_keys(1024);
    let clock = ManualClock::new(T0 - T0 % 60_000);
    let fw = limiter(FixedWindow::new(10, "1m").unwrap(), &store, &clock);
    for i in 0..5_000 {
        fw.limit(&format!("flood-{i}")).unwrap();
        clock.advance(1);
    }
    let kept = store.len();
    assert!(kept <= store.max_keys());
    assert!(
        kept >= store.max_keys() * 7 / 8 - 8,
        "only {kept} of {} keys kept",
        store.max_keys()
    );
}

#[test]
fn eviction_takes_the_keys_closest_to_expiry_first() {
    // 64 keys: a single shard, so the order is global.
    let store = MemoryStore::with_max_keys(64);
    let clock = ManualClock::new(T0);
    let daily = limiter(FixedWindow::new(10, "1d").unwrap(), &store, &clock).with_prefix("daily:");
    let brief = limiter(FixedWindow::new(10, "1 s").unwrap(), &store, &clock).with_prefix("brief:");
    for i in 0..32 {
        daily.limit_with_cost(&format!("user-{i}"), 7).unwrap();
    }
    for i in 0..10_000 {
        brief.limit(&format!("flood-{i}")).unwrap();
    }
    for i in 0..32 {
        let left = daily.remaining(&format!("user-{i}")).unwrap().remaining;
        assert_eq!(left, 3, "long-lived state survived the flood");
    }
}

/// The issue this guards against: one id calling `FixedWindow(10, 1 h)`
/// 1 000 times, interleaved with 1 000 fresh ids, was admitted 660 times
/// when eviction went by expiry alone (every key of the window ties).
#[test]
fn a_flood_of_fresh_ids_never_frees_a_limited_one() {
    fn flood<A: Algorithm>(name: &str, alg: A, limit: u64, fresh: u64) {
        let store = MemoryStore::with_max_keys(10_000);
        let clock = ManualClock::new(T0);
        let limiter = limiter(alg, &store, &clock);
        let mut admitted = 0;
        for i in 0..fresh {
            if i % 100 == 0 {
                admitted += u64::from(limiter.limit("hot").unwrap().allowed);
            }
            limiter.limit(&format!("fresh-{i}")).unwrap();
            if i % 1_000 == 0 {
                clock.advance(1); // time moves, well within every window
            }
        }
        assert!(store.len() <= store.max_keys());
        assert_eq!(
            admitted, limit,
            "{name}: the hot id admitted over its limit"
        );
    }
    // A million fresh ids against a bound of 10 000 keys; fewer for the
    // other algorithms, still 20 times the bound.
    flood(
        "fixed window",
        FixedWindow::new(10, "1 h").unwrap(),
        10,
        1_000_000,
    );
    flood(
        "sliding window",
        SlidingWindow::new(10, "1 h").unwrap(),
        10,
        200_000,
    );
    flood(
        "sliding log",
        SlidingLog::new(10, "1 h").unwrap(),
        10,
        200_000,
    );
    flood(
        "token bucket",
        TokenBucket::new(10, 1, "1 h").unwrap(),
        10,
        200_000,
    );
    let gcra = Gcra::new(1, "1 h").and_then(|g| g.with_burst(10)).unwrap();
    flood("gcra", gcra, 10, 200_000);
}

#[test]
fn limiters_sharing_a_store_keep_separate_counts_by_prefix() {
    let store = MemoryStore::new();
    let clock = ManualClock::new(T0);
    let a = limiter(FixedWindow::new(3, "1m").unwrap(), &store, &clock).with_prefix("a:");
    let b = limiter(FixedWindow::new(3, "1m").unwrap(), &store, &clock).with_prefix("b:");
    a.limit_with_cost("k", 3).unwrap();
    assert!(!a.limit("k").unwrap().allowed);
    assert_eq!(b.limit("k").unwrap().remaining, 2);
    // Same prefix, other algorithm: the foreign state is ignored, not misread.
    let other = limiter(TokenBucket::new(4, 1, "1 s").unwrap(), &store, &clock).with_prefix("a:");
    assert_eq!(other.limit("k").unwrap().remaining, 3);
}

/// Limiters on one id share its state only when they read it alike: the
/// same algorithm over the same time base, whatever their limits.
#[test]
fn limiters_share_a_key_only_when_they_read_it_alike() {
    fn drained<A: Algorithm>(
        alg: A,
        store: &MemoryStore,
        clock: &ManualClock,
    ) -> Limiter<A, MemoryStore, ManualClock> {
        let limiter = limiter(alg, store, clock);
        let limit = limiter.algorithm().limit();
        let decision = limiter.limit_with_cost("k", limit).unwrap();
        assert!(decision.allowed, "{decision:?}");
        limiter
    }
    let store = MemoryStore::new();
    // On a whole hour: windows of a minute and of an hour start together.
    let clock = ManualClock::new(T0 - T0 % 3_600_000);
    let (store, clock) = (&store, &clock);
    let gcra = |period| Gcra::new(2, period).and_then(|g| g.with_burst(2)).unwrap();
    // Every algorithm over one minute, each drained on one id: none of
    // them finds (and replaces) another's state.
    let remaining = [
        drained(FixedWindow::new(2, "1m").unwrap(), store, clock).remaining("k"),
        drained(SlidingWindow::new(2, "1m").unwrap(), store, clock).remaining("k"),
        drained(SlidingLog::new(2, "1m").unwrap(), store, clock).remaining("k"),
        drained(TokenBucket::new(2, 2, "1m").unwrap(), store, clock).remaining("k"),
        drained(gcra("1m"), store, clock).remaining("k"),
    ]
    .map(|decision| decision.unwrap().remaining);
    assert_eq!(remaining, [0; 5]);
    let remaining = [
        limiter(FixedWindow::new(2, "1m").unwrap(), store, clock).remaining("k"),
        limiter(SlidingWindow::new(2, "1m").unwrap(), store, clock).remaining("k"),
        limiter(SlidingLog::new(2, "1m").unwrap(), store, clock).remaining("k"),
        limiter(TokenBucket::new(2, 2, "1m").unwrap(), store, clock).remaining("k"),
        limiter(gcra("1m"), store, clock).remaining("k"),
    ]
    .map(|decision| decision.unwrap().remaining);
    assert_eq!(remaining, [0; 5], "each kept its own count");
    // The same algorithms over an hour: keys of their own, full.
    drained(FixedWindow::new(2, "1 h").unwrap(), store, clock);
    drained(SlidingWindow::new(2, "1 h").unwrap(), store, clock);
    drained(SlidingLog::new(2, "1 h").unwrap(), store, clock);
    drained(TokenBucket::new(2, 2, "1 h").unwrap(), store, clock);
    drained(gcra("1 h"), store, clock);
    // The same algorithm and time base with another limit: the same count.
    let wider = limiter(FixedWindow::new(5, "1m").unwrap(), store, clock);
    assert_eq!(wider.remaining("k").unwrap().remaining, 3);
}

#[test]
fn reset_forgets_a_key() {
    let store = MemoryStore::new();
    let clock = ManualClock::new(T0);
    let log = limiter(SlidingLog::new(2, "1 h").unwrap(), &store, &clock);
    log.limit_with_cost("k", 2).unwrap();
    assert!(!log.limit("k").unwrap().allowed);
    log.reset("k").unwrap();
    assert!(log.limit("k").unwrap().allowed);
    log.reset("never-seen").unwrap();
}

/// Many threads on one key admit exactly the limit, for every algorithm.
#[test]
fn many_threads_on_one_key_admit_exactly_the_limit() {
    fn hammer<A: Algorithm + Send + Sync + 'static>(name: &str, alg: A, limit: u64) {
        let store = MemoryStore::new();
        let clock = ManualClock::new(T0); // frozen: nothing refills
        let limiter = Arc::new(limiter(alg, &store, &clock));
        let admitted = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (limiter, admitted) = (Arc::clone(&limiter), Arc::clone(&admitted));
                thread::spawn(move || {
                    for _ in 0..limit {
                        if limiter.limit("shared").unwrap().allowed {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(admitted.load(Ordering::Relaxed), limit, "{name}");
        assert_eq!(limiter.remaining("shared").unwrap().remaining, 0, "{name}");
    }
    hammer(
        "fixed window",
        FixedWindow::new(2_000, "1 h").unwrap(),
        2_000,
    );
    hammer(
        "sliding window",
        SlidingWindow::new(2_000, "1 h").unwrap(),
        2_000,
    );
    hammer("sliding log", SlidingLog::new(2_000, "1 h").unwrap(), 2_000);
    hammer(
        "token bucket",
        TokenBucket::new(2_000, 1, "1 h").unwrap(),
        2_000,
    );
    hammer("gcra", Gcra::new(2_000, "1 h").unwrap(), 2_000);
}

/// Threads on many keys at once: each key admits exactly its limit.
#[test]
fn many_threads_on_many_keys_admit_exactly_the_limit_per_key() {
    let store = MemoryStore::with_max_keys(100_000);
    let clock = ManualClock::new(T0);
    let limiter = Arc::new(limiter(Gcra::new(5, "1 h").unwrap(), &store, &clock));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let limiter = Arc::clone(&limiter);
            thread::spawn(move || {
                let mut admitted = vec![0u64; 1_000];
                for _round in 0..10 {
                    for (key, count) in admitted.iter_mut().enumerate() {
                        *count += u64::from(limiter.limit(&key.to_string()).unwrap().allowed);
                    }
                }
                admitted
            })
        })
        .collect();
    let mut total = vec![0u64; 1_000];
    for t in threads {
        for (key, count) in t.join().unwrap().into_iter().enumerate() {
            total[key] += count;
        }
    }
    assert!(
        total.iter().all(|&n| n == 5),
        "every key admitted exactly 5"
    );
}

#[test]
fn long_and_short_keys_and_prefix_splits_are_distinct() {
    let store = MemoryStore::new();
    let clock = ManualClock::new(T0);
    let ab = limiter(FixedWindow::new(5, "1m").unwrap(), &store, &clock).with_prefix("ab");
    let a = limiter(FixedWindow::new(5, "1m").unwrap(), &store, &clock).with_prefix("a");
    // "ab" + "c" and "a" + "bc" join to the same text but are different keys.
    ab.limit_with_cost("c", 5).unwrap();
    assert_eq!(a.remaining("bc").unwrap().remaining, 5);
    let long = "k".repeat(300);
    let longer = "k".repeat(301);
    ab.limit_with_cost(&long, 2).unwrap();
    assert_eq!(ab.remaining(&long).unwrap().remaining, 3);
    assert_eq!(ab.remaining(&longer).unwrap().remaining, 5);
    ab.reset(&long).unwrap();
    assert_eq!(ab.remaining(&long).unwrap().remaining, 5);
}

/// A client held at its limit, then a flood of keys (each holding fewer
/// units) at a store far smaller than the flood, all at one instant: the
/// client stays refused throughout, as in an unbounded store.
fn outlives_flood<A: Algorithm>(alg: A, limit: u64, flood: &[(u64, bool)], max_keys: usize) {
    let store = MemoryStore::with_max_keys(max_keys);
    let clock = ManualClock::new(T0);
    let limiter = limiter(alg, &store, &clock);
    assert!(limiter.limit_with_cost("hot", limit).unwrap().allowed);
    for (i, &(cost, call_hot)) in flood.iter().enumerate() {
        let cost = cost.clamp(1, limit - 1);
        limiter
            .limit_with_cost(&format!("fresh-{i}"), cost)
            .unwrap();
        if call_hot {
            let decision = limiter.limit("hot").unwrap();
            assert!(
                !decision.allowed,
                "freed after {i} fresh keys: {decision:?}"
            );
        }
    }
    assert_eq!(limiter.remaining("hot").unwrap().remaining, 0);
    assert!(store.len() <= store.max_keys());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 48,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..proptest::prelude::ProptestConfig::default()
    })]

    #[test]
    fn a_client_at_its_limit_outlives_any_flood(
        kind in 0..5u8,
        limit in 2..=30u64,
        window_ms in 1_000..=3_600_000u64,
        flood in proptest::collection::vec((1..40u64, proptest::prelude::any::<bool>()), 1..1_500),
        max_keys in proptest::prop_oneof![
            proptest::strategy::Just(8usize),
            proptest::strategy::Just(64),
            proptest::strategy::Just(300)
        ],
    ) {
        let window_ms = std::time::Duration::from_millis(window_ms);
        match kind {
            0 => outlives_flood(FixedWindow::new(limit, window_ms).unwrap(), limit, &flood, max_keys),
            1 => outlives_flood(SlidingWindow::new(limit, window_ms).unwrap(), limit, &flood, max_keys),
            2 => outlives_flood(SlidingLog::new(limit, window_ms).unwrap(), limit, &flood, max_keys),
            3 => outlives_flood(TokenBucket::new(limit, 1, window_ms).unwrap(), limit, &flood, max_keys),
            _ => outlives_flood(
                Gcra::new(1, window_ms).and_then(|g| g.with_burst(limit)).unwrap(),
                limit,
                &flood,
                max_keys,
            ),
        }
    }
}

#[test]
fn the_store_is_bounded_in_bytes() {
    let store = MemoryStore::with_bounds(100_000, 1 << 20).unwrap();
    assert!(store.max_bytes() <= 1 << 20);
    let clock = ManualClock::new(T0);
    let fw = limiter(FixedWindow::new(5, "1 h").unwrap(), &store, &clock);
    // Ids of 1000 bytes live outside the entry: about a thousand fit.
    for i in 0..20_000 {
        fw.limit(&format!("{i:01000}")).unwrap();
        assert!(
            store.bytes() <= store.max_bytes(),
            "{} bytes",
            store.bytes()
        );
    }
    assert!(
        store.len() > 500 && store.len() < 1_100,
        "{} keys",
        store.len()
    );
    // A sliding log grows with what it admits, and counts.
    let log = limiter(SlidingLog::new(100_000, "1 h").unwrap(), &store, &clock);
    for _ in 0..3_000 {
        log.limit("log").unwrap();
        clock.advance(1);
        assert!(
            store.bytes() <= store.max_bytes(),
            "{} bytes",
            store.bytes()
        );
    }
    assert_eq!(
        log.remaining("log").unwrap().remaining,
        97_000,
        "the log itself was kept"
    );
    let with_log = store.bytes();
    log.reset("log").unwrap();
    assert!(
        with_log - store.bytes() >= 3_000 * 16,
        "the log's records count"
    );
    // Everything forgotten, everything given back.
    store.purge_expired(u64::MAX);
    assert_eq!((store.len(), store.bytes()), (0, 0));
    assert!(MemoryStore::with_bounds(0, 1).is_err());
    assert!(MemoryStore::with_bounds(1, 0).is_err());
}

#[test]
fn a_store_bounded_at_exactly_what_its_keys_take_keeps_them_all() {
    // At most `max_bytes`, bound included: no key is evicted to stay
    // below it. One shard (fewer than 128 keys), the same keys twice.
    for n in [1, 4, 5, 8, 20, 100] {
        let fill = |store: &MemoryStore| {
            let clock = ManualClock::new(T0);
            let fw = limiter(FixedWindow::new(5, "1 h").unwrap(), store, &clock);
            for i in 0..n {
                fw.limit(&format!("user-{i}")).unwrap();
            }
        };
        let unbounded = MemoryStore::with_max_keys(127);
        fill(&unbounded);
        let exact = unbounded.bytes();
        let store = MemoryStore::with_bounds(127, exact).unwrap();
        assert_eq!(store.max_bytes(), exact);
        fill(&store);
        assert_eq!((store.len(), store.bytes()), (n, exact), "{n} keys");
    }
}

#[test]
fn a_byte_bound_holds_whenever_the_table_grows() {
    // The entries and the index double when full: a key that makes them
    // grow is made room for first, wherever the bound lies within what
    // the growth takes. One shard (fewer than 128 keys).
    for max_bytes in (1_000..2_500).step_by(7) {
        let store = MemoryStore::with_bounds(127, max_bytes).unwrap();
        let clock = ManualClock::new(T0);
        let fw = limiter(FixedWindow::new(5, "1 h").unwrap(), &store, &clock);
        for i in 0..100 {
            fw.limit(&i.to_string()).unwrap();
            assert!(
                store.bytes() <= max_bytes,
                "{max_bytes}: key {i}: {} bytes",
                store.bytes()
            );
        }
    }
}

#[test]
fn a_growing_state_makes_room_in_its_shard_at_once() {
    // One shard (fewer than 128 keys) filled with keys of long ids (kept
    // outside their entries), then a sliding log growing with each
    // admission past what is left: those keys make room as it grows, the
    // bound holds after every call, and the log, holding the most, is
    // kept whole.
    let store = MemoryStore::with_bounds(127, 16_384).unwrap();
    let clock = ManualClock::new(T0);
    let fw = limiter(FixedWindow::new(5, "1 h").unwrap(), &store, &clock);
    for i in 0..40 {
        fw.limit(&format!("{i:0200}")).unwrap();
    }
    assert_eq!(store.len(), 40);
    let log = limiter(SlidingLog::new(1_000, "1 h").unwrap(), &store, &clock).with_prefix("log:");
    for n in 1..=500 {
        assert!(log.limit("k").unwrap().allowed);
        clock.advance(1);
        assert!(
            store.bytes() <= store.max_bytes(),
            "{n} records: {} bytes, {} keys",
            store.bytes(),
            store.len()
        );
    }
    assert!((2..40).contains(&store.len()), "{} keys", store.len());
    assert_eq!(log.remaining("k").unwrap().remaining, 500);
}

#[test]
fn keys_removed_one_by_one_leave_every_other_key_as_it_was() {
    // One shard: a key removed from the middle of the table leaves its
    // place to the last key, which must still be found, with its state.
    let store = MemoryStore::with_max_keys(64);
    let clock = ManualClock::new(T0);
    let fw = limiter(FixedWindow::new(5, "1 h").unwrap(), &store, &clock);
    let cost = |i: u64| 1 + i % 4;
    for i in 0..40 {
        fw.limit_with_cost(&i.to_string(), cost(i)).unwrap();
    }
    let mut removed = [false; 40];
    for step in 0..40 {
        let gone = step * 7 % 40;
        fw.reset(&gone.to_string()).unwrap();
        removed[gone as usize] = true;
        for i in 0..40 {
            let expected = if removed[i as usize] { 5 } else { 5 - cost(i) };
            let left = fw.remaining(&i.to_string()).unwrap().remaining;
            assert_eq!(left, expected, "key {i} after removing {gone}");
        }
        assert_eq!(store.len(), 39 - step as usize);
    }
}

#[test]
fn a_state_larger_than_the_byte_bound_is_kept_alone() {
    // One shard of 4 KiB; a sliding log of 500 records takes twice that.
    let store = MemoryStore::with_bounds(100, 4_096).unwrap();
    let clock = ManualClock::new(T0);
    let log = limiter(SlidingLog::new(1_000, "1 h").unwrap(), &store, &clock);
    for _ in 0..500 {
        assert!(log.limit("log").unwrap().allowed);
        clock.advance(1);
    }
    assert!(store.bytes() > store.max_bytes());
    assert_eq!(log.remaining("log").unwrap().remaining, 500);
    // A new key makes room: the log goes.
    log.limit("other").unwrap();
    assert_eq!(store.len(), 1);
    assert_eq!(log.remaining("log").unwrap().remaining, 1_000);
}

#[test]
fn a_semaphores_leases_count_in_the_bytes_held() {
    let store = MemoryStore::new();
    let clock = ManualClock::new(T0);
    let config = Concurrency::new(1_000, "1m").unwrap();
    let jobs = ConcurrencyLimiter::with_parts(config, store.clone(), clock.clone(), "jobs:");
    let granted = || match jobs.acquire("k").unwrap() {
        Acquire::Granted(permit) => permit,
        Acquire::Denied(decision) => panic!("{decision:?}"),
    };
    let one = granted();
    let with_one = store.bytes();
    let permits: Vec<_> = (1..1_000).map(|_| granted()).collect();
    assert!(
        store.bytes() - with_one >= 999 * 16,
        "{} bytes more for 999 leases",
        store.bytes() - with_one
    );
    drop((one, permits));
}

/// Waiting never makes things worse: a call denied at `t` with
/// `retry_after_ms` is admitted at `t + retry_after_ms` when nothing else
/// happens meanwhile, through a store that forgets states at their TTL.
fn retry_after_holds<A: Algorithm>(alg: A, calls: &[(u64, u64)]) {
    let store = MemoryStore::new();
    let clock = ManualClock::new(T0);
    let limiter = limiter(alg, &store, &clock);
    let limit = limiter.algorithm().limit();
    for &(step_ms, cost) in calls {
        clock.advance(step_ms);
        let cost = cost.clamp(1, limit);
        let decision = limiter.limit_with_cost("k", cost).unwrap();
        if !decision.allowed {
            clock.advance(decision.retry_after_ms);
            let retried = limiter.limit_with_cost("k", cost).unwrap();
            assert!(
                retried.allowed,
                "denied at +{}: {decision:?} then {retried:?}",
                decision.retry_after_ms
            );
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..proptest::prelude::ProptestConfig::default()
    })]

    #[test]
    fn a_call_at_its_retry_time_is_admitted(
        kind in 0..5u8,
        limit in 1..=20u64,
        refill in 1..=20u64,
        initial in 0..=20u64,
        interval_ms in 1..=200_000u64,
        calls in proptest::collection::vec((0..400_000u64, 1..=20u64), 1..60),
    ) {
        let span = std::time::Duration::from_millis(interval_ms);
        match kind {
            0 => retry_after_holds(FixedWindow::new(limit, span).unwrap(), &calls),
            1 => retry_after_holds(SlidingWindow::new(limit, span).unwrap(), &calls),
            2 => retry_after_holds(SlidingLog::new(limit, span).unwrap(), &calls),
            3 => {
                let bucket = TokenBucket::new(limit, refill.min(limit), span)
                    .and_then(|b| b.with_initial(initial.min(limit)))
                    .unwrap();
                retry_after_holds(bucket, &calls)
            }
            _ => retry_after_holds(
                Gcra::new(refill, span).and_then(|g| g.with_burst(limit)).unwrap(),
                &calls,
            ),
        }
    }
}

/// The case the rule is for: `tokenBucket(5, "60 s", 10, { initialTokens: 0 })`
/// called once every 2 minutes was denied forever, each time told to retry
/// in 60 s, because the bucket was forgotten the moment it was full.
#[test]
fn a_slow_caller_of_a_cold_bucket_is_admitted() {
    let store = MemoryStore::new();
    let clock = ManualClock::new(T0);
    let bucket = TokenBucket::new(10, 5, "60 s")
        .and_then(|b| b.with_initial(0))
        .unwrap();
    let limiter = limiter(bucket, &store, &clock);
    let first = limiter.limit("k").unwrap();
    assert!(!first.allowed);
    assert_eq!(first.retry_after_ms, 60_000);
    for _ in 0..10 {
        clock.advance(120_000);
        assert!(limiter.limit("k").unwrap().allowed);
    }
    // Idle for longer than the warm-up once full (2 intervals to fill from
    // 0, then 2 more): a new key again.
    clock.advance(60_000 + 240_000 + 1);
    assert!(!limiter.limit("k").unwrap().allowed);
}
