//! Random sets of limits for the multi-limiter's property tests: one of
//! each kind at most, so that no two share a state.

use std::time::Duration;

use edgelimit::algorithm::AnyAlgorithm;
use edgelimit::{FixedWindow, Gcra, SlidingLog, SlidingWindow, TokenBucket};
use proptest::prelude::*;

pub fn any(limits: &[(u8, u64, u64)]) -> Vec<AnyAlgorithm> {
    // One of each kind at most, so no two share a state.
    let mut seen = [false; 5];
    limits
        .iter()
        .filter(|(kind, _, _)| !std::mem::replace(&mut seen[*kind as usize], true))
        .map(|&(kind, limit, window)| (kind, limit, Duration::from_millis(window)))
        .map(|(kind, limit, window)| match kind {
            0 => FixedWindow::new(limit, window).unwrap().into(),
            1 => SlidingWindow::new(limit, window).unwrap().into(),
            2 => SlidingLog::new(limit, window).unwrap().into(),
            3 => TokenBucket::new(limit, 1, window).unwrap().into(),
            _ => Gcra::new(limit, window).unwrap().into(),
        })
        .collect()
}

pub fn limits() -> impl Strategy<Value = Vec<AnyAlgorithm>> {
    prop::collection::vec((0..5u8, 1..=6u64, 20..2_000u64), 1..5).prop_map(|l| any(&l))
}
