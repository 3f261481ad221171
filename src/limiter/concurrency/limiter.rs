//! The limiter: acquiring, peeking and resetting leases of a key.

use std::any::TypeId;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::permit::Permit;
use super::waiters::Waiters;
use crate::algorithm::{Concurrency, LeaseOp, LeaseOutcome};
use crate::clock::{Clock, SystemClock};
use crate::error::check_id;
use crate::limiter::rate::DEFAULT_PREFIX;
use crate::limiter::wait::{deadline_ms, run_blocking};
use crate::random;
use crate::store::{key_prefix, AsyncStore, Key, LeaseStep, MemoryStore, Store, SEMAPHORE};
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
    /// Callers waiting for a slot, woken by releases through this limiter.
    waiters: Waiters,
    /// This limiter's name in the store's waiter queues.
    owner: u64,
    /// Whether acquires queue behind waiters (the default).
    fair: AtomicBool,
}

/// How a waiting acquire pauses between tries.
enum Pause<F> {
    /// Blocking the thread.
    Blocking,
    /// With the runtime's timer.
    Timer(F),
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

impl<S: AsyncStore, C: Clock + Send + Sync + 'static> std::fmt::Debug for Acquire<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Granted(permit) => f.debug_tuple("Granted").field(permit).finish(),
            Self::Denied(decision) => f.debug_tuple("Denied").field(decision).finish(),
        }
    }
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
    /// A limiter over `store`, reading `clock`, keying under `prefix` and
    /// `sem` (`edgelimit:sem:{tenant-7}` in Redis): never a rate limiter's
    /// state, whatever its prefix.
    pub fn with_parts(config: Concurrency, store: S, clock: C, prefix: impl Into<String>) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                store,
                clock,
                prefix: key_prefix(&prefix.into(), SEMAPHORE).into_boxed_str(),
                waiters: Waiters::default(),
                owner: random::next_u64() | 1,
                fair: AtomicBool::new(true),
            }),
        }
    }

    /// Fair (the default): waiters are served in arrival order, across
    /// processes on a shared store, and an acquire that does not wait is
    /// granted only a slot no waiter is owed. Unfair: every try takes any
    /// free slot, as if nobody queued (this limiter's waiters still queue
    /// among themselves). Applies to this limiter and its clones.
    pub fn set_fair(&self, fair: bool) {
        self.shared.fair.store(fair, Ordering::Relaxed);
    }

    /// Whether acquires are fair (see [`set_fair`](Self::set_fair)).
    pub fn is_fair(&self) -> bool {
        self.shared.fair.load(Ordering::Relaxed)
    }

    /// The configuration.
    pub fn config(&self) -> &Concurrency {
        &self.shared.config
    }

    /// The stored key of `id`, or [`Error::IdTooLong`] past
    /// [`DEFAULT_MAX_ID_BYTES`](crate::DEFAULT_MAX_ID_BYTES).
    fn key<'k>(&'k self, id: &'k str) -> Result<Key<'k>, Error> {
        check_id(id, crate::DEFAULT_MAX_ID_BYTES)?;
        Ok(Key {
            prefix: &self.shared.prefix,
            id,
        })
    }

    /// A slot of `key` was released here: the first waiter tries at once.
    pub(super) fn released(&self, key: &str) {
        self.shared.waiters.wake_first(key);
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

    /// Blocks until a slot for `key` is free or `within` has passed. A
    /// release through this limiter (or a clone) hands the slot to the
    /// longest waiting caller at once; a release elsewhere, or an expiry, is
    /// seen within 100 ms. Fair limiters serve waiters in arrival order
    /// across processes sharing the store (see [`set_fair`](Self::set_fair)).
    /// A store failure that may pass (a timeout, Redis restarting) ends the
    /// wait only at the deadline, with that error.
    pub fn acquire_wait(&self, key: &str, within: Duration) -> Result<Acquire<S, C>, Error> {
        let blocking = Pause::<fn(Duration) -> std::future::Ready<()>>::Blocking;
        run_blocking(self.acquire_waiting(key, within, blocking))
    }

    /// Occupancy of `key` without changing it.
    pub fn peek(&self, key: &str) -> Result<Decision, Error> {
        Ok(self.run(key, LeaseOp::Peek)?.decision)
    }

    /// Drops every lease of `key`.
    pub fn reset(&self, key: &str) -> Result<(), Error> {
        self.shared.store.remove(self.key(key)?)?;
        self.shared.waiters.wake_all(key);
        Ok(())
    }

    pub(super) fn run(&self, key: &str, op: LeaseOp) -> Result<LeaseOutcome, Error> {
        let step = LeaseStep {
            config: &self.shared.config,
            op,
        };
        let now = self.shared.clock.now_ms();
        self.shared.store.transact(self.key(key)?, now, &step)
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
        let ttl_ms = lease.as_millis().try_into().unwrap_or(u64::MAX);
        let op = |id| match self.is_fair() {
            true => LeaseOp::Acquire { id, ttl_ms },
            false => LeaseOp::AcquireUnfair { id, ttl_ms },
        };
        Ok(self.try_once(key, op).await?.0)
    }

    /// One acquire by a fresh lease id, with the op `op` makes of it; the
    /// answer, and the waiter's number a denied `Wait` got.
    async fn try_once(
        &self,
        key: &str,
        op: impl FnOnce(u64) -> LeaseOp,
    ) -> Result<(Acquire<S, C>, u64), Error> {
        let id = random::next_u64();
        // Until the store answers, it may hold the lease with no permit to
        // release it: dropped before then (a caller giving up mid-request),
        // or failed (a timeout, after which the request may have run), the
        // lease is released.
        let mut unanswered = Unanswered {
            limiter: Some(self),
            key,
            id,
        };
        let outcome = self.run_async(key, op(id)).await;
        if outcome.is_ok() {
            unanswered.limiter = None;
        }
        drop(unanswered);
        let outcome = outcome?;
        let acquire = match outcome.expires_at_ms {
            Some(expires_at_ms) if outcome.allowed => Acquire::Granted(Permit::new(
                self.clone(),
                key,
                id,
                expires_at_ms,
                outcome.decision,
            )),
            _ => Acquire::Denied(outcome.decision),
        };
        Ok((acquire, outcome.number))
    }

    /// Takes a slot for `key` when one is free within `within` (zero: tries
    /// once), without blocking a thread: `sleep` is the runtime's timer,
    /// e.g. `tokio::time::sleep`. Waiters are served as
    /// [`acquire_wait`](Self::acquire_wait) serves them; dropping the future
    /// leaves the queue.
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
        self.acquire_waiting(key, within, Pause::Timer(sleep)).await
    }

    /// Tries, then waits in `key`'s queue until a release here wakes this
    /// caller or the poll interval passes, and tries again, until the
    /// deadline. A denial's retry time (the first lease's expiry) only
    /// bounds each pause: a holder may release sooner.
    async fn acquire_waiting<F, Fut>(
        &self,
        key: &str,
        within: Duration,
        pause: Pause<F>,
    ) -> Result<Acquire<S, C>, Error>
    where
        F: Fn(Duration) -> Fut,
        Fut: Future<Output = ()>,
    {
        if within.is_zero() {
            // One try, which takes no place in the store's queue.
            return self.acquire_for_async(key, Duration::ZERO).await;
        }
        let deadline = deadline_ms(self.shared.clock.now_ms(), within);
        // The system clock sleeps in real time, as a condition variable
        // waits: a blocking waiter can then be woken early. Another clock
        // (a test's manual one) sleeps its own way, and is polled.
        let real_time = TypeId::of::<C>() == TypeId::of::<SystemClock>();
        // In the queue before the first try, so that no release between a
        // denial and the wait goes unseen.
        let place = self.shared.waiters.enqueue(key);
        // This waiter's place in the store's queue (fair limiters): its
        // number, taken at its first denial, and whether to take its
        // owner's ticket away when it leaves without a slot.
        let mut queued = Queued {
            limiter: self,
            key,
            number: 0,
            head: false,
        };
        // The last denial the store answered.
        let mut answered: Option<Decision> = None;
        loop {
            let owner = self.shared.owner;
            let (number, oldest, next) = place.numbers();
            let waiters = self.shared.waiters.len(key) as u64;
            let op = |id| match self.is_fair() {
                true => LeaseOp::Wait {
                    id,
                    ttl_ms: 0,
                    owner,
                    number,
                    oldest,
                    next,
                    waiters,
                },
                false => LeaseOp::AcquireUnfair { id, ttl_ms: 0 },
            };
            let (decision, failed) = match self.try_once(key, op).await {
                Ok((granted @ Acquire::Granted(_), _)) => {
                    // The store dropped the owner's ticket with the grant.
                    queued.number = 0;
                    return Ok(granted);
                }
                Ok((Acquire::Denied(decision), number)) => {
                    if number != 0 {
                        queued.number = number;
                        place.numbered(number);
                    }
                    answered = Some(decision);
                    (decision, None)
                }
                // Waiting through an outage (Redis restarting): a poll that
                // failed is made again at the next, until the deadline; the
                // place in the store's queue is kept by the number.
                Err(Error::Store(error)) if error.is_transient() => match answered {
                    Some(decision) => (decision, Some(error)),
                    None => return Err(Error::Store(error)),
                },
                Err(error) => return Err(error),
            };
            let now = self.shared.clock.now_ms();
            let Some(mut duration) = poll_interval(&decision, now, deadline) else {
                queued.head = place.polls();
                return match failed {
                    Some(error) => Err(Error::Store(error)),
                    None => Ok(Acquire::Denied(decision)),
                };
            };
            if place.woken() {
                // Woken, but the slot went to a caller that did not wait:
                // first in line still, and polling.
                place.requeue_first();
            } else if !place.polls() {
                // Behind another waiter: woken when its turn comes.
                duration = Duration::from_millis(deadline - now);
            }
            queued.head = place.polls();
            match &pause {
                Pause::Blocking if real_time => place.wait_blocking(duration),
                Pause::Blocking => self.shared.clock.sleep(duration),
                Pause::Timer(sleep) => place.sleep_or_wake(sleep(duration)).await,
            }
            queued.head = place.polls();
        }
    }

    /// Occupancy of `key` without changing it.
    pub async fn peek_async(&self, key: &str) -> Result<Decision, Error> {
        Ok(self.run_async(key, LeaseOp::Peek).await?.decision)
    }

    /// Drops every lease of `key`.
    pub async fn reset_async(&self, key: &str) -> Result<(), Error> {
        self.shared.store.remove_async(self.key(key)?).await?;
        self.shared.waiters.wake_all(key);
        Ok(())
    }

    pub(super) async fn run_async(&self, key: &str, op: LeaseOp) -> Result<LeaseOutcome, Error> {
        let step = LeaseStep {
            config: &self.shared.config,
            op,
        };
        let now = self.shared.clock.now_ms();
        self.shared
            .store
            .transact_async(self.key(key)?, now, &step)
            .await
    }
}

