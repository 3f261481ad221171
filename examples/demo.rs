//! Fires the same burst of requests at a token bucket and at a sliding
//! window, both on the in-memory store, and prints what each one decided.
//!
//! Time comes from a `ManualClock` moved forward between requests, so the
//! output is the same on every run and the demo finishes at once.

use std::error::Error;

use edgelimit::{Algorithm, Limiter, ManualClock, SlidingWindow, TokenBucket};

/// When each request arrives, in milliseconds after the first one: a burst,
/// a few stragglers, then calls spread over the next seconds.
const OFFSETS_MS: [u64; 12] = [0, 0, 100, 200, 300, 400, 500, 900, 1200, 2100, 2600, 3500];

/// Start of the demo on the clock: a multiple of both windows, so window
/// boundaries fall on round offsets.
const START_MS: u64 = 1_700_000_000_000;

fn main() -> Result<(), Box<dyn Error>> {
    println!(
        "{} requests from one client; t is milliseconds after the first one.\n",
        OFFSETS_MS.len()
    );
    run(
        "Token bucket: capacity 5, refill 1 token every 1 s",
        &[
            "The burst drains the 5 tokens; one token comes back at each full second",
            "after the first call (1000, 2000, 3000 ms), and each admits one more call.",
        ],
        TokenBucket::new(5, 1, "1 s")?,
    )?;
    run(
        "Sliding window: 5 requests per 2 s",
        &[
            "The burst fills the window [0, 2000). After 2000 ms the previous window's 5",
            "still count, weighted by how much of them the sliding 2 s still covers.",
        ],
        SlidingWindow::new(5, "2 s")?,
    )?;
    println!("remaining: calls that would be admitted right now.");
    println!("reset: when the limit is whole again if nothing more is admitted.");
    println!("retry after: how long a denied call must wait before it fits.");
    Ok(())
}

fn run<A: Algorithm>(title: &str, notes: &[&str], algorithm: A) -> Result<(), Box<dyn Error>> {
    let clock = ManualClock::new(START_MS);
    let limiter = Limiter::new(algorithm).with_clock(clock.clone());

    println!("{title}");
    println!(
        "  {:>2}  {:>6}  {:<7}  {:>9}  {:>12}  {:>11}",
        "#", "t (ms)", "result", "remaining", "reset", "retry after"
    );
    println!("  {}", "-".repeat(2 + 6 + 7 + 9 + 12 + 11 + 10));
    for (n, offset) in OFFSETS_MS.into_iter().enumerate() {
        let now = START_MS + offset;
        clock.set(now);
        let decision = limiter.limit("203.0.113.7")?;
        let retry = if decision.allowed {
            "-".to_owned()
        } else {
            format!("{} ms", decision.retry_after_ms)
        };
        println!(
            "  {:>2}  {:>6}  {:<7}  {:>9}  {:>12}  {:>11}",
            n + 1,
            offset,
            if decision.allowed {
                "allowed"
            } else {
                "DENIED"
            },
            decision.remaining,
            format!("in {} ms", decision.reset_ms.saturating_sub(now)),
            retry,
        );
    }
    for note in notes {
        println!("  {note}");
    }
    println!();
    Ok(())
}
