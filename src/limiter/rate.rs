//! `Limiter`: an algorithm, a store, a clock and a key prefix.

use std::future::Future;
use std::time::Duration;

use super::failure::FailurePolicy;
use super::wait::{backoff, deadline_ms, run_blocking, WaitOutcome};
use crate::algorithm::Algorithm;
use crate::clock::{Clock, SystemClock};
use crate::store::{AsyncStore, Consume, Key, MemoryStore, Peek, Store};
use crate::{Decision, Error};

/// The prefix of keys of limiters that do not set one.
pub const DEFAULT_PREFIX: &str = "edgelimit:";

/// A rate limiter: decides calls per key with its algorithm, keeping state in
/// its store under `prefix` + key.
///
/// ```
/// use edgelimit::{Limiter, TokenBucket};
///
/// let limiter = Limiter::new(TokenBucket::new(10, 1, "1 s")?);
/// let decision = limiter.limit("user:42")?;
/// assert!(decision.allowed);
/// assert_eq!(decision.remaining, 9);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Limiter<A, S = MemoryStore, C = SystemClock> {
    algorithm: A,
    store: S,
    clock: C,
    prefix: Box<str>,
    failure: FailurePolicy,
}

impl<A: Algorithm> Limiter<A> {
    /// A limiter with its own in-memory store and the system clock.
    pub fn new(algorithm: A) -> Self {
        Self {
            algorithm,
            store: MemoryStore::new(),
            clock: SystemClock,
            prefix: DEFAULT_PREFIX.into(),
            failure: FailurePolicy::Error,
        }
    }
}

impl<A, S, C> Limiter<A, S, C> {
    /// Keeps state in `store` instead (e.g. one store shared by limiters).
    pub fn with_store<S2>(self, store: S2) -> Limiter<A, S2, C> {
        Limiter {
            algorithm: self.algorithm,
            store,
            clock: self.clock,
            prefix: self.prefix,
            failure: self.failure,
        }
    }

    /// Reads time from `clock` instead.
    pub fn with_clock<C2>(self, clock: C2) -> Limiter<A, S, C2> {
        Limiter {
            algorithm: self.algorithm,
            store: self.store,
            clock,
            prefix: self.prefix,
            failure: self.failure,
        }
    }

    /// Prefixes every key with `prefix` (default [`DEFAULT_PREFIX`]), so
    /// limiters sharing a store keep separate counts.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().into_boxed_str();
        self
    }

    /// Answers with a marked decision instead of an error when the store
    /// fails (default [`FailurePolicy::Error`]).
    pub fn with_failure_policy(mut self, failure: FailurePolicy) -> Self {
        self.failure = failure;
        self
    }

    /// The algorithm.
    pub fn algorithm(&self) -> &A {
        &self.algorithm
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key<'k>(&'k self, id: &'k str) -> Key<'k> {
        Key {
            prefix: &self.prefix,
            id,
        }
    }
}

/// What every form shares, whatever the store.
impl<A: Algorithm, S, C: Clock> Limiter<A, S, C> {
    fn apply_policy(
        &self,
        answer: Result<Decision, Error>,
        now_ms: u64,
    ) -> Result<Decision, Error> {
        match answer {
            Err(Error::Store(error))
                if self.failure != FailurePolicy::Error && !error.is_misuse() =>
            {
                Ok(self.failure.decide(self.algorithm.limit(), now_ms))
            }
            decided => decided,
        }
    }

    /// Decides until admitted or past the deadline, sleeping with `sleep`
    /// between attempts: the loop of every waiting form.
    async fn wait_loop<F, Fut, D, DFut>(
        &self,
        within: Duration,
        sleep: F,
        decide: D,
    ) -> Result<WaitOutcome, Error>
    where
        F: Fn(Duration) -> Fut,
        Fut: Future<Output = ()>,
        D: Fn(u64) -> DFut,
        DFut: Future<Output = Result<Decision, Error>>,
    {
        let deadline = deadline_ms(self.clock.now_ms(), within);
        loop {
            let now = self.clock.now_ms();
            let decision = decide(now).await?;
            if decision.allowed {
                return Ok(WaitOutcome::Admitted(decision));
            }
            match backoff(&decision, now, deadline) {
                Some(duration) => sleep(duration).await,
                None => return Ok(WaitOutcome::DeadlineExceeded(decision)),
            }
        }
    }
}

impl<A: Algorithm, S: Store, C: Clock> Limiter<A, S, C> {
    /// Decides a call of cost 1 for `key`.
    #[inline]
    pub fn limit(&self, key: &str) -> Result<Decision, Error> {
        self.limit_with_cost(key, 1)
    }

    /// Decides a call of `cost` units for `key`. A cost above the limit is
    /// [`Error::CostExceedsLimit`]; a denial is `Ok` with `allowed == false`.
    #[inline]
    pub fn limit_with_cost(&self, key: &str, cost: u64) -> Result<Decision, Error> {
        self.limit_at(key, cost, self.clock.now_ms())
    }

