//! The Redis REST store through the real gateway and a real `redis-server`:
//! the Rust API unchanged, the same decisions as the in-memory store, the
//! EVALSHA/NOSCRIPT/EVAL path, typed failures and retries.

use std::net::TcpListener;
use std::time::Duration;

use edgelimit::algorithm::Algorithm;
use edgelimit::store::{RedisRestStore, RestOptions, TimeSource};
use edgelimit::{
    Acquire, Concurrency, ConcurrencyLimiter, Error, FixedWindow, Gcra, Limiter, ManualClock,
    MemoryStore, SlidingLog, SlidingWindow, StoreError, Tier, TokenBucket,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use testkit::gateway::TOKEN;
use testkit::resp;

#[path = "common/redis_backend.rs"]
mod redis_backend;
use redis_backend::Backend;

const T0: u64 = 1_700_000_000_000;

/// Replays `(step, cost)` calls through the memory store and through Redis
/// (time injected), requiring identical answers.
fn same_decisions<A: Algorithm + Clone>(
    backend: &Backend,
    alg: &A,
    prefix: &str,
    calls: &[(i64, u64)],
) {
    let clock = ManualClock::new(T0);
    let memory = Limiter::new(alg.clone())
        .with_store(MemoryStore::new())
        .with_clock(clock.clone());
    let redis = Limiter::new(alg.clone())
        .with_store(backend.store(TimeSource::Caller))
        .with_clock(clock.clone())
        .with_prefix(prefix);
    for (i, &(step, cost)) in calls.iter().enumerate() {
        clock.set(clock_after(&clock, step));
        let key = ["a", "b"][i % 2];
        // Some calls under a larger or a smaller limit than the configured
        // one, on the same state (a token bucket refuses both alike).
        let tier = match i % 5 {
            1 => Some(Tier::limit(alg.limit() + 2)),
            3 => Some(Tier::limit(1)),
            _ => None,
        };
        let (m, r) = match &tier {
            Some(tier) => (
                memory.limit_under(key, cost, tier),
                redis.limit_under(key, cost, tier),
            ),
            None => (
                memory.limit_with_cost(key, cost),
                redis.limit_with_cost(key, cost),
            ),
        };
        assert_eq!(m, r, "{prefix} call {i}: {cost} at +{step} ms, {tier:?}");
    }
}

fn clock_after(clock: &ManualClock, step: i64) -> u64 {
    use edgelimit::Clock;
    clock.now_ms().saturating_add_signed(step)
}

/// Steps of the clock, forward only: a clock going back is compared with the
/// core in tests/scripts_redis.rs, not here. Here the memory store's sweep
/// may already have dropped a state that expired at a later time the clock
/// then goes back from, where Redis still holds it: both within the
/// contract (never more than the latest time seen would admit), but not
/// equal.
fn calls() -> impl Strategy<Value = Vec<(i64, u64)>> {
    let step = prop_oneof![6 => 0..300i64, 2 => 0..5_000i64, 1 => 50_000..200_000i64];
    prop::collection::vec((step, 0..=6u64), 1..40)
}

proptest! {
    // Each case starts Redis and the gateway: few by default, more with
    // PROPTEST_CASES (`make test-long`).
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).map_or(12, |n: u32| n / 20),
        // Failures are kept in tests/<file>.proptest-regressions, committed.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn redis_decides_exactly_as_memory(calls in calls(), limit in 1..=5u64, window in 50..3_000u64) {
        let backend = Backend::start();
        let w = format!("{window}ms");
        same_decisions(&backend, &FixedWindow::new(limit, w.as_str()).unwrap(), "fw:", &calls);
        same_decisions(&backend, &SlidingWindow::new(limit, w.as_str()).unwrap(), "sw:", &calls);
        same_decisions(&backend, &SlidingLog::new(limit, w.as_str()).unwrap(), "sl:", &calls);
        same_decisions(&backend, &TokenBucket::new(limit, 1, w.as_str()).unwrap(), "tb:", &calls);
        same_decisions(&backend, &Gcra::new(limit, w.as_str()).unwrap(), "gc:", &calls);
    }
}

