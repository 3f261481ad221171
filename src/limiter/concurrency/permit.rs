//! A held slot: released explicitly, on drop, or by its lease expiring.

use std::time::Duration;

use super::detached;
use super::limiter::ConcurrencyLimiter;
use crate::algorithm::LeaseOp;
use crate::clock::{Clock, SystemClock};
use crate::store::{AsyncStore, MemoryStore, Store};
use crate::{Decision, Error};

/// A held slot. Dropping it releases the slot (on an async store, in a task
/// of the current tokio runtime); if the holder dies without dropping it,
/// the lease expires on its own.
#[must_use = "dropping a permit releases its slot at once"]
pub struct Permit<S: AsyncStore = MemoryStore, C: Clock + Send + Sync + 'static = SystemClock> {
    limiter: ConcurrencyLimiter<S, C>,
    key: Box<str>,
    id: u64,
    expires_at_ms: u64,
    decision: Decision,
    released: bool,
}

impl<S: AsyncStore, C: Clock + Send + Sync + 'static> Permit<S, C> {
    pub(super) fn new(
        limiter: ConcurrencyLimiter<S, C>,
        key: &str,
        id: u64,
        expires_at_ms: u64,
        decision: Decision,
    ) -> Self {
        Self {
            limiter,
            key: key.into(),
            id,
            expires_at_ms,
            decision,
            released: false,
        }
    }

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
    pub async fn extend_async(&mut self, lease: Duration) -> Result<bool, Error> {
        let ttl_ms = lease.as_millis().try_into().unwrap_or(u64::MAX);
        let op = LeaseOp::Extend {
            id: self.id,
            ttl_ms,
        };
        let outcome = self.limiter.run_async(&self.key, op).await?;
        if let Some(expires_at_ms) = outcome.expires_at_ms {
            self.expires_at_ms = expires_at_ms;
        }
        Ok(outcome.allowed)
    }

    /// Releases the slot now. Returns `false` if the lease had already
    /// expired.
    pub async fn release_async(mut self) -> Result<bool, Error> {
        self.released = true;
        let op = LeaseOp::Release { id: self.id };
        let released = self.limiter.run_async(&self.key, op).await;
        self.limiter.released(&self.key);
        Ok(released?.allowed)
    }
}

/// The blocking forms, on stores that answer synchronously.
impl<S: Store + AsyncStore, C: Clock + Send + Sync + 'static> Permit<S, C> {
    /// Like [`extend_async`](Self::extend_async), blocking.
    pub fn extend(&mut self, lease: Duration) -> Result<bool, Error> {
        crate::limiter::wait::run_blocking(self.extend_async(lease))
    }

    /// Like [`release_async`](Self::release_async), blocking.
    pub fn release(mut self) -> Result<bool, Error> {
        self.released = true;
        let released = self
            .limiter
            .run(&self.key, LeaseOp::Release { id: self.id });
        self.limiter.released(&self.key);
        Ok(released?.allowed)
    }
}

impl<S: AsyncStore, C: Clock + Send + Sync + 'static> Drop for Permit<S, C> {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let (limiter, key, id) = (self.limiter.clone(), std::mem::take(&mut self.key), self.id);
        // Nothing to report to: if the store is unreachable the lease still
        // expires on its own.
        detached::finish(async move {
            let _ = limiter.run_async(&key, LeaseOp::Release { id }).await;
            limiter.released(&key);
        });
    }
}

impl<S: AsyncStore, C: Clock + Send + Sync + 'static> std::fmt::Debug for Permit<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("key", &self.key)
            .field("id", &self.id)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}
