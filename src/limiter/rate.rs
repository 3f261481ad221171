//! `Limiter`: an algorithm, a store, a clock and a key prefix.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::failure::FailurePolicy;
use super::metrics::{Counters, Metrics};
use super::quota_book::{QuotaBook, Spend};
use super::wait::{backoff, deadline_ms, run_blocking, WaitOutcome};
use crate::algorithm::{Adjustment, Algorithm, QuotaRefund, Tier};
use crate::clock::{Clock, SystemClock};
use crate::error::check_id;
use crate::store::{
    key_prefix, Adjust, AsyncStore, Consume, ConsumeQuota, Key, MemoryStore, Peek, Store,
};
use crate::{AccessList, ConfigError, Decision, Error, DEFAULT_MAX_ID_BYTES};

/// The prefix of keys of limiters that do not set one.
pub const DEFAULT_PREFIX: &str = "edgelimit:";

/// A rate limiter: decides calls per key with its algorithm, keeping state in
/// its store under `prefix`, the algorithm and its time base, and the key
/// (`edgelimit:fw:60000:{user:42}` in Redis: see
/// [`key_prefix`](crate::store::key_prefix)).
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
    /// `prefix`, the algorithm and its time base: what keys start with.
    key_prefix: Box<str>,
    /// The longest id accepted, in bytes.
    max_id_bytes: usize,
    failure: FailurePolicy,
    /// Quota leases, when asked for: shared by clones.
    quota: Option<Arc<QuotaBook>>,
    /// What it decided, when counted: shared by clones.
    counters: Option<Arc<Counters>>,
    /// Deny and allow lists, decided before the store.
    access: Option<AccessList>,
}

impl<A: Algorithm> Limiter<A> {
    /// A limiter with its own in-memory store and the system clock.
    pub fn new(algorithm: A) -> Self {
        Self {
            key_prefix: key_prefix(DEFAULT_PREFIX, &algorithm.key_space()).into(),
            algorithm,
            store: MemoryStore::new(),
            clock: SystemClock,
            prefix: DEFAULT_PREFIX.into(),
            max_id_bytes: DEFAULT_MAX_ID_BYTES,
            failure: FailurePolicy::Error,
            quota: None,
            counters: None,
            access: None,
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
            key_prefix: self.key_prefix,
            max_id_bytes: self.max_id_bytes,
            failure: self.failure,
            quota: self.quota,
            counters: self.counters,
            access: self.access,
        }
    }

    /// Reads time from `clock` instead.
    pub fn with_clock<C2>(self, clock: C2) -> Limiter<A, S, C2> {
        Limiter {
            algorithm: self.algorithm,
            store: self.store,
            clock,
            prefix: self.prefix,
            key_prefix: self.key_prefix,
            max_id_bytes: self.max_id_bytes,
            failure: self.failure,
            quota: self.quota,
            counters: self.counters,
            access: self.access,
        }
    }

    /// Accepts ids of up to `max` bytes (UTF-8; at least 1, default
    /// [`DEFAULT_MAX_ID_BYTES`]); a longer id is [`Error::IdTooLong`],
    /// before anything is stored or sent.
    pub fn with_max_id_bytes(mut self, max: usize) -> Self {
        self.max_id_bytes = max.max(1);
        self
    }

    /// The longest id accepted, in bytes.
    pub fn max_id_bytes(&self) -> usize {
        self.max_id_bytes
    }

