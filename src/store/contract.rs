//! What a store does: run one atomic read-modify-write on one key's state,
//! in memory or as a Lua script in Redis.

use super::multi::KeysTransition;
use crate::algorithm::{
    check_cost, Adjustment, Algorithm, Concurrency, ConcurrencyState, LeaseOp, LeaseOutcome,
    QuotaGrant, QuotaRefund, StateKind,
};
use crate::scripts::{self, Script, Scripted};
use crate::{Decision, Error, StoreError};

/// A stored key: a limiter's namespace (see [`key_prefix`]) and the
/// caller's id, kept apart so a lookup needs no allocation. Backends that
/// need one string join them: Redis keys are `prefix{id}`, the id a hash
/// tag, so all of one id's keys share a Redis Cluster slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key<'a> {
    /// The limiter's namespace.
    pub prefix: &'a str,
    /// The caller's identifier (user id, IP address, API key…).
    pub id: &'a str,
}

/// The namespace of a limiter's keys: the user's `prefix`, a separator
/// unless it ends with one (so prefix `api` and id `2user1` never meet
/// prefix `api2` and id `user1`), then `space`, the algorithm and its time
/// base, and a separator: `edgelimit:fw:60000:`.
pub fn key_prefix(prefix: &str, space: &str) -> String {
    let separator = if prefix.is_empty() || prefix.ends_with(':') {
        ""
    } else {
        ":"
    };
    format!("{prefix}{separator}{space}:")
}

/// The key space of a concurrency limiter's semaphores (see [`key_prefix`]).
pub const SEMAPHORE: &str = "sem";

/// One atomic step on a key's state: what a limiter asks a store to run.
pub trait Transition {
    /// The state it reads and writes.
    type State: StateKind;
    /// What it answers.
    type Output;

    /// Runs the step on `state` (`None`: no state, or expired) at `now_ms`,
    /// returning the answer and how long the new state must be kept. On
    /// error the state must be left as it was.
    fn apply(
        &self,
        state: &mut Option<Self::State>,
        now_ms: u64,
    ) -> Result<(Self::Output, u64), Error>;

    /// Units the key's state holds after the step, read from its answer:
    /// how many more admissions forgetting the state would grant. A
    /// bounded store evicts the states holding the fewest first, so a flood
    /// of new keys cannot free a client held at its limit.
    fn held(&self, output: &Self::Output) -> u64;

    /// The same step as a call of its Lua twin, for stores that run it
    /// remotely. Fails without a round trip when the step can never succeed.
    fn remote(&self) -> Result<Remote, Error>;

    /// Reads the twin's reply.
    fn decode(&self, reply: &[i64]) -> Result<Answer<Self::Output, Self::State>, StoreError>;

    /// Whether a remote store may answer this step from a state it
    /// remembers (its deny cache) and should remember what the reply
    /// teaches: true for rate decisions.
    fn uses_deny_cache(&self) -> bool {
        false
    }

    /// The answer from `state`, a copy of the key's state that holds at
    /// most the usage the store's holds (other clients only add usage), at
    /// `now_ms`: `Some` only when it is certain, that is a denial; `None`
    /// to ask the store.
    fn deny_locally(&self, _state: &Self::State, _now_ms: u64) -> Option<Self::Output> {
        None
    }
}

/// A Lua twin's reply, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer<O, S> {
    /// What the step answers.
    pub output: O,
    /// The time the script decided at (Redis's `TIME`, or the caller's).
    pub now_ms: u64,
    /// For a denial that carried it: the state the script left, and for how
    /// long it proves denials (the denial's retry time). What a deny cache
    /// keeps.
    pub denied_state: Option<(S, u64)>,
}

/// A transition as a script call: the script and its arguments after the
/// time (which the store supplies, or leaves to Redis).
#[derive(Debug, Clone)]
pub struct Remote {
    /// The Lua twin.
    pub script: &'static Script,
    /// `ARGV[2..]`.
    pub args: Vec<String>,
    /// Whether running it twice equals running it once, so that a request
    /// that may have arrived can be retried.
    pub idempotent: bool,
}

/// Storage for limiter state: keyed, atomic per key, with per-key expiry.
pub trait Store {
    /// Runs `transition` atomically on `key`'s state at `now_ms`.
    fn transact<T: Transition>(
        &self,
        key: Key<'_>,
        now_ms: u64,
        transition: &T,
    ) -> Result<T::Output, Error>;

