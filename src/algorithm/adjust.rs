//! Refunds and penalties: units given back to a key, or charged on top.

/// A change to a key's usage outside of a call (see
/// [`Algorithm::adjust`](super::Algorithm::adjust)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjustment {
    /// Gives back units the key used (a call that turned out cheap or
    /// failed upstream): never more than it has used, so nothing is minted.
    Refund(u64),
    /// Charges units on top (abuse): never past the limit, so the key waits
    /// at most as long as a full use would make it.
    Penalty(u64),
}

impl Adjustment {
    /// The units given back or charged.
    pub fn units(&self) -> u64 {
        match *self {
            Self::Refund(units) | Self::Penalty(units) => units,
        }
    }

    /// `used` after the adjustment, within `[0, limit]` (a usage already
    /// above the limit, left by a larger tier, is never raised).
    pub(crate) fn apply(&self, used: u64, limit: u64) -> u64 {
        match *self {
            Self::Refund(units) => used - units.min(used),
            Self::Penalty(units) => used.max(used.saturating_add(units).min(limit)),
        }
    }

    /// How the Lua twins name it (`ARGV[3]`, where a call says whether it
    /// only peeks).
    pub(crate) fn mode(&self) -> &'static str {
        match self {
            Self::Refund(_) => "2",
            Self::Penalty(_) => "3",
        }
    }
}
