//! The limiter: acquiring, peeking and resetting leases of a key.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::permit::Permit;
use crate::algorithm::{Concurrency, LeaseOp, LeaseOutcome};
use crate::clock::{Clock, SystemClock};
use crate::limiter::rate::DEFAULT_PREFIX;
use crate::limiter::wait::{deadline_ms, run_blocking};
use crate::random;
use crate::store::{AsyncStore, Key, LeaseStep, MemoryStore, Store};
use crate::{Decision, Error};

/// Limits how many holders of a key run at once.
///
/// ```
/// use edgelimit::{Acquire, Concurrency, ConcurrencyLimiter};
///
/// let limiter = ConcurrencyLimiter::new(Concurrency::new(2, "30 s")?);
/// let Acquire::Granted(permit) = limiter.acquire("jobs")? else { panic!("free") };
/// assert_eq!(limiter.peek("jobs")?.remaining, 1);
/// drop(permit); // releases the slot
/// assert_eq!(limiter.peek("jobs")?.remaining, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The `_async` forms work on every store, and are the ones to use with
/// [`AsyncRedisRestStore`](crate::store::AsyncRedisRestStore).
pub struct ConcurrencyLimiter<S = MemoryStore, C = SystemClock> {
    shared: Arc<Shared<S, C>>,
}

struct Shared<S, C> {
    config: Concurrency,
    store: S,
    clock: C,
    prefix: Box<str>,
}

impl<S, C> Clone for ConcurrencyLimiter<S, C> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The answer to an acquire: a permit, or the denial. A denial is not an error.
#[must_use]
pub enum Acquire<S: AsyncStore = MemoryStore, C: Clock + Send + Sync + 'static = SystemClock> {
    /// A slot is held until the permit is released, dropped, or expires.
    Granted(Permit<S, C>),
    /// No slot (within the deadline, for waiting forms).
    Denied(Decision),
}

impl<S: AsyncStore, C: Clock + Send + Sync + 'static> Acquire<S, C> {
    /// The permit, if granted.
    pub fn permit(self) -> Option<Permit<S, C>> {
        match self {
            Self::Granted(permit) => Some(permit),
            Self::Denied(_) => None,
        }
    }
}

impl ConcurrencyLimiter {
    /// A limiter with its own in-memory store and the system clock.
    pub fn new(config: Concurrency) -> Self {
        Self::with_parts(config, MemoryStore::new(), SystemClock, DEFAULT_PREFIX)
    }
}

impl<S, C> ConcurrencyLimiter<S, C> {
    /// A limiter over `store`, reading `clock`, keying under `prefix`.
    pub fn with_parts(config: Concurrency, store: S, clock: C, prefix: impl Into<String>) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                store,
                clock,
                prefix: prefix.into().into_boxed_str(),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Concurrency {
        &self.shared.config
    }

    fn key<'k>(&'k self, id: &'k str) -> Key<'k> {
        Key {
            prefix: &self.shared.prefix,
            id,
        }
    }
}

/// The blocking forms, on stores that answer synchronously.
impl<S: Store + AsyncStore, C: Clock + Send + Sync + 'static> ConcurrencyLimiter<S, C> {
    /// Tries to take a slot for `key` with the configured lease duration.
    pub fn acquire(&self, key: &str) -> Result<Acquire<S, C>, Error> {
        self.acquire_for(key, Duration::ZERO)
    }

    /// Tries to take a slot for `key` for `lease` (zero: the configured one).
    pub fn acquire_for(&self, key: &str, lease: Duration) -> Result<Acquire<S, C>, Error> {
        run_blocking(self.acquire_for_async(key, lease))
    }

    /// Blocks until a slot for `key` is free or `within` has passed.
    pub fn acquire_wait(&self, key: &str, within: Duration) -> Result<Acquire<S, C>, Error> {
        let sleep = |duration| {
            self.shared.clock.sleep(duration);
            std::future::ready(())
        };
        run_blocking(self.acquire_async(key, within, sleep))
    }

    /// Occupancy of `key` without changing it.
    pub fn peek(&self, key: &str) -> Result<Decision, Error> {
        Ok(self.run(key, LeaseOp::Peek)?.decision)
    }

    /// Drops every lease of `key`.
    pub fn reset(&self, key: &str) -> Result<(), Error> {
        self.shared.store.remove(self.key(key))
    }

    pub(super) fn run(&self, key: &str, op: LeaseOp) -> Result<LeaseOutcome, Error> {
        let step = LeaseStep {
            config: &self.shared.config,
            op,
        };
        let now = self.shared.clock.now_ms();
        self.shared.store.transact(self.key(key), now, &step)
    }
}

