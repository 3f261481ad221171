//! Stores that answer without blocking a thread: the async face of
//! [`Store`], for limiters inside an async runtime.

use std::future::Future;

use super::contract::{no_step_on_several_keys, Key, Store, Transition};
use super::multi::KeysTransition;
use crate::Error;

/// Storage for limiter state whose operations are futures: an async server
/// awaits them instead of blocking a worker thread.
///
/// Every [`Store`] is one (its futures are ready at once: the memory store
/// never waits), so async code can be written once for every store;
/// [`AsyncRedisRestStore`](crate::store::AsyncRedisRestStore) is the one
/// that really waits, on the network.
pub trait AsyncStore: Send + Sync + 'static {
    /// Runs `transition` atomically on `key`'s state at `now_ms`.
    fn transact_async<'a, T>(
        &'a self,
        key: Key<'a>,
        now_ms: u64,
        transition: &'a T,
    ) -> impl Future<Output = Result<T::Output, Error>> + Send + 'a
    where
        T: Transition + Sync,
        T::Output: Send;

    /// Runs `transition` atomically on the states of `keys` at `now_ms`
    /// (see [`Store::transact_keys`]).
    fn transact_keys_async<'a, T>(
        &'a self,
        keys: &'a [Key<'a>],
        now_ms: u64,
        transition: &'a T,
    ) -> impl Future<Output = Result<T::Output, Error>> + Send + 'a
    where
        T: KeysTransition + Sync,
        T::Output: Send,
    {
        let _ = (keys, now_ms, transition);
        std::future::ready(Err(no_step_on_several_keys()))
    }

    /// Forgets `key`'s state.
    fn remove_async<'a>(
        &'a self,
        key: Key<'a>,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'a;
}

impl<S: Store + Send + Sync + 'static> AsyncStore for S {
    fn transact_async<'a, T>(
        &'a self,
        key: Key<'a>,
        now_ms: u64,
        transition: &'a T,
    ) -> impl Future<Output = Result<T::Output, Error>> + Send + 'a
    where
        T: Transition + Sync,
        T::Output: Send,
    {
        std::future::ready(self.transact(key, now_ms, transition))
    }

    fn transact_keys_async<'a, T>(
        &'a self,
        keys: &'a [Key<'a>],
        now_ms: u64,
        transition: &'a T,
    ) -> impl Future<Output = Result<T::Output, Error>> + Send + 'a
    where
        T: KeysTransition + Sync,
        T::Output: Send,
    {
        std::future::ready(self.transact_keys(keys, now_ms, transition))
    }

    fn remove_async<'a>(
        &'a self,
        key: Key<'a>,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'a {
        std::future::ready(self.remove(key))
    }
}
