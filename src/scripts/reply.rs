//! Reading the scripts' replies: the decision, and the state a denial
//! sends back for the deny cache.

use std::collections::VecDeque;

use crate::algorithm::{
    AnyState, FixedWindowState, GcraState, LeaseOutcome, LogEntry, SlidingLogState,
    SlidingWindowState, TokenBucketState,
};
use crate::Decision;

/// The numbers of a rate decision at the head of a rate script's reply.
pub const RATE_REPLY_LEN: usize = 5;

/// Entries of a sliding log that a denial sends back at most; a longer log
/// is not sent (the denial is then not cached).
pub const MAX_LOG_ENTRIES_IN_REPLY: usize = crate::algorithm::MAX_LOG_ENTRIES_IN_REPLY as usize;

fn flag(value: i64) -> Option<bool> {
    match value {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

fn unsigned(value: i64) -> Option<u64> {
    u64::try_from(value).ok()
}

/// Reads a rate script's reply `{allowed, remaining, reset_ms,
/// retry_after_ms, now_ms, [state…]}` as the decision and the time it was
/// made at (after clamping). `limit` is the algorithm's
/// [`Algorithm::limit`]. `None` if the reply is not of that shape. The state
/// a denial may carry after the first [`RATE_REPLY_LEN`] numbers is read by
/// [`Scripted::state_from_reply`].
pub fn parse_rate_reply(reply: &[i64], limit: u64) -> Option<(Decision, u64)> {
    let &[allowed, remaining, reset_ms, retry_after_ms, now_ms] = reply.get(..RATE_REPLY_LEN)?
    else {
        return None;
    };
    let decision = Decision {
        allowed: flag(allowed)?,
        limit,
        remaining: unsigned(remaining)?,
        reset_ms: unsigned(reset_ms)?,
        retry_after_ms: unsigned(retry_after_ms)?,
        reason: None,
    };
    if decision.remaining > limit {
        return None;
    }
    Some((decision, unsigned(now_ms)?))
}

/// Reads the concurrency script's reply `{allowed, decision_allowed,
/// remaining, reset_ms, retry_after_ms, now_ms, expires_at_ms or -1,
/// number}` as the
/// outcome (with `ttl_ms` 0: Redis keeps the TTL) and the time it was made
/// at. `limit` is the configured `max`. `None` if the reply is not of that
/// shape.
pub fn parse_lease_reply(reply: &[i64], limit: u64) -> Option<(LeaseOutcome, u64)> {
    let &[allowed, decision_allowed, remaining, reset_ms, retry_after_ms, now_ms, expires_at_ms, number] =
        reply
    else {
        return None;
    };
    let (decision, now_ms) = parse_rate_reply(
        &[
            decision_allowed,
            remaining,
            reset_ms,
            retry_after_ms,
            now_ms,
        ],
        limit,
    )?;
    let expires_at_ms = match expires_at_ms {
        -1 => None,
        ms => Some(unsigned(ms)?),
    };
    let outcome = LeaseOutcome {
        allowed: flag(allowed)?,
        decision,
        expires_at_ms,
        ttl_ms: 0,
        number: unsigned(number)?,
    };
    Some((outcome, now_ms))
}

/// The state fields a denial of each rate script sends after its decision,
/// in the scripts' order (see each `.lua`'s header). `None` when absent or
/// not a state this algorithm could hold.
pub(crate) fn fixed_window_state(fields: &[i64]) -> Option<AnyState> {
    let &[start, count] = fields else { return None };
    Some(AnyState::FixedWindow(FixedWindowState {
        window_start_ms: unsigned(start)?,
        count: unsigned(count)?,
    }))
}

pub(crate) fn sliding_window_state(fields: &[i64]) -> Option<AnyState> {
    let &[start, current, previous] = fields else {
        return None;
    };
    Some(AnyState::SlidingWindow(SlidingWindowState {
        window_start_ms: unsigned(start)?,
        current: unsigned(current)?,
        previous: unsigned(previous)?,
    }))
}

pub(crate) fn token_bucket_state(fields: &[i64]) -> Option<AnyState> {
    let &[tokens, refilled_at] = fields else {
        return None;
    };
    Some(AnyState::TokenBucket(TokenBucketState {
        tokens: unsigned(tokens)?,
        refilled_at_ms: unsigned(refilled_at)?,
    }))
}

pub(crate) fn gcra_state(fields: &[i64]) -> Option<AnyState> {
    let &[tat_ms, tat_frac] = fields else {
        return None;
    };
    Some(AnyState::Gcra(GcraState {
        tat_ms: unsigned(tat_ms)?,
        tat_frac: unsigned(tat_frac)?,
    }))
}

/// `total, latest_ms`, then `at_ms, units` per entry, oldest first.
pub(crate) fn sliding_log_state(fields: &[i64]) -> Option<AnyState> {
    let (&[total, latest], entries) = fields.split_first_chunk::<2>()?;
    if entries.len() % 2 != 0 || entries.len() / 2 > MAX_LOG_ENTRIES_IN_REPLY {
        return None;
    }
    let entries: VecDeque<LogEntry> = entries
        .chunks_exact(2)
        .map(|pair| {
            Some(LogEntry {
                at_ms: unsigned(pair[0])?,
                units: unsigned(pair[1])?,
            })
        })
        .collect::<Option<_>>()?;
    let total = unsigned(total)?;
    let ordered = entries
        .iter()
        .zip(entries.iter().skip(1))
        .all(|(a, b)| a.at_ms < b.at_ms);
    let sum = entries
        .iter()
        .try_fold(0u64, |sum, e| sum.checked_add(e.units))?;
    (ordered && sum == total).then_some(AnyState::SlidingLog(SlidingLogState {
        entries,
        total,
        latest_ms: unsigned(latest)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_replies() {
        let (d, now) = parse_rate_reply(&[1, 4, 2000, 0, 1500], 5).unwrap();
        assert_eq!(
            d,
            Decision {
                allowed: true,
                limit: 5,
                remaining: 4,
                reset_ms: 2000,
                retry_after_ms: 0,
                reason: None,
            }
        );
        assert_eq!(now, 1500);
        let (d, _) = parse_rate_reply(&[0, 0, 2000, 500, 1500], 5).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, 500);
        assert_eq!(parse_rate_reply(&[1, 4, 2000, 0], 5), None);
        assert_eq!(parse_rate_reply(&[2, 4, 2000, 0, 1], 5), None);
        assert_eq!(parse_rate_reply(&[1, -1, 2000, 0, 1], 5), None);
        assert_eq!(parse_rate_reply(&[1, 6, 2000, 0, 1], 5), None);
    }

    #[test]
    fn lease_replies() {
        let (o, now) = parse_lease_reply(&[1, 1, 2, 9000, 0, 100, 9000, 0], 3).unwrap();
        assert!(o.allowed && o.decision.allowed);
        assert_eq!(o.decision.remaining, 2);
        assert_eq!(o.expires_at_ms, Some(9000));
        assert_eq!((o.ttl_ms, now), (0, 100));
        let (o, _) = parse_lease_reply(&[0, 1, 3, 100, 0, 100, -1, 0], 3).unwrap();
        assert!(!o.allowed && o.decision.allowed, "a release of no lease");
        assert_eq!(o.expires_at_ms, None);
        let (o, _) = parse_lease_reply(&[0, 0, 0, 9000, 50, 100, -1, 7], 3).unwrap();
        assert_eq!((o.allowed, o.number), (false, 7), "a waiter's number");
        assert_eq!(parse_lease_reply(&[0, 0, 0, 9000, 50, 100, -2, 0], 3), None);
        assert_eq!(
            parse_lease_reply(&[0, 0, 0, 9000, 50, 100, -1, -1], 3),
            None
        );
        assert_eq!(parse_lease_reply(&[0, 0, 0, 9000, 50, 100, -1], 3), None);
    }

    #[test]
    fn denied_states() {
        assert_eq!(
            fixed_window_state(&[1000, 3]),
            Some(AnyState::FixedWindow(FixedWindowState {
                window_start_ms: 1000,
                count: 3
            }))
        );
        assert_eq!(fixed_window_state(&[1000]), None);
        assert_eq!(fixed_window_state(&[]), None, "a denial without its state");
        assert_eq!(fixed_window_state(&[-1, 3]), None);
        assert!(sliding_window_state(&[0, 1, 2]).is_some());
        assert!(token_bucket_state(&[0, 5]).is_some());
        assert_eq!(gcra_state(&[7, 1, 2]), None);
        let log = sliding_log_state(&[3, 900, 100, 1, 600, 2]).unwrap();
        let AnyState::SlidingLog(log) = log else {
            panic!("{log:?}")
        };
        assert_eq!((log.total, log.latest_ms, log.entries.len()), (3, 900, 2));
        assert_eq!(
            sliding_log_state(&[4, 900, 100, 1, 600, 2]),
            None,
            "total is the sum"
        );
        assert_eq!(
            sliding_log_state(&[3, 900, 600, 1, 100, 2]),
            None,
            "oldest first"
        );
        assert_eq!(sliding_log_state(&[3, 900, 100, 1, 600]), None);
        assert!(sliding_log_state(&[0, 0]).is_some());
    }
}
