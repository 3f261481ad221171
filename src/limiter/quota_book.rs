//! A limiter's quota leases: units its store granted beyond calls' costs,
//! spent here without a request until they run out or their window ends.
//!
//! Exactness: every unit spent here was counted by the store in the window
//! it was taken from, and is spent before that window ends on the store's
//! clock, so no more than the limit is ever admitted. What a lease costs is
//! under-admission: units held here and not spent are unavailable to other
//! clients until they come back (with this limiter's next request for the
//! id, or [`Limiter::return_quota`](super::Limiter::return_quota)) or their
//! window ends: at most `units − 1` per client and id at any time.
//!
//! Time: a grant's end is on the store's clock (Redis's `TIME`). A local
//! time is mapped to the latest store time it could be: the offset of the
//! latest reply, measured from the moment its request was prepared (the
//! store decided no earlier), is an upper bound. Overestimating the store's
//! time only ends a lease early.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use crate::algorithm::{QuotaGrant, QuotaRefund};
use crate::store::QuotaDecision;
use crate::Decision;

/// Ids a book holds leases for at most: a grant beyond that is dropped
/// (its units are then only unspent).
const MAX_IDS: usize = 10_000;

/// The unspent leases of one limiter, by id.
pub(crate) struct QuotaBook {
    /// Units a request takes in all.
    units: u64,
    held: Mutex<Leases>,
    /// The store's clock minus ours, at most.
    offset_ms: AtomicI64,
}

/// Leases by id, and the ids with a request taking one in flight (since
/// when, local time).
#[derive(Default)]
struct Leases {
    by_id: HashMap<Box<str>, Held>,
    asking: HashMap<Box<str>, u64>,
}

/// How long a request taking a lease is waited for before another may take
/// one (its answer may never be learnt: a failure the caller did not
/// report).
const ASKING_MS: u64 = 10_000;

/// One id's lease and what the store last said of its window.
#[derive(Debug, Clone, Copy)]
struct Held {
    /// Its units are the ones left.
    grant: QuotaGrant,
    /// The decision that granted it, `remaining` being the window's.
    decision: Decision,
}

/// Where a call's answer comes from.
pub(crate) enum Spend {
    /// The lease paid for it.
    Local(Decision),
    /// The store decides: take `want` units in all (the cost alone while
    /// another request of the id is taking a lease), giving back `refund`.
    Ask {
        want: u64,
        refund: Option<QuotaRefund>,
    },
}

impl std::fmt::Debug for QuotaBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaBook")
            .field("units", &self.units)
            .field("ids", &self.lock().by_id.len())
            .finish()
    }
}

impl QuotaBook {
    /// A book whose requests take `units` each.
    pub(crate) fn new(units: u64) -> Self {
        Self {
            units,
            held: Mutex::new(Leases::default()),
            offset_ms: AtomicI64::new(0),
        }
    }

