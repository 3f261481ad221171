//! Counts of a limiter's decisions, for a `/metrics` endpoint.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Decision, Error, Reason};

/// What a limiter decided since it was built (its clones share the counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Calls admitted (by the store, a quota lease or the allow list).
    pub admitted: u64,
    /// Calls denied (by the store, its deny cache or the deny list).
    pub denied: u64,
    /// Calls the failure policy decided because the store failed (also
    /// counted as admitted or denied).
    pub store_failures: u64,
    /// Calls that returned an error.
    pub errors: u64,
}

/// The live counters behind [`Metrics`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    admitted: AtomicU64,
    denied: AtomicU64,
    store_failures: AtomicU64,
    errors: AtomicU64,
}

impl Counters {
    /// Counts one call's answer.
    pub(crate) fn record(&self, answer: &Result<Decision, Error>) {
        let counter = match answer {
            Ok(decision) => {
                if decision.reason == Some(Reason::StoreFailure) {
                    self.store_failures.fetch_add(1, Ordering::Relaxed);
                }
                match decision.allowed {
                    true => &self.admitted,
                    false => &self.denied,
                }
            }
            Err(_) => &self.errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Metrics {
        Metrics {
            admitted: self.admitted.load(Ordering::Relaxed),
            denied: self.denied.load(Ordering::Relaxed),
            store_failures: self.store_failures.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}
