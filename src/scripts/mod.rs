//! The Lua twins of the algorithms, run by Redis with `EVALSHA`.
//!
//! Each script does the same integer arithmetic as its Rust twin in
//! [`algorithm`](crate::algorithm), so a decision is the same whether state
//! lives in memory or in Redis. Every script is `prelude.lua` (shared
//! functions: time, exact division, expiry) followed by the algorithm's own
//! file, and is identified by the SHA-1 of that text, as `SCRIPT LOAD`
//! reports it.
//!
//! # Calling convention
//!
//! Rate scripts ([`FIXED_WINDOW`], [`SLIDING_WINDOW`], [`SLIDING_LOG`],
//! [`TOKEN_BUCKET`], [`GCRA`]):
//!
//! - `KEYS[1]`: the key's state, one hash (wrap the key in a hash tag so a
//!   limiter's keys share a cluster slot);
//! - `ARGV[1]`: now in milliseconds as a decimal string, or `""` to use the
//!   server's `TIME`;
//! - `ARGV[2]`: the cost;
//! - `ARGV[3]`: `"1"` for a read-only peek (decided as usual, nothing
//!   written), else `"0"`;
//! - `ARGV[4..]`: the configuration, [`Scripted::config_args`].
//!
//! The reply is `{allowed, remaining, reset_ms, retry_after_ms, now_ms}`
//! ([`parse_rate_reply`]); a cost above the limit is the error
//! `EDGELIMIT cost exceeds limit` and changes nothing.
//!
//! [`CONCURRENCY`]: `KEYS[1]` the leases' hash; `ARGV` = now or `""`, the
//! operation (`acquire`, `release`, `extend` or `peek`), the lease id, the
//! lease TTL in ms (0: the configured one), `max`, the configured lease in
//! ms. The reply is `{allowed, decision_allowed, remaining, reset_ms,
//! retry_after_ms, now_ms, expires_at_ms or -1}` ([`parse_lease_reply`]).
//!
//! # Expiry
//!
//! A state hash holds a field `exp`: the time, on the clock of `ARGV[1]`,
//! from which the state stops counting, as the in-memory store's expiry. The
//! key also gets `PEXPIRE` of the algorithm's TTL (plus a grace of 10 s when
//! the caller supplies the time, against clock skew), and is deleted when
//! the TTL is 0.

use std::sync::OnceLock;

use crate::algorithm::{
    Algorithm, FixedWindow, Gcra, LeaseOutcome, SlidingLog, SlidingWindow, TokenBucket,
};
use crate::Decision;

/// A Lua script: its name, its text, and the SHA-1 Redis knows it by.
#[derive(Debug)]
pub struct Script {
    name: &'static str,
    /// The script's own part, after the shared prelude.
    body: &'static str,
    sha1: &'static str,
    code: OnceLock<String>,
}

impl Script {
    /// A script named `name` whose text is the prelude followed by `body`,
    /// with that text's SHA-1 (computed when the crate is built).
    const fn new(name: &'static str, (body, sha1): (&'static str, &'static str)) -> Self {
        Self {
            name,
            body,
            sha1,
            code: OnceLock::new(),
        }
    }

    /// Its name, e.g. `"token_bucket"`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The full text sent with `EVAL` or `SCRIPT LOAD`: the `.lua` sources
    /// without comments or indentation. Assembled on first use (rarely
    /// needed: `EVALSHA` sends only the SHA-1), so the prelude is stored
    /// once.
    pub fn code(&self) -> &str {
        self.code.get_or_init(|| {
            format!(
                "-- edgelimit {}\n{}{}",
                self.name,
                embedded::PRELUDE,
                self.body
            )
        })
    }

    /// The SHA-1 of the text in lowercase hex, as `SCRIPT LOAD` returns it
    /// and `EVALSHA` takes it.
    pub fn sha1(&self) -> &str {
        self.sha1
    }
}

/// The scripts as build.rs prepared them.
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/scripts.rs"));
}