    /// Decides ids on `lists` without asking the store: denied with
    /// [`Reason::DenyList`](crate::Reason::DenyList), admitted with
    /// [`Reason::AllowList`](crate::Reason::AllowList) (see [`AccessList`]).
    /// The lists are shared: changes apply to the next call.
    ///
    /// ```
    /// use edgelimit::{AccessList, FixedWindow, Limiter, Reason};
    ///
    /// let lists = AccessList::new();
    /// lists.deny("203.0.113.0/24")?;
    /// let limiter = Limiter::new(FixedWindow::new(100, "1 m")?).with_access_list(lists.clone());
    /// let decision = limiter.limit("203.0.113.7")?;
    /// assert!(!decision.allowed);
    /// assert_eq!(decision.reason, Some(Reason::DenyList));
    /// lists.remove("203.0.113.0/24")?;
    /// assert!(limiter.limit("203.0.113.7")?.allowed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_access_list(mut self, lists: AccessList) -> Self {
        self.access = Some(lists);
        self
    }

    /// The deny and allow lists, if any.
    pub fn access_list(&self) -> Option<&AccessList> {
        self.access.as_ref()
    }

    /// Answers with a marked decision instead of an error when the store
    /// fails (default [`FailurePolicy::Error`]).
    pub fn with_failure_policy(mut self, failure: FailurePolicy) -> Self {
        self.failure = failure;
        self
    }

    /// Whether quota leases are on, and how many units each request takes.
    pub fn quota_lease(&self) -> Option<u64> {
        self.quota.as_deref().map(QuotaBook::units)
    }

    /// Counts what it decides from now on (see [`metrics`](Self::metrics)):
    /// one relaxed atomic add per call, shared by its clones, so off unless
    /// asked for.
    pub fn with_metrics(mut self) -> Self {
        self.counters = Some(Arc::default());
        self
    }

    /// What it decided since [`with_metrics`](Self::with_metrics) (its
    /// clones share the counts): admissions, denials, decisions of the
    /// failure policy and errors of `limit` and friends (reads excepted);
    /// `None` when it does not count.
    pub fn metrics(&self) -> Option<Metrics> {
        self.counters.as_deref().map(Counters::snapshot)
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
            prefix: &self.key_prefix,
            id,
        }
    }
}

impl<A: Algorithm, S, C> Limiter<A, S, C> {
    /// Prefixes every key with `prefix` (default [`DEFAULT_PREFIX`]), so
    /// limiters sharing a store keep separate counts. Limiters of different
    /// algorithms or time bases never share state, whatever their prefix;
    /// two with the same prefix, algorithm and time base share it by design.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().into_boxed_str();
        self.key_prefix = key_prefix(&self.prefix, &self.algorithm.key_space()).into();
        self
    }

    /// Takes quota leases of `units`: an admitted call that goes to the
    /// store takes up to `units` units of its window in all (as many as are
    /// left), and further calls on that id spend them here without a
    /// request until they run out or the window ends. With `units = k`, a
    /// steady load makes about one request per `k` admitted calls.
    ///
    /// Never admits more than the limit: every unit spent here was counted
    /// by the store in its window and is spent before the window ends. What
    /// it costs is under-admission: units leased by one limiter (one process,
    /// one isolate) are unavailable to others until they are spent, given
    /// back (with the next request for the id once the lease cannot pay for
    /// a call, or by [`return_quota`](Self::return_quota)) or their window
    /// ends; at most `units − 1` per limiter and id at any time. Reported
    /// `remaining` counts this limiter's unspent units as available.
    ///
    /// Only fixed and sliding windows lease
    /// ([`ConfigError::QuotaLeaseUnsupported`]); `units` is at least 1 (1
    /// leases nothing) and at most the limit. Useful with a remote store;
    /// in memory it only adds work.
    pub fn with_quota_lease(mut self, units: u64) -> Result<Self, ConfigError> {
        validate_quota_lease(&self.algorithm, units)?;
        self.quota = Some(Arc::new(QuotaBook::new(units)));
        Ok(self)
    }

    /// A call of `cost` on `id` at `now_ms` under quota leases: the lease's
    /// answer, or the request to make.
    fn leased<'a>(
        &'a self,
        book: &QuotaBook,
        id: &str,
        cost: u64,
        now_ms: u64,
    ) -> Result<Decision, ConsumeQuota<'a, A>> {
        match book.spend(id, now_ms, cost) {
            Spend::Local(decision) => Ok(decision),
            Spend::Ask { want, refund } => Err(ConsumeQuota {
                algorithm: &self.algorithm,
                cost,
                want,
                refund,
            }),
        }
    }

    /// Ends every quota lease: the ids and what each gives back.
    fn returns(&self) -> Vec<(Box<str>, QuotaRefund)> {
        self.quota
            .as_deref()
            .map_or_else(Vec::new, QuotaBook::drain)
    }

    /// The call giving `refund` back.
    fn give_back(&self, refund: QuotaRefund) -> ConsumeQuota<'_, A> {
        ConsumeQuota {
            algorithm: &self.algorithm,
            cost: 0,
            want: 0,
            refund: Some(refund),
        }
    }

    /// `decision` with this limiter's unspent units of `id` counted.
    fn with_unspent(&self, id: &str, mut decision: Decision, now_ms: u64) -> Decision {
        if let Some(book) = self.quota.as_deref() {
            decision.remaining += book.unspent(id, now_ms);
        }
        decision
    }
}

