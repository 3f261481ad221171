//! A small, lock-free pseudo-random source for wait jitter, lease ids and
//! the memory store's hash seeds. Not cryptographic: it only needs to spread
//! waiters, avoid id clashes and keep hash seeds unpredictable from outside.

use std::sync::atomic::{AtomicU64, Ordering};

static STATE: AtomicU64 = AtomicU64::new(0);

/// A pseudo-random `u64` (SplitMix64 over a shared counter, seeded once from
/// the process's randomised hasher so separate processes differ).
pub(crate) fn next_u64() -> u64 {
    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut state = STATE.load(Ordering::Relaxed);
    if state == 0 {
        let seed =
            std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8)
                | 1;
        let _ = STATE.compare_exchange(0, seed, Ordering::Relaxed, Ordering::Relaxed);
    }
    state = STATE
        .fetch_add(GAMMA, Ordering::Relaxed)
        .wrapping_add(GAMMA);
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Seeds the generator, for hosts whose hasher seed is not random
/// (WebAssembly). A zero seed is ignored.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn reseed(seed: u64) {
    if seed != 0 {
        STATE.store(seed, Ordering::Relaxed);
    }
}

/// A uniformly spread value in `0..=max`.
pub(crate) fn up_to(max: u64) -> u64 {
    match max.checked_add(1) {
        Some(span) => next_u64() % span,
        None => next_u64(),
    }
}
