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
    /// An entry of a deny or allow list that looks like an IP range but is
    /// not one (a prefix length past the family's, host bits set).
    #[error("invalid list entry \"{entry}\": {why}")]
    ListEntry {
        /// The entry (its first 100 characters).
        entry: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Quota leases were asked of an algorithm that does not count units per
    /// window: only fixed and sliding windows lease.
    #[error("quota leases need a fixed or sliding window")]
    QuotaLeaseUnsupported,
    /// Two limits of one [`AllOf`](crate::algorithm::AllOf) would read one
    /// state (the same algorithm over the same window or interval),
    /// counting every call twice.
    #[error("two limits would count on one state ({space}): give each limit its own algorithm or window")]
    SharedState {
        /// The key space both would use, e.g. `fw:1000`.
        space: String,
    },
    /// A setting given to an algorithm that has no such setting (a refill
    /// amount for a window).
    #[error("a {algorithm} takes no {what}")]
    NotFor {
        /// The setting.
        what: &'static str,
        /// The algorithm it was given to.
        algorithm: &'static str,
    },
}

/// A duration that is not a whole, positive-or-zero number of milliseconds in
/// one of the accepted notations.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DurationError {
    /// The text is not `<integer> <unit>` with a known unit.
    #[error("invalid duration \"{input}\": expected an integer and a unit (ms, s, m, h, d), e.g. \"10 s\" or \"250ms\"")]
    Syntax {
        /// The text given.
        input: String,
    },
    /// The duration does not fit in `u64` milliseconds.
    #[error("duration \"{input}\" is too long")]
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
    /// The id is longer than the limiter accepts (see
    /// [`Limiter::with_max_id_bytes`](crate::Limiter::with_max_id_bytes)):
    /// nothing was stored or sent.
    #[error("the id is {len} bytes long, above the maximum of {max}")]
    IdTooLong {
        /// The id's length in bytes (UTF-8).
        len: usize,
        /// The most the limiter accepts.
        max: usize,
    },
    /// The storage backend failed.
    #[error("store error: {0}")]
    Store(#[from] StoreError),
    /// A call's own limit (a [`Tier`](crate::algorithm::Tier)) that makes no
    /// valid configuration with the limiter's: nothing was decided.
    #[error("invalid tier: {0}")]
    Tier(ConfigError),
}

/// The longest id (in UTF-8 bytes) a limiter accepts unless told otherwise:
/// room for any IP address, user id or API key, and a bound on what one
/// call can make a store keep or send.
pub const DEFAULT_MAX_ID_BYTES: usize = 1024;

/// `Ok` when `id` is at most `max` bytes long.
#[inline]
pub(crate) fn check_id(id: &str, max: usize) -> Result<(), Error> {
    match id.len() <= max {
        true => Ok(()),
        false => Err(Error::IdTooLong { len: id.len(), max }),
    }
}

/// A storage backend failure. Each kind says whether the operation may
/// have taken effect, which decides whether retrying it is safe.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend refused the credentials (HTTP 401).
    #[error("unauthorized: the REST token was refused")]
    Unauthorized,
    /// The backend refused the command for this token (HTTP 403: a
    /// read-only token, or a gateway that allows only some commands).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The URL names no REST endpoint (HTTP 404), or the server knows no
    /// such command (a REST URL with a wrong path sends the path as a
    /// command): a wrong URL, or a server that cannot run edgelimit.
    #[error("not found: {0}: check the REST URL")]
    NotFound(String),
    /// The script was not in the backend's cache even after sending its code.
    #[error("script {sha1} is missing from the backend")]
    ScriptMissing {
        /// The script's SHA-1.
        sha1: String,
    },
    /// The backend ran the command and answered with an error.
    #[error("command error: {0}")]
    Command(String),
    /// No answer within the configured timeout; the operation may or may
    /// not have taken effect.
    #[error("timed out after {ms} ms")]
    Timeout {
        /// The timeout that expired.
        ms: u64,
    },
    /// The request could not be delivered (connection refused, DNS…): it
    /// did not take effect.
    #[error("could not reach the backend: {0}")]
    Unreachable(String),
    /// The connection failed after the request was sent, or the backend
    /// reported it could not serve it (HTTP 5xx); it may have taken effect.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// Redis refused to run the command for now (loading its data after a
    /// restart, busy with a script, failing over): it did not take effect.
    #[error("backend busy: {0}")]
    Busy(String),
    /// The backend's answer was not what the protocol promises.
    #[error("malformed reply: {0}")]
    MalformedReply(String),
    /// A blocking store was used in a current-thread async runtime's task,
    /// where blocking would stall every task: nothing was sent. Use
    /// [`AsyncRedisRestStore`](crate::store::AsyncRedisRestStore) there.
    #[error("the blocking RedisRestStore cannot block a current-thread async runtime: use AsyncRedisRestStore and the limiters' _async methods")]
    BlockingInAsyncRuntime,
    /// An async store was used outside the runtime it needs (tokio): nothing
    /// was sent.
    #[error("AsyncRedisRestStore needs a tokio runtime: call it from async code running on tokio")]
    NoAsyncRuntime,
    /// The store cannot run this operation: a store of one's own that does
    /// not implement [`Store::transact_keys`](crate::Store::transact_keys),
    /// which a [`MultiLimiter`](crate::MultiLimiter) needs.
    #[error("this store cannot {0}")]
    Unsupported(&'static str),
}

impl StoreError {
    /// Whether the failed operation certainly did not take effect, so
    /// retrying cannot apply it twice.
    pub fn surely_not_applied(&self) -> bool {
        matches!(
            self,
            Self::Unreachable(_)
                | Self::Busy(_)
                | Self::Unauthorized
                | Self::Forbidden(_)
                | Self::NotFound(_)
        )
    }

    /// Whether the store is misused or misconfigured rather than failing (a
    /// refused token, a forbidden command, a wrong URL, a blocking store in
    /// an async task): a failure policy never turns such an error into a
    /// decision, since admitting or denying everything would hide it.
    pub fn is_misuse(&self) -> bool {
        matches!(
            self,
            Self::Unauthorized
                | Self::Forbidden(_)
                | Self::NotFound(_)
                | Self::BlockingInAsyncRuntime
                | Self::NoAsyncRuntime
                | Self::Unsupported(_)
        )
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. } | Self::Unreachable(_) | Self::Unavailable(_) | Self::Busy(_)
        )
    }
}
