//! What a store does: run one atomic read-modify-write on one key's state.

use crate::algorithm::{Algorithm, Concurrency, LeaseOp, LeaseOutcome, StateKind};
use crate::{Decision, Error};

/// A stored key: a limiter's prefix and the caller's id, kept apart so a
/// lookup needs no allocation. Backends that need one string join them as
/// `prefix:id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key<'a> {
    /// The limiter's namespace.
    pub prefix: &'a str,
    /// The caller's identifier (user id, IP address, API key…).
    pub id: &'a str,
}

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

    /// Forgets `key`'s state.
    fn remove(&self, key: Key<'_>) -> Result<(), Error>;
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
    type State = crate::algorithm::ConcurrencyState;
    type Output = LeaseOutcome;

    fn apply(
        &self,
        state: &mut Option<Self::State>,
        now_ms: u64,
    ) -> Result<(LeaseOutcome, u64), Error> {
        let outcome = self.config.apply(state, now_ms, self.op);
        Ok((outcome, outcome.ttl_ms))
    }
}
