//! Waiting for capacity: shared by the blocking and async forms.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::random;
use crate::Decision;

/// How a wait ended. Running out of time is an outcome, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum WaitOutcome {
    /// Admitted, possibly after sleeping.
    Admitted(Decision),
    /// The call would not be admitted before the deadline; the decision is
    /// the last denial (its `retry_after_ms` says how much longer it needed).
    DeadlineExceeded(Decision),
}

impl WaitOutcome {
    /// Whether the call was admitted.
    pub fn is_admitted(&self) -> bool {
        matches!(self, Self::Admitted(_))
    }

    /// The final decision either way.
    pub fn decision(&self) -> Decision {
        match *self {
            Self::Admitted(d) | Self::DeadlineExceeded(d) => d,
        }
    }
}

/// For a denial made at `now_ms`: how long to sleep before trying again, or
/// `None` when the retry time is past the deadline (sleeping would be
/// wasted). Adds a little jitter so waiters woken together do not all collide
/// again, never pushing the wake-up past the deadline.
pub(crate) fn backoff(denial: &Decision, now_ms: u64, deadline_ms: u64) -> Option<Duration> {
    backoff_ms(denial.retry_after_ms, now_ms, deadline_ms).map(Duration::from_millis)
}

/// [`backoff`] in milliseconds, for a denial asking for `retry_after_ms`
/// (the JS package's waits use it too).
pub(crate) fn backoff_ms(retry_after_ms: u64, now_ms: u64, deadline_ms: u64) -> Option<u64> {
    let retry_after = retry_after_ms.max(1);
    let room = deadline_ms.saturating_sub(now_ms);
    if retry_after > room {
        return None;
    }
    let jitter = random::up_to((retry_after / 8).min(room - retry_after).min(50));
    Some(retry_after + jitter)
}

pub(crate) fn deadline_ms(now_ms: u64, within: Duration) -> u64 {
    now_ms.saturating_add(within.as_millis().try_into().unwrap_or(u64::MAX))
}

/// Runs to completion a future whose sleeps block the thread instead of
/// waiting (so it never pends): the blocking forms share the async loops.
pub(crate) fn run_blocking<F: Future>(future: F) -> F::Output {
    let mut context = Context::from_waker(Waker::noop());
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}