    /// Runs `transition` atomically on the states of `keys` (distinct
    /// keys, given in the order the transition reads them) at `now_ms`:
    /// one critical section in memory, one script call in Redis. A store
    /// that cannot (the default) says so with
    /// [`StoreError::Unsupported`]: the steps of a
    /// [`MultiLimiter`](crate::MultiLimiter) are never split.
    fn transact_keys<T: KeysTransition>(
        &self,
        keys: &[Key<'_>],
        now_ms: u64,
        transition: &T,
    ) -> Result<T::Output, Error> {
        let _ = (keys, now_ms, transition);
        Err(no_step_on_several_keys())
    }

    /// Forgets `key`'s state.
    fn remove(&self, key: Key<'_>) -> Result<(), Error>;

    /// Runs several transitions at `now_ms`, each atomic on its own key, in
    /// order. Remote stores send them in one round trip; the answers come
    /// back in the same order.
    fn transact_many<T: Transition>(
        &self,
        calls: &[(Key<'_>, T)],
        now_ms: u64,
    ) -> Vec<Result<T::Output, Error>> {
        calls
            .iter()
            .map(|(key, transition)| self.transact(*key, now_ms, transition))
            .collect()
    }
}

/// A rate-limit decision of `cost` units.
#[derive(Debug, Clone, Copy)]
pub struct Consume<'a, A> {
    /// The algorithm deciding.
    pub algorithm: &'a A,
    /// Units to take (0: read only).
    pub cost: u64,
}

impl<A: Algorithm> Transition for Consume<'_, A> {
    type State = A::State;
    type Output = Decision;

    #[inline]
    fn apply(&self, state: &mut Option<A::State>, now_ms: u64) -> Result<(Decision, u64), Error> {
        let outcome = self.algorithm.decide(state, now_ms, self.cost)?;
        Ok((outcome.decision, outcome.ttl_ms))
    }

    #[inline]
    fn held(&self, decision: &Decision) -> u64 {
        decision.used()
    }

    fn remote(&self) -> Result<Remote, Error> {
        check_cost(self.cost, self.algorithm.limit())?;
        // A read changes nothing a second read would see differently.
        Ok(rate_remote(self.algorithm, self.cost, "0", self.cost == 0))
    }

    fn decode(&self, reply: &[i64]) -> Result<Answer<Decision, A::State>, StoreError> {
        let mut answer = rate_answer(self.algorithm, reply)?;
        let decision = answer.output;
        if !decision.allowed {
            answer.denied_state = self
                .algorithm
                .state_from_reply(&reply[scripts::RATE_REPLY_LEN..])
                .and_then(A::State::from_any)
                .map(|state| (state, decision.retry_after_ms));
        }
        Ok(answer)
    }

    fn uses_deny_cache(&self) -> bool {
        // Reads too: Redis may drop a state a read finds spent, and the
        // copy must go with it.
        true
    }

    fn deny_locally(&self, state: &A::State, now_ms: u64) -> Option<Decision> {
        // Decided on a copy, which stays what Redis holds: a denial changes
        // no state, so a later decision on the copy equals one on Redis's.
        let mut scratch = Some(state.clone());
        let outcome = self
            .algorithm
            .decide(&mut scratch, now_ms, self.cost)
            .ok()?;
        Some(outcome.decision).filter(|decision| !decision.allowed)
    }
}

/// A rate decision that may take a quota lease (see
/// [`Algorithm::decide_leased`]).
#[derive(Debug, Clone, Copy)]
pub struct ConsumeQuota<'a, A> {
    /// The algorithm deciding.
    pub algorithm: &'a A,
    /// Units the call costs.
    pub cost: u64,
    /// Units to take in all when admitted, as many as the window has left.
    pub want: u64,
    /// Unspent units of an earlier grant, given back first.
    pub refund: Option<QuotaRefund>,
}

/// What a [`ConsumeQuota`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaDecision {
    /// The decision on the call; `remaining` is the window's after the grant.
    pub decision: Decision,
    /// Units taken beyond the cost, if any.
    pub grant: Option<QuotaGrant>,
    /// The time it was decided at, on the store's clock.
    pub at_ms: u64,
}

impl<A: Algorithm> ConsumeQuota<'_, A> {
    fn plain(&self) -> Consume<'_, A> {
        Consume {
            algorithm: self.algorithm,
            cost: self.cost,
        }
    }
}

