//! One type for every algorithm's state, so a single store can serve
//! limiters of different algorithms.

use super::{
    BlockState, ConcurrencyState, FixedWindowState, GcraState, Lease, LogEntry, SlidingLogState,
    SlidingWindowState, TokenBucketState,
};

/// The state of any algorithm, as a store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnyState {
    /// [`FixedWindow`](super::FixedWindow) state.
    FixedWindow(FixedWindowState),
    /// [`SlidingWindow`](super::SlidingWindow) state.
    SlidingWindow(SlidingWindowState),
    /// [`SlidingLog`](super::SlidingLog) state.
    SlidingLog(SlidingLogState),
    /// [`TokenBucket`](super::TokenBucket) state.
    TokenBucket(TokenBucketState),
    /// [`Gcra`](super::Gcra) state.
    Gcra(GcraState),
    /// [`Concurrency`](super::Concurrency) state.
    Concurrency(ConcurrencyState),
    /// A block after abuse ([`AllOf::with_block`](super::AllOf::with_block)).
    Block(BlockState),
}

impl AnyState {
    /// Bytes the state keeps outside itself (a sliding log's records, a
    /// semaphore's leases): what a store bounded in bytes counts besides
    /// the state's own size.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Self::SlidingLog(log) => log.entries.capacity() * size_of::<LogEntry>(),
            Self::Concurrency(semaphore) => semaphore.leases.capacity() * size_of::<Lease>(),
            _ => 0,
        }
    }
}

/// A state type that can be kept as an [`AnyState`].
pub trait StateKind: Sized {
    /// Wraps the state.
    fn into_any(self) -> AnyState;
    /// Unwraps it; `None` if `any` belongs to another algorithm (two limiters
    /// of different algorithms sharing a prefix), which then starts afresh.
    fn from_any(any: AnyState) -> Option<Self>;
}

macro_rules! state_kind {
    ($($variant:ident($ty:ty)),* $(,)?) => {$(
        impl StateKind for $ty {
            #[inline]
            fn into_any(self) -> AnyState {
                AnyState::$variant(self)
            }
            #[inline]
            fn from_any(any: AnyState) -> Option<Self> {
                match any {
                    AnyState::$variant(state) => Some(state),
                    _ => None,
                }
            }
        }
    )*};
}

/// Any state is kept as itself: for callers choosing the algorithm at run
/// time (the WebAssembly bindings).
impl StateKind for AnyState {
    #[inline]
    fn into_any(self) -> AnyState {
        self
    }
    #[inline]
    fn from_any(any: AnyState) -> Option<Self> {
        Some(any)
    }
}

state_kind!(
    FixedWindow(FixedWindowState),
    SlidingWindow(SlidingWindowState),
    SlidingLog(SlidingLogState),
    TokenBucket(TokenBucketState),
    Gcra(GcraState),
    Concurrency(ConcurrencyState),
    Block(BlockState),
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_state_is_kept_as_itself() {
        let state = AnyState::Gcra(GcraState {
            tat_ms: 1_700_000_000_500,
            tat_frac: 3,
        });
        assert_eq!(state.clone().into_any(), state);
        assert_eq!(AnyState::from_any(state.clone()), Some(state.clone()));
        // A typed state takes back only its own kind.
        assert_eq!(
            GcraState::from_any(state.clone()),
            Some(GcraState {
                tat_ms: 1_700_000_000_500,
                tat_frac: 3
            })
        );
        assert_eq!(TokenBucketState::from_any(state), None);
    }
}
