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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::FixedWindow;
    use crate::store::{Adjust, Transition};

    #[test]
    fn a_twin_gets_the_units_and_the_mode_before_the_configuration() {
        let algorithm = FixedWindow::new(5, "1 s").unwrap();
        for (adjustment, mode) in [(Adjustment::Refund(3), "2"), (Adjustment::Penalty(7), "3")] {
            let remote = Adjust {
                algorithm: &algorithm,
                adjustment,
            }
            .remote()
            .unwrap();
            let units = adjustment.units().to_string();
            assert_eq!(remote.args, [units.as_str(), mode, "5", "1000"]);
            assert!(!remote.idempotent, "sent twice, a refund gives back twice");
        }
    }
}
