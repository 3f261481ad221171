//! Quota leases: the Lua twins decide leased calls as the core does (real
//! `redis-server`), limiters sharing a store never admit more than the
//! limit and under-admit no more than documented, and through the real
//! gateway a steady load costs one request per lease.

use std::cell::RefCell;

use edgelimit::algorithm::{Algorithm, QuotaRefund, StateKind};
use edgelimit::scripts::{self, Scripted, RATE_REPLY_LEN};
use edgelimit::store::{
    AsyncRedisRestStore, Batching, ConsumeQuota, RedisRestStore, RestOptions, TimeSource,
    Transition,
};
use edgelimit::{
    ConfigError, Error, FixedWindow, Gcra, Limiter, ManualClock, MemoryStore, SlidingLog,
    SlidingWindow, TokenBucket,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use testkit::gateway::{Gateway, TOKEN};
use testkit::redis::Redis;
use testkit::resp;
use testkit::tap::Tap;

fn ms(ms: u64) -> std::time::Duration {
    std::time::Duration::from_millis(ms)
}

fn runner() -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    TestRunner::new(Config {
        cases,
        // Failures are kept in tests/<file>.proptest-regressions, committed.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        source_file: Some(file!()),
        ..Config::default()
    })
}

// ---------------------------------------------------------------------------
// The Lua twins against the core.

/// One leased call: the clock's move, its cost, the units it asks for, and
/// what it gives back (none, or units of the current, previous or another
/// window).
#[derive(Debug, Clone, Copy)]
struct Op {
    step: u64,
    cost: u64,
    want: u64,
    refund_kind: u8,
    refund_units: u64,
}

fn ops(limit: u64, window: u64) -> impl Strategy<Value = Vec<Op>> {
    let op = (
        prop_oneof![3 => 0..=window / 4, 1 => 0..=3 * window],
        prop_oneof![1 => Just(0u64), 6 => 1..=limit.min(3), 1 => 0..=limit + 1],
        0..=limit + 2,
        0..4u8,
        0..=limit + 1,
    )
        .prop_map(|(step, cost, want, refund_kind, refund_units)| Op {
            step,
            cost,
            want,
            refund_kind,
            refund_units,
        });
    prop::collection::vec(op, 1..=40)
}

fn refund_of(op: &Op, now: u64, window: u64) -> Option<QuotaRefund> {
    let current = now - now % window;
    let window_start_ms = match op.refund_kind {
        0 => return None,
        1 => current,
        2 => current.saturating_sub(window),
        _ => current + 1,
    };
    Some(QuotaRefund {
        window_start_ms,
        units: op.refund_units,
    })
}

/// EVALSHA of `step` on `key` at `now`: its answer, read as the store reads
/// it, and the raw numbers after the decision.
fn eval<T: Transition>(
    conn: &mut resp::Conn,
    key: &str,
    now: u64,
    step: &T,
) -> Result<(T::Output, Vec<i64>), String> {
    let remote = step.remote().map_err(|e| e.to_string())?;
    let mut args = vec![
        "EVALSHA".to_owned(),
        remote.script.sha1().to_owned(),
        "1".to_owned(),
        key.to_owned(),
        now.to_string(),
    ];
    args.extend(remote.args);
    match conn.call(&args).unwrap() {
        resp::Reply::Error(e) => Err(e),
        reply => {
            let ints = reply.ints().expect("integers");
            let answer = step.decode(&ints).map_err(|e| e.to_string())?;
            Ok((answer.output, ints[RATE_REPLY_LEN..].to_vec()))
        }
    }
}

