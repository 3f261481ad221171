//! Rate limits (fixed window, sliding window, token bucket, GCRA) hold
//! across processes: the children's side and the checks.

use std::collections::BTreeMap;

use crate::children::*;
use crate::replay::*;
use crate::setup::*;

/// Hammers the four rate-limited keys in turn; one line per decision:
/// `rate <algorithm index> <allowed> <now> <remaining> <reset> <retry>`.
pub(crate) fn child_rate() {
    let url = env(URL_ENV);
    let prefix = env(PREFIX_ENV);
    let store = store(&url, hammer_options());
    let (fixed, sliding, bucket, gcra) = (fixed(), sliding(), bucket(), gcra());
    run_threads(|thread, deadline| {
        let mut lines = Vec::new();
        for call in 0..MAX_CALLS_PER_THREAD {
            if unix_ms() >= deadline {
                break;
            }
            let which = (call + thread) % RATE_ALGORITHMS.len();
            let prefix = format!("{prefix}{}:", RATE_ALGORITHMS[which]);
            let result = match which {
                0 => decide(&store, &prefix, &fixed),
                1 => decide(&store, &prefix, &sliding),
                2 => decide(&store, &prefix, &bucket),
                _ => decide(&store, &prefix, &gcra),
            };
            lines.push(match result {
                Ok((d, now)) => format!(
                    "rate {which} {} {now} {} {} {}",
                    u8::from(d.allowed),
                    d.remaining,
                    d.reset_ms,
                    d.retry_after_ms
                ),
                Err(e) => format!("error {which} {e}"),
            });
        }
        lines
    });
}

pub(crate) fn check_fixed_window(observed: &[Observed]) {
    let mut windows: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for o in observed {
        let start = o.now - o.now % WINDOW_MS;
        let (admitted, denied) = windows.entry(start).or_default();
        if o.allowed {
            *admitted += 1;
            assert_eq!(o.reset_ms, start + WINDOW_MS, "{o:?}: the window's end");
        } else {
            *denied += 1;
        }
    }
    let mut exceeded = 0;
    for (start, (admitted, denied)) in &windows {
        assert!(
            *admitted <= WINDOW_LIMIT,
            "fixed window at {start}: {admitted} admitted, limit {WINDOW_LIMIT}"
        );
        if *denied > 0 {
            exceeded += 1;
            assert_eq!(
                *admitted, WINDOW_LIMIT,
                "fixed window at {start}: {denied} denied, so exactly the limit admitted"
            );
        }
    }
    assert!(
        exceeded >= 2,
        "demand exceeded the limit in only {exceeded} windows: {windows:?}"
    );
}

/// A call `elapsed` ms into a window is admitted only if
/// `previous × (w − elapsed) + current × w ≤ limit × w`, `current` counting
/// it: checked at each millisecond with every admission up to it (at least
/// the true count of the last one admitted then).
pub(crate) fn check_sliding_window(observed: &[Observed]) {
    let (w, limit) = (WINDOW_MS, WINDOW_LIMIT);
    let mut per_window: BTreeMap<u64, Vec<Observed>> = BTreeMap::new();
    for o in observed.iter().filter(|o| o.allowed) {
        per_window.entry(o.now - o.now % w).or_default().push(*o);
    }
    for (start, admitted) in &per_window {
        let previous = per_window.get(&(start - w)).map_or(0, Vec::len) as u64;
        assert!(
            admitted.len() as u64 <= limit,
            "sliding window at {start}: {} admitted, limit {limit}",
            admitted.len()
        );
        for (now, current) in admitted_by_time(admitted) {
            let elapsed = now - start;
            assert!(
                previous * (w - elapsed) + current * w <= limit * w,
                "sliding window: {current} admitted by {elapsed} ms into the window at \
                 {start}, with {previous} in the one before"
            );
        }
    }
}

/// Never more than the capacity plus the refills since the first call.
pub(crate) fn check_token_bucket(observed: &[Observed]) {
    let (capacity, refill, interval) = BUCKET;
    let first = observed.iter().map(|o| o.now).min().unwrap();
    for (now, admitted) in admitted_by_time(observed) {
        let most = capacity + refill * ((now - first) / interval);
        assert!(
            admitted <= most,
            "token bucket: {admitted} admitted by {now}, at most {most}"
        );
    }
}

/// Never more than the burst plus one per emission interval `period / rate`
/// since the first call.
pub(crate) fn check_gcra(observed: &[Observed]) {
    let (rate, period, burst) = GCRA;
    let first = observed.iter().map(|o| o.now).min().unwrap();
    for (now, admitted) in admitted_by_time(observed) {
        assert!(
            admitted * period <= burst * period + (now - first) * rate,
            "GCRA: {admitted} admitted by {now} ({} ms after the first call)",
            now - first
        );
    }
}

#[test]
fn rate_limits_hold_across_processes() {
    let _heavy = one_at_a_time();
    let backend = Backend::start();
    let run_ms = 3_500;
    let lines = run_children("rate", &backend.gateway.url(), "rate:", run_ms);
    let errors: Vec<_> = lines.iter().filter(|l| l.starts_with("error")).collect();
    assert!(errors.is_empty(), "calls failed: {errors:?}");
    let mut observed = vec![Vec::new(); RATE_ALGORITHMS.len()];
    for line in &lines {
        let f = fields(line);
        let [which, allowed, now, remaining, reset_ms, retry_after_ms] = f[..] else {
            panic!("bad report {line:?}");
        };
        observed[which as usize].push(Observed {
            now,
            allowed: allowed == 1,
            remaining,
            reset_ms,
            retry_after_ms,
        });
    }
    for (name, observed) in RATE_ALGORITHMS.iter().zip(&observed) {
        let admitted = observed.iter().filter(|o| o.allowed).count();
        let denied = observed.len() - admitted;
        eprintln!("{name}: {admitted} admitted, {denied} denied");
        assert!(
            admitted > 0 && denied > admitted,
            "{name}: demand must exceed the limit ({admitted} admitted, {denied} denied)"
        );
    }
    check_fixed_window(&observed[0]);
    check_sliding_window(&observed[1]);
    check_token_bucket(&observed[2]);
    check_gcra(&observed[3]);
    replay_in_memory("fixed window", &fixed(), &observed[0]);
    replay_in_memory("sliding window", &sliding(), &observed[1]);
    replay_in_memory("token bucket", &bucket(), &observed[2]);
    replay_in_memory("GCRA", &gcra(), &observed[3]);
}
