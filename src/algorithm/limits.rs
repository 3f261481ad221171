//! Bounds on configuration values, checked when a configuration is built.
//!
//! Every algorithm has a Lua twin executed by Redis, whose numbers are IEEE
//! doubles: integers are exact only up to 2^53. Bounding the products each
//! algorithm computes keeps the two implementations bit-for-bit equal.

use super::divisor::Divisor;
use crate::error::ConfigError;
use crate::IntoMillis;

/// Largest integer a Lua number (an IEEE double) holds exactly.
pub const MAX_EXACT: u128 = super::twin::MAX_EXACT as u128;

pub use super::twin::MAX_SPAN_MS;

/// Most entries a sliding log keeps per key, so one key's memory is bounded.
pub const MAX_LOG_LIMIT: u64 = 100_000;

/// Most leases a concurrency limiter tracks per key.
pub const MAX_LEASES: u64 = 10_000;

pub(crate) fn nonzero(what: &'static str, value: u64) -> Result<u64, ConfigError> {
    if value == 0 {
        Err(ConfigError::Zero { what })
    } else {
        Ok(value)
    }
}

pub(crate) fn span(what: &'static str, ms: u64) -> Result<u64, ConfigError> {
    if ms == 0 {
        return Err(ConfigError::ZeroDuration { what });
    }
    at_most(what, u128::from(ms), u128::from(MAX_SPAN_MS))?;
    Ok(ms)
}

pub(crate) fn at_most(what: &'static str, value: u128, max: u128) -> Result<(), ConfigError> {
    if value > max {
        Err(ConfigError::TooLarge { what, value, max })
    } else {
        Ok(())
    }
}

/// `a * b` must stay exact in a double.
pub(crate) fn exact_product(what: &'static str, a: u64, b: u64) -> Result<(), ConfigError> {
    at_most(what, u128::from(a) * u128::from(b), MAX_EXACT)
}

pub(crate) fn not_above(
    what: &'static str,
    value: u64,
    bound: &'static str,
    bound_value: u64,
) -> Result<(), ConfigError> {
    if value > bound_value {
        Err(ConfigError::Exceeds {
            what,
            value,
            bound,
            bound_value,
        })
    } else {
        Ok(())
    }
}

/// A count per window, validated: `limit ≥ 1`, a window of at least 1 ms,
/// and `limit × window` exact in Lua (the counters are scaled by the window).
pub(crate) fn counted_window(
    limit: u64,
    window: impl IntoMillis,
) -> Result<(u64, Divisor), ConfigError> {
    let limit = nonzero("limit", limit)?;
    let window_ms = span("window", window.into_millis()?)?;
    exact_product("limit × window", limit, window_ms)?;
    Ok((limit, Divisor::new(window_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::{
        Concurrency, FixedWindow, Gcra, SlidingLog, SlidingWindow, TokenBucket,
    };
    use std::time::Duration;

    #[test]
    fn spans_reach_one_hundred_years_and_no_further() {
        let century = Duration::from_secs(100 * 365 * 86_400);
        let beyond = century + Duration::from_millis(1);
        assert!(FixedWindow::new(1, century).is_ok());
        assert!(SlidingWindow::new(1, century).is_ok());
        assert!(SlidingLog::new(1, century).is_ok());
        assert!(TokenBucket::new(1, 1, century).is_ok());
        assert!(Gcra::new(1, century).is_ok());
        assert!(Concurrency::new(1, century).is_ok());
        let too_long = |result: Result<(), ConfigError>| {
            assert!(
                matches!(result, Err(ConfigError::TooLarge { value, max, .. })
                    if value == u128::from(MAX_SPAN_MS) + 1 && max == u128::from(MAX_SPAN_MS)),
                "{result:?}"
            );
        };
        too_long(FixedWindow::new(1, beyond).map(drop));
        too_long(SlidingWindow::new(1, beyond).map(drop));
        too_long(SlidingLog::new(1, beyond).map(drop));
        too_long(TokenBucket::new(1, 1, beyond).map(drop));
        too_long(Gcra::new(1, beyond).map(drop));
        too_long(Concurrency::new(1, beyond).map(drop));
    }
}