/// An acquire sent to the store and not answered yet: releases its lease
/// id when dropped armed (a release of an id not held changes nothing).
struct Unanswered<'k, S: AsyncStore, C: Clock + Send + Sync + 'static> {
    limiter: Option<&'k ConcurrencyLimiter<S, C>>,
    key: &'k str,
    id: u64,
}

impl<S: AsyncStore, C: Clock + Send + Sync + 'static> Drop for Unanswered<'_, S, C> {
    fn drop(&mut self) {
        if let Some(limiter) = self.limiter.take() {
            // Cloned only here: an answered acquire costs nothing more.
            let (limiter, key, id) = (limiter.clone(), Box::<str>::from(self.key), self.id);
            super::detached::finish(async move {
                let _ = limiter.run_async(&key, LeaseOp::Release { id }).await;
                limiter.released(&key);
            });
        }
    }
}

/// A waiter's number in the store's queue. Dropped while this waiter leads
/// its limiter's queue for the key without a slot (out of time, or its
/// future dropped), it takes its owner's ticket from the store: the next
/// waiter here, woken as it leaves, queues it again with its own number.
struct Queued<'k, S: AsyncStore, C: Clock + Send + Sync + 'static> {
    limiter: &'k ConcurrencyLimiter<S, C>,
    key: &'k str,
    number: u64,
    head: bool,
}

impl<S: AsyncStore, C: Clock + Send + Sync + 'static> Drop for Queued<'_, S, C> {
    fn drop(&mut self) {
        if self.number == 0 || !self.head {
            return;
        }
        let (limiter, key) = (self.limiter.clone(), Box::<str>::from(self.key));
        let owner = limiter.shared.owner;
        super::detached::finish(async move {
            let _ = limiter.run_async(&key, LeaseOp::Leave { owner }).await;
        });
    }
}

/// A denied acquire's retry time is when the first lease expires, but a
/// holder may release sooner: the first waiter polls at least this often,
/// plus up to as much again at random, so that the waiters of several
/// processes do not ask in step.
const POLL_MS: u64 = 50;

/// How long to sleep before trying again, or `None` once the deadline has
/// passed. Unlike rate limits, the retry time is only an upper bound here,
/// so waiting goes on until the deadline.
fn poll_interval(denial: &Decision, now_ms: u64, deadline_ms: u64) -> Option<Duration> {
    let room = deadline_ms.checked_sub(now_ms).filter(|&room| room > 0)?;
    let poll = POLL_MS + random::up_to(POLL_MS);
    let ms = denial.retry_after_ms.min(poll).min(room).max(1);
    Some(Duration::from_millis(ms))
}
