//! Quota leases never exceed the limit across processes.

use std::collections::BTreeMap;
use std::time::Duration;

use edgelimit::Limiter;

use crate::children::*;
use crate::setup::*;

/// Units of each quota lease.
pub(crate) const QUOTA_UNITS: u64 = 5;

/// Hammers a fixed and a sliding window on one limiter each per process,
/// both taking quota leases; one line per decision:
/// `quota <0 fixed, 1 sliding> <allowed> <unix ms before> <unix ms after>
/// <reset>`.
pub(crate) fn child_quota() {
    let url = env(URL_ENV);
    let prefix = env(PREFIX_ENV);
    let store = store(&url, hammer_options());
    let fixed = Limiter::new(fixed())
        .with_store(store.clone())
        .with_prefix(format!("{prefix}fixed:"))
        .with_quota_lease(QUOTA_UNITS)
        .unwrap();
    let sliding = Limiter::new(sliding())
        .with_store(store)
        .with_prefix(format!("{prefix}sliding:"))
        .with_quota_lease(QUOTA_UNITS)
        .unwrap();
    run_threads(|thread, deadline| {
        let mut lines = Vec::new();
        for call in 0..MAX_CALLS_PER_THREAD {
            let before = unix_ms();
            if before >= deadline {
                break;
            }
            let which = (call + thread) % 2;
            let result = match which {
                0 => fixed.limit(HOT_KEY),
                _ => sliding.limit(HOT_KEY),
            };
            let after = unix_ms();
            if matches!(result, Ok(d) if !d.allowed) {
                // Denials are answered locally in microseconds: pace them so
                // the calls last the run.
                std::thread::sleep(Duration::from_millis(1));
            }
            lines.push(match result {
                Ok(d) => format!(
                    "quota {which} {} {before} {after} {}",
                    u8::from(d.allowed),
                    d.reset_ms
                ),
                Err(e) => format!("error {which} {e}"),
            });
        }
        lines
    });
}

/// Quota leases across processes: no window admits more than its limit,
/// every admission falls in the window it was counted in (on the machine's
/// one clock, which Redis reads too), and a window whose demand exceeded
/// the limit admitted all but what each process may hold unspent.
#[test]
fn quota_leases_never_exceed_the_limit_across_processes() {
    let _heavy = one_at_a_time();
    let backend = Backend::start();
    let run_ms = 3_500;
    let lines = run_children("quota", &backend.gateway.url(), "quota:", run_ms);
    let errors: Vec<_> = lines.iter().filter(|l| l.starts_with("error")).collect();
    assert!(errors.is_empty(), "calls failed: {errors:?}");
    // Per algorithm, per window start: admitted, denied.
    let mut windows = [BTreeMap::new(), BTreeMap::new()];
    let (mut first, mut last) = (u64::MAX, 0);
    for line in &lines {
        let [which, allowed, before, after, reset_ms] = fields(line)[..] else {
            panic!("bad report {line:?}");
        };
        first = first.min(before);
        last = last.max(after);
        // The window the decision counted in: a fixed window resets at its
        // end, a sliding window one window later.
        let end = reset_ms - WINDOW_MS * which;
        let start = end - WINDOW_MS;
        let (admitted, denied): &mut (u64, u64) = windows[which as usize]
            .entry(if allowed == 1 {
                start
            } else {
                before - before % WINDOW_MS
            })
            .or_default();
        if allowed == 1 {
            *admitted += 1;
            assert!(
                before < end && after >= start,
                "{line}: admitted outside its window [{start}, {end})"
            );
        } else {
            *denied += 1;
        }
    }
    let slack = PROCESSES as u64 * (QUOTA_UNITS - 1);
    for (name, windows) in ["fixed", "sliding"].iter().zip(&windows) {
        eprintln!("{name} window with quota leases: {windows:?}");
        let mut full = 0;
        for (&start, &(admitted, denied)) in windows {
            assert!(
                admitted <= WINDOW_LIMIT,
                "{name} window at {start}: {admitted} admitted, limit {WINDOW_LIMIT}"
            );
            // Windows the run covered from start to end, with demand past
            // the limit.
            let whole = start >= first && start + WINDOW_MS <= last;
            if whole && denied > 0 && *name == "fixed" {
                full += 1;
                assert!(
                    admitted + slack >= WINDOW_LIMIT,
                    "{name} window at {start}: only {admitted} admitted"
                );
            }
        }
        if *name == "fixed" {
            assert!(
                full >= 2,
                "demand exceeded the limit in {full} whole windows"
            );
        }
    }
}