/// Checks that `algorithm` leases quota and `units` is a lease size for it.
pub(crate) fn validate_quota_lease<A: Algorithm>(
    algorithm: &A,
    units: u64,
) -> Result<(), ConfigError> {
    if !algorithm.leases_quota() {
        return Err(ConfigError::QuotaLeaseUnsupported);
    }
    if units == 0 {
        return Err(ConfigError::Zero {
            what: "lease units",
        });
    }
    let limit = algorithm.limit();
    if units > limit {
        return Err(ConfigError::Exceeds {
            what: "lease units",
            value: units,
            bound: "limit",
            bound_value: limit,
        });
    }
    Ok(())
}

/// What every form shares, whatever the store.
impl<A: Algorithm, S, C: Clock> Limiter<A, S, C> {
    /// The decision of the access lists for `key`, if they hold it.
    #[inline]
    fn listed(&self, key: &str, now_ms: u64) -> Option<Decision> {
        self.listed_under(self.algorithm.limit(), key, now_ms)
    }

    /// The same, reporting `limit` (a call's own, under a tier).
    #[inline]
    fn listed_under(&self, limit: u64, key: &str, now_ms: u64) -> Option<Decision> {
        let listed = self.access.as_ref()?.check(key)?;
        Some(listed.decision(limit, now_ms))
    }

    /// A call's answer after the failure policy, counted.
    fn decided(&self, answer: Result<Decision, Error>, now_ms: u64) -> Result<Decision, Error> {
        self.decided_under(self.algorithm.limit(), answer, now_ms)
    }

    /// The same, reporting `limit` (a call's own, under a tier).
    fn decided_under(
        &self,
        limit: u64,
        answer: Result<Decision, Error>,
        now_ms: u64,
    ) -> Result<Decision, Error> {
        let answer = self.apply_policy_under(limit, answer, now_ms);
        if let Some(counters) = &self.counters {
            counters.record(&answer);
        }
        answer
    }

    fn apply_policy(
        &self,
        answer: Result<Decision, Error>,
        now_ms: u64,
    ) -> Result<Decision, Error> {
        self.apply_policy_under(self.algorithm.limit(), answer, now_ms)
    }

    fn apply_policy_under(
        &self,
        limit: u64,
        answer: Result<Decision, Error>,
        now_ms: u64,
    ) -> Result<Decision, Error> {
        match answer {
            Err(Error::Store(error))
                if self.failure != FailurePolicy::Error && !error.is_misuse() =>
            {
                Ok(self.failure.decide(limit, now_ms))
            }
            decided => decided,
        }
    }

    /// The algorithm of a call under `tier` on `key`, or the answer the
    /// call gets without the store (a tier or an id that is refused, a key
    /// the access lists hold).
    fn under_tier(
        &self,
        key: &str,
        tier: &Tier,
        now_ms: u64,
    ) -> Result<A, Result<Decision, Error>> {
        let algorithm = match self.algorithm.tiered(tier) {
            Ok(algorithm) => algorithm,
            Err(error) => return Err(self.decided(Err(Error::Tier(error)), now_ms)),
        };
        let limit = algorithm.limit();
        if let Err(error) = check_id(key, self.max_id_bytes) {
            return Err(self.decided_under(limit, Err(error), now_ms));
        }
        if let Some(listed) = self.listed_under(limit, key, now_ms) {
            return Err(self.decided_under(limit, Ok(listed), now_ms));
        }
        Ok(algorithm)
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
        if let Err(error) = check_id(key, self.max_id_bytes) {
            return self.decided(Err(error), now_ms);
        }
        if let Some(listed) = self.listed(key, now_ms) {
            return self.decided(Ok(listed), now_ms);
        }
        let answer = match self.quota.as_deref() {
            None => {
                let step = Consume {
                    algorithm: &self.algorithm,
                    cost,
                };
                self.store.transact(self.key(key), now_ms, &step)
            }
            Some(book) => match self.leased(book, key, cost, now_ms) {
                Ok(local) => return self.decided(Ok(local), now_ms),
                Err(step) => {
                    let answer = self.store.transact(self.key(key), now_ms, &step);
                    book.settle(key, now_ms, answer)
                }
            },
        };
        self.decided(answer, now_ms)
    }

