//! Concurrency leases: never more than `max` held across processes.

use std::time::Duration;

use edgelimit::{Acquire, Concurrency, ConcurrencyLimiter, SystemClock};

use crate::children::*;
use crate::setup::*;

pub(crate) const LEASE_MAX: u64 = 5;
pub(crate) const LEASE_MS: u64 = 2_000;

/// Acquires, holds briefly, extends (which returns the time it was still
/// held at), releases; one line per granted lease:
/// `lease <acquired at> <confirmed held at> <occupancy> <extended> <released>`,
/// and `denied <count>` per thread.
pub(crate) fn child_leases() {
    let url = env(URL_ENV);
    let prefix = env(PREFIX_ENV);
    let limiter = ConcurrencyLimiter::with_parts(
        Concurrency::new(LEASE_MAX, Duration::from_millis(LEASE_MS)).unwrap(),
        store(&url, hammer_options()),
        SystemClock,
        prefix,
    );
    let lease = Duration::from_millis(LEASE_MS);
    run_threads(|thread, deadline| {
        let mut rng = Rng::seeded(thread as u64);
        let (mut lines, mut denied) = (Vec::new(), 0u64);
        for _ in 0..MAX_CALLS_PER_THREAD {
            if unix_ms() >= deadline {
                break;
            }
            match limiter.acquire_for(HOT_KEY, lease) {
                Ok(Acquire::Granted(mut permit)) => {
                    // A fresh id: the expiry is the acquire's time + lease.
                    let acquired_at = permit.expires_at_ms() - LEASE_MS;
                    let occupancy = LEASE_MAX - permit.decision().remaining;
                    std::thread::sleep(Duration::from_millis(2 + rng.below(10)));
                    let extended = permit.extend(lease);
                    let held_at = permit.expires_at_ms() - LEASE_MS;
                    let released = permit.release();
                    lines.push(match (extended, released) {
                        (Ok(extended), Ok(released)) => format!(
                            "lease {acquired_at} {held_at} {occupancy} {} {}",
                            u8::from(extended),
                            u8::from(released)
                        ),
                        (Err(e), _) | (_, Err(e)) => format!("error {e}"),
                    });
                }
                Ok(Acquire::Denied(_)) => {
                    denied += 1;
                    std::thread::sleep(Duration::from_millis(1 + rng.below(3)));
                }
                Err(e) => lines.push(format!("error {e}")),
            }
        }
        lines.push(format!("denied {denied}"));
        lines
    });
}

/// The most of the half-open intervals `[from, to)` covering one instant.
pub(crate) fn max_overlap(intervals: &[(u64, u64)]) -> usize {
    let mut events: Vec<(u64, i64)> = intervals
        .iter()
        .filter(|(from, to)| from < to)
        .flat_map(|&(from, to)| [(from, 1), (to, -1)])
        .collect();
    // At one time, ends before starts: the intervals are half-open.
    events.sort();
    let (mut held, mut most) = (0i64, 0i64);
    for (_, step) in events {
        held += step;
        most = most.max(held);
    }
    most as usize
}

/// A lease is known to be held from the time of its acquire (`at`, the
/// script's clock, which never goes back) until a later extend confirmed it
/// live (`held_at`); its release comes after. Any instant strictly inside
/// such intervals sees all of them held at once, so more than `max`
/// overlapping is a slot handed out twice. Equal times are not ordered, so
/// an interval ending at a millisecond does not meet one starting then.
#[test]
fn leases_never_exceed_max_across_processes() {
    let _heavy = one_at_a_time();
    let backend = Backend::start();
    let url = backend.gateway.url();
    let lines = run_children("leases", &url, "leases:", 2_500);
    let mut intervals = Vec::new();
    let mut denied = 0;
    for line in &lines {
        assert!(!line.starts_with("error"), "a call failed: {line}");
        let f = fields(line);
        match f[..] {
            [count] if line.starts_with("denied") => denied += count,
            [acquired_at, held_at, occupancy, extended, released] => {
                assert_eq!(extended, 1, "a held lease was lost: {line}");
                assert_eq!(released, 1, "a held lease was lost: {line}");
                assert!(held_at >= acquired_at, "{line}");
                assert!(
                    (1..=LEASE_MAX).contains(&occupancy),
                    "occupancy after an acquire: {line}"
                );
                intervals.push((acquired_at, held_at, occupancy));
            }
            _ => panic!("bad report {line:?}"),
        }
    }
    eprintln!("{} leases granted, {denied} denied", intervals.len());
    assert!(
        intervals.len() >= 100 && denied > 0,
        "too little contention: {} granted, {denied} denied",
        intervals.len()
    );
    let spans: Vec<(u64, u64)> = intervals.iter().map(|&(a, h, _)| (a, h)).collect();
    let most = max_overlap(&spans);
    assert!(most as u64 <= LEASE_MAX, "{most} leases held at once");
    assert_eq!(
        most as u64, LEASE_MAX,
        "32 threads competing for {LEASE_MAX} slots never held them all"
    );
    // The occupancy an acquire reports counts at least itself and every
    // lease acquired in an earlier millisecond and confirmed in a later one.
    for &(at, _, occupancy) in &intervals {
        let surely_held = spans.iter().filter(|&&(a, h)| a < at && at < h).count() as u64;
        assert!(
            occupancy > surely_held,
            "an acquire at {at} reported {occupancy} held, but {surely_held} others were"
        );
    }
    // Every lease was released: all slots are free, none counted twice.
    let limiter = ConcurrencyLimiter::with_parts(
        Concurrency::new(LEASE_MAX, Duration::from_millis(LEASE_MS)).unwrap(),
        store(&url, hammer_options()),
        SystemClock,
        "leases:",
    );
    assert_eq!(limiter.peek(HOT_KEY).unwrap().remaining, LEASE_MAX);
}
