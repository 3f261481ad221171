//! The Rust API: limits, reads, resets, blocking and async waits, and the
//! concurrency limiter's permits.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use edgelimit::{
    Acquire, Clock, Concurrency, ConcurrencyLimiter, Error, FixedWindow, Gcra, Limiter,
    ManualClock, MemoryStore, SlidingWindow, SystemClock, TokenBucket, WaitOutcome,
    DEFAULT_MAX_ID_BYTES,
};

const T0: u64 = 1_700_000_000_000;

/// Drives a future whose sleeps complete at once (they move a manual clock).
fn block_on<F: Future>(future: F) -> F::Output {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

fn bucket(clock: &ManualClock) -> Limiter<TokenBucket, MemoryStore, ManualClock> {
    Limiter::new(TokenBucket::new(2, 1, "1 s").unwrap()).with_clock(clock.clone())
}

#[test]
fn limit_cost_remaining_and_reset() {
    let clock = ManualClock::new(T0);
    let limiter = bucket(&clock);
    assert_eq!(limiter.limit("k").unwrap().remaining, 1);
    let read = limiter.remaining("k").unwrap();
    assert_eq!(
        (read.allowed, read.remaining, read.reset_ms),
        (true, 1, T0 + 1000)
    );
    let denied = limiter.limit_with_cost("k", 2).unwrap();
    assert!(!denied.allowed);
    assert_eq!(denied.retry_after_ms, 1000);
    assert_eq!(
        limiter.limit_with_cost("k", 3),
        Err(Error::CostExceedsLimit { cost: 3, limit: 2 })
    );
    limiter.reset("k").unwrap();
    assert_eq!(limiter.remaining("k").unwrap().remaining, 2);
}

#[test]
fn errors_explain_themselves() {
    let message = Error::CostExceedsLimit { cost: 3, limit: 2 }.to_string();
    assert!(
        message.contains("cost 3") && message.contains("limit of 2"),
        "{message}"
    );
    let config = TokenBucket::new(2, 5, "1 s").unwrap_err().to_string();
    assert_eq!(config, "refill (5) must not exceed capacity (2)");
    let duration = SlidingWindow::new(1, "10 seconds").unwrap_err().to_string();
    assert!(
        duration.contains("\"10 seconds\"") && duration.contains("ms, s, m, h, d"),
        "{duration}"
    );
}

#[test]
fn wait_sleeps_until_the_retry_time_plus_a_little_jitter() {
    let clock = ManualClock::new(T0);
    let limiter = bucket(&clock);
    limiter.limit_with_cost("k", 2).unwrap();
    let outcome = limiter.wait("k", Duration::from_secs(5)).unwrap();
    assert!(outcome.is_admitted());
    let waited = clock.now_ms() - T0;
    assert!((1000..=1050).contains(&waited), "waited {waited} ms");
    assert_eq!(outcome.decision().remaining, 0);
}

#[test]
fn wait_gives_up_at_once_when_the_deadline_is_too_close() {
    let clock = ManualClock::new(T0);
    let limiter = bucket(&clock);
    limiter.limit_with_cost("k", 2).unwrap();
    let outcome = limiter.wait("k", Duration::from_millis(999)).unwrap();
    match outcome {
        WaitOutcome::DeadlineExceeded(d) => assert_eq!(d.retry_after_ms, 1000),
        other => panic!("expected a deadline outcome, got {other:?}"),
    }
    assert_eq!(clock.now_ms(), T0, "no time wasted sleeping");
    assert!(limiter
        .wait("k", Duration::from_millis(1000))
        .unwrap()
        .is_admitted());
}

#[test]
fn wait_for_an_impossible_cost_is_an_error_not_an_endless_wait() {
    let clock = ManualClock::new(T0);
    let limiter = bucket(&clock);
    let result = limiter.wait_with_cost("k", 3, Duration::from_secs(3600));
    assert_eq!(result, Err(Error::CostExceedsLimit { cost: 3, limit: 2 }));
}

#[test]
fn wait_async_uses_the_given_timer() {
    let clock = ManualClock::new(T0);
    let limiter = bucket(&clock);
    limiter.limit_with_cost("k", 2).unwrap();
    let slept = std::cell::Cell::new(0u64);
    let sleep = |d: Duration| {
        slept.set(slept.get() + d.as_millis() as u64);
        clock.advance(d.as_millis() as u64);
        std::future::ready(())
    };
    let outcome = block_on(limiter.wait_async("k", 2, Duration::from_secs(10), sleep)).unwrap();
    assert!(outcome.is_admitted());
    assert!(
        (2000..=2100).contains(&slept.get()),
        "slept {} ms",
        slept.get()
    );
}

#[test]
fn wait_on_the_system_clock_really_waits() {
    let limiter = Limiter::new(Gcra::new(1, "60ms").unwrap());
    assert!(limiter.limit("k").unwrap().allowed);
    let started = Instant::now();
    assert!(limiter
        .wait("k", Duration::from_secs(2))
        .unwrap()
        .is_admitted());
    assert!(
        started.elapsed() >= Duration::from_millis(40),
        "returned before capacity was back"
    );
    let _: &SystemClock = limiter.clock();
}

fn semaphore(max: u64, clock: &ManualClock) -> ConcurrencyLimiter<MemoryStore, ManualClock> {
    let config = Concurrency::new(max, "1 s").unwrap();
    ConcurrencyLimiter::with_parts(config, MemoryStore::new(), clock.clone(), "jobs:")
}

#[test]
fn permits_are_released_on_drop_and_by_release() {
    let clock = ManualClock::new(T0);
    let limiter = semaphore(2, &clock);
    let first = limiter.acquire("k").unwrap().permit().expect("free slot");
    let second = limiter.acquire("k").unwrap().permit().expect("free slot");
    assert_ne!(first.id(), second.id());
    match limiter.acquire("k").unwrap() {
        Acquire::Denied(d) => assert_eq!((d.remaining, d.retry_after_ms), (0, 1000)),
        Acquire::Granted(_) => panic!("only two slots"),
    }
    drop(first);
    assert_eq!(limiter.peek("k").unwrap().remaining, 1);
    assert!(second.release().unwrap(), "was still held");
    assert_eq!(limiter.peek("k").unwrap().remaining, 2);
}

#[test]
fn leases_expire_and_can_be_extended() {
    let clock = ManualClock::new(T0);
    let limiter = semaphore(1, &clock);
    let mut held = limiter.acquire("k").unwrap().permit().unwrap();
    assert_eq!(held.expires_at_ms(), T0 + 1000);
    clock.advance(900);
    assert!(held.extend(Duration::from_secs(2)).unwrap());
    assert_eq!(held.expires_at_ms(), T0 + 2900);
    clock.advance(1500);
    assert!(
        limiter.acquire("k").unwrap().permit().is_none(),
        "extended lease still held"
    );
    clock.advance(500);
    // The holder died (never released): its lease has expired.
    let next = limiter
        .acquire("k")
        .unwrap()
        .permit()
        .expect("expired lease frees its slot");
    assert!(
        !held.extend(Duration::ZERO).unwrap(),
        "an expired lease cannot be extended"
    );
    std::mem::forget(held);
    drop(next);
}

#[test]
fn acquire_wait_until_a_lease_expires_or_the_deadline() {
    let clock = ManualClock::new(T0);
    let limiter = semaphore(1, &clock);
    std::mem::forget(limiter.acquire("k").unwrap().permit().unwrap()); // a holder that dies
    assert!(limiter
        .acquire_wait("k", Duration::from_millis(500))
        .unwrap()
        .permit()
        .is_none());
    let permit = limiter
        .acquire_wait("k", Duration::from_secs(2))
        .unwrap()
        .permit();
    assert!(permit.is_some());
    assert!(clock.now_ms() >= T0 + 1000);
}

#[test]
fn acquire_wait_wakes_when_another_thread_releases() {
    let limiter = ConcurrencyLimiter::new(Concurrency::new(1, "1 m").unwrap());
    let held = limiter.acquire("k").unwrap().permit().unwrap();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        drop(held);
    });
    let permit = limiter
        .acquire_wait("k", Duration::from_secs(5))
        .unwrap()
        .permit();
    assert!(
        permit.is_some(),
        "granted long before the one-minute lease expired"
    );
    releaser.join().unwrap();
}

