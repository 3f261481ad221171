//! Observed rate decisions replayed through the in-memory store.

use std::collections::BTreeMap;

use edgelimit::algorithm::Algorithm;
use edgelimit::{Limiter, ManualClock, MemoryStore};

use crate::setup::*;

/// One observed rate decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Observed {
    pub(crate) now: u64,
    pub(crate) allowed: bool,
    pub(crate) remaining: u64,
    pub(crate) reset_ms: u64,
    pub(crate) retry_after_ms: u64,
}

/// Decisions sharing one millisecond of Redis time, with their time.
pub(crate) fn by_millisecond(observed: &[Observed]) -> BTreeMap<u64, Vec<Observed>> {
    let mut groups: BTreeMap<u64, Vec<Observed>> = BTreeMap::new();
    for o in observed {
        groups.entry(o.now).or_default().push(*o);
    }
    groups
}

/// Replays the decisions through the in-memory store at the times Redis
/// made them. Scripts run one at a time and Redis's clock does not go back,
/// so sorted by time they are in the order they ran, except within one
/// millisecond, where every call (cost 1, same time) is alike: each
/// millisecond's decisions must be, as a multiset, what the in-memory store
/// answers to as many calls at that time.
pub(crate) fn replay_in_memory<A: Algorithm + Clone>(
    name: &str,
    algorithm: &A,
    observed: &[Observed],
) {
    let clock = ManualClock::new(0);
    let memory = Limiter::new(algorithm.clone())
        .with_store(MemoryStore::new())
        .with_clock(clock.clone());
    for (now, group) in by_millisecond(observed) {
        clock.set(now);
        let mut expected: Vec<Observed> = (0..group.len())
            .map(|_| {
                let d = memory.limit(HOT_KEY).unwrap();
                Observed {
                    now,
                    allowed: d.allowed,
                    remaining: d.remaining,
                    reset_ms: d.reset_ms,
                    retry_after_ms: d.retry_after_ms,
                }
            })
            .collect();
        let mut got = group;
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "{name}: the decisions at {now} ms");
    }
}

/// Admitted counts up to and including each millisecond, in time order.
pub(crate) fn admitted_by_time(observed: &[Observed]) -> Vec<(u64, u64)> {
    let mut total = 0;
    by_millisecond(observed)
        .into_iter()
        .map(|(now, group)| {
            total += group.iter().filter(|o| o.allowed).count() as u64;
            (now, total)
        })
        .collect()
}
