//! A Redis crash and restart with persistence on: no lease lost or counted
//! twice, calls during the outage fail promptly with a typed error.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use edgelimit::algorithm::{LeaseOp, LeaseOutcome};
use edgelimit::store::{RedisRestStore, RestOptions, TimeSource};
use edgelimit::{Concurrency, Error, StoreError};
use testkit::gateway::Gateway;
use testkit::redis::Redis;

use crate::leases::*;
use crate::setup::*;

/// What the restart test's threads saw.
#[derive(Default)]
pub(crate) struct Tally {
    /// Known-held intervals, as in the cross-process test.
    pub(crate) spans: Vec<(u64, u64)>,
    /// Failed calls, with how long each took.
    pub(crate) failures: Vec<(StoreError, Duration)>,
    pub(crate) granted: u64,
    pub(crate) denied: u64,
}

pub(crate) const RESTART_MAX: u64 = 5;

/// Short timeouts, so that calls during the outage end soon.
pub(crate) fn outage_options() -> RestOptions {
    RestOptions {
        timeout: Duration::from_millis(1_000),
        retries: 2,
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        time: TimeSource::Redis,
        ..RestOptions::default()
    }
}

/// The longest a failing call may take: every attempt timing out, plus the
/// longest backoffs.
pub(crate) fn outage_bound() -> Duration {
    let o = outage_options();
    o.timeout * (o.retries + 1) + o.backoff_max * o.retries + Duration::from_millis(500)
}

