//! Quota leases: a call that is admitted may take more units of its window
//! than it costs, for the caller to spend locally without asking the store
//! again, and give back what it did not spend.
//!
//! Only counted windows lease (fixed and sliding window): a unit taken in a
//! window counts in that window whenever it is spent in it, so spending it
//! later never admits more than the limit. Leased units must be spent before
//! the window ends ([`QuotaGrant::expires_at_ms`]): after that they would
//! count in a window that is over.

use super::contract::Outcome;

/// Units taken from a window beyond a call's cost, to spend locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaGrant {
    /// Units taken (already counted by the store), at least 1.
    pub units: u64,
    /// Start of the window they were taken from, which names it.
    pub window_start_ms: u64,
    /// End of that window: they may be spent strictly before it, on the
    /// store's clock.
    pub expires_at_ms: u64,
}

/// Units of an earlier grant left unspent, given back to their window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaRefund {
    /// [`QuotaGrant::window_start_ms`] of the grant.
    pub window_start_ms: u64,
    /// Units not spent (and never to be spent).
    pub units: u64,
}

/// Units an admitted call of `cost` may take beyond it when it asks for
/// `want` in all: no more than the window has left after the call.
fn extra_units(outcome: &Outcome, cost: u64, want: u64) -> u64 {
    match outcome.decision.allowed && cost > 0 {
        true => want.saturating_sub(cost).min(outcome.decision.remaining),
        false => 0,
    }
}

/// After `outcome` admitted a call of `cost` in the window starting at
/// `window_start_ms` (of `window_ms`), takes the units beyond it that
/// `want` asks for into that window's `counted` units: the grant, if any,
/// and `remaining` lowered by it. Every windowed algorithm's lease.
pub(crate) fn take_extra(
    outcome: &mut Outcome,
    cost: u64,
    want: u64,
    counted: &mut u64,
    window_start_ms: u64,
    window_ms: u64,
) -> Option<QuotaGrant> {
    let extra = extra_units(outcome, cost, want);
    if extra == 0 {
        return None;
    }
    *counted += extra;
    outcome.decision.remaining -= extra;
    Some(QuotaGrant {
        units: extra,
        window_start_ms,
        expires_at_ms: window_start_ms.saturating_add(window_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::QuotaGrant;
    use crate::algorithm::{Algorithm, FixedWindow, FixedWindowState};

    #[test]
    fn an_admitted_call_takes_what_it_wants_up_to_what_is_left() {
        let alg = FixedWindow::new(10, "1 s").unwrap();
        let mut s = None;
        let lease = |s: &mut Option<FixedWindowState>, now, cost, want| {
            let (outcome, grant) = alg.decide_leased(s, now, cost, want, None).unwrap();
            (outcome.decision.allowed, outcome.decision.remaining, grant)
        };
        // Costs 1, wants 4: 3 more are taken, and the window counts them.
        let taken = QuotaGrant {
            units: 3,
            window_start_ms: 1_000,
            expires_at_ms: 2_000,
        };
        assert_eq!(lease(&mut s, 1_200, 1, 4), (true, 6, Some(taken)));
        assert_eq!(lease(&mut s, 1_200, 0, 0), (true, 6, None));
        // Wanting no more than the cost, or reading, takes nothing more.
        assert_eq!(lease(&mut s, 1_300, 2, 2), (true, 4, None));
        assert_eq!(lease(&mut s, 1_300, 0, 5), (true, 4, None));
        // Wanting more than is left takes what is left; a denial, nothing.
        assert_eq!(lease(&mut s, 1_400, 1, 10).2.map(|g| g.units), Some(3));
        assert_eq!(lease(&mut s, 1_500, 1, 5), (false, 0, None));
    }
}
