//! Numbers the algorithms share with their Lua twins. build.rs reads this
//! file too and defines each constant at the top of the scripts' prelude as
//! `local EL_<NAME>`, so the two sides cannot drift. Plain constants only:
//! build.rs compiles this file on its own.

/// Latest time an algorithm computes with (about the year 144 000): a sum
/// of a time and a span stays below 2^53, hence exact in Lua's doubles too.
pub const MAX_TIME_MS: u64 = 1 << 52;

/// Largest integer a Lua number (an IEEE double) holds exactly, 2^53: a
/// GCRA debt this large is beyond any tolerance and takes the far path.
pub const MAX_EXACT: u64 = 1 << 53;

/// Longest window, interval or period: about 100 years.
pub const MAX_SPAN_MS: u64 = 100 * 365 * 86_400_000;

/// Entries of a sliding log that a denial sends back at most; a longer log
/// is not sent (the denial is then not cached).
pub const MAX_LOG_ENTRIES_IN_REPLY: u64 = 64;

/// How long a concurrency waiter's queue ticket lives unless its owner asks
/// again: a waiting process polls far more often, and a dead one stops
/// holding its place after this long.
pub const TICKET_MS: u64 = 1_000;

/// Waiters one queue ticket may stand for, at most: sums of them stay exact
/// in Lua's doubles.
pub const MAX_TICKET_WAITERS: u64 = 1 << 32;

/// The constants build.rs hands to the Lua prelude, in order.
#[allow(dead_code)]
pub const FOR_LUA: [(&str, u64); 6] = [
    ("MAX_TIME_MS", MAX_TIME_MS),
    ("MAX_EXACT", MAX_EXACT),
    ("MAX_SPAN_MS", MAX_SPAN_MS),
    ("MAX_LOG_ENTRIES_IN_REPLY", MAX_LOG_ENTRIES_IN_REPLY),
    ("TICKET_MS", TICKET_MS),
    ("MAX_TICKET_WAITERS", MAX_TICKET_WAITERS),
];
