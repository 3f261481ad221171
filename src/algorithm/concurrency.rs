//! Concurrency: a semaphore of expiring leases.

use super::contract::clamp_time;
use super::limits;
use super::twin::{MAX_TICKET_WAITERS, TICKET_MS};
use crate::{ConfigError, Decision, IntoMillis};

/// At most `max` leases held at once per key. A lease has an id chosen by
/// the caller and an expiry; an expired lease frees its slot, so a holder
/// that dies cannot keep a slot forever.
///
/// Acquiring with an id that already holds a live lease succeeds without
/// taking a second slot (and pushes its expiry out), so retrying an acquire
/// whose answer was lost is safe.
///
/// Waiters queue fairly across processes: a waiting caller takes a number
/// on its first denied try (a bakery's ticket), and each waiting owner (a
/// limiter in one process) keeps one queue ticket per key, holding its
/// oldest waiter's number and how many wait behind it. A free slot goes to
/// the owner with the oldest live ticket: an acquire is granted only while
/// the waiters of tickets ahead of it leave a slot free. A ticket lives
/// [`TICKET_MS`] past its owner's last try, so a dead process stops holding
/// its place soon; its owner removes it when it stops waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concurrency {
    max: u64,
    lease_ms: u64,
}

/// One held slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The holder's id.
    pub id: u64,
    /// When the slot frees itself unless extended or released.
    pub expires_at_ms: u64,
}

/// A waiting owner's place in a key's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// The owner (a limiter in one process), never 0.
    pub owner: u64,
    /// Its oldest waiter's number: lower goes first.
    pub number: u64,
    /// How many of its callers wait (at least 1).
    pub waiters: u64,
    /// When the place is lost unless the owner tries again.
    pub expires_at_ms: u64,
}

/// Per-key state: the live leases, at most `max`, and the waiters' queue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConcurrencyState {
    /// The leases, in no particular order.
    pub leases: Vec<Lease>,
    /// The queue: at most one ticket per owner, in no particular order.
    pub tickets: Vec<Ticket>,
    /// The last number handed to a waiter.
    pub last_number: u64,
    /// The latest time the state was evaluated at: a clock going back is
    /// treated as this time, so an expired lease's slot is not handed out
    /// twice.
    pub latest_ms: u64,
}

/// What to do with a key's leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseOp {
    /// Take a slot for `id` for `ttl_ms`, behind every queued waiter: a
    /// free slot the queue's waiters need is not taken.
    Acquire {
        /// The lease id.
        id: u64,
        /// Lease duration.
        ttl_ms: u64,
    },
    /// Take a free slot for `id` for `ttl_ms`, ignoring the queue (the
    /// opt-out from fairness).
    AcquireUnfair {
        /// The lease id.
        id: u64,
        /// Lease duration.
        ttl_ms: u64,
    },
    /// A waiter's try: take a slot for `id` for `ttl_ms` if the tickets of
    /// other owners ahead of its owner leave one free; else queue. The
    /// owner stands at the lowest of `number`, `oldest` and its ticket's
    /// number (any of its waiters may be the one trying: the first in its
    /// own queue, which need not have the lowest number). Granted, the
    /// owner's ticket moves to `next`, its other waiters' oldest number, or
    /// goes when `next` is 0. Denied, the caller gets a number if it has
    /// none (`number` 0: it then stands behind every ticket, its owner's
    /// too), and the owner's ticket is kept for [`TICKET_MS`] more with the
    /// lowest of its numbers and `waiters`.
    Wait {
        /// The lease id.
        id: u64,
        /// Lease duration.
        ttl_ms: u64,
        /// The waiting limiter, not 0.
        owner: u64,
        /// The waiter's number from an earlier try, or 0.
        number: u64,
        /// The lowest number among the owner's waiters, or 0.
        oldest: u64,
        /// The lowest number among the owner's other waiters, or 0.
        next: u64,
        /// How many callers of `owner` wait for the key.
        waiters: u64,
    },
    /// `owner` stops waiting: its ticket goes.
    Leave {
        /// The waiting limiter.
        owner: u64,
    },
    /// Give back `id`'s slot.
    Release {
        /// The lease id.
        id: u64,
    },
    /// Move `id`'s expiry to `ttl_ms` from now.
    Extend {
        /// The lease id.
        id: u64,
        /// New duration from now.
        ttl_ms: u64,
    },
    /// Report occupancy without changing anything.
    Peek,
}