impl<A: Algorithm> Transition for ConsumeQuota<'_, A> {
    type State = A::State;
    type Output = QuotaDecision;

    fn apply(
        &self,
        state: &mut Option<A::State>,
        now_ms: u64,
    ) -> Result<(QuotaDecision, u64), Error> {
        let (outcome, grant) =
            self.algorithm
                .decide_leased(state, now_ms, self.cost, self.want, self.refund)?;
        let answer = QuotaDecision {
            decision: outcome.decision,
            grant,
            at_ms: now_ms,
        };
        Ok((answer, outcome.ttl_ms))
    }

    fn held(&self, answer: &QuotaDecision) -> u64 {
        answer.decision.used()
    }

    fn remote(&self) -> Result<Remote, Error> {
        let mut remote = self.plain().remote()?;
        let refund = self.refund.unwrap_or(QuotaRefund {
            window_start_ms: 0,
            units: 0,
        });
        remote
            .args
            .extend([self.want, refund.window_start_ms, refund.units].map(|n| n.to_string()));
        // A refund given twice could return units others spent.
        remote.idempotent &= self.refund.is_none();
        Ok(remote)
    }

    fn decode(&self, reply: &[i64]) -> Result<Answer<QuotaDecision, A::State>, StoreError> {
        let answer = self.plain().decode(reply)?;
        let grant = match reply.get(scripts::RATE_REPLY_LEN..) {
            Some(&[units, start, end]) if answer.output.allowed => Some(QuotaGrant {
                units: u64::try_from(units).map_err(|_| malformed(reply))?,
                window_start_ms: u64::try_from(start).map_err(|_| malformed(reply))?,
                expires_at_ms: u64::try_from(end).map_err(|_| malformed(reply))?,
            }),
            Some([]) | None => None,
            Some(_) if !answer.output.allowed => None,
            Some(_) => return Err(malformed(reply)),
        };
        Ok(Answer {
            output: QuotaDecision {
                decision: answer.output,
                grant,
                at_ms: answer.now_ms,
            },
            now_ms: answer.now_ms,
            denied_state: answer.denied_state,
        })
    }

    fn uses_deny_cache(&self) -> bool {
        true
    }

    fn deny_locally(&self, state: &A::State, now_ms: u64) -> Option<QuotaDecision> {
        // A refund must reach the store: only calls without one are
        // answered here.
        if self.refund.is_some() {
            return None;
        }
        let decision = self.plain().deny_locally(state, now_ms)?;
        Some(QuotaDecision {
            decision,
            grant: None,
            at_ms: now_ms,
        })
    }
}

/// A read-only look at a key: the decision a cost-0 call would get, with
/// nothing written at all (a cost-0 call may store state: a new token
/// bucket starting below capacity starts its refill clock).
#[derive(Debug, Clone, Copy)]
pub struct Peek<'a, A> {
    /// The algorithm deciding.
    pub algorithm: &'a A,
}

impl<A: Algorithm> Transition for Peek<'_, A> {
    type State = A::State;
    type Output = Decision;

    fn apply(&self, state: &mut Option<A::State>, now_ms: u64) -> Result<(Decision, u64), Error> {
        let mut scratch = state.clone();
        let outcome = self.algorithm.decide(&mut scratch, now_ms, 0)?;
        Ok((outcome.decision, outcome.ttl_ms))
    }

    fn held(&self, decision: &Decision) -> u64 {
        decision.used()
    }

    fn remote(&self) -> Result<Remote, Error> {
        Ok(rate_remote(self.algorithm, 0, "1", true))
    }

    fn decode(&self, reply: &[i64]) -> Result<Answer<Decision, A::State>, StoreError> {
        rate_answer(self.algorithm, reply)
    }
}

/// A refund or a penalty (see [`Algorithm::adjust`]), answered with what is
/// left as a read would be.
#[derive(Debug, Clone, Copy)]
pub struct Adjust<'a, A> {
    /// The algorithm whose state it changes.
    pub algorithm: &'a A,
    /// The units given back or charged.
    pub adjustment: Adjustment,
}

impl<A: Algorithm> Transition for Adjust<'_, A> {
    type State = A::State;
    type Output = Decision;

    fn apply(&self, state: &mut Option<A::State>, now_ms: u64) -> Result<(Decision, u64), Error> {
        let outcome = self.algorithm.adjust(state, now_ms, self.adjustment);
        Ok((outcome.decision, outcome.ttl_ms))
    }

    fn held(&self, decision: &Decision) -> u64 {
        decision.used()
    }

    fn remote(&self) -> Result<Remote, Error> {
        let (units, mode) = (self.adjustment.units(), self.adjustment.mode());
        // Sent twice, a refund would give back units others used.
        Ok(rate_remote(self.algorithm, units, mode, false))
    }

    fn decode(&self, reply: &[i64]) -> Result<Answer<Decision, A::State>, StoreError> {
        rate_answer(self.algorithm, reply)
    }

    // Through the deny cache, which never answers it (no `deny_locally`)
    // and so forgets what it held of the key: a denial it cached may not
    // hold after a refund.
    fn uses_deny_cache(&self) -> bool {
        true
    }
}