macro_rules! script {
    ($(#[$doc:meta])* $name:ident, $file:literal) => {
        $(#[$doc])*
        pub static $name: Script = Script::new($file, embedded::$name);
    };
}
script!(
    /// [`FixedWindow`]; configuration `limit, window_ms`.
    FIXED_WINDOW,
    "fixed_window"
);
script!(
    /// [`SlidingWindow`]; configuration `limit, window_ms`.
    SLIDING_WINDOW,
    "sliding_window"
);
script!(
    /// [`SlidingLog`]; configuration `limit, window_ms`.
    SLIDING_LOG,
    "sliding_log"
);
script!(
    /// [`TokenBucket`]; configuration `capacity, refill, interval_ms, initial`.
    TOKEN_BUCKET,
    "token_bucket"
);
script!(
    /// [`Gcra`]; configuration `rate, period_ms, burst`.
    GCRA,
    "gcra"
);
script!(
    /// [`Concurrency`](crate::Concurrency): acquire, release, extend, peek.
    CONCURRENCY,
    "concurrency"
);

/// Every script, e.g. to load them all at start-up.
pub static ALL: [&Script; 6] = [
    &FIXED_WINDOW,
    &SLIDING_WINDOW,
    &SLIDING_LOG,
    &TOKEN_BUCKET,
    &GCRA,
    &CONCURRENCY,
];

/// A rate-limiting algorithm with a Lua twin.
pub trait Scripted {
    /// The script deciding for this algorithm.
    fn script(&self) -> &'static Script;
    /// The configuration, in the order the script takes it from `ARGV[4]` on.
    fn config_args(&self) -> Vec<u64>;
}

impl Scripted for FixedWindow {
    fn script(&self) -> &'static Script {
        &FIXED_WINDOW
    }
    fn config_args(&self) -> Vec<u64> {
        vec![self.limit(), self.window_ms()]
    }
}

impl Scripted for SlidingWindow {
    fn script(&self) -> &'static Script {
        &SLIDING_WINDOW
    }
    fn config_args(&self) -> Vec<u64> {
        vec![self.limit(), self.window_ms()]
    }
}

impl Scripted for SlidingLog {
    fn script(&self) -> &'static Script {
        &SLIDING_LOG
    }
    fn config_args(&self) -> Vec<u64> {
        vec![self.limit(), self.window_ms()]
    }
}

impl Scripted for TokenBucket {
    fn script(&self) -> &'static Script {
        &TOKEN_BUCKET
    }
    fn config_args(&self) -> Vec<u64> {
        vec![
            self.capacity(),
            self.refill(),
            self.interval_ms(),
            self.initial(),
        ]
    }
}

impl Scripted for Gcra {
    fn script(&self) -> &'static Script {
        &GCRA
    }
    fn config_args(&self) -> Vec<u64> {
        vec![self.rate(), self.period_ms(), self.burst()]
    }
}

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
/// retry_after_ms, now_ms}` as the decision and the time it was made at
/// (after clamping). `limit` is the algorithm's [`Algorithm::limit`]. `None`
/// if the reply is not of that shape.
pub fn parse_rate_reply(reply: &[i64], limit: u64) -> Option<(Decision, u64)> {
    let &[allowed, remaining, reset_ms, retry_after_ms, now_ms] = reply else {
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
/// remaining, reset_ms, retry_after_ms, now_ms, expires_at_ms or -1}` as the
/// outcome (with `ttl_ms` 0: Redis keeps the TTL) and the time it was made
/// at. `limit` is the configured `max`. `None` if the reply is not of that
/// shape.
pub fn parse_lease_reply(reply: &[i64], limit: u64) -> Option<(LeaseOutcome, u64)> {
    let &[allowed, decision_allowed, remaining, reset_ms, retry_after_ms, now_ms, expires_at_ms] =
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
    };
    Some((outcome, now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_is_lowercase_hex_of_the_code() {
        for script in ALL {
            let computed = sha1_smol::Sha1::from(script.code()).digest().to_string();
            assert_eq!(script.sha1(), computed, "{}", script.name());
            assert_eq!(script.sha1().len(), 40);
            assert!(script
                .sha1()
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            assert!(script
                .code()
                .starts_with(&format!("-- edgelimit {}\n", script.name())));
            assert!(!script.code().contains("\n--"), "comments are dropped");
        }
    }

    #[test]
    fn config_args_follow_the_documented_order() {
        let tb = TokenBucket::new(10, 2, "3 s")
            .unwrap()
            .with_initial(4)
            .unwrap();
        assert_eq!(tb.config_args(), [10, 2, 3000, 4]);
        let gcra = Gcra::new(5, "1 m").unwrap().with_burst(7).unwrap();
        assert_eq!(gcra.config_args(), [5, 60_000, 7]);
        assert_eq!(FixedWindow::new(3, "1 s").unwrap().config_args(), [3, 1000]);
        assert_eq!(
            SlidingWindow::new(4, "2 s").unwrap().config_args(),
            [4, 2000]
        );
        assert_eq!(SlidingLog::new(5, "5 s").unwrap().config_args(), [5, 5000]);
        assert!(std::ptr::eq(tb.script(), &TOKEN_BUCKET));
    }

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
        let (o, now) = parse_lease_reply(&[1, 1, 2, 9000, 0, 100, 9000], 3).unwrap();
        assert!(o.allowed && o.decision.allowed);
        assert_eq!(o.decision.remaining, 2);
        assert_eq!(o.expires_at_ms, Some(9000));
        assert_eq!((o.ttl_ms, now), (0, 100));
        let (o, _) = parse_lease_reply(&[0, 1, 3, 100, 0, 100, -1], 3).unwrap();
        assert!(!o.allowed && o.decision.allowed, "a release of no lease");
        assert_eq!(o.expires_at_ms, None);
        assert_eq!(parse_lease_reply(&[0, 0, 0, 9000, 50, 100, -2], 3), None);
        assert_eq!(parse_lease_reply(&[0, 0, 0, 9000, 50, 100], 3), None);
    }
}
