//! `MultiLimiter`: several limits decided as one call, all or nothing, and
//! the block after abuse.

use super::failure::FailurePolicy;
use super::rate::DEFAULT_PREFIX;
use crate::algorithm::{AllOf, AnyAlgorithm, MultiDecision};
use crate::clock::{Clock, SystemClock};
use crate::error::check_id;
use crate::store::{key_prefixes, AsyncStore, ConsumeAll, Key, MemoryStore, Store};
use crate::{AccessList, ConfigError, Error, IntoMillis, DEFAULT_MAX_ID_BYTES};

/// Several limits on one id, decided as one call: admitted only when every
/// limit admits it, and then charged to all; denied by any, charged to none
/// (a per-second burst limit and a per-day quota, say). With
/// [`with_block`](Self::with_block), an id denied once stays denied for a
/// while. One critical section in memory, one script call on Redis.
///
/// ```
/// use edgelimit::{FixedWindow, MultiLimiter, SlidingWindow};
///
/// let limiter = MultiLimiter::new([
///     SlidingWindow::new(2, "1 s")?.into(),
///     FixedWindow::new(1_000, "1 d")?.into(),
/// ])?;
/// assert!(limiter.limit("user:1")?.decision.allowed);
/// assert!(limiter.limit("user:1")?.decision.allowed);
/// let third = limiter.limit("user:1")?;
/// assert!(!third.decision.allowed);
/// assert_eq!(third.denied_by, Some(0)); // the per-second limit
/// assert_eq!(third.limits[1].remaining, 998); // the denied call cost nothing
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct MultiLimiter<S = MemoryStore, C = SystemClock> {
    all: AllOf<AnyAlgorithm>,
    store: S,
    clock: C,
    prefix: Box<str>,
    /// Per limit, then for the block: what its keys start with.
    key_prefixes: Vec<Box<str>>,
    max_id_bytes: usize,
    failure: FailurePolicy,
    access: Option<AccessList>,
}

impl MultiLimiter {
    /// The limits, with their own in-memory store and the system clock. At
    /// least one and at most [`MAX_LIMITS`](crate::algorithm::MAX_LIMITS),
    /// no two of one algorithm over one window (they would count on one
    /// state: [`ConfigError::SharedState`]).
    pub fn new(limits: impl IntoIterator<Item = AnyAlgorithm>) -> Result<Self, ConfigError> {
        let all = AllOf::new(limits)?;
        let mut limiter = Self {
            all,
            store: MemoryStore::new(),
            clock: SystemClock,
            prefix: DEFAULT_PREFIX.into(),
            key_prefixes: Vec::new(),
            max_id_bytes: DEFAULT_MAX_ID_BYTES,
            failure: FailurePolicy::Error,
            access: None,
        };
        limiter.key_prefixes = limiter.prefixes();
        Ok(limiter)
    }
}

impl<S, C> MultiLimiter<S, C> {
    /// Keeps state in `store` instead.
    pub fn with_store<S2>(self, store: S2) -> MultiLimiter<S2, C> {
        MultiLimiter {
            all: self.all,
            store,
            clock: self.clock,
            prefix: self.prefix,
            key_prefixes: self.key_prefixes,
            max_id_bytes: self.max_id_bytes,
            failure: self.failure,
            access: self.access,
        }
    }

    /// Reads time from `clock` instead.
    pub fn with_clock<C2>(self, clock: C2) -> MultiLimiter<S, C2> {
        MultiLimiter {
            all: self.all,
            store: self.store,
            clock,
            prefix: self.prefix,
            key_prefixes: self.key_prefixes,
            max_id_bytes: self.max_id_bytes,
            failure: self.failure,
            access: self.access,
        }
    }