fn replay<A: Algorithm>(
    alg: &A,
    window: u64,
    ops: &[Op],
    conn: &mut resp::Conn,
    key: &str,
) -> Result<(), TestCaseError> {
    let mut state: Option<(A::State, u64)> = None;
    let mut now = 1_700_000_000_000u64;
    for (i, op) in ops.iter().enumerate() {
        now += op.step;
        let step = ConsumeQuota {
            algorithm: alg,
            cost: op.cost,
            want: op.want,
            refund: refund_of(op, now, window),
        };
        let mut live = state.clone().filter(|(_, exp)| *exp > now).map(|(s, _)| s);
        let expected = step.apply(&mut live, now);
        if let Ok((_, ttl)) = &expected {
            state = live.filter(|_| *ttl > 0).map(|s| (s, now + ttl));
        }
        let got = eval(conn, key, now, &step);
        let context = format!("op {i} {op:?} at {now}");
        match (expected, got) {
            (Ok((expected, _)), Ok((got, fields))) => {
                prop_assert_eq!(got, expected, "{}", context);
                if !got.decision.allowed {
                    // The state a denial sends is the one Redis keeps.
                    let held = state.as_ref().map(|(s, _)| s.clone().into_any());
                    prop_assert_eq!(alg.state_from_reply(&fields), held, "{}", context);
                }
            }
            (Err(Error::CostExceedsLimit { .. }), Err(lua)) => {
                prop_assert!(lua.contains("exceeds"), "{}: {}", context, lua);
            }
            (expected, got) => {
                prop_assert!(false, "{}: core {:?}, Lua {:?}", context, expected, got);
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Windowed {
    Fixed(FixedWindow),
    Sliding(SlidingWindow),
}

fn windowed() -> impl Strategy<Value = (Windowed, u64, u64)> {
    (
        1..=20u64,
        prop_oneof![1..=50u64, 1_000..=60_000u64],
        any::<bool>(),
    )
        .prop_map(|(limit, window, fixed)| {
            let algorithm = match fixed {
                true => Windowed::Fixed(FixedWindow::new(limit, ms(window)).unwrap()),
                false => Windowed::Sliding(SlidingWindow::new(limit, ms(window)).unwrap()),
            };
            (algorithm, limit, window)
        })
}

#[test]
fn leased_calls_in_lua_decide_as_the_core() {
    let server = Redis::start();
    let conn = RefCell::new(server.conn());
    for script in [&scripts::FIXED_WINDOW, &scripts::SLIDING_WINDOW] {
        let loaded = conn.borrow_mut().call(&["SCRIPT", "LOAD", script.code()]);
        assert_eq!(loaded.unwrap().text().as_deref(), Some(script.sha1()));
    }
    let case = windowed()
        .prop_flat_map(|(alg, limit, window)| (Just(alg), Just(window), ops(limit, window)));
    let counter = RefCell::new(0u32);
    runner()
        .run(&case, |(alg, window, ops)| {
            *counter.borrow_mut() += 1;
            let key = format!("{{quota{}}}", counter.borrow());
            let conn = &mut conn.borrow_mut();
            match &alg {
                Windowed::Fixed(a) => replay(a, window, &ops, conn, &key),
                Windowed::Sliding(a) => replay(a, window, &ops, conn, &key),
            }
        })
        .unwrap();
}

// ---------------------------------------------------------------------------
// Limiters sharing a store.

/// One call of one of several leasing limiters.
#[derive(Debug, Clone, Copy)]
struct Call {
    limiter: usize,
    step: u64,
    cost: u64,
}

fn calls(limiters: usize, limit: u64, window: u64) -> impl Strategy<Value = Vec<Call>> {
    let call = (
        0..limiters,
        prop_oneof![4 => 0..=window / 8, 1 => 0..=2 * window],
        prop_oneof![6 => Just(1u64), 1 => 0..=limit],
    )
        .prop_map(|(limiter, step, cost)| Call {
            limiter,
            step,
            cost,
        });
    prop::collection::vec(call, 1..=200)
}

/// Admitted units by time, for the checks below.
struct Admitted(Vec<(u64, u64)>);

impl Admitted {
    /// Units admitted in `[from, to)`.
    fn between(&self, from: u64, to: u64) -> u64 {
        self.0
            .iter()
            .filter(|(at, _)| (from..to).contains(at))
            .map(|(_, units)| units)
            .sum()
    }
}

proptest! {
    #![proptest_config(Config {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..Config::default()
    })]

    /// Fixed window: no window ever admits more than the limit, and a call
    /// is denied only when the window's admissions plus what the other
    /// limiters may hold unspent (`units − 1` each) leave no room for it.
    #[test]
    fn leasing_fixed_windows_admit_at_most_the_limit(
        (limit, window, units, limiters, calls) in (2..=30u64, 10..=1_000u64, 1..=10u64, 1..=4usize)
            .prop_flat_map(|(limit, window, units, n)| {
                let units = units.min(limit);
                (Just(limit), Just(window), Just(units), Just(n), calls(n, limit, window))
            })
    ) {
        let store = MemoryStore::new();
        let algorithm = FixedWindow::new(limit, ms(window)).unwrap();
        let all: Vec<_> = (0..limiters)
            .map(|_| {
                Limiter::new(algorithm)
                    .with_store(store.clone())
                    .with_quota_lease(units)
                    .unwrap()
            })
            .collect();
        let mut admitted = Admitted(Vec::new());
        let mut now = 10_000u64;
        for call in &calls {
            now += call.step;
            let decision = all[call.limiter].limit_at("id", call.cost, now).unwrap();
            let start = now - now % window;
            if decision.allowed {
                admitted.0.push((now, call.cost));
                prop_assert!(admitted.between(start, start + window) <= limit);
            } else {
                let slack = (limiters as u64 - 1) * (units - 1);
                prop_assert!(
                    admitted.between(start, start + window) + call.cost + slack > limit,
                    "denied {} at {} with {} admitted in the window",
                    call.cost, now, admitted.between(start, start + window)
                );
            }
        }
    }

    /// Sliding window: at every admission, the previous window's admissions
    /// weighted by their overlap plus the current window's stay within the
    /// limit, the algorithm's own formula.
    #[test]
    fn leasing_sliding_windows_keep_the_formula(
        (limit, window, units, limiters, calls) in (2..=30u64, 10..=1_000u64, 1..=10u64, 1..=4usize)
            .prop_flat_map(|(limit, window, units, n)| {
                let units = units.min(limit);
                (Just(limit), Just(window), Just(units), Just(n), calls(n, limit, window))
            })
    ) {
        let store = MemoryStore::new();
        let algorithm = SlidingWindow::new(limit, ms(window)).unwrap();
        let all: Vec<_> = (0..limiters)
            .map(|_| {
                Limiter::new(algorithm)
                    .with_store(store.clone())
                    .with_quota_lease(units)
                    .unwrap()
            })
            .collect();
        let mut admitted = Admitted(Vec::new());
        let mut now = 10_000u64;
        for call in &calls {
            now += call.step;
            let decision = all[call.limiter].limit_at("id", call.cost, now).unwrap();
            if decision.allowed && call.cost > 0 {
                admitted.0.push((now, call.cost));
                let start = now - now % window;
                let previous = admitted.between(start - window, start);
                let current = admitted.between(start, now + 1);
                let elapsed = now - start;
                prop_assert!(
                    previous * (window - elapsed) + current * window <= limit * window,
                    "at {}: previous {}, current {}", now, previous, current
                );
            }
        }
    }
}

#[test]
fn only_counted_windows_lease_and_units_fit_the_limit() {
    let leased = |units| Limiter::new(FixedWindow::new(5, "1 s").unwrap()).with_quota_lease(units);
    assert_eq!(
        leased(0).err(),
        Some(ConfigError::Zero {
            what: "lease units"
        })
    );
    assert!(matches!(
        leased(6).err(),
        Some(ConfigError::Exceeds { value: 6, .. })
    ));
    assert_eq!(leased(5).unwrap().quota_lease(), Some(5));
    let unsupported = ConfigError::QuotaLeaseUnsupported;
    let log = Limiter::new(SlidingLog::new(5, "1 s").unwrap()).with_quota_lease(2);
    assert_eq!(log.err(), Some(unsupported.clone()));
    let bucket = Limiter::new(TokenBucket::new(5, 1, "1 s").unwrap()).with_quota_lease(2);
    assert_eq!(bucket.err(), Some(unsupported.clone()));
    let gcra = Limiter::new(Gcra::new(5, "1 s").unwrap()).with_quota_lease(2);
    assert_eq!(gcra.err(), Some(unsupported));
}

#[test]
fn a_lease_is_spent_locally_and_given_back() {
    let store = MemoryStore::new();
    let clock = ManualClock::new(1_000);
    let algorithm = FixedWindow::new(10, "1 s").unwrap();
    let a = Limiter::new(algorithm)
        .with_store(store.clone())
        .with_clock(clock.clone())
        .with_quota_lease(4)
        .unwrap();
    let b = Limiter::new(algorithm)
        .with_store(store.clone())
        .with_clock(clock.clone());
    // `a` takes 4 (1 spent), so the window has 6 left for others; `a` sees
    // its 3 unspent as remaining too.
    assert_eq!(a.limit("id").unwrap().remaining, 9);
    assert_eq!(b.remaining("id").unwrap().remaining, 6);
    assert_eq!(a.remaining("id").unwrap().remaining, 9);
    // Spent locally: the store does not change.
    assert_eq!(a.limit("id").unwrap().remaining, 8);
    assert_eq!(b.remaining("id").unwrap().remaining, 6);
    // Given back: others see the 2 unspent units again.
    a.return_quota().unwrap();
    assert_eq!(b.remaining("id").unwrap().remaining, 8);
    assert_eq!(a.remaining("id").unwrap().remaining, 8);
    // A cost the lease cannot pay gives back what is left and asks again.
    a.limit("id").unwrap(); // takes 4: 6 used, 3 unspent here
    assert_eq!(b.remaining("id").unwrap().remaining, 4);
    let big = a.limit_with_cost("id", 5).unwrap();
    assert!(big.allowed, "3 given back + 4 left = 7 >= 5");
    assert_eq!(b.remaining("id").unwrap().remaining, 2);
    // Takes 1 + as many as are left (1), spends them, then is denied.
    assert_eq!(a.limit("id").unwrap().remaining, 1);
    assert_eq!(a.limit("id").unwrap().remaining, 0);
    let denied = a.limit("id").unwrap();
    assert!(!denied.allowed);
    assert_eq!(b.remaining("id").unwrap().remaining, 0);
    // A lease ends with its window.
    clock.advance(1_000);
    assert_eq!(a.limit("id").unwrap().remaining, 9, "a fresh window");
    // reset forgets the lease with the state.
    a.reset("id").unwrap();
    assert_eq!(a.remaining("id").unwrap().remaining, 10);
    assert_eq!(b.remaining("id").unwrap().remaining, 10);
}

// ---------------------------------------------------------------------------
// Through the real gateway.

struct Backend {
    _redis: Redis,
    _gateway: Gateway,
    tap: Tap,
}

impl Backend {
    fn start() -> Self {
        let redis = Redis::start();
        let gateway = Gateway::start(redis.port);
        let tap = Tap::start(gateway.url());
        Self {
            _redis: redis,
            _gateway: gateway,
            tap,
        }
    }

    /// Loads the scripts a test's requests run (a first EVALSHA would
    /// answer NOSCRIPT and be sent again), then forgets those requests.
    fn warm_up(&self, store: &RedisRestStore) {
        let warm = Limiter::new(FixedWindow::new(10, "1 h").unwrap())
            .with_store(store.clone())
            .with_prefix("warm:")
            .with_quota_lease(5)
            .unwrap();
        let sliding = Limiter::new(SlidingWindow::new(10, "1 h").unwrap())
            .with_store(store.clone())
            .with_prefix("warm-sliding:");
        for id in ["a", "b"] {
            warm.limit(id).unwrap();
            sliding.limit(id).unwrap();
        }
        warm.return_quota().unwrap();
        self.tap.take();
    }

    fn options() -> RestOptions {
        RestOptions {
            time: TimeSource::Redis,
            ..RestOptions::default()
        }
    }
}

/// A steady load below the limit: one request per `units` admitted calls;
/// and past the limit, the lease never admits more than the limit.
#[test]
fn a_steady_load_costs_one_request_per_lease() {
    let backend = Backend::start();
    let store = RedisRestStore::with_options(backend.tap.url(), TOKEN, Backend::options()).unwrap();
    backend.warm_up(&store);
    // A window of an hour: the test never crosses one.
    let algorithm = FixedWindow::new(1_000, "1 h").unwrap();
    for units in [1u64, 10, 50] {
        let limiter = Limiter::new(algorithm)
            .with_store(store.clone())
            .with_prefix(format!("steady{units}:"))
            .with_quota_lease(units)
            .unwrap();
        backend.tap.take();
        for _ in 0..500 {
            assert!(limiter.limit("id").unwrap().allowed);
        }
        let requests = backend.tap.take().len() as u64;
        assert_eq!(requests, 500u64.div_ceil(units), "{units} units a lease");
    }
    // Past the limit: exactly the limit admitted, whatever the lease.
    let limiter = Limiter::new(FixedWindow::new(95, "1 h").unwrap())
        .with_store(store.clone())
        .with_prefix("past:")
        .with_quota_lease(10)
        .unwrap();
    let admitted = (0..300)
        .filter(|_| limiter.limit("id").unwrap().allowed)
        .count();
    assert_eq!(admitted, 95);
    // The last lease was partial (5 units), its denials answered locally.
    let requests = backend.tap.take().len();
    assert!(requests <= 10 + 2, "{requests} requests");
}

/// `return_quota` gives every id's unspent units back in one request.
#[test]
fn unspent_leases_come_back_in_one_request() {
    let backend = Backend::start();
    let store = RedisRestStore::with_options(backend.tap.url(), TOKEN, Backend::options()).unwrap();
    backend.warm_up(&store);
    let algorithm = SlidingWindow::new(100, "1 h").unwrap();
    let leasing = Limiter::new(algorithm)
        .with_store(store.clone())
        .with_quota_lease(20)
        .unwrap();
    let plain = Limiter::new(algorithm).with_store(store);
    let ids: Vec<String> = (0..5).map(|i| format!("user{i}")).collect();
    for id in &ids {
        assert_eq!(leasing.limit(id).unwrap().remaining, 99);
        assert_eq!(plain.remaining(id).unwrap().remaining, 80);
    }
    backend.tap.take();
    leasing.return_quota().unwrap();
    assert_eq!(backend.tap.take().len(), 1, "one request for every id");
    for id in &ids {
        assert_eq!(plain.remaining(id).unwrap().remaining, 99);
    }
    backend.tap.take();
    leasing.return_quota().unwrap();
    assert!(backend.tap.take().is_empty(), "nothing left to give back");
}

/// The async store: concurrent calls of one id share leases (and
/// requests); never more than the limit.
#[test]
fn async_calls_spend_leases_and_hold_the_limit() {
    let backend = Backend::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = AsyncRedisRestStore::with_options(
            backend.tap.url(),
            TOKEN,
            Backend::options(),
            Batching::default(),
        )
        .unwrap();
        let limiter = std::sync::Arc::new(
            Limiter::new(FixedWindow::new(200, "1 h").unwrap())
                .with_store(store)
                .with_quota_lease(10)
                .unwrap(),
        );
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move {
                    let mut admitted = 0;
                    for _ in 0..50 {
                        if limiter.limit_async("id").await.unwrap().allowed {
                            admitted += 1;
                        }
                    }
                    admitted
                })
            })
            .collect();
        let mut admitted = 0;
        for task in tasks {
            admitted += task.await.unwrap();
        }
        assert!(admitted <= 200, "{admitted} admitted");
        // 400 calls for 200 units: at most 9 units per concurrent request
        // may sit unspent when the window runs dry.
        assert!(admitted >= 200 - 8 * 9, "{admitted} admitted");
        let requests = backend.tap.take().len();
        assert!(requests <= 60, "{requests} requests for 400 calls");
        limiter.return_quota_async().await.unwrap();
    });
}