#[test]
fn the_rust_api_works_unchanged_over_redis() {
    let backend = Backend::start();
    let clock = ManualClock::new(T0);
    let limiter = Limiter::new(TokenBucket::new(2, 1, "1 s").unwrap())
        .with_store(backend.store(TimeSource::Caller))
        .with_clock(clock.clone());
    assert_eq!(limiter.limit("k").unwrap().remaining, 1);
    assert_eq!(limiter.remaining("k").unwrap().remaining, 1);
    assert!(!limiter.limit_with_cost("k", 2).unwrap().allowed);
    assert_eq!(
        limiter.limit_with_cost("k", 3),
        Err(Error::CostExceedsLimit { cost: 3, limit: 2 })
    );
    let waited = limiter
        .wait_with_cost("k", 2, Duration::from_secs(5))
        .unwrap();
    assert!(waited.is_admitted());
    // The state lives in Redis under the prefix, the algorithm and its
    // time base, and the id as a hash tag.
    let keys = backend.redis.conn().call(&["KEYS", "*"]).unwrap();
    let tagged = resp::Reply::Bulk(Some(b"edgelimit:tb:1000:{k}".to_vec()));
    assert_eq!(keys, resp::Reply::Array(Some(vec![tagged])));
    limiter.reset("k").unwrap();
    assert_eq!(limiter.remaining("k").unwrap().remaining, 2);
    let keys = backend.redis.conn().call(&["KEYS", "*"]).unwrap();
    assert_eq!(keys, resp::Reply::Array(Some(vec![])), "reset deleted it");
}

#[test]
fn redis_time_by_default() {
    let backend = Backend::start();
    let limiter = Limiter::new(FixedWindow::new(3, "1 h").unwrap())
        .with_store(backend.store(TimeSource::Redis));
    let d = limiter.limit("k").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // The window ends within the next hour of Redis's (this machine's) clock.
    assert!(
        d.reset_ms > now && d.reset_ms <= now + 3_600_000,
        "{} vs {now}",
        d.reset_ms
    );
}

#[test]
fn a_flushed_script_cache_is_refilled_with_eval() {
    let backend = Backend::start();
    let limiter =
        Limiter::new(Gcra::new(5, "1 s").unwrap()).with_store(backend.store(TimeSource::Redis));
    assert!(limiter.limit("k").unwrap().allowed);
    let mut conn = backend.redis.conn();
    conn.call(&["SCRIPT", "FLUSH"]).unwrap();
    let sha = edgelimit::scripts::GCRA.sha1();
    assert_eq!(
        conn.call(&["SCRIPT", "EXISTS", sha]).unwrap().ints(),
        Some(vec![0])
    );
    assert_eq!(
        limiter.limit("k").unwrap().remaining,
        3,
        "NOSCRIPT, then EVAL"
    );
    assert_eq!(
        conn.call(&["SCRIPT", "EXISTS", sha]).unwrap().ints(),
        Some(vec![1])
    );
}

#[test]
fn concurrency_over_redis() {
    let backend = Backend::start();
    let clock = ManualClock::new(T0);
    let limiter = ConcurrencyLimiter::with_parts(
        Concurrency::new(1, "1 s").unwrap(),
        backend.store(TimeSource::Caller),
        clock.clone(),
        "jobs:",
    );
    let permit = limiter.acquire("k").unwrap().permit().expect("a free slot");
    assert!(
        matches!(limiter.acquire("k").unwrap(), Acquire::Denied(d) if d.retry_after_ms == 1000)
    );
    assert!(permit.release().unwrap());
    let held = limiter.acquire("k").unwrap().permit().unwrap();
    std::mem::forget(held); // the holder dies
    clock.advance(1_000);
    assert!(
        limiter.acquire("k").unwrap().permit().is_some(),
        "its lease expired"
    );
}