/// The async forms, on every store.
impl<S: AsyncStore, C: Clock + Send + Sync + 'static> ConcurrencyLimiter<S, C> {
    /// Tries once to take a slot for `key` for `lease` (zero: the
    /// configured one).
    pub async fn acquire_for_async(
        &self,
        key: &str,
        lease: Duration,
    ) -> Result<Acquire<S, C>, Error> {
        let id = random::next_u64();
        let ttl_ms = lease.as_millis().try_into().unwrap_or(u64::MAX);
        let outcome = self.run_async(key, LeaseOp::Acquire { id, ttl_ms }).await?;
        Ok(match outcome.expires_at_ms {
            Some(expires_at_ms) if outcome.allowed => Acquire::Granted(Permit::new(
                self.clone(),
                key,
                id,
                expires_at_ms,
                outcome.decision,
            )),
            _ => Acquire::Denied(outcome.decision),
        })
    }

    /// Takes a slot for `key` when one is free within `within` (zero: tries
    /// once), without blocking a thread: `sleep` is the runtime's timer,
    /// e.g. `tokio::time::sleep`.
    pub async fn acquire_async<F, Fut>(
        &self,
        key: &str,
        within: Duration,
        sleep: F,
    ) -> Result<Acquire<S, C>, Error>
    where
        F: Fn(Duration) -> Fut,
        Fut: Future<Output = ()>,
    {
        let deadline = deadline_ms(self.shared.clock.now_ms(), within);
        loop {
            let decision = match self.acquire_for_async(key, Duration::ZERO).await? {
                granted @ Acquire::Granted(_) => return Ok(granted),
                Acquire::Denied(decision) => decision,
            };
            match poll_interval(&decision, self.shared.clock.now_ms(), deadline) {
                Some(duration) => sleep(duration).await,
                None => return Ok(Acquire::Denied(decision)),
            }
        }
    }

    /// Occupancy of `key` without changing it.
    pub async fn peek_async(&self, key: &str) -> Result<Decision, Error> {
        Ok(self.run_async(key, LeaseOp::Peek).await?.decision)
    }

    /// Drops every lease of `key`.
    pub async fn reset_async(&self, key: &str) -> Result<(), Error> {
        self.shared.store.remove_async(self.key(key)).await
    }

    pub(super) async fn run_async(&self, key: &str, op: LeaseOp) -> Result<LeaseOutcome, Error> {
        let step = LeaseStep {
            config: &self.shared.config,
            op,
        };
        let now = self.shared.clock.now_ms();
        self.shared
            .store
            .transact_async(self.key(key), now, &step)
            .await
    }
}

/// A denied acquire's retry time is when the first lease expires, but a
/// holder may release sooner: poll at least this often while waiting.
const POLL_MS: u64 = 50;

/// How long to sleep before trying again, or `None` once the deadline has
/// passed. Unlike rate limits, the retry time is only an upper bound here,
/// so waiting goes on until the deadline.
fn poll_interval(denial: &Decision, now_ms: u64, deadline_ms: u64) -> Option<Duration> {
    let room = deadline_ms.checked_sub(now_ms).filter(|&room| room > 0)?;
    let ms = denial.retry_after_ms.min(POLL_MS).min(room).max(1);
    Some(Duration::from_millis(ms))
}
