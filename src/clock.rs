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

/// Unix time in milliseconds.
///
/// Natively, reading the operating system's wall clock costs more than a
/// whole in-memory decision, so the wall clock is read once a second and the
/// CPU's time-stamp counter (through `quanta`, as `governor` does) advances
/// it in between: drift stays well under a millisecond, and a step of the
/// wall clock is followed within a second. In WebAssembly it is the host's
/// `Date.now()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[cfg(not(target_arch = "wasm32"))]
impl Clock for SystemClock {
    #[inline]
    fn now_ms(&self) -> u64 {
        tsc::now_ms()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod tsc {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::sync::OnceLock;

    /// How often the wall clock is read again.
    const RESYNC_MS: u64 = 1_000;

    struct Synced {
        counter: quanta::Clock,
        start: u64,
        /// Wall-clock milliseconds minus counter milliseconds.
        offset_ms: AtomicU64,
        next_resync_ms: AtomicU64,
    }

    static SYNCED: OnceLock<Synced> = OnceLock::new();

    fn wall_ms() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    #[inline]
    pub(super) fn now_ms() -> u64 {
        let synced = SYNCED.get_or_init(|| {
            let counter = quanta::Clock::new();
            let start = counter.raw();
            Synced {
                counter,
                start,
                offset_ms: AtomicU64::new(wall_ms()),
                next_resync_ms: AtomicU64::new(RESYNC_MS),
            }
        });
        let elapsed_ms = synced
            .counter
            .delta_as_nanos(synced.start, synced.counter.raw())
            / 1_000_000;
        if elapsed_ms >= synced.next_resync_ms.load(Relaxed) {
            // Racing threads store nearly equal values: harmless.
            synced
                .offset_ms
                .store(wall_ms().saturating_sub(elapsed_ms), Relaxed);
            synced.next_resync_ms.store(elapsed_ms + RESYNC_MS, Relaxed);
        }
        elapsed_ms + synced.offset_ms.load(Relaxed)
    }
}

/// A wasm thread cannot block, so `sleep` returns at once there: use the
/// async forms (`wait_async`) with the host's timer instead of blocking waits.
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

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::{Clock, SystemClock};

    fn wall_ms() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    }

    #[test]
    fn system_clock_follows_the_wall_clock() {
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(1_300) {
            let (before, ours, after) = (wall_ms(), SystemClock.now_ms(), wall_ms());
            // Between resyncs (every second) the counter keeps its own
            // rate, and a wall clock being slewed (NTP, a VM's host) drifts
            // from it by its slew over that second: 2 ms has been seen on
            // a VM. 20 ms allows a 2% slew and still catches a wrong offset
            // or unit.
            const DRIFT_MS: u64 = 20;
            assert!(
                ours + DRIFT_MS >= before && ours <= after + DRIFT_MS,
                "{before} <= {ours} <= {after}"
            );
            std::thread::sleep(std::time::Duration::from_millis(7));
        }
    }
}
