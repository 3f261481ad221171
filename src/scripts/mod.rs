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
//! ([`parse_rate_reply`]); a denial appends the state the script left (its
//! fields in the order each `.lua` header gives, read by
//! [`Scripted::state_from_reply`]) so that a client can answer further
//! calls it proves denied without a round trip. A cost above the limit is
//! the error `EDGELIMIT cost exceeds limit` and changes nothing.
//!
//! [`CONCURRENCY`]: `KEYS[1]` the leases' hash (with the waiters' queue
//! tickets); `ARGV` = now or `""`, the operation (`acquire`,
//! `acquire_unfair`, `wait`, `leave`, `release`, `extend` or `peek`), the
//! lease id, the lease TTL in ms (0: the configured one), `max`, the
//! configured lease in ms, and for `wait` and `leave` the owner, the
//! waiter's number and the owner's count of waiters. The reply is
//! `{allowed, decision_allowed, remaining, reset_ms, retry_after_ms, now_ms,
//! expires_at_ms or -1, number}` ([`parse_lease_reply`]).
//!
//! # Expiry
//!
//! A state hash holds a field `exp`: the time, on the clock of `ARGV[1]`,
//! from which the state stops counting, as the in-memory store's expiry. The
//! key also gets `PEXPIRE` of the algorithm's TTL (plus a grace of 10 s when
//! the caller supplies the time, against clock skew), and is deleted when
//! the TTL is 0.

use std::sync::OnceLock;

use crate::algorithm::{Algorithm, AnyState, Kind};

mod reply;

pub use reply::{parse_lease_reply, parse_rate_reply, MAX_LOG_ENTRIES_IN_REPLY, RATE_REPLY_LEN};

/// A Lua script: its name, its text, and the SHA-1 Redis knows it by.
#[derive(Debug)]
pub struct Script {
    name: &'static str,
    /// The script's own part, after the shared prelude.
    body: &'static str,
    sha1: &'static str,
    /// Whether the text carries every other script's part as a function
    /// ([`BATCH`], [`MULTI`]).
    wraps: bool,
    code: OnceLock<String>,
}

impl Script {
    /// A script named `name` whose text is the prelude followed by `body`,
    /// with that text's SHA-1 (computed when the crate is built).
    const fn new(name: &'static str, body: &'static str, sha1: &'static str) -> Self {
        Self {
            name,
            body,
            sha1,
            wraps: false,
            code: OnceLock::new(),
        }
    }

    /// A script whose text is the prelude, every script [`BATCH`] runs as
    /// a function, then `dispatcher`.
    const fn wrapping(name: &'static str, dispatcher: &'static str, sha1: &'static str) -> Self {
        Self {
            name,
            body: dispatcher,
            sha1,
            wraps: true,
            code: OnceLock::new(),
        }
    }

    /// Its name, e.g. `"token_bucket"`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The full text sent with `EVAL` or `SCRIPT LOAD`: the `.lua` sources
    /// without comments or indentation. Assembled on first use (rarely
    /// needed: `EVALSHA` sends only the SHA-1), so the prelude and each
    /// script's part are stored once.
    pub fn code(&self) -> &str {
        self.code.get_or_init(|| {
            let own = match self.wraps {
                true => batch_body(self.body),
                false => self.body.to_owned(),
            };
            format!("-- edgelimit {}\n{}{own}", self.name, PRELUDE)
        })
    }

    /// Its number among the scripts [`BATCH`] runs, if it is one of them.
    pub fn batch_number(&self) -> Option<usize> {
        RUN_IN_BATCH
            .iter()
            .position(|script| std::ptr::eq(*script, self))
            .map(|i| i + 1)
    }

    /// The SHA-1 of the text in lowercase hex, as `SCRIPT LOAD` returns it
    /// and `EVALSHA` takes it.
    pub fn sha1(&self) -> &str {
        self.sha1
    }
}

// The statics (`FIXED_WINDOW` … `BATCH`), `RUN_IN_BATCH` and `ALL`, as
// build.rs prepared them from its list of scripts.
include!(concat!(env!("OUT_DIR"), "/scripts.rs"));

/// The own part of a script that wraps the others ([`BATCH`], [`MULTI`]):
/// every script the batch runs as a function of its KEYS and ARGV, then
/// `dispatcher`; build.rs hashes the same text.
fn batch_body(dispatcher: &str) -> String {
    let mut text = String::new();
    for script in RUN_IN_BATCH {
        text.push_str("local function el_run_");
        text.push_str(script.name);
        text.push_str("(KEYS, ARGV)\n");
        text.push_str(script.body);
        text.push_str("end\n");
    }
    text + dispatcher
}

/// A rate-limiting algorithm's Lua twin: every [`Algorithm`] has one,
/// chosen by its [`kind`](Algorithm::kind).
pub trait Scripted {
    /// The script deciding for this algorithm.
    fn script(&self) -> &'static Script;
    /// The state a denial sent back: the numbers after the decision's
    /// [`RATE_REPLY_LEN`]. `None` when there are none or they do not make
    /// a state of this algorithm.
    fn state_from_reply(&self, fields: &[i64]) -> Option<AnyState>;
}

impl<A: Algorithm + ?Sized> Scripted for A {
    fn script(&self) -> &'static Script {
        match self.kind() {
            Kind::FixedWindow => &FIXED_WINDOW,
            Kind::SlidingWindow => &SLIDING_WINDOW,
            Kind::SlidingLog => &SLIDING_LOG,
            Kind::TokenBucket => &TOKEN_BUCKET,
            Kind::Gcra => &GCRA,
        }
    }

    fn state_from_reply(&self, fields: &[i64]) -> Option<AnyState> {
        match self.kind() {
            Kind::FixedWindow => reply::fixed_window_state(fields),
            Kind::SlidingWindow => reply::sliding_window_state(fields),
            Kind::SlidingLog => reply::sliding_log_state(fields),
            Kind::TokenBucket => reply::token_bucket_state(fields),
            Kind::Gcra => reply::gcra_state(fields),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::{FixedWindow, Gcra, SlidingLog, SlidingWindow, TokenBucket};

    #[test]
    fn the_prelude_defines_the_numbers_rust_uses() {
        use crate::algorithm::{limits::MAX_SPAN_MS, MAX_TIME_MS};
        for (name, value) in [
            ("MAX_TIME_MS", MAX_TIME_MS),
            ("MAX_SPAN_MS", MAX_SPAN_MS),
            ("MAX_LOG_ENTRIES_IN_REPLY", MAX_LOG_ENTRIES_IN_REPLY as u64),
        ] {
            let line = format!("local EL_{name} = {value}\n");
            assert!(PRELUDE.contains(&line), "{line}");
            for script in ALL {
                assert!(script.code().contains(&line), "{}: {line}", script.name());
            }
        }
    }

    #[test]
    fn every_script_but_the_batch_and_multi_runs_in_a_batch() {
        assert_eq!(ALL.len(), RUN_IN_BATCH.len() + 2);
        for (i, script) in RUN_IN_BATCH.iter().enumerate() {
            assert_eq!(script.batch_number(), Some(i + 1));
            assert!(BATCH.code().contains(&format!("el_run_{}(", script.name())));
            assert!(MULTI.code().contains(&format!("el_run_{}(", script.name())));
        }
        assert_eq!(BATCH.batch_number(), None);
        assert_eq!(MULTI.batch_number(), None);
    }

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
}