#[test]
fn acquire_async_polls_with_the_given_timer() {
    let clock = ManualClock::new(T0);
    let limiter = semaphore(1, &clock);
    std::mem::forget(limiter.acquire("k").unwrap().permit().unwrap());
    let sleep = |d: Duration| {
        clock.advance(d.as_millis() as u64);
        std::future::ready(())
    };
    let granted = block_on(limiter.acquire_async("k", Duration::from_secs(3), sleep)).unwrap();
    assert!(granted.permit().is_some());
    assert!(clock.now_ms() >= T0 + 1000);
}

#[test]
fn remaining_writes_nothing_unlike_a_cost_0_call() {
    // A new bucket starting empty: a cost-0 call starts its refill clock,
    // a `remaining` query does not.
    let clock = ManualClock::new(T0);
    let alg = TokenBucket::new(5, 1, "1 s")
        .unwrap()
        .with_initial(0)
        .unwrap();
    let limiter = Limiter::new(alg).with_clock(clock.clone());
    assert_eq!(limiter.remaining("query").unwrap().remaining, 0);
    assert_eq!(limiter.limit_with_cost("read", 0).unwrap().remaining, 0);
    clock.advance(3_000);
    assert_eq!(
        limiter.remaining("query").unwrap().remaining,
        0,
        "still new"
    );
    assert_eq!(
        limiter.remaining("read").unwrap().remaining,
        3,
        "refilling since the read"
    );
}

