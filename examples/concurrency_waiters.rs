//! 100 000 tasks waiting for 4 slots of one key, in one process, on the
//! memory store: each is granted in turn, holds its slot for a moment and
//! releases it. Prints the time, the store calls per waiter and the peak
//! memory (VmHWM, Linux).
//!
//!   cargo run --release --example concurrency_waiters [waiters]

use std::time::{Duration, Instant};

use edgelimit::{Acquire, Concurrency, ConcurrencyLimiter};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let waiters: usize = std::env::args()
        .nth(1)
        .map_or(100_000, |n| n.parse().expect("a number of waiters"));
    let limiter = ConcurrencyLimiter::new(Concurrency::new(4, "1 m").unwrap());
    let held: Vec<_> = (0..4)
        .map(|_| limiter.acquire("t").unwrap().permit().unwrap())
        .collect();
    let started = Instant::now();
    let tasks: Vec<_> = (0..waiters)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let granted = limiter
                    .acquire_async("t", Duration::from_secs(600), tokio::time::sleep)
                    .await
                    .unwrap();
                let Acquire::Granted(permit) = granted else {
                    panic!("not granted")
                };
                tokio::task::yield_now().await; // holds it for a moment
                permit.release_async().await.unwrap();
            })
        })
        .collect();
    tokio::task::yield_now().await;
    let queued = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await; // all slots held a while
    let released = Instant::now();
    for permit in held {
        permit.release_async().await.unwrap();
    }
    for task in tasks {
        task.await.unwrap();
    }
    let peak = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .unwrap_or_default();
    println!(
        "{waiters} waiters: queued in {:.0} ms, all granted and released {:.0} ms after the slots \
         were freed; peak memory {}",
        queued.as_secs_f64() * 1e3,
        released.elapsed().as_secs_f64() * 1e3,
        peak.trim_start_matches("VmHWM:").trim()
    );
}