/// `limit_many` under leases: calls a lease pays are answered locally, the
/// others go together, and each answer is what `limit` would have given.
#[test]
fn limit_many_spends_leases_and_sends_the_rest() {
    let store = MemoryStore::new();
    let clock = ManualClock::new(5_000);
    let leasing = Limiter::new(FixedWindow::new(6, "1 s").unwrap())
        .with_store(store.clone())
        .with_clock(clock.clone())
        .with_quota_lease(3)
        .unwrap();
    let plain = Limiter::new(FixedWindow::new(6, "1 s").unwrap())
        .with_store(store)
        .with_clock(clock);
    // "a" takes a lease of 3; its second call in the same batch asks for its
    // cost alone (a lease is being taken); "b" takes a lease of 3.
    let first: Vec<_> = leasing
        .limit_many(&[("a", 1), ("a", 1), ("b", 1)])
        .into_iter()
        .map(|d| d.unwrap())
        .collect();
    assert!(first.iter().all(|d| d.allowed));
    assert_eq!(plain.remaining("a").unwrap().remaining, 2, "3 leased + 1");
    // Now "a"'s lease pays for two calls; the third goes to the store.
    let second: Vec<_> = leasing
        .limit_many(&[("a", 1), ("a", 1), ("a", 2), ("b", 7)])
        .into_iter()
        .collect();
    assert!(second[..3].iter().all(|d| d.as_ref().unwrap().allowed));
    assert!(matches!(second[3], Err(Error::CostExceedsLimit { .. })));
    assert_eq!(plain.remaining("a").unwrap().remaining, 0);
}