#[test]
fn wrong_token_is_unauthorized() {
    let backend = Backend::start();
    let store = RedisRestStore::new(backend.gateway.url(), "wrong").unwrap();
    let limiter = Limiter::new(FixedWindow::new(1, "1 s").unwrap()).with_store(store);
    assert_eq!(
        limiter.limit("k"),
        Err(Error::Store(StoreError::Unauthorized))
    );
    // A misconfiguration is raised whatever the failure policy: admitting
    // (or denying) everything would hide it.
    for policy in [
        edgelimit::FailurePolicy::Open,
        edgelimit::FailurePolicy::Closed,
    ] {
        let limiter = limiter.clone().with_failure_policy(policy);
        assert_eq!(
            limiter.limit("k"),
            Err(Error::Store(StoreError::Unauthorized))
        );
    }
    // A wrong path: 404, raised too.
    let wrong_path =
        RedisRestStore::new(format!("{}/nowhere/", backend.gateway.url()), TOKEN).map(|store| {
            Limiter::new(FixedWindow::new(1, "1 s").unwrap())
                .with_store(store)
                .with_failure_policy(edgelimit::FailurePolicy::Open)
        });
    if let Ok(limiter) = wrong_path {
        assert!(
            matches!(
                limiter.limit("k"),
                Err(Error::Store(StoreError::NotFound(_)))
            ),
            "{:?}",
            limiter.limit("k")
        );
    }
}

#[test]
fn nothing_listening_is_unreachable() {
    let port = testkit::port::free_port();
    let options = RestOptions {
        retries: 1,
        backoff_base: Duration::from_millis(1),
        ..RestOptions::default()
    };
    let store =
        RedisRestStore::with_options(format!("http://127.0.0.1:{port}"), TOKEN, options).unwrap();
    let limiter = Limiter::new(FixedWindow::new(1, "1 s").unwrap()).with_store(store);
    assert!(matches!(
        limiter.limit("k"),
        Err(Error::Store(StoreError::Unreachable(_)))
    ));
}

#[test]
fn a_silent_backend_times_out() {
    // Accepts connections (the kernel's backlog) but never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let options = RestOptions {
        timeout: Duration::from_millis(200),
        ..RestOptions::default()
    };
    let store = RedisRestStore::with_options(url, TOKEN, options).unwrap();
    let limiter = Limiter::new(FixedWindow::new(1, "1 s").unwrap()).with_store(store);
    let started = std::time::Instant::now();
    assert_eq!(
        limiter.limit("k"),
        Err(Error::Store(StoreError::Timeout { ms: 200 })),
        "a consuming call is not retried after a timeout"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A server answering every request with 50 MB: cut off at the cap, well
/// within the timeout, with a short message; blocking and async alike.
#[test]
fn a_huge_reply_is_cut_off_with_a_short_message() {
    use std::io::{Read, Write};
    let flood = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", flood.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in flood.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut request = [0; 4096];
                let _ = stream.read(&mut request);
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"error\":\"";
                let _ = stream.write_all(head.as_bytes());
                let block = vec![b'x'; 1 << 20];
                for _ in 0..50 {
                    if stream.write_all(&block).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let options = RestOptions {
        timeout: Duration::from_millis(2_000),
        retries: 0,
        ..RestOptions::default()
    };
    let check = |answer: Result<edgelimit::Decision, Error>, elapsed: Duration| {
        match answer {
            Err(Error::Store(StoreError::Unavailable(message))) => {
                assert!(message.contains("larger than"), "{message}");
                assert!(message.len() < 200);
            }
            other => panic!("{other:?}"),
        }
        assert!(elapsed < Duration::from_millis(1_500), "{elapsed:?}");
    };
    let store = RedisRestStore::with_options(url.clone(), TOKEN, options).unwrap();
    let limiter = Limiter::new(FixedWindow::new(1, "1 s").unwrap()).with_store(store);
    let started = std::time::Instant::now();
    check(limiter.limit("k"), started.elapsed());

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = edgelimit::store::AsyncRedisRestStore::with_options(
            url,
            TOKEN,
            options,
            Default::default(),
        )
        .unwrap();
        let limiter = Limiter::new(FixedWindow::new(1, "1 s").unwrap()).with_store(store);
        let started = std::time::Instant::now();
        check(limiter.limit_async("k").await, started.elapsed());
    });
}

