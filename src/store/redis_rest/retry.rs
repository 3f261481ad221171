//! When a failed request may be sent again.

use std::time::Duration;

use super::options::RestOptions;
use super::protocol::backoff_ms;
use crate::StoreError;

/// The delay before retrying after `error` on attempt `attempt` (0-based),
/// or `None` to give up; `random` picks the jitter. A request that may have
/// taken effect is retried only when it is idempotent: a consumed unit must
/// never be taken twice.
pub(crate) fn retry_delay(
    error: &StoreError,
    attempt: u32,
    idempotent: bool,
    options: &RestOptions,
    random: u64,
) -> Option<Duration> {
    let safe = idempotent || error.surely_not_applied();
    if attempt >= options.retries || !error.is_transient() || !safe {
        return None;
    }
    let ms = backoff_ms(
        attempt,
        options.backoff_base.as_millis() as u64,
        options.backoff_max.as_millis() as u64,
        random,
    );
    Some(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_only_what_is_safe_and_transient() {
        let options = RestOptions::default();
        let refused = StoreError::Unreachable("refused".into());
        let timeout = StoreError::Timeout { ms: 2000 };
        let command = StoreError::Command("ERR".into());
        assert!(
            retry_delay(&refused, 0, false, &options, 0).is_some(),
            "never arrived"
        );
        assert!(
            retry_delay(&timeout, 0, false, &options, 0).is_none(),
            "may have consumed"
        );
        assert!(
            retry_delay(&timeout, 0, true, &options, 0).is_some(),
            "idempotent"
        );
        assert!(
            retry_delay(&command, 0, true, &options, 0).is_none(),
            "not transient"
        );
        assert!(retry_delay(&StoreError::Unauthorized, 0, true, &options, 0).is_none());
        assert!(
            retry_delay(&refused, options.retries, true, &options, 0).is_none(),
            "out of attempts"
        );
    }
}