/// The answer to a [`LeaseOp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseOutcome {
    /// For `Acquire`: whether the slot was granted. For `Release` and
    /// `Extend`: whether the id held a live lease. For `Leave`: whether the
    /// owner had a live ticket. For `Peek`: true.
    pub allowed: bool,
    /// Occupancy after the operation, as a decision: `limit` is `max`,
    /// `remaining` the free slots, `reset_ms` when every current lease will
    /// have expired, `retry_after_ms` (denied acquire) when the first one will.
    pub decision: Decision,
    /// The lease's expiry after `Acquire`/`Extend`, if it holds one.
    pub expires_at_ms: Option<u64>,
    /// Milliseconds the state must be kept (0: drop it).
    pub ttl_ms: u64,
    /// For a denied `Wait`: the waiter's number, to send with its next
    /// try. Otherwise 0.
    pub number: u64,
}

impl Concurrency {
    /// At most `max` concurrent leases, each lasting `lease` unless extended,
    /// e.g. `Concurrency::new(5, "30 s")`.
    pub fn new(max: u64, lease: impl IntoMillis) -> Result<Self, ConfigError> {
        let max = limits::nonzero("max", max)?;
        limits::at_most("max", max.into(), limits::MAX_LEASES.into())?;
        let lease_ms = limits::span("lease", lease.into_millis()?)?;
        Ok(Self { max, lease_ms })
    }

    /// The most leases held at once.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The default lease duration in milliseconds.
    pub fn lease_ms(&self) -> u64 {
        self.lease_ms
    }

