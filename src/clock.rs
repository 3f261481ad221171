//! Where limiters get the time. Algorithms never read a clock; limiters read
//! one and pass the time in, so tests can inject it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A source of Unix-epoch milliseconds that can also wait.
pub trait Clock {
    /// The current time in milliseconds.
    fn now_ms(&self) -> u64;
    /// Blocks the calling thread for `duration` (used by blocking waits).
    fn sleep(&self, duration: Duration);
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[cfg(not(target_arch = "wasm32"))]
impl Clock for SystemClock {
    #[inline]
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// In WebAssembly the time is the host's `Date.now()`. A wasm thread cannot
/// block, so `sleep` returns at once there: use the async forms
/// (`wait_async`) with the host's timer instead of blocking waits.
#[cfg(target_arch = "wasm32")]
impl Clock for SystemClock {
    #[inline]
    fn now_ms(&self) -> u64 {
        let now = js_sys::Date::now();
        if now.is_finite() && now > 0.0 {
            now as u64
        } else {
            0
        }
    }

    fn sleep(&self, _duration: Duration) {}
}

/// A clock that moves only when told to: for tests and simulations.
/// Clones share the same time; `sleep` advances it instead of blocking.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock showing `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        Self {
            now: Arc::new(AtomicU64::new(now_ms)),
        }
    }

    /// Sets the time, forwards or backwards.
    pub fn set(&self, now_ms: u64) {
        self.now.store(now_ms, Ordering::SeqCst);
    }

    /// Moves the time forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    fn sleep(&self, duration: Duration) {
        self.advance(duration.as_millis().try_into().unwrap_or(u64::MAX));
    }
}
