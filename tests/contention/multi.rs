//! Several limits decided as one call hold across processes, all or
//! nothing: no denied call is charged to any limit.

use std::collections::BTreeMap;
use std::time::Duration;

use edgelimit::{AnyAlgorithm, Limiter, MultiLimiter, SlidingLog};

use crate::children::*;
use crate::setup::*;

/// Counts every admitted call and never denies one in a test's time.
const TALLY_LIMIT: u64 = 100_000;

fn tally() -> SlidingLog {
    SlidingLog::new(TALLY_LIMIT, Duration::from_secs(3_600)).unwrap()
}

fn limits() -> [AnyAlgorithm; 3] {
    [fixed().into(), gcra().into(), tally().into()]
}

/// Hammers one id under a fixed window, a GCRA and a tally; one line per
/// decision: `multi <allowed> <denied_by + 1, 0 for none> <window end>`.
pub(crate) fn child_multi() {
    let url = env(URL_ENV);
    let limiter = MultiLimiter::new(limits())
        .unwrap()
        .with_store(store(&url, hammer_options()))
        .with_prefix(env(PREFIX_ENV));
    run_threads(|_, deadline| {
        let mut lines = Vec::new();
        for _ in 0..MAX_CALLS_PER_THREAD {
            if unix_ms() >= deadline {
                break;
            }
            lines.push(match limiter.limit(HOT_KEY) {
                Ok(d) => format!(
                    "multi {} {} {}",
                    u8::from(d.decision.allowed),
                    d.denied_by.map_or(0, |i| i + 1),
                    d.limits[0].reset_ms
                ),
                Err(e) => format!("error {e}"),
            });
        }
        lines
    });
}

#[test]
fn several_limits_charge_all_or_nothing_across_processes() {
    let _heavy = one_at_a_time();
    let backend = Backend::start();
    let prefix = "multi:";
    let lines = run_children("multi", &backend.gateway.url(), prefix, 3_000);
    let errors: Vec<_> = lines.iter().filter(|l| l.starts_with("error")).collect();
    assert!(errors.is_empty(), "calls failed: {errors:?}");
    let (mut admitted, mut denied_by) = (0, [0u64; 3]);
    // Admitted per fixed window, by the window's end.
    let mut windows: BTreeMap<u64, u64> = BTreeMap::new();
    for line in &lines {
        let [allowed, denier, window_end] = fields(line)[..] else {
            panic!("bad report {line:?}");
        };
        if allowed == 1 {
            admitted += 1;
            *windows.entry(window_end).or_default() += 1;
        } else {
            denied_by[denier as usize - 1] += 1;
        }
    }
    eprintln!("multi: {admitted} admitted, denied by each limit {denied_by:?}");
    assert!(
        denied_by[0] > 0 && denied_by[1] > 0,
        "both limits must deny some calls: {denied_by:?}"
    );
    for (end, count) in &windows {
        assert!(
            *count <= WINDOW_LIMIT,
            "{count} admitted in the window ending {end}"
        );
    }
    // Every admitted call, and no denied one, was charged to the tally.
    let store = store(&backend.gateway.url(), hammer_options());
    let tally = Limiter::new(tally()).with_store(store).with_prefix(prefix);
    let left = tally.remaining(HOT_KEY).unwrap().remaining;
    assert_eq!(TALLY_LIMIT - left, admitted, "units charged to the tally");
}