/// `metrics` counts what `limit` and friends decided, across clones; reads
/// are not decisions; nothing is counted unless asked for.
#[test]
fn metrics_count_decisions_across_clones() {
    use edgelimit::{FailurePolicy, Metrics};
    let limiter = Limiter::new(edgelimit::FixedWindow::new(2, "1 m").unwrap()).with_metrics();
    let clone = limiter.clone();
    for _ in 0..3 {
        limiter.limit("a").unwrap();
    }
    clone.limit("b").unwrap();
    limiter.remaining("a").unwrap();
    assert!(limiter.limit_with_cost("a", 9).is_err());
    let counted = clone.metrics().unwrap();
    assert_eq!(
        (
            counted.admitted,
            counted.denied,
            counted.errors,
            counted.store_failures
        ),
        (3, 1, 1, 0)
    );
    assert_eq!(Some(counted), limiter.metrics());
    let uncounted = Limiter::new(edgelimit::FixedWindow::new(2, "1 m").unwrap());
    uncounted.limit("a").unwrap();
    assert_eq!(uncounted.metrics(), None);
    // A failing store decided by the failure policy.
    let store = edgelimit::store::RedisRestStore::with_options(
        "http://127.0.0.1:9",
        "t",
        edgelimit::store::RestOptions {
            retries: 0,
            ..Default::default()
        },
    )
    .unwrap();
    let open = Limiter::new(edgelimit::FixedWindow::new(2, "1 m").unwrap())
        .with_store(store)
        .with_failure_policy(FailurePolicy::Open)
        .with_metrics();
    assert!(open.limit("x").unwrap().allowed);
    let counted: Metrics = open.metrics().unwrap();
    assert_eq!((counted.admitted, counted.store_failures), (1, 1));
}

#[test]
fn ids_longer_than_the_bound_are_typed_errors_that_change_nothing() {
    let limiter = Limiter::new(FixedWindow::new(2, "1 m").unwrap());
    let long = "x".repeat(DEFAULT_MAX_ID_BYTES + 1);
    let error = limiter.limit(&long).unwrap_err();
    assert_eq!(
        error,
        Error::IdTooLong {
            len: DEFAULT_MAX_ID_BYTES + 1,
            max: DEFAULT_MAX_ID_BYTES
        }
    );
    assert!(limiter.remaining(&long).is_err());
    assert!(limiter.reset(&long).is_err());
    assert!(limiter.store().is_empty(), "nothing was stored");
    // The bound is in bytes: 400 three-byte characters are 1200 bytes.
    assert!(limiter.limit(&"€".repeat(400)).is_err());
    assert!(
        limiter
            .limit(&"x".repeat(DEFAULT_MAX_ID_BYTES))
            .unwrap()
            .allowed
    );
    // In a batch, a bad id fails alone.
    let answers = limiter.limit_many(&[("a", 1), (long.as_str(), 1), ("a", 1)]);
    assert!(answers[0].as_ref().unwrap().allowed);
    assert!(matches!(answers[1], Err(Error::IdTooLong { .. })));
    assert_eq!(answers[2].as_ref().unwrap().remaining, 0);
    // A failure policy never turns a bad id into a decision.
    let open = Limiter::new(FixedWindow::new(2, "1 m").unwrap())
        .with_failure_policy(edgelimit::FailurePolicy::Open)
        .with_max_id_bytes(4);
    assert!(open.limit("12345").is_err());
    assert!(open.limit("1234").unwrap().allowed);
}

#[test]
fn semaphore_ids_longer_than_the_bound_are_typed_errors() {
    let jobs = ConcurrencyLimiter::new(Concurrency::new(1, "1 m").unwrap());
    let long = "x".repeat(DEFAULT_MAX_ID_BYTES + 1);
    assert!(matches!(jobs.acquire(&long), Err(Error::IdTooLong { .. })));
    assert!(matches!(jobs.peek(&long), Err(Error::IdTooLong { .. })));
    assert!(matches!(jobs.reset(&long), Err(Error::IdTooLong { .. })));
    assert!(matches!(jobs.acquire("ok"), Ok(Acquire::Granted(_))));
}