    /// Keys start with `prefix` (default [`DEFAULT_PREFIX`]), then each
    /// limit's algorithm and time base, as a [`Limiter`](crate::Limiter)'s
    /// do: a limit shares its state with a limiter of the same prefix,
    /// algorithm and window.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().into();
        self.key_prefixes = self.prefixes();
        self
    }

    /// Once a call is denied, its id stays denied for `duration` (the
    /// login rule against guessing passwords), reported with
    /// [`Reason::Blocked`](crate::Reason::Blocked) and the exact time until
    /// the block and the limits would admit it. Nothing is charged while
    /// blocked, and denials then do not prolong the block.
    ///
    /// ```
    /// use edgelimit::{FixedWindow, ManualClock, MultiLimiter, Reason};
    ///
    /// let clock = ManualClock::new(0);
    /// let login = MultiLimiter::new([FixedWindow::new(5, "1 m")?.into()])?
    ///     .with_block("15 m")?
    ///     .with_clock(clock.clone());
    /// for _ in 0..5 {
    ///     assert!(login.limit("alice")?.decision.allowed);
    /// }
    /// let denied = login.limit("alice")?.decision;
    /// assert_eq!(denied.reason, Some(Reason::Blocked));
    /// assert_eq!(denied.retry_after_ms, 15 * 60_000);
    /// clock.advance(60_000); // the window is over, the block is not
    /// assert!(!login.limit("alice")?.decision.allowed);
    /// clock.advance(14 * 60_000);
    /// assert!(login.limit("alice")?.decision.allowed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_block(mut self, duration: impl IntoMillis) -> Result<Self, ConfigError> {
        self.all = self.all.with_block(duration)?;
        self.key_prefixes = self.prefixes();
        Ok(self)
    }

    /// Accepts ids of up to `max` bytes (at least 1, default
    /// [`DEFAULT_MAX_ID_BYTES`]); a longer id is [`Error::IdTooLong`].
    pub fn with_max_id_bytes(mut self, max: usize) -> Self {
        self.max_id_bytes = max.max(1);
        self
    }

    /// Decides ids on `lists` without asking the store (see
    /// [`Limiter::with_access_list`](crate::Limiter::with_access_list)).
    pub fn with_access_list(mut self, lists: AccessList) -> Self {
        self.access = Some(lists);
        self
    }

    /// Answers with a marked decision instead of an error when the store
    /// fails (default [`FailurePolicy::Error`]).
    pub fn with_failure_policy(mut self, failure: FailurePolicy) -> Self {
        self.failure = failure;
        self
    }

    /// The limits, in the order decisions report them.
    pub fn limits(&self) -> &[AnyAlgorithm] {
        self.all.limits()
    }

    /// The block's duration in milliseconds, 0 without one.
    pub fn block_ms(&self) -> u64 {
        self.all.block_ms()
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    fn prefixes(&self) -> Vec<Box<str>> {
        let prefixes = key_prefixes(&self.all, &self.prefix);
        prefixes.into_iter().map(String::into_boxed_str).collect()
    }

    fn keys<'a>(&'a self, id: &'a str) -> Vec<Key<'a>> {
        self.key_prefixes
            .iter()
            .map(|prefix| Key { prefix, id })
            .collect()
    }

    fn step(&self, cost: u64, peek: bool) -> ConsumeAll<'_, AnyAlgorithm> {
        ConsumeAll {
            all: &self.all,
            cost,
            peek,
        }
    }

    /// The answer without the store, when there is one: an id refused, or
    /// held by the access lists.
    fn local(&self, id: &str, now_ms: u64) -> Option<Result<MultiDecision, Error>> {
        if let Err(error) = check_id(id, self.max_id_bytes) {
            return Some(Err(error));
        }
        let listed = self.access.as_ref()?.check(id)?;
        Some(Ok(self.all.alike(|limit| listed.decision(limit, now_ms))))
    }

    /// The store's answer, or the failure policy's.
    fn decided(
        &self,
        answer: Result<MultiDecision, Error>,
        now_ms: u64,
    ) -> Result<MultiDecision, Error> {
        match answer {
            Err(Error::Store(error))
                if self.failure != FailurePolicy::Error && !error.is_misuse() =>
            {
                Ok(self.all.alike(|limit| self.failure.decide(limit, now_ms)))
            }
            decided => decided,
        }
    }
}

impl<S: Store, C: Clock> MultiLimiter<S, C> {
    /// Decides a call of cost 1 for `id`.
    pub fn limit(&self, id: &str) -> Result<MultiDecision, Error> {
        self.limit_with_cost(id, 1)
    }

    /// Decides a call of `cost` units for `id`: a cost above any limit is
    /// [`Error::CostExceedsLimit`], and changes nothing.
    pub fn limit_with_cost(&self, id: &str, cost: u64) -> Result<MultiDecision, Error> {
        self.limit_at(id, cost, self.clock.now_ms())
    }

    /// Decides a call at an explicit time `now_ms` instead of the clock's.
    pub fn limit_at(&self, id: &str, cost: u64, now_ms: u64) -> Result<MultiDecision, Error> {
        if let Some(answer) = self.local(id, now_ms) {
            return answer;
        }
        let answer = self
            .store
            .transact_keys(&self.keys(id), now_ms, &self.step(cost, false));
        self.decided(answer, now_ms)
    }

    /// What `id` has left under every limit (and whether it is blocked),
    /// changing nothing.
    pub fn remaining(&self, id: &str) -> Result<MultiDecision, Error> {
        check_id(id, self.max_id_bytes)?;
        let now_ms = self.clock.now_ms();
        let answer = self
            .store
            .transact_keys(&self.keys(id), now_ms, &self.step(0, true));
        self.decided(answer, now_ms)
    }

    /// Forgets `id`'s state under every limit, and its block.
    pub fn reset(&self, id: &str) -> Result<(), Error> {
        check_id(id, self.max_id_bytes)?;
        self.keys(id)
            .into_iter()
            .try_for_each(|key| self.store.remove(key))
    }
}

/// The async forms, for stores that answer without blocking.
impl<S: AsyncStore, C: Clock> MultiLimiter<S, C> {
    /// [`limit`](Self::limit), awaiting the store.
    pub async fn limit_async(&self, id: &str) -> Result<MultiDecision, Error> {
        self.limit_with_cost_async(id, 1).await
    }

    /// [`limit_with_cost`](Self::limit_with_cost), awaiting the store.
    pub async fn limit_with_cost_async(&self, id: &str, cost: u64) -> Result<MultiDecision, Error> {
        let now_ms = self.clock.now_ms();
        if let Some(answer) = self.local(id, now_ms) {
            return answer;
        }
        let keys = self.keys(id);
        let step = self.step(cost, false);
        let answer = self.store.transact_keys_async(&keys, now_ms, &step).await;
        self.decided(answer, now_ms)
    }

    /// [`remaining`](Self::remaining), awaiting the store.
    pub async fn remaining_async(&self, id: &str) -> Result<MultiDecision, Error> {
        check_id(id, self.max_id_bytes)?;
        let now_ms = self.clock.now_ms();
        let keys = self.keys(id);
        let step = self.step(0, true);
        let answer = self.store.transact_keys_async(&keys, now_ms, &step).await;
        self.decided(answer, now_ms)
    }

    /// [`reset`](Self::reset), awaiting the store.
    pub async fn reset_async(&self, id: &str) -> Result<(), Error> {
        check_id(id, self.max_id_bytes)?;
        for key in self.keys(id) {
            self.store.remove_async(key).await?;
        }
        Ok(())
    }
}
