//! `ConcurrencyLimiter`: at most N holders per key, with permits released on
//! drop and leases that expire if their holder dies.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::random;
use super::rate::DEFAULT_PREFIX;
use super::wait::{deadline_ms, run_blocking};
use crate::algorithm::{Concurrency, LeaseOp, LeaseOutcome};
use crate::clock::{Clock, SystemClock};
use crate::store::{Key, LeaseStep, MemoryStore, Store};
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
pub enum Acquire<S: Store = MemoryStore, C: Clock = SystemClock> {
    /// A slot is held until the permit is released, dropped, or expires.
    Granted(Permit<S, C>),
    /// No slot (within the deadline, for waiting forms).
    Denied(Decision),
}

impl<S: Store, C: Clock> Acquire<S, C> {
    /// The permit, if granted.
    pub fn permit(self) -> Option<Permit<S, C>> {
        match self {
            Self::Granted(permit) => Some(permit),
            Self::Denied(_) => None,
        }
    }
}

/// A held slot. Dropping it releases the slot; if the holder dies without
/// dropping it, the lease expires on its own.
#[must_use = "dropping a permit releases its slot at once"]
pub struct Permit<S: Store = MemoryStore, C: Clock = SystemClock> {
    limiter: ConcurrencyLimiter<S, C>,
    key: Box<str>,
    id: u64,
    expires_at_ms: u64,
    decision: Decision,
    released: bool,
}

impl ConcurrencyLimiter {
    /// A limiter with its own in-memory store and the system clock.
    pub fn new(config: Concurrency) -> Self {
        Self::with_parts(config, MemoryStore::new(), SystemClock, DEFAULT_PREFIX)
    }
}

impl<S: Store, C: Clock> ConcurrencyLimiter<S, C> {
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

    /// Tries to take a slot for `key` with the configured lease duration.
    pub fn acquire(&self, key: &str) -> Result<Acquire<S, C>, Error> {
        self.acquire_for(key, Duration::ZERO)
    }

    /// Tries to take a slot for `key` for `lease` (zero: the configured one).
    pub fn acquire_for(&self, key: &str, lease: Duration) -> Result<Acquire<S, C>, Error> {
        let id = random::next_u64();
        let ttl_ms = lease.as_millis().try_into().unwrap_or(u64::MAX);
        let outcome = self.run(key, LeaseOp::Acquire { id, ttl_ms })?;
        Ok(match outcome.expires_at_ms {
            Some(expires_at_ms) if outcome.allowed => Acquire::Granted(Permit {
                limiter: self.clone(),
                key: key.into(),
                id,
                expires_at_ms,
                decision: outcome.decision,
                released: false,
            }),
            _ => Acquire::Denied(outcome.decision),
        })
    }

    /// Blocks until a slot for `key` is free or `within` has passed.
    pub fn acquire_wait(&self, key: &str, within: Duration) -> Result<Acquire<S, C>, Error> {
        let sleep = |duration| {
            self.shared.clock.sleep(duration);
            std::future::ready(())
        };
        run_blocking(self.acquire_async(key, within, sleep))
    }

    /// Like [`acquire_wait`](Self::acquire_wait) without blocking a thread:
    /// `sleep` is the runtime's timer.
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
            let decision = match self.acquire(key)? {
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
    pub fn peek(&self, key: &str) -> Result<Decision, Error> {
        Ok(self.run(key, LeaseOp::Peek)?.decision)
    }

    /// Drops every lease of `key`.
    pub fn reset(&self, key: &str) -> Result<(), Error> {
        self.shared.store.remove(self.key(key))
    }

    fn key<'k>(&'k self, id: &'k str) -> Key<'k> {
        Key {
            prefix: &self.shared.prefix,
            id,
        }
    }

    fn run(&self, key: &str, op: LeaseOp) -> Result<LeaseOutcome, Error> {
        let step = LeaseStep {
            config: &self.shared.config,
            op,
        };
        let now = self.shared.clock.now_ms();
        self.shared.store.transact(self.key(key), now, &step)
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

impl<S: Store, C: Clock> Permit<S, C> {
    /// The lease id (unique per acquire).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// When the lease frees itself unless extended or released.
    pub fn expires_at_ms(&self) -> u64 {
        self.expires_at_ms
    }

    /// The occupancy right after this permit was granted.
    pub fn decision(&self) -> Decision {
        self.decision
    }

    /// Moves the expiry to `lease` from now (zero: the configured duration).
    /// Returns `false` if the lease had already expired, so the slot may be
    /// someone else's now.
    pub fn extend(&mut self, lease: Duration) -> Result<bool, Error> {
        let ttl_ms = lease.as_millis().try_into().unwrap_or(u64::MAX);
        let outcome = self.limiter.run(
            &self.key,
            LeaseOp::Extend {
                id: self.id,
                ttl_ms,
            },
        )?;
        if let Some(expires_at_ms) = outcome.expires_at_ms {
            self.expires_at_ms = expires_at_ms;
        }
        Ok(outcome.allowed)
    }

    /// Releases the slot now. Returns `false` if the lease had already
    /// expired.
    pub fn release(mut self) -> Result<bool, Error> {
        self.released = true;
        Ok(self
            .limiter
            .run(&self.key, LeaseOp::Release { id: self.id })?
            .allowed)
    }
}

impl<S: Store, C: Clock> Drop for Permit<S, C> {
    fn drop(&mut self) {
        if !self.released {
            // Nothing to report to: if the store is unreachable the lease
            // still expires on its own.
            let _ = self
                .limiter
                .run(&self.key, LeaseOp::Release { id: self.id });
        }
    }
}

impl<S: Store, C: Clock> std::fmt::Debug for Permit<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("key", &self.key)
            .field("id", &self.id)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}