#[test]
fn failure_policy_answers_for_a_failed_store() {
    use edgelimit::{FailurePolicy, Reason, FAIL_CLOSED_RETRY_MS};
    let port = testkit::port::free_port(); // nothing listens there
    let options = RestOptions {
        retries: 0,
        ..RestOptions::default()
    };
    let store =
        RedisRestStore::with_options(format!("http://127.0.0.1:{port}"), TOKEN, options).unwrap();
    let limiter = Limiter::new(SlidingWindow::new(10, "1 s").unwrap()).with_store(store);
    assert!(
        matches!(limiter.limit("k"), Err(Error::Store(_))),
        "the default returns the error"
    );

    let open = limiter
        .clone()
        .with_failure_policy(FailurePolicy::Open)
        .limit("k")
        .unwrap();
    assert!(open.allowed);
    assert_eq!((open.limit, open.reason), (10, Some(Reason::StoreFailure)));

    let closed = limiter
        .with_failure_policy(FailurePolicy::Closed)
        .limit("k")
        .unwrap();
    assert!(!closed.allowed);
    assert_eq!(closed.retry_after_ms, FAIL_CLOSED_RETRY_MS);
    assert_eq!(closed.reason, Some(Reason::StoreFailure));

    // A decision the store made carries no reason.
    let backend = Backend::start();
    let fine = Limiter::new(SlidingWindow::new(10, "1 s").unwrap())
        .with_store(backend.store(TimeSource::Redis))
        .with_failure_policy(FailurePolicy::Closed);
    assert_eq!(fine.limit("k").unwrap().reason, None);
}

#[test]
fn several_decisions_in_one_pipeline() {
    let backend = Backend::start();
    let clock = ManualClock::new(T0);
    let alg = SlidingLog::new(3, "1 s").unwrap();
    let memory = Limiter::new(alg).with_clock(clock.clone());
    let redis = Limiter::new(alg)
        .with_store(backend.store(TimeSource::Caller))
        .with_clock(clock.clone());
    let calls = [
        ("a", 1),
        ("b", 2),
        ("a", 2),
        ("a", 1),
        ("c", 4),
        ("b", 1),
        ("b", 1),
    ];
    let expected = memory.limit_many(&calls);
    assert_eq!(
        expected[4],
        Err(Error::CostExceedsLimit { cost: 4, limit: 3 }),
        "an impossible call fails alone"
    );
    assert_eq!(redis.limit_many(&calls), expected);

    // With the script cache flushed, the pipeline falls back to EVAL.
    backend.redis.conn().call(&["SCRIPT", "FLUSH"]).unwrap();
    clock.advance(400);
    assert_eq!(redis.limit_many(&calls), memory.limit_many(&calls));
    assert_eq!(redis.limit_many(&[]), vec![]);
}

#[test]
fn remaining_is_a_read_only_peek_in_redis_too() {
    let backend = Backend::start();
    let clock = ManualClock::new(T0);
    let alg = TokenBucket::new(5, 1, "1 s")
        .unwrap()
        .with_initial(0)
        .unwrap();
    let limiter = Limiter::new(alg)
        .with_store(backend.store(TimeSource::Caller))
        .with_clock(clock.clone());
    assert_eq!(limiter.remaining("k").unwrap().remaining, 0);
    let keys = backend.redis.conn().call(&["KEYS", "*"]).unwrap();
    assert_eq!(keys, resp::Reply::Array(Some(vec![])), "nothing written");
    limiter.limit_with_cost("k", 0).unwrap();
    clock.advance(2_000);
    assert_eq!(limiter.remaining("k").unwrap().remaining, 2);
}

