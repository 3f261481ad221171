//! What a call on several limits costs next to a call on one (`make
//! bench-multi`): in memory, and on Redis through the real gateway (a
//! throwaway `redis-server` and `edgelimit-gateway` on loopback ports), as
//! time per decision and HTTP requests per decision. Rounds alternate the
//! forms; the medians and the range of per-round ratios are printed.
//!
//! ```sh
//! EDGELIMIT_GATEWAY_BIN=target/release/edgelimit-gateway \
//!   cargo run --release --example multi_cost
//! ```

use std::time::{Duration, Instant};

use edgelimit::store::{RedisRestStore, Store};
use edgelimit::{FixedWindow, Limiter, MemoryStore, MultiLimiter, SlidingWindow};
use testkit::gateway::{Gateway, TOKEN};
use testkit::redis::Redis;
use testkit::tap::Tap;

const ROUNDS: usize = 7;
const MEMORY_CALLS: usize = 200_000;
const REDIS_CALLS: usize = 2_000;
/// Ids cycled through, so most calls are admitted (limits far above use).
const IDS: usize = 1_000;

/// The forms compared, each deciding one call for an id.
type Form<'a> = Box<dyn Fn(&str) -> bool + 'a>;

fn one<S: Store>(store: S) -> Limiter<SlidingWindow, S> {
    Limiter::new(SlidingWindow::new(1_000_000, "1 s").unwrap()).with_store(store)
}

fn two<S>(store: S, block: bool) -> MultiLimiter<S> {
    let limiter = MultiLimiter::new([
        SlidingWindow::new(1_000_000, "1 s").unwrap().into(),
        FixedWindow::new(10_000_000, "1 d").unwrap().into(),
    ])
    .unwrap();
    let limiter = match block {
        true => limiter.with_block("15 m").unwrap(),
        false => limiter,
    };
    limiter.with_store(store)
}

/// One limit, two, and two with a block, on one kind of store.
fn forms<'a, S: Store>(
    single: &'a Limiter<SlidingWindow, S>,
    pair: &'a MultiLimiter<S>,
    blocking: &'a MultiLimiter<S>,
) -> Vec<(&'static str, Form<'a>)> {
    vec![
        (
            "one limit (Limiter)",
            Box::new(|id| single.limit(id).unwrap().allowed),
        ),
        (
            "two limits (MultiLimiter)",
            Box::new(|id| pair.limit(id).unwrap().decision.allowed),
        ),
        (
            "two limits and a block",
            Box::new(|id| blocking.limit(id).unwrap().decision.allowed),
        ),
    ]
}

/// Median time per call of each form over alternating rounds, and the
/// range of each form's per-round ratio to the first form's.
fn measure(forms: &[(&str, Form<'_>)], calls: usize, ids: &[String]) -> Vec<(f64, f64, f64)> {
    let mut per_round = vec![Vec::new(); forms.len()];
    for _ in 0..ROUNDS {
        for (i, (_, form)) in forms.iter().enumerate() {
            let started = Instant::now();
            let mut admitted = 0;
            for n in 0..calls {
                admitted += usize::from(form(&ids[n % ids.len()]));
            }
            assert_eq!(admitted, calls, "every call is admitted");
            per_round[i].push(started.elapsed().as_secs_f64() / calls as f64);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (0..forms.len())
        .map(|i| {
            let ratios: Vec<f64> = (0..ROUNDS)
                .map(|r| per_round[i][r] / per_round[0][r])
                .collect();
            let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            let high = ratios.iter().copied().fold(0.0, f64::max);
            (median(per_round[i].clone()), low, high)
        })
        .collect()
}

fn report(title: &str, unit: (&str, f64), forms: &[(&str, Form<'_>)], rows: &[(f64, f64, f64)]) {
    println!("{title}");
    for ((name, _), (time, low, high)) in forms.iter().zip(rows) {
        println!(
            "  {name:<38} {:>9.2} {} per decision   {low:.2}x–{high:.2}x the single limit",
            time * unit.1,
            unit.0
        );
    }
}

fn main() {
    let ids: Vec<String> = (0..IDS).map(|i| format!("user:{i}")).collect();

    let (single, pair, blocking) = (
        one(MemoryStore::new()),
        two(MemoryStore::new(), false),
        two(MemoryStore::new(), true),
    );
    let compared = forms(&single, &pair, &blocking);
    let rows = measure(&compared, MEMORY_CALLS, &ids);
    report("memory store, one thread:", ("ns", 1e9), &compared, &rows);

    let redis = Redis::start();
    let gateway = Gateway::start(redis.port);
    let tap = Tap::start(gateway.url());
    let store = || RedisRestStore::new(tap.url(), TOKEN).unwrap();
    let (single, pair, blocking) = (one(store()), two(store(), false), two(store(), true));
    let compared = forms(&single, &pair, &blocking);
    // Scripts loaded, connections open.
    for (_, form) in &compared {
        form("warm-up");
    }
    let rows = measure(&compared, REDIS_CALLS, &ids);
    report(
        "Redis through the gateway, one thread, sequential calls:",
        ("µs", 1e6),
        &compared,
        &rows,
    );
    tap.take();
    for (name, form) in &compared {
        for id in ids.iter().take(100) {
            form(id);
        }
        let requests = tap.take().len();
        println!(
            "  {name:<38} {:>9.2} HTTP requests per decision",
            requests as f64 / 100.0
        );
    }
    std::thread::sleep(Duration::from_millis(10));
}