/// Runs `op` until it gets an answer, by sending the same operation (same
/// lease id: idempotent) again after each failure. Returns the answer and
/// whether some failed attempt may have taken effect.
pub(crate) fn until_answered(
    store: &RedisRestStore,
    config: &Concurrency,
    op: LeaseOp,
    tally: &mut Tally,
) -> ((LeaseOutcome, u64), bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut maybe_applied = false;
    loop {
        let started = Instant::now();
        match lease_op(store, "restart:", config, op) {
            Ok(answer) => return (answer, maybe_applied),
            Err(Error::Store(e)) => {
                maybe_applied |= !e.surely_not_applied();
                tally.failures.push((e, started.elapsed()));
            }
            Err(e) => panic!("{op:?}: {e}"),
        }
        assert!(Instant::now() < deadline, "{op:?}: no answer for 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Acquire, hold, extend, release, retrying each step with the same id
/// through failures, until `stop`.
pub(crate) fn lease_worker(url: &str, thread: u64, stop: &AtomicBool) -> Tally {
    let store = store(url, outage_options());
    let config = Concurrency::new(RESTART_MAX, "30 s").unwrap();
    let mut rng = Rng::seeded(thread);
    let mut tally = Tally::default();
    for n in 0..MAX_CALLS_PER_THREAD as u64 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let id = (thread + 1) << 32 | n;
        let acquire = LeaseOp::Acquire { id, ttl_ms: 0 };
        let ((outcome, _), _) = until_answered(&store, &config, acquire, &mut tally);
        let Some(expires_at) = outcome.expires_at_ms.filter(|_| outcome.allowed) else {
            tally.denied += 1;
            std::thread::sleep(Duration::from_millis(2 + rng.below(5)));
            continue;
        };
        tally.granted += 1;
        let acquired_at = expires_at - config.lease_ms();
        std::thread::sleep(Duration::from_millis(2 + rng.below(8)));
        let extend = LeaseOp::Extend { id, ttl_ms: 0 };
        let ((extended, _), _) = until_answered(&store, &config, extend, &mut tally);
        assert!(extended.allowed, "lease {id} was lost before its release");
        let held_at = extended.expires_at_ms.unwrap() - config.lease_ms();
        tally.spans.push((acquired_at, held_at));
        let ((released, _), maybe_applied) =
            until_answered(&store, &config, LeaseOp::Release { id }, &mut tally);
        assert!(
            released.allowed || maybe_applied,
            "lease {id} was gone at its release"
        );
    }
    tally
}

#[test]
fn leases_survive_a_redis_restart() {
    let _heavy = one_at_a_time();
    let mut redis = Redis::start_persistent();
    let gateway = Gateway::start(redis.port);
    let url = gateway.url();
    let config = Concurrency::new(RESTART_MAX, "30 s").unwrap();
    let store = store(&url, outage_options());
    let op = |op| lease_op(&store, "restart:", &config, op);

    // Three long leases held across the restart; two slots left to fight over.
    let held: [u64; 3] = [1, 2, 3];
    let mut spans = Vec::new();
    let mut held_since = Vec::new();
    for id in held {
        let (o, _) = op(LeaseOp::Acquire { id, ttl_ms: 0 }).unwrap();
        assert!(o.allowed, "slot for {id}");
        held_since.push(o.expires_at_ms.unwrap() - config.lease_ms());
    }

    let stop = AtomicBool::new(false);
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let (url, stop) = (&url, &stop);
                s.spawn(move || lease_worker(url, t, stop))
            })
            .collect();
        let guard = StopOnDrop(&stop);
        std::thread::sleep(Duration::from_millis(800));

        // A crash: SIGKILL, nothing but the append-only file survives.
        redis.stop();
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        let during = op(LeaseOp::Acquire { id: 99, ttl_ms: 0 });
        let took = started.elapsed();
        assert!(
            matches!(
                during,
                Err(Error::Store(
                    StoreError::Unavailable(_)
                        | StoreError::Unreachable(_)
                        | StoreError::Timeout { .. }
                ))
            ),
            "an acquire while Redis is down: {during:?}"
        );
        assert!(took <= outage_bound(), "a failing call took {took:?}");
        std::thread::sleep(Duration::from_millis(300));
        redis.restart();

        std::thread::sleep(Duration::from_millis(1_200));
        drop(guard);
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });

    let (mut granted, mut denied, mut failures) = (0, 0, Vec::new());
    for tally in tallies {
        granted += tally.granted;
        denied += tally.denied;
        failures.extend(tally.failures);
        spans.extend(tally.spans);
    }
    let mut kinds = BTreeMap::new();
    for (error, _) in &failures {
        let kind = format!("{error:?}");
        *kinds
            .entry(kind[..kind.find('(').unwrap_or(kind.len())].to_owned())
            .or_insert(0) += 1;
    }
    eprintln!("{granted} granted, {denied} denied, failed calls: {kinds:?}");
    assert!(!failures.is_empty(), "no call saw the outage");
    for (error, took) in &failures {
        assert!(error.is_transient(), "not a backend outage: {error:?}");
        assert!(*took <= outage_bound(), "a failing call took {took:?}");
    }
    assert!(granted >= 10 && denied > 0, "too little contention");

    // The acquire made during the outage never took effect.
    let (o, _) = op(LeaseOp::Release { id: 99 }).unwrap();
    assert!(
        !o.allowed,
        "the acquire sent while Redis was down was applied"
    );
    // The leases held across the restart are still there and still counted.
    for (&id, &since) in held.iter().zip(&held_since) {
        let (o, now) = op(LeaseOp::Extend { id, ttl_ms: 0 }).unwrap();
        assert!(o.allowed, "lease {id} did not survive the restart");
        spans.push((since, now.max(since)));
    }
    let (peeked, _) = op(LeaseOp::Peek).unwrap();
    assert_eq!(
        peeked.decision.remaining,
        RESTART_MAX - held.len() as u64,
        "the workers released every lease they took, exactly once"
    );
    let mut fill = Vec::new();
    for id in 100..110 {
        let (o, _) = op(LeaseOp::Acquire { id, ttl_ms: 0 }).unwrap();
        if !o.allowed {
            break;
        }
        fill.push(id);
    }
    assert_eq!(fill.len() as u64, RESTART_MAX - held.len() as u64);
    for id in held.into_iter().chain(fill) {
        let (o, _) = op(LeaseOp::Release { id }).unwrap();
        assert!(o.allowed, "release of {id}");
    }
    assert_eq!(op(LeaseOp::Peek).unwrap().0.decision.remaining, RESTART_MAX);
    let most = max_overlap(&spans);
    assert!(most as u64 <= RESTART_MAX, "{most} leases held at once");
}

/// Sets the flag when dropped, so worker threads end even on a panic.
pub(crate) struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