    /// Decides a call at an explicit time `now_ms` instead of the clock's.
    #[inline]
    pub fn limit_at(&self, key: &str, cost: u64, now_ms: u64) -> Result<Decision, Error> {
        let step = Consume {
            algorithm: &self.algorithm,
            cost,
        };
        let answer = self.store.transact(self.key(key), now_ms, &step);
        self.apply_policy(answer, now_ms)
    }

    /// Decides several `(key, cost)` calls together, in order: with a remote
    /// store, in one round trip. Each answer is what
    /// [`limit_with_cost`](Self::limit_with_cost) would have given, including
    /// the failure policy.
    pub fn limit_many(&self, calls: &[(&str, u64)]) -> Vec<Result<Decision, Error>> {
        let now_ms = self.clock.now_ms();
        let steps: Vec<_> = calls
            .iter()
            .map(|&(key, cost)| {
                let step = Consume {
                    algorithm: &self.algorithm,
                    cost,
                };
                (self.key(key), step)
            })
            .collect();
        self.store
            .transact_many(&steps, now_ms)
            .into_iter()
            .map(|answer| self.apply_policy(answer, now_ms))
            .collect()
    }

    /// What `key` has left, without consuming or writing anything:
    /// `remaining` and `reset_ms` of a cost-0 decision.
    pub fn remaining(&self, key: &str) -> Result<Decision, Error> {
        let now_ms = self.clock.now_ms();
        let peek = Peek {
            algorithm: &self.algorithm,
        };
        let answer = self.store.transact(self.key(key), now_ms, &peek);
        self.apply_policy(answer, now_ms)
    }

    /// Forgets `key`'s state: its next call is treated as its first.
    pub fn reset(&self, key: &str) -> Result<(), Error> {
        self.store.remove(self.key(key))
    }

    /// Blocks until a call of cost 1 for `key` is admitted or `within` has
    /// passed. Gives up at once when the earliest retry time is past the
    /// deadline.
    pub fn wait(&self, key: &str, within: Duration) -> Result<WaitOutcome, Error> {
        self.wait_with_cost(key, 1, within)
    }

    /// Blocks until a call of `cost` units for `key` is admitted or `within`
    /// has passed.
    pub fn wait_with_cost(
        &self,
        key: &str,
        cost: u64,
        within: Duration,
    ) -> Result<WaitOutcome, Error> {
        let sleep = |duration| {
            self.clock.sleep(duration);
            std::future::ready(())
        };
        let decide = |now| std::future::ready(self.limit_at(key, cost, now));
        run_blocking(self.wait_loop(within, sleep, decide))
    }
}

/// The async forms, for stores that answer without blocking
/// ([`AsyncRedisRestStore`](crate::store::AsyncRedisRestStore)); every
/// [`Store`] is an [`AsyncStore`] too, so they work on any store.
impl<A: Algorithm + Sync, S: AsyncStore, C: Clock> Limiter<A, S, C> {
    /// Decides a call of cost 1 for `key`.
    pub async fn limit_async(&self, key: &str) -> Result<Decision, Error> {
        self.limit_with_cost_async(key, 1).await
    }

    /// Decides a call of `cost` units for `key` (see
    /// [`limit_with_cost`](Self::limit_with_cost)).
    pub async fn limit_with_cost_async(&self, key: &str, cost: u64) -> Result<Decision, Error> {
        self.limit_at_async(key, cost, self.clock.now_ms()).await
    }

    /// Decides a call at an explicit time `now_ms` instead of the clock's.
    pub async fn limit_at_async(
        &self,
        key: &str,
        cost: u64,
        now_ms: u64,
    ) -> Result<Decision, Error> {
        let step = Consume {
            algorithm: &self.algorithm,
            cost,
        };
        let answer = self
            .store
            .transact_async(self.key(key), now_ms, &step)
            .await;
        self.apply_policy(answer, now_ms)
    }

    /// What `key` has left, without consuming or writing anything (see
    /// [`remaining`](Self::remaining)).
    pub async fn remaining_async(&self, key: &str) -> Result<Decision, Error> {
        let now_ms = self.clock.now_ms();
        let peek = Peek {
            algorithm: &self.algorithm,
        };
        let answer = self
            .store
            .transact_async(self.key(key), now_ms, &peek)
            .await;
        self.apply_policy(answer, now_ms)
    }

    /// Forgets `key`'s state: its next call is treated as its first.
    pub async fn reset_async(&self, key: &str) -> Result<(), Error> {
        self.store.remove_async(self.key(key)).await
    }

    /// Waits until a call of `cost` units for `key` is admitted or `within`
    /// has passed, without blocking a thread: `sleep` is the runtime's
    /// timer, e.g. `tokio::time::sleep`.
    pub async fn wait_async<F, Fut>(
        &self,
        key: &str,
        cost: u64,
        within: Duration,
        sleep: F,
    ) -> Result<WaitOutcome, Error>
    where
        F: Fn(Duration) -> Fut,
        Fut: Future<Output = ()>,
    {
        let decide = |now| self.limit_at_async(key, cost, now);
        self.wait_loop(within, sleep, decide).await
    }
}
