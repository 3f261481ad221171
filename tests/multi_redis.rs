//! Several limits as one call and the block after abuse on Redis, through
//! the real gateway: the multi-limit script decides exactly as the memory
//! store, in one request, and the failure policy answers for every limit.

use std::time::Duration;

use edgelimit::algorithm::{Algorithm, AnyAlgorithm};
use edgelimit::store::{AsyncRedisRestStore, RedisRestStore, RestOptions, TimeSource};
use edgelimit::{
    Clock, Error, FailurePolicy, FixedWindow, Gcra, Limiter, ManualClock, MemoryStore,
    MultiLimiter, Reason, SlidingLog, SlidingWindow, TokenBucket,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use testkit::gateway::TOKEN;

#[path = "common/multi_limits.rs"]
mod multi_limits;
use multi_limits::limits;

#[path = "common/redis_backend.rs"]
mod redis_backend;
use redis_backend::Backend;

const T0: u64 = 1_700_000_000_000;

/// Replays `(step, cost)` calls on two ids through the memory store and
/// through Redis (time injected), each followed by a look at what is left:
/// identical answers required.
fn same_decisions(
    backend: &Backend,
    limits: &[AnyAlgorithm],
    block: Option<u64>,
    prefix: &str,
    calls: &[(u64, u64)],
) {
    let clock = ManualClock::new(T0);
    let build = || {
        let limiter = MultiLimiter::new(limits.to_vec()).unwrap();
        match block {
            Some(ms) => limiter.with_block(Duration::from_millis(ms)).unwrap(),
            None => limiter,
        }
        .with_clock(clock.clone())
        .with_prefix(prefix)
    };
    let memory = build().with_store(MemoryStore::new());
    let redis = build().with_store(backend.store(TimeSource::Caller));
    let smallest = limits.iter().map(|l| l.limit()).min().unwrap();
    for (i, &(step, cost)) in calls.iter().enumerate() {
        clock.advance(step);
        let id = ["a", "b"][i % 2];
        let cost = cost.min(smallest);
        let (m, r) = (
            memory.limit_with_cost(id, cost),
            redis.limit_with_cost(id, cost),
        );
        assert_eq!(m, r, "{prefix} call {i}: {cost} at +{step} ms");
        assert_eq!(
            memory.remaining(id),
            redis.remaining(id),
            "{prefix} after call {i}"
        );
    }
    // Too costly for some limit: the same typed error, nothing charged.
    let too_much = smallest + 1;
    assert!(matches!(
        redis.limit_with_cost("a", too_much),
        Err(Error::CostExceedsLimit { .. })
    ));
    assert_eq!(memory.remaining("a"), redis.remaining("a"));
}

fn calls() -> impl Strategy<Value = Vec<(u64, u64)>> {
    let step = prop_oneof![6 => 0..300u64, 2 => 0..3_000u64, 1 => 20_000..100_000u64];
    prop::collection::vec((step, 0..=4u64), 1..40)
}

proptest! {
    // Each case starts Redis and the gateway: few by default, more with
    // PROPTEST_CASES (`make test-long`).
    #![proptest_config(ProptestConfig {
        cases: testkit::cases::proptest_cases(160) / 20,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn redis_decides_several_limits_exactly_as_memory(
        limits in limits(),
        block in prop::option::of(1..5_000u64),
        calls in calls(),
    ) {
        let backend = Backend::start();
        same_decisions(&backend, &limits, None, "open:", &calls);
        same_decisions(&backend, &limits, block.or(Some(700)), "blocking:", &calls);
    }
}

#[test]
fn every_kind_together_and_a_block_on_redis_time() {
    let backend = Backend::start();
    let limits: Vec<AnyAlgorithm> = vec![
        FixedWindow::new(3, "1 h").unwrap().into(),
        SlidingWindow::new(4, "1 h").unwrap().into(),
        SlidingLog::new(5, "1 h").unwrap().into(),
        TokenBucket::new(6, 1, "1 h").unwrap().into(),
        Gcra::new(7, "1 h").unwrap().into(),
    ];
    let login = MultiLimiter::new(limits)
        .unwrap()
        .with_block("2 s")
        .unwrap()
        .with_store(backend.store(TimeSource::Redis));
    for left in [2, 1, 0] {
        let d = login.limit("u").unwrap();
        assert!(d.decision.allowed);
        assert_eq!(d.decision.remaining, left);
        assert_eq!(
            d.limits.iter().map(|l| l.limit).collect::<Vec<_>>(),
            [3, 4, 5, 6, 7]
        );
    }
    let denied = login.limit("u").unwrap();
    assert_eq!(denied.denied_by, Some(0));
    assert_eq!(denied.decision.reason, Some(Reason::Blocked));
    // The hour's window ends later than the block.
    assert!(denied.decision.retry_after_ms > 2_000);
    assert_eq!(denied.limits[4].remaining, 4, "the GCRA was not charged");
    login.reset("u").unwrap();
    let fresh = login.limit("u").unwrap();
    assert!(fresh.decision.allowed);
    assert_eq!(fresh.limits[2].remaining, 4);
}

#[test]
fn a_denied_call_charges_nothing_in_redis() {
    let backend = Backend::start();
    let store = backend.store(TimeSource::Redis);
    let day = FixedWindow::new(100, "1 d").unwrap();
    let multi = MultiLimiter::new([FixedWindow::new(2, "1 m").unwrap().into(), day.into()])
        .unwrap()
        .with_store(store.clone());
    let single = Limiter::new(day).with_store(store);
    for _ in 0..5 {
        multi.limit("k").unwrap();
    }
    // Two admitted, three denied by the minute: the day counted two.
    assert_eq!(single.remaining("k").unwrap().remaining, 98);
}

#[test]
fn the_failure_policy_answers_for_every_limit() {
    let port = testkit::port::free_port(); // nothing listens there
    let options = RestOptions {
        retries: 0,
        ..RestOptions::default()
    };
    let store =
        RedisRestStore::with_options(format!("http://127.0.0.1:{port}"), TOKEN, options).unwrap();
    let multi = MultiLimiter::new([
        FixedWindow::new(10, "1 s").unwrap().into(),
        Gcra::new(20, "1 s").unwrap().into(),
    ])
    .unwrap()
    .with_store(store);
    assert!(matches!(multi.limit("k"), Err(Error::Store(_))));
    let open = multi
        .clone()
        .with_failure_policy(FailurePolicy::Open)
        .limit("k")
        .unwrap();
    assert!(open.decision.allowed);
    assert_eq!(open.decision.reason, Some(Reason::StoreFailure));
    assert_eq!(open.limits[1].limit, 20);
    let closed = multi
        .with_failure_policy(FailurePolicy::Closed)
        .limit("k")
        .unwrap();
    assert!(!closed.decision.allowed);
    assert_eq!(closed.decision.reason, Some(Reason::StoreFailure));
}

#[test]
fn the_async_store_decides_alike() {
    let backend = Backend::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let clock = ManualClock::new(T0);
        let build = || {
            MultiLimiter::new([
                SlidingWindow::new(2, "1 s").unwrap().into(),
                TokenBucket::new(3, 1, "1 s").unwrap().into(),
            ])
            .unwrap()
            .with_block("3 s")
            .unwrap()
            .with_clock(clock.clone())
        };
        let options = RestOptions {
            time: TimeSource::Caller,
            ..RestOptions::default()
        };
        let store = AsyncRedisRestStore::with_options(
            backend.gateway.url(),
            TOKEN,
            options,
            Default::default(),
        )
        .unwrap();
        let redis = build().with_store(store);
        let memory = build();
        for step in [0, 10, 10, 500, 600, 3_000, 10] {
            clock.advance(step);
            let m = memory.limit("x").unwrap();
            assert_eq!(redis.limit_async("x").await.unwrap(), m);
            assert_eq!(
                redis.remaining_async("x").await.unwrap(),
                memory.remaining("x").unwrap()
            );
        }
        redis.reset_async("x").await.unwrap();
        assert!(redis.limit_async("x").await.unwrap().decision.allowed);
        assert!(clock.now_ms() > T0);
    });
}