    /// Decides a call of `cost` units for `key` under `tier`'s limit instead
    /// of the configured one, on the same state as every other call (a
    /// user's plan, read per request): see [`Tier`] for what a change of
    /// limit means. The access lists and the failure policy apply as for
    /// [`limit_with_cost`](Self::limit_with_cost), with the tier's limit;
    /// quota leases do not (the call goes to the store). A tier that makes
    /// no valid configuration (a limit of 0, a refill for a window) is
    /// [`Error::Tier`], and nothing is decided.
    ///
    /// ```
    /// use edgelimit::{FixedWindow, Limiter, Tier};
    ///
    /// let limiter = Limiter::new(FixedWindow::new(10, "1 m")?); // the free plan
    /// let pro = Tier::limit(1_000);
    /// for _ in 0..10 {
    ///     assert!(limiter.limit("user:1")?.allowed);
    /// }
    /// assert!(!limiter.limit("user:1")?.allowed);
    /// // Upgraded: the 10 calls made count against the new limit.
    /// let decision = limiter.limit_under("user:1", 1, &pro)?;
    /// assert!(decision.allowed);
    /// assert_eq!(decision.remaining, 1_000 - 11);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn limit_under(&self, key: &str, cost: u64, tier: &Tier) -> Result<Decision, Error> {
        self.limit_under_at(key, cost, tier, self.clock.now_ms())
    }

    /// [`limit_under`](Self::limit_under) at an explicit time `now_ms`.
    pub fn limit_under_at(
        &self,
        key: &str,
        cost: u64,
        tier: &Tier,
        now_ms: u64,
    ) -> Result<Decision, Error> {
        let algorithm = match self.under_tier(key, tier, now_ms) {
            Ok(algorithm) => algorithm,
            Err(answer) => return answer,
        };
        let step = Consume {
            algorithm: &algorithm,
            cost,
        };
        let answer = self.store.transact(self.key(key), now_ms, &step);
        self.decided_under(algorithm.limit(), answer, now_ms)
    }

    /// Decides several `(key, cost)` calls together, in order: with a remote
    /// store, in one round trip. Each answer is what
    /// [`limit_with_cost`](Self::limit_with_cost) would have given, including
    /// the failure policy.
    pub fn limit_many(&self, calls: &[(&str, u64)]) -> Vec<Result<Decision, Error>> {
        let now_ms = self.clock.now_ms();
        if calls
            .iter()
            .any(|(key, _)| check_id(key, self.max_id_bytes).is_err())
        {
            // Rare: each call on its own, so a bad id fails alone.
            return calls
                .iter()
                .map(|&(key, cost)| self.limit_at(key, cost, now_ms))
                .collect();
        }
        if self.access.is_some() {
            let listed: Vec<_> = calls
                .iter()
                .map(|(key, _)| self.listed(key, now_ms))
                .collect();
            if listed.iter().any(Option::is_some) {
                // The lists answer theirs; the others share one round trip.
                let unlisted: Vec<_> = calls
                    .iter()
                    .zip(&listed)
                    .filter_map(|(&call, listed)| listed.is_none().then_some(call))
                    .collect();
                let mut answers = self.limit_many_unlisted(&unlisted, now_ms).into_iter();
                return calls
                    .iter()
                    .zip(listed)
                    .map(|(&(key, cost), listed)| match listed {
                        Some(decision) => self.decided(Ok(decision), now_ms),
                        None => answers
                            .next()
                            .unwrap_or_else(|| self.limit_at(key, cost, now_ms)),
                    })
                    .collect();
            }
        }
        self.limit_many_unlisted(calls, now_ms)
    }

    /// [`limit_many`](Self::limit_many) of valid ids no list holds.
    fn limit_many_unlisted(
        &self,
        calls: &[(&str, u64)],
        now_ms: u64,
    ) -> Vec<Result<Decision, Error>> {
        if let Some(book) = self.quota.as_deref() {
            return self.limit_many_leased(book, calls, now_ms);
        }
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
            .map(|answer| self.decided(answer, now_ms))
            .collect()
    }

    /// [`limit_many`](Self::limit_many) under quota leases: calls the
    /// leases pay for are answered here, the others in one round trip.
    fn limit_many_leased(
        &self,
        book: &QuotaBook,
        calls: &[(&str, u64)],
        now_ms: u64,
    ) -> Vec<Result<Decision, Error>> {
        let mut answers = Vec::with_capacity(calls.len());
        let mut asks = Vec::new();
        for &(id, cost) in calls {
            match self.leased(book, id, cost, now_ms) {
                Ok(local) => answers.push(Some(local)),
                Err(step) => {
                    answers.push(None);
                    asks.push((self.key(id), step));
                }
            }
        }
        let mut replies = self.store.transact_many(&asks, now_ms).into_iter();
        answers
            .into_iter()
            .zip(calls)
            .map(|(local, &(id, _))| match local {
                Some(decision) => self.decided(Ok(decision), now_ms),
                None => {
                    let answer = replies.next().unwrap_or_else(|| {
                        Err(Error::Store(crate::StoreError::MalformedReply(
                            "a batched answer is missing".into(),
                        )))
                    });
                    self.decided(book.settle(id, now_ms, answer), now_ms)
                }
            })
            .collect()
    }

    /// What `key` has left, without consuming or writing anything:
    /// `remaining` and `reset_ms` of a cost-0 decision (with quota leases,
    /// this limiter's unspent units count as left).
    pub fn remaining(&self, key: &str) -> Result<Decision, Error> {
        check_id(key, self.max_id_bytes)?;
        let now_ms = self.clock.now_ms();
        let peek = Peek {
            algorithm: &self.algorithm,
        };
        let answer = self.store.transact(self.key(key), now_ms, &peek);
        let answer = answer.map(|decision| self.with_unspent(key, decision, now_ms));
        self.apply_policy(answer, now_ms)
    }

    /// Gives `units` back to `key`: a call that turned out cheaper than it
    /// was charged, or failed upstream. Never more than the key has used
    /// (nothing is minted: a full bucket stays full); in a window, to the
    /// window a call now counts in; in a sliding log, the newest units
    /// first. Answers what is left, as [`remaining`](Self::remaining)
    /// would; a cached denial of the key is forgotten.
    ///
    /// ```
    /// use edgelimit::{Limiter, SlidingWindow};
    ///
    /// let limiter = Limiter::new(SlidingWindow::new(10, "1 m")?);
    /// assert_eq!(limiter.limit_with_cost("user:1", 5)?.remaining, 5);
    /// // The upstream call failed: its units come back.
    /// assert_eq!(limiter.refund("user:1", 5)?.remaining, 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn refund(&self, key: &str, units: u64) -> Result<Decision, Error> {
        self.adjust(key, Adjustment::Refund(units))
    }

    /// Charges `key` `units` on top of what it used (a failed login, abuse):
    /// never past the limit, so the key waits at most as long as a full use
    /// would make it. Answers what is left.
    pub fn penalize(&self, key: &str, units: u64) -> Result<Decision, Error> {
        self.adjust(key, Adjustment::Penalty(units))
    }

    fn adjust(&self, key: &str, adjustment: Adjustment) -> Result<Decision, Error> {
        check_id(key, self.max_id_bytes)?;
        let step = Adjust {
            algorithm: &self.algorithm,
            adjustment,
        };
        self.store
            .transact(self.key(key), self.clock.now_ms(), &step)
    }

    /// Forgets `key`'s state: its next call is treated as its first.
    pub fn reset(&self, key: &str) -> Result<(), Error> {
        check_id(key, self.max_id_bytes)?;
        if let Some(book) = self.quota.as_deref() {
            book.forget(key);
        }
        self.store.remove(self.key(key))
    }

    /// Gives every unspent quota lease back to the store, in one round trip
    /// (e.g. before a process exits); nothing to do without leases. Units
    /// that fail to come back stay unavailable until their window ends.
    pub fn return_quota(&self) -> Result<(), Error> {
        let returns = self.returns();
        let steps: Vec<_> = returns
            .iter()
            .map(|(id, refund)| (self.key(id), self.give_back(*refund)))
            .collect();
        let now_ms = self.clock.now_ms();
        self.store
            .transact_many(&steps, now_ms)
            .into_iter()
            .try_for_each(|answer| answer.map(drop))
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
        if let Err(error) = check_id(key, self.max_id_bytes) {
            return self.decided(Err(error), now_ms);
        }
        if let Some(listed) = self.listed(key, now_ms) {
            return self.decided(Ok(listed), now_ms);
        }
        let answer = match self.quota.as_deref() {
            None => {
                let step = Consume {
                    algorithm: &self.algorithm,
                    cost,
                };
                self.store
                    .transact_async(self.key(key), now_ms, &step)
                    .await
            }
            Some(book) => match self.leased(book, key, cost, now_ms) {
                Ok(local) => return self.decided(Ok(local), now_ms),
                Err(step) => {
                    let answer = self
                        .store
                        .transact_async(self.key(key), now_ms, &step)
                        .await;
                    book.settle(key, now_ms, answer)
                }
            },
        };
        self.decided(answer, now_ms)
    }

    /// Decides a call under `tier` (see [`limit_under`](Self::limit_under)).
    pub async fn limit_under_async(
        &self,
        key: &str,
        cost: u64,
        tier: &Tier,
    ) -> Result<Decision, Error> {
        let now_ms = self.clock.now_ms();
        let algorithm = match self.under_tier(key, tier, now_ms) {
            Ok(algorithm) => algorithm,
            Err(answer) => return answer,
        };
        let step = Consume {
            algorithm: &algorithm,
            cost,
        };
        let answer = self
            .store
            .transact_async(self.key(key), now_ms, &step)
            .await;
        self.decided_under(algorithm.limit(), answer, now_ms)
    }

    /// What `key` has left, without consuming or writing anything (see
    /// [`remaining`](Self::remaining)).
    pub async fn remaining_async(&self, key: &str) -> Result<Decision, Error> {
        check_id(key, self.max_id_bytes)?;
        let now_ms = self.clock.now_ms();
        let peek = Peek {
            algorithm: &self.algorithm,
        };
        let answer = self
            .store
            .transact_async(self.key(key), now_ms, &peek)
            .await
            .map(|decision| self.with_unspent(key, decision, now_ms));
        self.apply_policy(answer, now_ms)
    }

    /// Gives `units` back to `key` (see [`refund`](Self::refund)).
    pub async fn refund_async(&self, key: &str, units: u64) -> Result<Decision, Error> {
        self.adjust_async(key, Adjustment::Refund(units)).await
    }

    /// Charges `key` `units` more (see [`penalize`](Self::penalize)).
    pub async fn penalize_async(&self, key: &str, units: u64) -> Result<Decision, Error> {
        self.adjust_async(key, Adjustment::Penalty(units)).await
    }

    async fn adjust_async(&self, key: &str, adjustment: Adjustment) -> Result<Decision, Error> {
        check_id(key, self.max_id_bytes)?;
        let step = Adjust {
            algorithm: &self.algorithm,
            adjustment,
        };
        self.store
            .transact_async(self.key(key), self.clock.now_ms(), &step)
            .await
    }

    /// Forgets `key`'s state: its next call is treated as its first.
    pub async fn reset_async(&self, key: &str) -> Result<(), Error> {
        check_id(key, self.max_id_bytes)?;
        if let Some(book) = self.quota.as_deref() {
            book.forget(key);
        }
        self.store.remove_async(self.key(key)).await
    }

    /// Gives every unspent quota lease back to the store (see
    /// [`return_quota`](Self::return_quota)); concurrent calls of an async
    /// store share requests.
    pub async fn return_quota_async(&self) -> Result<(), Error> {
        let now_ms = self.clock.now_ms();
        let mut result = Ok(());
        for (id, refund) in self.returns() {
            let step = self.give_back(refund);
            let answer = self
                .store
                .transact_async(self.key(&id), now_ms, &step)
                .await;
            result = result.and(answer.map(drop));
        }
        result
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
