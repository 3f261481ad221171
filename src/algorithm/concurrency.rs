//! Concurrency: a semaphore of expiring leases.

use super::contract::clamp_time;
use super::limits;
use crate::{ConfigError, Decision, IntoMillis};

/// At most `max` leases held at once per key. A lease has an id chosen by
/// the caller and an expiry; an expired lease frees its slot, so a holder
/// that dies cannot keep a slot forever.
///
/// Acquiring with an id that already holds a live lease succeeds without
/// taking a second slot (and pushes its expiry out), so retrying an acquire
/// whose answer was lost is safe.
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

/// Per-key state: the live leases, at most `max`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConcurrencyState {
    /// The leases, in no particular order.
    pub leases: Vec<Lease>,
    /// The latest time the state was evaluated at: a clock going back is
    /// treated as this time, so an expired lease's slot is not handed out
    /// twice.
    pub latest_ms: u64,
}

/// What to do with a key's leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseOp {
    /// Take a slot for `id` for `ttl_ms`.
    Acquire {
        /// The lease id.
        id: u64,
        /// Lease duration.
        ttl_ms: u64,
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
    /// `Extend`: whether the id held a live lease. For `Peek`: true.
    pub allowed: bool,
    /// Occupancy after the operation, as a decision: `limit` is `max`,
    /// `remaining` the free slots, `reset_ms` when every current lease will
    /// have expired, `retry_after_ms` (denied acquire) when the first one will.
    pub decision: Decision,
    /// The lease's expiry after `Acquire`/`Extend`, if it holds one.
    pub expires_at_ms: Option<u64>,
    /// Milliseconds the state must be kept (0: drop it).
    pub ttl_ms: u64,
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
        let position = |id: u64| held.leases.iter().position(|l| l.id == id);

        let (allowed, expires_at_ms) = match op {
            LeaseOp::Acquire { id, ttl_ms } => {
                let until = at + lease_ms(ttl_ms);
                match position(id) {
                    Some(i) => {
                        let lease = &mut held.leases[i];
                        lease.expires_at_ms = lease.expires_at_ms.max(until);
                        (true, Some(lease.expires_at_ms))
                    }
                    None if (held.leases.len() as u64) < self.max => {
                        held.leases.push(Lease {
                            id,
                            expires_at_ms: until,
                        });
                        (true, Some(until))
                    }
                    None => (false, None),
                }
            }
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
        let denied = matches!(op, LeaseOp::Acquire { .. }) && !allowed;
        let decision = Decision {
            allowed: !denied,
            limit: self.max,
            remaining: self.max - held.leases.len() as u64,
            reset_ms: last_expiry.unwrap_or(now_ms),
            retry_after_ms: match (denied, first_expiry) {
                (true, Some(first)) => first - now_ms,
                _ => 0,
            },
            reason: None,
        };
        let ttl_ms = last_expiry.map_or(0, |last| last - now_ms);
        LeaseOutcome {
            allowed,
            decision,
            expires_at_ms,
            ttl_ms,
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
