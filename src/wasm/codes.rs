//! The numbers the module and its JavaScript exchange, exported as JS enums
//! (`CoreSlot.Allowed`, `CoreStatus.SendAgain`, …): the package's `js/`
//! reads them from the generated glue, so both sides take them from here.

use wasm_bindgen::prelude::*;

use crate::limiter::FailurePolicy;
use crate::StoreError;

/// Where each number of a decision is in the output buffer.
#[wasm_bindgen(js_name = CoreSlot)]
#[derive(Debug, Clone, Copy)]
pub enum Slot {
    /// The decision's `limit`.
    Limit = 0,
    /// Its `remaining`.
    Remaining = 1,
    /// Its `reset` (ms since the epoch).
    Reset = 2,
    /// Its `retryAfter` (ms).
    RetryAfter = 3,
    /// Why the algorithm did not decide ([`ReasonCode`]; 0 when it did).
    Reason = 4,
    /// A lease's expiry (0 when none).
    ExpiresAt = 5,
    /// 1 when the decision admits.
    Allowed = 6,
    /// A denied waiter's number in the store's queue (0 when none).
    Number = 7,
}

/// Why a decision was not the algorithm's, in [`Slot::Reason`].
#[wasm_bindgen(js_name = CoreReason)]
#[derive(Debug, Clone, Copy)]
pub enum ReasonCode {
    /// The failure policy decided (the store failed).
    StoreFailure = 1,
    /// The deny list holds the id.
    DenyList = 2,
    /// The allow list holds the id.
    AllowList = 3,
    /// The id is blocked after a denial (`blockFor`).
    Blocked = 4,
}

impl ReasonCode {
    /// The code of `reason`, 0 for none.
    pub(crate) fn of(reason: Option<crate::Reason>) -> u8 {
        match reason {
            None => 0,
            Some(crate::Reason::DenyList) => Self::DenyList as u8,
            Some(crate::Reason::AllowList) => Self::AllowList as u8,
            Some(crate::Reason::Blocked) => Self::Blocked as u8,
            Some(_) => Self::StoreFailure as u8,
        }
    }
}

/// The output buffer's length.
pub(crate) const SLOTS: usize = 8;

/// What a call answers: its decision, a failure (the error waits in
/// `takeError`), or what to do before it can answer.
#[wasm_bindgen(js_name = CoreStatus)]
#[derive(Debug, Clone, Copy)]
pub enum Status {
    /// Failed: the error waits in `takeError`.
    Failed = -1,
    /// Denied (or the lease not held).
    Denied = 0,
    /// Admitted, or done.
    Admitted = 1,
    /// Send the call again at once (its script's code is needed).
    SendAgain = 2,
    /// Send it again after the call's `delayMs`.
    RetryLater = 3,
}

/// How a `fetch` failed, as the transport reports it.
#[wasm_bindgen(js_name = CoreFetchFailure)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchFailure {
    /// The timeout fired: the request may have run.
    TimedOut = 0,
    /// The connection was refused: the request never arrived.
    Refused = 1,
    /// Anything else: the request may have run.
    Other = 2,
}

/// The failure policy, as the JS options name it (`"error"`, `"open"`,
/// `"closed"`).
#[wasm_bindgen(js_name = CoreFailure)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// `"error"`: the call fails with the store's error.
    Error = 0,
    /// `"open"`: the call is admitted.
    Open = 1,
    /// `"closed"`: the call is denied.
    Closed = 2,
}

/// A concurrency limiter's operations.
#[wasm_bindgen(js_name = CoreLeaseOp)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseCall {
    /// Take a lease.
    Acquire = 0,
    /// Give one back.
    Release = 1,
    /// Make one last longer.
    Extend = 2,
    /// Count the leases held, taking none.
    Peek = 3,
    /// Take a free lease, ignoring the waiters' queue.
    AcquireUnfair = 4,
    /// A waiter's try: take a lease in queue order, or keep a place.
    Wait = 5,
    /// Leave the waiters' queue.
    Leave = 6,
}

impl FetchFailure {
    /// The store error a failed `fetch` numbered `code` is.
    pub(crate) fn error(code: u8, message: String, timeout_ms: u64) -> StoreError {
        const TIMED_OUT: u8 = FetchFailure::TimedOut as u8;
        const REFUSED: u8 = FetchFailure::Refused as u8;
        match code {
            TIMED_OUT => StoreError::Timeout { ms: timeout_ms },
            REFUSED => StoreError::Unreachable(message),
            _ => StoreError::Unavailable(message),
        }
    }
}

impl Failure {
    /// The policy numbered `code` (an unknown number: the default, errors).
    pub(crate) fn policy(code: u8) -> FailurePolicy {
        const OPEN: u8 = Failure::Open as u8;
        const CLOSED: u8 = Failure::Closed as u8;
        match code {
            OPEN => FailurePolicy::Open,
            CLOSED => FailurePolicy::Closed,
            _ => FailurePolicy::Error,
        }
    }
}
