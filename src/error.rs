//! Typed errors. A denial is never an error (see [`Decision`](crate::Decision));
//! errors are for requests that can never succeed, invalid configuration, and
//! backend failures.

use thiserror::Error;

/// A limiter configuration that cannot be built.
///
/// Returned by every constructor, so an invalid quota never exists at run time.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A count (limit, capacity, burst, refill amount, lease count) was zero.
    #[error("{what} must be at least 1")]
    Zero {
        /// Which setting.
        what: &'static str,
    },
    /// A duration (window, interval, lease time) was zero.
    #[error("{what} must be longer than 0 ms")]
    ZeroDuration {
        /// Which setting.
        what: &'static str,
    },
    /// A value is larger than the limiter can handle exactly.
    #[error("{what} is {value}, above the maximum of {max}")]
    TooLarge {
        /// Which setting (or product of settings).
        what: &'static str,
        /// The value given.
        value: u128,
        /// The largest accepted value.
        max: u128,
    },
    /// One setting is larger than another it must not exceed.
    #[error("{what} ({value}) must not exceed {bound} ({bound_value})")]
    Exceeds {
        /// The offending setting.
        what: &'static str,
        /// Its value.
        value: u64,
        /// The setting it must not exceed.
        bound: &'static str,
        /// That setting's value.
        bound_value: u64,
    },
    /// A duration could not be parsed or converted.
    #[error(transparent)]
    Duration(#[from] DurationError),
}

/// A duration that is not a whole, positive-or-zero number of milliseconds in
/// one of the accepted notations.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DurationError {
    /// The text is not `<integer> <unit>` with a known unit.
    #[error("invalid duration {input:?}: expected an integer and a unit (ms, s, m, h, d), e.g. \"10 s\" or \"250ms\"")]
    Syntax {
        /// The text given.
        input: String,
    },
    /// The duration does not fit in `u64` milliseconds.
    #[error("duration {input:?} is too long")]
    Overflow {
        /// The text (or debug form of the value) given.
        input: String,
    },
    /// A typed duration with a fraction of a millisecond.
    #[error("duration {nanos} ns is not a whole number of milliseconds")]
    SubMillisecond {
        /// The duration in nanoseconds.
        nanos: u128,
    },
}

/// Why a limiter call failed. Denials are not errors; they are
/// [`Decision`](crate::Decision)s with `allowed == false`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The cost can never be admitted: it is above the limit or capacity, so
    /// waiting would never help.
    #[error("cost {cost} exceeds the limit of {limit}: it can never be admitted")]
    CostExceedsLimit {
        /// The requested cost.
        cost: u64,
        /// The most the limiter can ever admit at once.
        limit: u64,
    },
    /// The storage backend failed.
    #[error("store error: {0}")]
    Store(#[from] StoreError),
}

/// A storage backend failure.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend refused or could not complete the operation.
    #[error("{0}")]
    Backend(String),
}