    /// Applies `op` at `now_ms`. Pure: no clock, no I/O.
    ///
    /// A `ttl_ms` of 0 in `op` means the configured lease duration; a longer
    /// one than [`MAX_SPAN_MS`](limits::MAX_SPAN_MS) is capped there.
    pub fn apply(
        &self,
        state: &mut Option<ConcurrencyState>,
        now_ms: u64,
        op: LeaseOp,
    ) -> LeaseOutcome {
        let now_ms = clamp_time(now_ms);
        let lease_ms = |ttl_ms: u64| match ttl_ms {
            0 => self.lease_ms,
            ms => ms.min(limits::MAX_SPAN_MS),
        };
        let held = state.get_or_insert_with(ConcurrencyState::default);
        let at = held.latest_ms.max(now_ms);
        held.latest_ms = at;
        held.leases.retain(|l| l.expires_at_ms > at);
        held.tickets.retain(|t| t.expires_at_ms > at);
        let position = |id: u64| held.leases.iter().position(|l| l.id == id);
        let count = held.leases.len() as u64;
        // The queue's claim on free slots, for a caller of `owner` with
        // `number`: the waiters of the tickets ahead of it, and the earliest
        // of their expiries.
        let ahead = |owner: u64, number: u64| {
            let counted = held
                .tickets
                .iter()
                .filter(|t| number == 0 || (t.owner != owner && t.number < number));
            let waiters = counted.clone().map(|t| t.waiters).sum::<u64>();
            (waiters, counted.map(|t| t.expires_at_ms).min())
        };

        let mut blocking_ticket = None;
        let mut number = 0;
        let acquire = |held: &mut ConcurrencyState, id: u64, ttl_ms: u64, claim: u64| {
            let until = at + lease_ms(ttl_ms);
            match held.leases.iter().position(|l| l.id == id) {
                Some(i) => {
                    let lease = &mut held.leases[i];
                    lease.expires_at_ms = lease.expires_at_ms.max(until);
                    (true, Some(lease.expires_at_ms))
                }
                None if count + claim < self.max => {
                    held.leases.push(Lease {
                        id,
                        expires_at_ms: until,
                    });
                    (true, Some(until))
                }
                None => (false, None),
            }
        };
        let (allowed, expires_at_ms) = match op {
            LeaseOp::Acquire { id, ttl_ms } => {
                let (claim, first) = ahead(0, 0);
                blocking_ticket = first;
                acquire(held, id, ttl_ms, claim)
            }
            LeaseOp::AcquireUnfair { id, ttl_ms } => acquire(held, id, ttl_ms, 0),
            LeaseOp::Wait {
                id,
                ttl_ms,
                owner,
                number: given,
                oldest,
                next,
                waiters,
            } => {
                let lowest = |a: u64, b: u64| match (a, b) {
                    (0, b) => b,
                    (a, 0) => a,
                    (a, b) => a.min(b),
                };
                let mine = held.tickets.iter().position(|t| t.owner == owner);
                let position = match (given, mine) {
                    (0, _) => 0,
                    (n, Some(i)) => lowest(lowest(n, oldest), held.tickets[i].number),
                    (n, None) => lowest(n, oldest),
                };
                let (claim, first) = ahead(owner, position);
                blocking_ticket = first;
                let granted = acquire(held, id, ttl_ms, claim);
                let waiters = waiters.clamp(1, MAX_TICKET_WAITERS);
                let expires_at_ms = at + TICKET_MS;
                let ticket = match granted.0 {
                    true if next == 0 => None,
                    true => Some((next, (waiters - 1).max(1))),
                    false => {
                        number = match given {
                            0 => {
                                held.last_number += 1;
                                held.last_number
                            }
                            n => n,
                        };
                        let kept = mine.map_or(0, |i| held.tickets[i].number);
                        Some((lowest(lowest(number, oldest), kept), waiters))
                    }
                };
                match (ticket, mine) {
                    (None, Some(i)) => {
                        held.tickets.swap_remove(i);
                    }
                    (None, None) => {}
                    (Some((number, waiters)), Some(i)) => {
                        held.tickets[i] = Ticket {
                            owner,
                            number,
                            waiters,
                            expires_at_ms,
                        };
                    }
                    (Some((number, waiters)), None) => held.tickets.push(Ticket {
                        owner,
                        number,
                        waiters,
                        expires_at_ms,
                    }),
                }
                granted
            }
            LeaseOp::Leave { owner } => match held.tickets.iter().position(|t| t.owner == owner) {
                Some(i) => {
                    held.tickets.swap_remove(i);
                    (true, None)
                }
                None => (false, None),
            },
            LeaseOp::Release { id } => match position(id) {
                Some(i) => {
                    held.leases.swap_remove(i);
                    (true, None)
                }
                None => (false, None),
            },
            LeaseOp::Extend { id, ttl_ms } => match position(id) {
                Some(i) => {
                    let until = at + lease_ms(ttl_ms);
                    held.leases[i].expires_at_ms = until;
                    (true, Some(until))
                }
                None => (false, None),
            },
            LeaseOp::Peek => (true, None),
        };

        let last_expiry = held.leases.iter().map(|l| l.expires_at_ms).max();
        let first_expiry = held.leases.iter().map(|l| l.expires_at_ms).min();
        let last_ticket = held.tickets.iter().map(|t| t.expires_at_ms).max();
        let denied = matches!(
            op,
            LeaseOp::Acquire { .. } | LeaseOp::AcquireUnfair { .. } | LeaseOp::Wait { .. }
        ) && !allowed;
        // A denied caller may go when the first lease ends, or when a
        // ticket ahead of it lapses (its owner gone).
        let retry_at = match (first_expiry, blocking_ticket) {
            (Some(lease), Some(ticket)) => Some(lease.min(ticket)),
            (lease, ticket) => lease.or(ticket),
        };
        let decision = Decision {
            allowed: !denied,
            limit: self.max,
            remaining: self.max - held.leases.len() as u64,
            reset_ms: last_expiry.unwrap_or(now_ms),
            retry_after_ms: match (denied, retry_at) {
                (true, Some(first)) => first - now_ms,
                _ => 0,
            },
            reason: None,
        };
        let keep_until = last_expiry.max(last_ticket);
        let ttl_ms = keep_until.map_or(0, |last| last - now_ms);
        LeaseOutcome {
            allowed,
            decision,
            expires_at_ms,
            ttl_ms,
            number,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acquire(id: u64) -> LeaseOp {
        LeaseOp::Acquire { id, ttl_ms: 0 }
    }

    #[test]
    fn grants_up_to_max_then_denies_until_a_release() {
        let alg = Concurrency::new(2, "10 s").unwrap();
        let mut s = None;
        assert!(alg.apply(&mut s, 0, acquire(1)).allowed);
        let o = alg.apply(&mut s, 5, acquire(2));
        assert_eq!(
            (o.allowed, o.decision.remaining, o.expires_at_ms),
            (true, 0, Some(10_005))
        );
        let o = alg.apply(&mut s, 6, acquire(3));
        assert!(!o.allowed && !o.decision.allowed);
        assert_eq!(o.decision.retry_after_ms, 10_000 - 6);
        assert!(alg.apply(&mut s, 7, LeaseOp::Release { id: 1 }).allowed);
        assert!(alg.apply(&mut s, 8, acquire(3)).allowed);
    }

    #[test]
    fn expired_leases_free_their_slot() {
        let alg = Concurrency::new(1, "100ms").unwrap();
        let mut s = None;
        alg.apply(&mut s, 0, acquire(1));
        assert!(!alg.apply(&mut s, 99, acquire(2)).allowed);
        assert!(alg.apply(&mut s, 100, acquire(2)).allowed);
        let o = alg.apply(&mut s, 101, LeaseOp::Extend { id: 1, ttl_ms: 0 });
        assert!(!o.allowed, "an expired lease cannot be extended");
        assert!(!alg.apply(&mut s, 101, LeaseOp::Release { id: 1 }).allowed);
    }

    #[test]
    fn reacquire_is_idempotent_and_extend_moves_expiry() {
        let alg = Concurrency::new(1, "1 s").unwrap();
        let mut s = None;
        alg.apply(&mut s, 0, acquire(7));
        let o = alg.apply(&mut s, 500, acquire(7));
        assert_eq!(
            (o.allowed, o.expires_at_ms, o.decision.remaining),
            (true, Some(1500), 0)
        );
        let o = alg.apply(
            &mut s,
            600,
            LeaseOp::Extend {
                id: 7,
                ttl_ms: 5000,
            },
        );
        assert_eq!(
            (o.allowed, o.expires_at_ms, o.ttl_ms),
            (true, Some(5600), 5000)
        );
        assert!(!alg.apply(&mut s, 5599, acquire(8)).allowed);
    }

    #[test]
    fn empty_state_may_be_dropped() {
        let alg = Concurrency::new(3, "1 s").unwrap();
        let mut s = None;
        alg.apply(&mut s, 0, acquire(1));
        let o = alg.apply(&mut s, 10, LeaseOp::Release { id: 1 });
        assert_eq!((o.ttl_ms, o.decision.remaining), (0, 3));
        assert!(s.as_ref().unwrap().leases.is_empty());
        let o = alg.apply(&mut s, 10, LeaseOp::Peek);
        assert_eq!((o.allowed, o.decision.reset_ms), (true, 10));
    }

    #[test]
    fn clock_going_back_revives_no_slot() {
        let alg = Concurrency::new(1, "100ms").unwrap();
        let mut s = None;
        alg.apply(&mut s, 1000, acquire(1));
        let o = alg.apply(&mut s, 500, acquire(2));
        assert!(!o.allowed);
        assert_eq!(o.decision.retry_after_ms, 600);
        // The first lease expired at 1100; at 1200 a new holder takes the
        // slot, and a clock back at 1050 must not find a free slot.
        assert!(alg.apply(&mut s, 1200, acquire(3)).allowed);
        assert!(!alg.apply(&mut s, 1050, acquire(4)).allowed);
    }

    fn wait(id: u64, owner: u64, number: u64) -> LeaseOp {
        LeaseOp::Wait {
            id,
            ttl_ms: 0,
            owner,
            number,
            oldest: 0,
            next: 0,
            waiters: 1,
        }
    }

    #[test]
    fn a_free_slot_goes_to_the_oldest_ticket() {
        let alg = Concurrency::new(1, "10 s").unwrap();
        let mut s = None;
        assert!(alg.apply(&mut s, 0, acquire(9)).allowed);
        let a = alg.apply(&mut s, 1, wait(1, 100, 0));
        let b = alg.apply(&mut s, 2, wait(2, 200, 0));
        assert_eq!(
            (a.allowed, a.number, b.allowed, b.number),
            (false, 1, false, 2)
        );
        alg.apply(&mut s, 3, LeaseOp::Release { id: 9 });
        // The slot is free, but owner 100's waiter came first.
        let o = alg.apply(&mut s, 4, wait(2, 200, 2));
        assert!(!o.allowed);
        assert_eq!(
            o.decision.retry_after_ms,
            1 + TICKET_MS - 4,
            "until 100's ticket lapses"
        );
        assert!(
            !alg.apply(&mut s, 4, acquire(3)).allowed,
            "a newcomer queues behind"
        );
        assert!(
            alg.apply(&mut s, 4, LeaseOp::AcquireUnfair { id: 3, ttl_ms: 0 })
                .allowed
        );
        alg.apply(&mut s, 5, LeaseOp::Release { id: 3 });
        let o = alg.apply(&mut s, 6, wait(1, 100, 1));
        assert_eq!((o.allowed, o.number), (true, 0));
        alg.apply(&mut s, 7, LeaseOp::Release { id: 1 });
        assert!(
            alg.apply(&mut s, 8, wait(2, 200, 2)).allowed,
            "then the next"
        );
        assert!(s.as_ref().unwrap().tickets.is_empty());
    }

    #[test]
    fn a_ticket_lapses_unless_renewed_and_goes_when_its_owner_leaves() {
        let alg = Concurrency::new(1, "10 s").unwrap();
        let mut s = None;
        alg.apply(&mut s, 0, acquire(9));
        alg.apply(&mut s, 0, wait(1, 100, 0));
        alg.apply(&mut s, 0, wait(2, 200, 0));
        alg.apply(&mut s, 0, LeaseOp::Release { id: 9 });
        // Owner 100 is gone: at TICKET_MS its place lapses.
        assert!(!alg.apply(&mut s, TICKET_MS - 1, wait(2, 200, 2)).allowed);
        assert!(alg.apply(&mut s, TICKET_MS, wait(2, 200, 2)).allowed);
        alg.apply(&mut s, TICKET_MS, LeaseOp::Release { id: 2 });
        // A waiter that leaves takes its owner's ticket with it.
        alg.apply(&mut s, TICKET_MS, acquire(9));
        alg.apply(&mut s, TICKET_MS, wait(1, 100, 0));
        assert!(
            alg.apply(&mut s, TICKET_MS, LeaseOp::Leave { owner: 100 })
                .allowed
        );
        alg.apply(&mut s, TICKET_MS, LeaseOp::Release { id: 9 });
        assert!(alg.apply(&mut s, TICKET_MS, acquire(3)).allowed);
    }

    #[test]
    fn an_owners_newcomer_queues_behind_its_own_waiters() {
        let alg = Concurrency::new(2, "10 s").unwrap();
        let mut s = None;
        alg.apply(&mut s, 0, acquire(8));
        alg.apply(&mut s, 0, acquire(9));
        let first = alg.apply(&mut s, 0, wait(1, 100, 0));
        alg.apply(&mut s, 0, LeaseOp::Release { id: 9 });
        // One slot free, claimed by owner 100's ticket (1 waiter): its
        // newcomer (no number yet) waits; its first waiter goes.
        let newcomer = alg.apply(&mut s, 1, wait(2, 100, 0));
        assert_eq!((newcomer.allowed, newcomer.number), (false, 2));
        assert_eq!(
            s.as_ref().unwrap().tickets[0].number,
            first.number,
            "the older number kept"
        );
        assert!(alg.apply(&mut s, 2, wait(1, 100, first.number)).allowed);
    }

    #[test]
    fn an_owner_stands_where_its_oldest_waiter_stands() {
        let alg = Concurrency::new(1, "10 s").unwrap();
        let mut s = None;
        alg.apply(&mut s, 0, acquire(9));
        // Numbers: 1 for owner 100, 2 for owner 200, 3 for owner 100.
        let a1 = alg.apply(&mut s, 0, wait(1, 100, 0)).number;
        let b2 = alg.apply(&mut s, 0, wait(2, 200, 0)).number;
        let a3 = alg.apply(&mut s, 0, wait(3, 100, 0)).number;
        assert_eq!((a1, b2, a3), (1, 2, 3));
        alg.apply(&mut s, 0, LeaseOp::Release { id: 9 });
        // Owner 100's first waiter in its own queue holds number 3: it
        // still goes before owner 200, whose oldest waiter came later than
        // 100's; and 200's waiter waits (no two owners each behind the other).
        assert!(!alg.apply(&mut s, 1, wait(2, 200, b2)).allowed);
        assert!(alg.apply(&mut s, 1, wait(3, 100, a3)).allowed);
    }

    #[test]
    fn a_granted_waiters_owner_claims_slots_only_for_those_still_waiting() {
        let alg = Concurrency::new(3, "10 s").unwrap();
        let mut s = None;
        for id in [7, 8, 9] {
            alg.apply(&mut s, 0, acquire(id));
        }
        // Owner 100's two callers queue: numbers 1 and 2.
        let first = alg.apply(&mut s, 0, wait(1, 100, 0)).number;
        let second = alg.apply(
            &mut s,
            0,
            LeaseOp::Wait {
                id: 2,
                ttl_ms: 0,
                owner: 100,
                number: 0,
                oldest: first,
                next: 0,
                waiters: 2,
            },
        );
        assert_eq!((first, second.number), (1, 2));
        for id in [7, 8, 9] {
            alg.apply(&mut s, 1, LeaseOp::Release { id });
        }
        let granted = alg.apply(
            &mut s,
            2,
            LeaseOp::Wait {
                id: 1,
                ttl_ms: 0,
                owner: 100,
                number: first,
                oldest: first,
                next: second.number,
                waiters: 2,
            },
        );
        assert!(granted.allowed);
        // One of owner 100's callers still waits: of the two free slots,
        // it is owed one, and a newcomer may take the other.
        assert!(alg.apply(&mut s, 3, acquire(5)).allowed);
        assert!(!alg.apply(&mut s, 3, acquire(6)).allowed);
        assert!(
            alg.apply(
                &mut s,
                4,
                LeaseOp::Wait {
                    id: 2,
                    ttl_ms: 0,
                    owner: 100,
                    number: second.number,
                    oldest: second.number,
                    next: 0,
                    waiters: 1,
                }
            )
            .allowed
        );
    }

    #[test]
    fn owners_holding_the_same_number_never_block_each_other() {
        let alg = Concurrency::new(1, "10 s").unwrap();
        let mut s = None;
        alg.apply(&mut s, 0, acquire(9));
        let a = alg.apply(&mut s, 0, wait(1, 100, 0)).number;
        // Owner 100's process stalls; its ticket lapses, then the lease:
        // nothing left, the key is forgotten and numbering starts over.
        let o = alg.apply(&mut s, 10_000, LeaseOp::Peek);
        assert_eq!(o.ttl_ms, 0);
        s = None;
        alg.apply(&mut s, 10_000, acquire(8));
        let b = alg.apply(&mut s, 10_000, wait(2, 200, 0)).number;
        assert_eq!((a, b), (1, 1), "the same number, for two owners");
        assert!(!alg.apply(&mut s, 10_001, wait(1, 100, a)).allowed);
        alg.apply(&mut s, 10_002, LeaseOp::Release { id: 8 });
        // Neither stands ahead of the other: the first to try takes the
        // free slot, the other gets the next one.
        assert!(alg.apply(&mut s, 10_003, wait(1, 100, a)).allowed);
        assert!(!alg.apply(&mut s, 10_003, wait(2, 200, b)).allowed);
        alg.apply(&mut s, 10_004, LeaseOp::Release { id: 1 });
        assert!(alg.apply(&mut s, 10_005, wait(2, 200, b)).allowed);
    }

    #[test]
    fn reports_its_configuration() {
        let alg = Concurrency::new(5, "30 s").unwrap();
        assert_eq!((alg.max(), alg.lease_ms()), (5, 30_000));
    }

    #[test]
    fn a_grant_is_allowed_and_an_unknown_id_is_no_denial() {
        let alg = Concurrency::new(1, "1 s").unwrap();
        let mut s = None;
        let o = alg.apply(&mut s, 100, acquire(1));
        assert_eq!((o.decision.allowed, o.decision.retry_after_ms), (true, 0));
        // Releasing or extending a lease not held fails, but denies nothing:
        // the decision stays allowed, with nothing to wait for.
        for op in [
            LeaseOp::Release { id: 2 },
            LeaseOp::Extend { id: 2, ttl_ms: 0 },
        ] {
            let o = alg.apply(&mut s, 200, op);
            assert!(!o.allowed, "{op:?}");
            assert_eq!(
                (
                    o.decision.allowed,
                    o.decision.retry_after_ms,
                    o.decision.remaining
                ),
                (true, 0, 0),
                "{op:?}"
            );
        }
    }

    #[test]
    fn lease_durations_are_capped_at_the_longest_span() {
        let alg = Concurrency::new(2, "1 s").unwrap();
        let mut s = None;
        let o = alg.apply(
            &mut s,
            1000,
            LeaseOp::Acquire {
                id: 1,
                ttl_ms: u64::MAX,
            },
        );
        assert_eq!(o.expires_at_ms, Some(1000 + limits::MAX_SPAN_MS));
        let o = alg.apply(
            &mut s,
            2000,
            LeaseOp::Extend {
                id: 1,
                ttl_ms: limits::MAX_SPAN_MS + 1,
            },
        );
        assert_eq!(o.expires_at_ms, Some(2000 + limits::MAX_SPAN_MS));
    }

    #[test]
    fn invalid_configs_are_rejected() {
        assert_eq!(
            Concurrency::new(0, "1 s"),
            Err(ConfigError::Zero { what: "max" })
        );
        assert!(Concurrency::new(1, "0 s").is_err());
        assert!(Concurrency::new(limits::MAX_LEASES + 1, "1 s").is_err());
    }
}
