//! Which rate algorithm a limiter runs: what a store needs to pick the
//! algorithm's Lua twin and to read back the state a denial returns.

/// One of the rate algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// [`FixedWindow`](super::FixedWindow).
    FixedWindow,
    /// [`SlidingWindow`](super::SlidingWindow).
    SlidingWindow,
    /// [`SlidingLog`](super::SlidingLog).
    SlidingLog,
    /// [`TokenBucket`](super::TokenBucket).
    TokenBucket,
    /// [`Gcra`](super::Gcra).
    Gcra,
}

impl Kind {
    /// Its short name in state keys: `fw`, `sw`, `sl`, `tb`, `gcra`.
    pub fn code(self) -> &'static str {
        match self {
            Self::FixedWindow => "fw",
            Self::SlidingWindow => "sw",
            Self::SlidingLog => "sl",
            Self::TokenBucket => "tb",
            Self::Gcra => "gcra",
        }
    }
}