    /// Units a request takes in all.
    pub(crate) fn units(&self) -> u64 {
        self.units
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Leases> {
        // A panic elsewhere cannot leave a lease half-written.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn store_time(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add_signed(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Spends `cost` units of `id`'s lease at local time `now_ms` if it
    /// holds them and its window is on; else ends the lease, and what is
    /// left of it goes back with the request. Concurrent calls that find no
    /// lease while one is being taken ask for their cost alone: leases
    /// taken at once would hold more unspent than one. A read (`cost` 0)
    /// spends nothing and gives nothing back.
    pub(crate) fn spend(&self, id: &str, now_ms: u64, cost: u64) -> Spend {
        if cost == 0 {
            return Spend::Ask {
                want: 0,
                refund: None,
            };
        }
        let at = self.store_time(now_ms);
        let mut leases = self.lock();
        let refund = match leases.by_id.get_mut(id) {
            Some(lease) if at < lease.grant.expires_at_ms && lease.grant.units >= cost => {
                lease.grant.units -= cost;
                let mut decision = lease.decision;
                decision.remaining += lease.grant.units;
                if lease.grant.units == 0 {
                    leases.by_id.remove(id);
                }
                return Spend::Local(decision);
            }
            Some(_) => leases.by_id.remove(id).map(|lease| lease.refund()),
            None => None,
        };
        let taking = leases
            .asking
            .get(id)
            .is_some_and(|&since| now_ms.saturating_sub(since) < ASKING_MS);
        if taking {
            return Spend::Ask { want: cost, refund };
        }
        leases.asking.insert(id.into(), now_ms);
        Spend::Ask {
            want: self.units,
            refund,
        }
    }

    /// The request for `id` that was to take a lease failed or was not
    /// sent: the next call may take one.
    pub(crate) fn ask_ended(&self, id: &str) {
        self.lock().asking.remove(id);
    }

    /// [`learn`](Self::learn) from an answer, or [`ask_ended`](Self::ask_ended).
    pub(crate) fn settle<E>(
        &self,
        id: &str,
        sent_ms: u64,
        answer: Result<QuotaDecision, E>,
    ) -> Result<Decision, E> {
        match answer {
            Ok(answer) => Ok(self.learn(id, sent_ms, answer)),
            Err(error) => {
                self.ask_ended(id);
                Err(error)
            }
        }
    }

    /// Learns from the store's `answer` to a request for `id` prepared at
    /// local time `sent_ms`, keeps its grant, and returns the decision the
    /// caller sees: `remaining` counts this limiter's unspent units.
    pub(crate) fn learn(&self, id: &str, sent_ms: u64, answer: QuotaDecision) -> Decision {
        let offset = i64::try_from(answer.at_ms).unwrap_or(i64::MAX)
            - i64::try_from(sent_ms).unwrap_or(i64::MAX);
        self.offset_ms.store(offset, Ordering::Relaxed);
        let mut decision = answer.decision;
        let mut leases = self.lock();
        leases.asking.remove(id);
        let Some(grant) = answer.grant else {
            return decision;
        };
        let held = &mut leases.by_id;
        // Concurrent requests of one id each bring a grant: those of one
        // window add up; a grant of a later window replaces an earlier one,
        // and one of an earlier window comes too late to spend.
        match held.get_mut(id) {
            Some(lease) if lease.grant.window_start_ms == grant.window_start_ms => {
                lease.grant.units += grant.units;
                lease.decision = decision;
                decision.remaining += lease.grant.units;
                return decision;
            }
            Some(lease) if lease.grant.window_start_ms > grant.window_start_ms => {
                return decision;
            }
            _ => {}
        }
        if held.len() >= MAX_IDS && !held.contains_key(id) {
            let at = self.store_time(sent_ms);
            held.retain(|_, lease| at < lease.grant.expires_at_ms);
            if held.len() >= MAX_IDS {
                return decision;
            }
        }
        held.insert(id.into(), Held { grant, decision });
        decision.remaining += grant.units;
        decision
    }

    /// Units of `id`'s lease still to spend at local time `now_ms`.
    pub(crate) fn unspent(&self, id: &str, now_ms: u64) -> u64 {
        let at = self.store_time(now_ms);
        self.lock()
            .by_id
            .get(id)
            .filter(|lease| at < lease.grant.expires_at_ms)
            .map_or(0, |lease| lease.grant.units)
    }

    /// Drops `id`'s lease (its state was removed).
    pub(crate) fn forget(&self, id: &str) {
        self.lock().by_id.remove(id);
    }

    /// Ends every lease: the ids and what each gives back.
    pub(crate) fn drain(&self) -> Vec<(Box<str>, QuotaRefund)> {
        self.lock()
            .by_id
            .drain()
            .map(|(id, lease)| (id, lease.refund()))
            .collect()
    }

    /// Ends one lease, if any: its id and what it gives back.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub(crate) fn take_one(&self) -> Option<(Box<str>, QuotaRefund)> {
        let held = &mut self.lock().by_id;
        let id = held.keys().next()?.clone();
        let lease = held.remove(&id)?;
        Some((id, lease.refund()))
    }
}

impl Held {
    /// What it gives back when it ends (every lease held has units left:
    /// one spent to the last unit is dropped).
    fn refund(&self) -> QuotaRefund {
        QuotaRefund {
            window_start_ms: self.grant.window_start_ms,
            units: self.grant.units,
        }
    }
}
