//! The local deny cache of the REST stores: after Redis denies a call, the
//! state it sent back answers further calls on that key without a request,
//! for as long as the core proves they would be denied.
//!
//! Why a local denial is exact: other clients can only add usage to Redis's
//! state (a `reset` elsewhere is the documented exception), so a call the
//! remembered state denies, Redis denies too, with the same numbers when
//! nobody else used the key. A call the remembered state would admit always
//! goes to Redis: nothing is ever admitted locally.
//!
//! Time: with Redis's clock, the state is in Redis's time, so a local time
//! is mapped to the latest Redis time it could be: the offset of the latest
//! reply, measured from the moment its request was prepared (the script ran
//! no earlier), is an upper bound. Overestimating Redis's time can only send
//! a call to Redis that could have been answered here, never the reverse.

use std::sync::atomic::{AtomicI64, Ordering};

use super::options::{RestOptions, TimeSource};
use crate::algorithm::{AnyState, StateKind};
use crate::store::{Answer, Key, MemoryStore, Transition};

/// Remembered denials of one store.
pub(crate) struct DenyCache {
    states: MemoryStore,
    /// Redis's clock minus ours, at most (0 with the caller's clock).
    offset_ms: AtomicI64,
    time: TimeSource,
}

impl DenyCache {
    /// The cache `options` ask for, if any.
    pub(crate) fn new(options: &RestOptions) -> Option<Self> {
        (options.deny_cache > 0).then(|| Self {
            states: MemoryStore::with_max_keys(options.deny_cache),
            offset_ms: AtomicI64::new(0),
            time: options.time,
        })
    }

    /// The time on the store's clock no earlier than the store's own at
    /// local time `now_ms`.
    fn store_time(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add_signed(self.offset_ms.load(Ordering::Relaxed))
    }

    /// `transition`'s answer on `key` at local time `now_ms` when the
    /// remembered state proves it (a denial); `None`: ask Redis.
    pub(crate) fn answer<T: Transition>(
        &self,
        key: Key<'_>,
        now_ms: u64,
        transition: &T,
    ) -> Option<T::Output> {
        if !transition.uses_deny_cache() {
            return None;
        }
        let at = self.store_time(now_ms);
        let state = T::State::from_any(self.states.get(key, at)?)?;
        let local = transition.deny_locally(&state, at);
        if local.is_none() {
            // The call could be admitted: the copy has served, Redis decides.
            self.put(key, at, None);
        }
        local
    }

    /// Forgets what is remembered of `key` (its state was removed).
    pub(crate) fn forget(&self, key: Key<'_>) {
        self.put(key, 0, None);
    }

    /// Learns from Redis's `answer` to `transition` on `key`, whose request
    /// was prepared at local time `sent_ms`: the clock offset, and the
    /// state of a denial (an admission drops what was remembered: it used
    /// more of the limit than the copy shows).
    pub(crate) fn learn<T: Transition>(
        &self,
        key: Key<'_>,
        sent_ms: u64,
        transition: &T,
        answer: Answer<T::Output, T::State>,
    ) -> T::Output {
        if self.time == TimeSource::Redis {
            let offset = i64::try_from(answer.now_ms).unwrap_or(i64::MAX)
                - i64::try_from(sent_ms).unwrap_or(i64::MAX);
            self.offset_ms.store(offset, Ordering::Relaxed);
        }
        if transition.uses_deny_cache() {
            let denied = answer
                .denied_state
                .map(|(state, keep_ms)| (state.into_any(), keep_ms));
            self.put(key, answer.now_ms, denied);
        }
        answer.output
    }

    /// Remembers `state` for `keep_ms` from `at`, or forgets `key`'s.
    /// (Every write goes through here: one instantiation of the store's
    /// update keeps the WebAssembly module small.)
    fn put(&self, key: Key<'_>, at: u64, state: Option<(AnyState, u64)>) {
        let (state, keep_ms) = state.map_or((None, 0), |(s, keep)| (Some(s), keep));
        let mut state = Some(state);
        // Neither storing nor dropping can fail.
        // A cache: what it evicts first only costs a request, so by expiry.
        let _ = self.states.update(
            key,
            at,
            |held: &mut Option<AnyState>| {
                *held = state.take().flatten();
                Ok(((), keep_ms))
            },
            |_| 0,
        );
    }
}