/// Limiters of different kinds on one store, one prefix and one id never
/// share state (each enforces its own limit), in memory and in Redis alike;
/// two of the same algorithm and window share it by design.
#[test]
fn limiters_of_different_kinds_on_one_id_keep_apart() {
    let backend = Backend::start();
    let in_memory = kinds_on_one_id(MemoryStore::new());
    assert_eq!(
        in_memory,
        ([3, 5, 2], 6, true, false),
        "each kept its own limit"
    );
    let in_redis = kinds_on_one_id(backend.store(TimeSource::Caller));
    assert_eq!(in_redis, in_memory, "Redis decides as memory");
}

/// Admissions of 20 calls each to a fixed window of 3, a bucket of 5 and a
/// GCRA burst of 2 on id "user"; then what a fixed window of 10 over the
/// same hour has left, and two acquires of a 1-slot semaphore.
fn kinds_on_one_id<S>(store: S) -> ([u32; 3], u64, bool, bool)
where
    S: edgelimit::store::Store + edgelimit::store::AsyncStore + Clone + Send + Sync + 'static,
{
    let clock = ManualClock::new(T0);
    let fixed = Limiter::new(FixedWindow::new(3, "1 h").unwrap())
        .with_store(store.clone())
        .with_clock(clock.clone());
    let bucket = Limiter::new(TokenBucket::new(5, 1, "1 h").unwrap())
        .with_store(store.clone())
        .with_clock(clock.clone());
    let gcra = Limiter::new(Gcra::new(2, "1 h").unwrap())
        .with_store(store.clone())
        .with_clock(clock.clone());
    let mut admitted = [0u32; 3];
    for _ in 0..20 {
        let calls = [
            fixed.limit("user"),
            bucket.limit("user"),
            gcra.limit("user"),
        ];
        for (n, d) in admitted.iter_mut().zip(calls) {
            *n += u32::from(d.unwrap().allowed);
        }
    }
    let twin = Limiter::new(FixedWindow::new(10, "1 h").unwrap())
        .with_store(store.clone())
        .with_clock(clock.clone());
    let shared = twin.limit("user").unwrap().remaining;
    let jobs = ConcurrencyLimiter::with_parts(
        Concurrency::new(1, "1 h").unwrap(),
        store.clone(),
        clock.clone(),
        edgelimit::DEFAULT_PREFIX,
    );
    // The first permit is held (not dropped) while the second is asked.
    let first = jobs.acquire("user").unwrap();
    let second = jobs.acquire("user").unwrap();
    let granted = |a: &Acquire<S, ManualClock>| matches!(a, Acquire::Granted(_));
    (admitted, shared, granted(&first), granted(&second))
}

#[test]
fn a_refund_reopens_a_key_the_deny_cache_had_closed() {
    let backend = Backend::start();
    let clock = ManualClock::new(T0);
    let limiter = Limiter::new(SlidingLog::new(2, "1 h").unwrap())
        .with_store(backend.store(TimeSource::Caller))
        .with_clock(clock.clone());
    assert!(limiter.limit_with_cost("k", 2).unwrap().allowed);
    // Denied by Redis, then by the deny cache without a request.
    assert!(!limiter.limit("k").unwrap().allowed);
    assert!(!limiter.limit("k").unwrap().allowed);
    assert_eq!(limiter.refund("k", 1).unwrap().remaining, 1);
    assert!(
        limiter.limit("k").unwrap().allowed,
        "the cached denial was forgotten"
    );
    let d = limiter.penalize("k", 5).unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 0));
    assert!(!limiter.limit("k").unwrap().allowed);
}