/// An operation on a concurrency limiter's leases.
#[derive(Debug, Clone, Copy)]
pub struct LeaseStep<'a> {
    /// The semaphore's configuration.
    pub config: &'a Concurrency,
    /// What to do.
    pub op: LeaseOp,
}

impl Transition for LeaseStep<'_> {
    type State = ConcurrencyState;
    type Output = LeaseOutcome;

    fn apply(
        &self,
        state: &mut Option<ConcurrencyState>,
        now_ms: u64,
    ) -> Result<(LeaseOutcome, u64), Error> {
        let outcome = self.config.apply(state, now_ms, self.op);
        Ok((outcome, outcome.ttl_ms))
    }

    fn held(&self, outcome: &LeaseOutcome) -> u64 {
        outcome.decision.used()
    }

    fn remote(&self) -> Result<Remote, Error> {
        let (op, id, ttl_ms, queue) = match self.op {
            LeaseOp::Acquire { id, ttl_ms } => ("acquire", id, ttl_ms, None),
            LeaseOp::AcquireUnfair { id, ttl_ms } => ("acquire_unfair", id, ttl_ms, None),
            LeaseOp::Wait {
                id,
                ttl_ms,
                owner,
                number,
                oldest,
                next,
                waiters,
            } => (
                "wait",
                id,
                ttl_ms,
                Some([owner, number, oldest, next, waiters]),
            ),
            LeaseOp::Leave { owner } => ("leave", 0, 0, Some([owner, 0, 0, 0, 0])),
            LeaseOp::Release { id } => ("release", id, 0, None),
            LeaseOp::Extend { id, ttl_ms } => ("extend", id, ttl_ms, None),
            LeaseOp::Peek => ("peek", 0, 0, None),
        };
        let mut args = vec![
            op.to_owned(),
            id.to_string(),
            ttl_ms.to_string(),
            self.config.max().to_string(),
            self.config.lease_ms().to_string(),
        ];
        args.extend(queue.iter().flatten().map(u64::to_string));
        Ok(Remote {
            script: &scripts::CONCURRENCY,
            args,
            // Acquiring by a held id, releasing, extending and leaving are
            // idempotent; a waiter's try sent twice may take a second
            // number, which changes no grant (its ticket keeps the lower).
            idempotent: true,
        })
    }

    fn decode(&self, reply: &[i64]) -> Result<Answer<LeaseOutcome, ConcurrencyState>, StoreError> {
        let (output, now_ms) =
            scripts::parse_lease_reply(reply, self.config.max()).ok_or_else(|| malformed(reply))?;
        Ok(Answer {
            output,
            now_ms,
            denied_state: None,
        })
    }
}

/// A call of `algorithm`'s Lua twin: `units` (a cost, or an adjustment's
/// units) in `mode` (its `ARGV[3]`), then the configuration.
fn rate_remote<A: Algorithm>(algorithm: &A, units: u64, mode: &str, idempotent: bool) -> Remote {
    let mut args = vec![units.to_string(), mode.to_owned()];
    args.extend(algorithm.config_args().iter().map(u64::to_string));
    Remote {
        script: algorithm.script(),
        args,
        idempotent,
    }
}

/// A rate script's reply as a decision, with no state for the deny cache.
fn rate_answer<A: Algorithm>(
    algorithm: &A,
    reply: &[i64],
) -> Result<Answer<Decision, A::State>, StoreError> {
    let (output, now_ms) =
        scripts::parse_rate_reply(reply, algorithm.limit()).ok_or_else(|| malformed(reply))?;
    Ok(Answer {
        output,
        now_ms,
        denied_state: None,
    })
}

pub(crate) fn malformed(reply: &[i64]) -> StoreError {
    let numbers: Vec<String> = reply.iter().map(i64::to_string).collect();
    StoreError::MalformedReply(format!("unexpected script reply [{}]", numbers.join(",")))
}

/// What a store that cannot run one step on several keys answers (its sync
/// and async faces alike): refused, never split into steps on each key.
pub(crate) fn no_step_on_several_keys() -> Error {
    StoreError::Unsupported("run one step on several keys").into()
}
