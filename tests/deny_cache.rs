//! The REST stores' deny cache against the real gateway and `redis-server`:
//! a blocked id hammered costs a handful of requests, denials end when a
//! call could be admitted, and replayed sequences decide exactly as
//! without the cache.

use std::time::{Duration, Instant};

use edgelimit::algorithm::Algorithm;
use edgelimit::store::{AsyncRedisRestStore, Batching, RedisRestStore, RestOptions, TimeSource};
use edgelimit::{
    Clock, FixedWindow, Gcra, Limiter, ManualClock, SlidingLog, SlidingWindow, TokenBucket,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use testkit::gateway::{Gateway, TOKEN};
use testkit::redis::Redis;
use testkit::tap::Tap;

struct Backend {
    _redis: Redis,
    gateway: Gateway,
    tap: Tap,
}

impl Backend {
    fn start() -> Self {
        let redis = Redis::start();
        let gateway = Gateway::start(redis.port);
        let tap = Tap::start(gateway.url());
        Self {
            _redis: redis,
            gateway,
            tap,
        }
    }

    /// A store whose requests go through the tap.
    fn store(&self, time: TimeSource, deny_cache: usize) -> RedisRestStore {
        self.store_at(self.tap.url(), time, deny_cache)
    }

    fn store_at(&self, url: String, time: TimeSource, deny_cache: usize) -> RedisRestStore {
        let options = RestOptions {
            time,
            deny_cache,
            ..RestOptions::default()
        };
        RedisRestStore::with_options(url, TOKEN, options).unwrap()
    }
}

/// Hammers one id of `algorithm` (limit 3 per hour) 10 000 times past its
/// limit; answers the HTTP requests it took.
fn hammer<A: Algorithm>(backend: &Backend, algorithm: A, prefix: &str) -> usize {
    let limiter = Limiter::new(algorithm)
        .with_store(backend.store(TimeSource::Redis, 100))
        .with_prefix(prefix);
    // Loads the script, so that what follows needs no EVAL.
    limiter.limit("warm-up").unwrap();
    backend.tap.take();
    for _ in 0..3 {
        assert!(limiter.limit("hot").unwrap().allowed, "{prefix}");
    }
    let first = limiter.limit("hot").unwrap();
    assert!(!first.allowed);
    for i in 0..10_000 {
        let d = limiter.limit("hot").unwrap();
        assert!(!d.allowed, "{prefix} call {i}");
        assert_eq!((d.limit, d.remaining), (3, 0), "{prefix}");
        assert!(d.retry_after_ms <= first.retry_after_ms, "{prefix}");
        assert!(d.retry_after_ms + 1_000 > first.retry_after_ms, "{prefix}");
    }
    // Another id is not blocked by it.
    assert!(limiter.limit("cold").unwrap().allowed);
    backend.tap.take().len() - 1
}

#[test]
fn a_blocked_id_hammered_costs_a_handful_of_requests() {
    let backend = Backend::start();
    let hour = "1 h";
    let counts = [
        hammer(&backend, FixedWindow::new(3, hour).unwrap(), "fw:"),
        hammer(&backend, SlidingWindow::new(3, hour).unwrap(), "sw:"),
        hammer(&backend, SlidingLog::new(3, hour).unwrap(), "sl:"),
        hammer(&backend, TokenBucket::new(3, 1, hour).unwrap(), "tb:"),
        hammer(&backend, Gcra::new(3, hour).unwrap(), "gc:"),
    ];
    // 3 admissions and the first denial; the 10 000 after it stay local.
    assert_eq!(counts, [4; 5]);
}

#[test]
fn without_the_cache_every_call_is_a_request() {
    let backend = Backend::start();
    let limiter = Limiter::new(FixedWindow::new(1, "1 h").unwrap())
        .with_store(backend.store(TimeSource::Redis, 0));
    limiter.limit("warm-up").unwrap();
    backend.tap.take();
    for _ in 0..50 {
        limiter.limit("hot").unwrap();
    }
    assert_eq!(backend.tap.take().len(), 50);
}

#[test]
fn cached_denials_end_when_a_call_could_be_admitted() {
    let backend = Backend::start();
    // Redis's clock, ours mapped onto it: 2 per 200 ms window.
    let limiter = Limiter::new(FixedWindow::new(2, "200 ms").unwrap())
        .with_store(backend.store(TimeSource::Redis, 100));
    backend.tap.take();
    let started = Instant::now();
    let (mut calls, mut admitted) = (0, 0);
    while started.elapsed() < Duration::from_millis(1_050) {
        calls += 1;
        admitted += u32::from(limiter.limit("hot").unwrap().allowed);
    }
    let requests = backend.tap.take().len();
    // Five or six windows began: each admitted its two, however many
    // calls the cache answered in between.
    assert!((10..=14).contains(&admitted), "{admitted} admitted");
    assert!(
        calls > 1_000 && requests < 60,
        "{requests} requests for {calls} calls"
    );
}

#[tokio::test]
async fn the_async_store_answers_from_its_cache_too() {
    let backend = Backend::start();
    let store = AsyncRedisRestStore::with_options(
        backend.tap.url(),
        TOKEN,
        RestOptions::default(),
        Batching::default(),
    )
    .unwrap();
    let limiter = Limiter::new(Gcra::new(2, "1 h").unwrap()).with_store(store);
    limiter.limit_async("warm-up").await.unwrap();
    backend.tap.take();
    let mut admitted = 0;
    for _ in 0..5_000 {
        admitted += u32::from(limiter.limit_async("hot").await.unwrap().allowed);
    }
    assert_eq!(admitted, 2);
    assert_eq!(backend.tap.take().len(), 3);
}

/// One step of a replay: the clock's move, the id, the cost.
fn steps() -> impl Strategy<Value = Vec<(i64, usize, u64)>> {
    let step =
        prop_oneof![6 => 0..200i64, 2 => 0..3_000i64, 1 => -300..0i64, 1 => 10_000..60_000i64];
    let cost = prop_oneof![6 => Just(1u64), 3 => 0..=4u64];
    prop::collection::vec((step, 0..2usize, cost), 1..80)
}

/// Replays `calls` through two limiters on Redis, with and without the
/// deny cache, at injected times: every decision must be the same.
fn replay<A: Algorithm + Clone>(
    backend: &Backend,
    algorithm: &A,
    prefix: &str,
    calls: &[(i64, usize, u64)],
) -> Result<(), TestCaseError> {
    let clock = ManualClock::new(1_700_000_000_000);
    let make = |cache, p: &str| {
        Limiter::new(algorithm.clone())
            .with_store(backend.store_at(backend.gateway.url(), TimeSource::Caller, cache))
            .with_clock(clock.clone())
            .with_prefix(format!("{prefix}{p}"))
    };
    let (cached, plain) = (make(1_000, "c:"), make(0, "p:"));
    for (i, &(step, id, cost)) in calls.iter().enumerate() {
        clock.set(clock.now_ms().saturating_add_signed(step));
        let id = ["a", "b"][id];
        let (c, p) = (
            cached.limit_with_cost(id, cost),
            plain.limit_with_cost(id, cost),
        );
        prop_assert_eq!(c, p, "call {} ({} at +{} ms, cost {})", i, id, step, cost);
        if i % 7 == 6 {
            // A reset goes through the cache too.
            cached.reset(id).unwrap();
            plain.reset(id).unwrap();
        }
    }
    Ok(())
}

proptest! {
    // Each case starts Redis and the gateway: few by default, more with
    // PROPTEST_CASES (`make test-long`).
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).map_or(6, |n: u32| n / 20),
        // Failures are kept in tests/<file>.proptest-regressions, committed.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_deny_cache_changes_no_decision(calls in steps(), limit in 1..=4u64, window in 100..2_000u64) {
        let backend = Backend::start();
        let w = Duration::from_millis(window);
        replay(&backend, &FixedWindow::new(limit, w).unwrap(), "fw", &calls)?;
        replay(&backend, &SlidingWindow::new(limit, w).unwrap(), "sw", &calls)?;
        replay(&backend, &SlidingLog::new(limit, w).unwrap(), "sl", &calls)?;
        replay(&backend, &TokenBucket::new(limit, 1, w).unwrap(), "tb", &calls)?;
        replay(&backend, &Gcra::new(limit, w).unwrap(), "gc", &calls)?;
    }
}
