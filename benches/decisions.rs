//! Decisions per second on the in-memory store, for every algorithm, next to
//! governor's keyed GCRA on the same workloads.
//!
//! Workloads: one hot key, and 100 000 distinct keys (pre-built strings,
//! cycled in order) in a store large enough that nothing is evicted. Every
//! key is touched once before measuring, so the numbers are the steady state
//! of existing keys. Limits are generous: the rate limiters admit nearly
//! every call (the summary prints the share actually admitted), and the
//! concurrency limiter acquires and releases one permit per decision.
//!
//! Every call reads the system clock, as governor does with its own clock.
//!
//! Criterion measures each case (one thread, then two threads sharing one
//! limiter); afterwards a plain summary table is printed from a separate
//! timed loop run in the same process: a fixed number of decisions,
//! repeated with the cases interleaved, median taken. GCRA rows carry the throughput ratio
//! ours / governor (> 1: edgelimit is faster).

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use edgelimit::{
    Acquire, Algorithm, Concurrency, ConcurrencyLimiter, FixedWindow, Gcra, Limiter, MemoryStore,
    SlidingLog, SlidingWindow, SystemClock, TokenBucket, DEFAULT_PREFIX,
};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Distinct keys of the many-keys workload.
const MANY_KEYS: usize = 100_000;
/// Store bound: well above `MANY_KEYS`, so no shard ever evicts.
const MAX_KEYS: usize = 262_144;
/// Threads of the multi-threaded variant (the machine's core count).
const THREADS: usize = 2;

/// Per-key rate of the rate limiters: far above what one key receives here,
/// so calls are admitted and the steady state is the allowed path.
const RATE_PER_SECOND: u32 = 1_000_000_000;
/// The sliding log keeps one record per admitted millisecond, and its limit
/// is bounded (100 000): a short window keeps it mostly admitting.
const LOG_LIMIT: u64 = 100_000;
const LOG_WINDOW: &str = "2ms";
/// Concurrent permits per key (never reached: each permit is released at once).
const MAX_PERMITS: u64 = 1_000;

/// Decisions per timed run of the summary, per thread count.
const SUMMARY_DECISIONS: u64 = 200_000;
/// Timed runs per case; the summary reports the median.
const SUMMARY_RUNS: usize = 9;

/// One decision on a key; `true` when admitted. Keys are `&String` because
/// governor's keyed limiter takes `&K` with `K = String`.
#[allow(clippy::ptr_arg)]
trait Case: Sync {
    fn hit(&self, key: &String) -> bool;
}

struct Ours<A>(Limiter<A>);

impl<A: Algorithm + Sync> Case for Ours<A> {
    #[inline]
    fn hit(&self, key: &String) -> bool {
        self.0.limit(key).is_ok_and(|d| d.allowed)
    }
}

/// Acquire a permit, then release it (by dropping it).
struct OursConcurrency(ConcurrencyLimiter);

impl Case for OursConcurrency {
    #[inline]
    fn hit(&self, key: &String) -> bool {
        match self.0.acquire(key) {
            Ok(Acquire::Granted(permit)) => {
                drop(black_box(permit));
                true
            }
            _ => false,
        }
    }
}

struct Governor(DefaultKeyedRateLimiter<String>);

impl Case for Governor {
    #[inline]
    fn hit(&self, key: &String) -> bool {
        self.0.check_key(key).is_ok()
    }
}

fn store() -> MemoryStore {
    MemoryStore::with_max_keys(MAX_KEYS)
}

fn ours<A: Algorithm + Sync + 'static>(algorithm: A) -> Box<dyn CaseRunner> {
    Box::new(Ours(Limiter::new(algorithm).with_store(store())))
}

/// Builds a fresh case.
type Build = fn() -> Box<dyn CaseRunner>;

/// Every case, by name.
fn cases() -> Vec<(&'static str, Build)> {
    vec![
        ("fixed_window", || {
            ours(FixedWindow::new(RATE_PER_SECOND.into(), "1 s").unwrap())
        }),
        ("sliding_window", || {
            ours(SlidingWindow::new(RATE_PER_SECOND.into(), "1 s").unwrap())
        }),
        ("sliding_log", || {
            ours(SlidingLog::new(LOG_LIMIT, LOG_WINDOW).unwrap())
        }),
        ("token_bucket", || {
            let rate = RATE_PER_SECOND.into();
            ours(TokenBucket::new(rate, rate, "1 s").unwrap())
        }),
        ("gcra", || {
            ours(Gcra::new(RATE_PER_SECOND.into(), "1 s").unwrap())
        }),
        ("governor_gcra", || {
            let rate = NonZeroU32::new(RATE_PER_SECOND).unwrap();
            Box::new(Governor(RateLimiter::keyed(Quota::per_second(rate))))
        }),
        ("concurrency", || {
            let config = Concurrency::new(MAX_PERMITS, "30 s").unwrap();
            Box::new(OursConcurrency(ConcurrencyLimiter::with_parts(
                config,
                store(),
                SystemClock,
                DEFAULT_PREFIX,
            )))
        }),
    ]
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Workload {
    SingleKey,
    ManyKeys,
}

impl Workload {
    const ALL: [Workload; 2] = [Workload::SingleKey, Workload::ManyKeys];

    fn name(self) -> &'static str {
        match self {
            Workload::SingleKey => "1_key",
            Workload::ManyKeys => "100k_keys",
        }
    }

    fn keys(self) -> Vec<String> {
        match self {
            Workload::SingleKey => vec!["user:42".to_owned()],
            Workload::ManyKeys => (0..MANY_KEYS).map(|i| format!("user:{i}")).collect(),
        }
    }
}

/// `count` decisions over `keys`, cycling from `start`; returns how many
/// were admitted.
#[inline(never)]
fn drive<C: Case + ?Sized>(case: &C, keys: &[String], start: usize, count: u64) -> u64 {
    let mut i = start % keys.len();
    let mut admitted = 0;
    for _ in 0..count {
        admitted += u64::from(case.hit(black_box(&keys[i])));
        i += 1;
        if i == keys.len() {
            i = 0;
        }
    }
    admitted
}

/// `total` decisions split over `threads` threads sharing `case`; returns
/// the wall time from the common start to the last thread's end, and the
/// number admitted.
fn drive_threads<C: Case + ?Sized>(
    case: &C,
    keys: &[String],
    threads: usize,
    total: u64,
) -> (Duration, u64) {
    if threads == 1 {
        let start = Instant::now();
        let admitted = drive(case, keys, 0, total);
        return (start.elapsed(), admitted);
    }
    let barrier = Barrier::new(threads);
    let runs: Vec<(Instant, Instant, u64)> = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                // Spread the threads over the key set.
                let offset = t * keys.len() / threads;
                let share = total / threads as u64 + u64::from((t as u64) < total % threads as u64);
                scope.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    let admitted = drive(case, keys, offset, share);
                    (start, Instant::now(), admitted)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let start = runs.iter().map(|r| r.0).min().unwrap();
    let end = runs.iter().map(|r| r.1).max().unwrap();
    (end - start, runs.iter().map(|r| r.2).sum())
}

/// Object-safe front of a case, so cases of different types share one list.
trait CaseRunner: Sync {
    fn run(&self, keys: &[String], threads: usize, total: u64) -> (Duration, u64);
}

impl<C: Case> CaseRunner for C {
    fn run(&self, keys: &[String], threads: usize, total: u64) -> (Duration, u64) {
        drive_threads(self, keys, threads, total)
    }
}

/// A fresh case with every key of the workload already present.
fn prepared(build: Build, keys: &[String]) -> Box<dyn CaseRunner> {
    let case = build();
    case.run(keys, 1, keys.len() as u64);
    case
}

fn criterion_groups(c: &mut Criterion) {
    for threads in [1, THREADS] {
        for workload in Workload::ALL {
            let keys = workload.keys();
            let mut group = c.benchmark_group(format!("{threads}_thread/{}", workload.name()));
            group.throughput(Throughput::Elements(1));
            for (name, build) in cases() {
                let case = prepared(build, &keys);
                group.bench_function(BenchmarkId::from_parameter(name), |b| {
                    b.iter_custom(|iters| case.run(&keys, threads, iters).0);
                });
            }
            group.finish();
        }
    }
}

struct Row {
    name: &'static str,
    workload: Workload,
    threads: usize,
    ns_per_decision: f64,
    admitted: f64,
}

/// Runs every case of a workload in turn, `runs` times over (interleaved,
/// so a change in the machine's load hits every case alike), and keeps
/// each case's median.
fn measure_summary(decisions: u64, runs: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    for threads in [1, THREADS] {
        for workload in Workload::ALL {
            let keys = workload.keys();
            let cases: Vec<_> = cases()
                .into_iter()
                .map(|(name, build)| (name, prepared(build, &keys)))
                .collect();
            let mut times = vec![Vec::with_capacity(runs); cases.len()];
            let mut admitted = vec![0; cases.len()];
            for (_, case) in &cases {
                // One untimed run to warm caches and the allocator.
                case.run(&keys, threads, decisions / 4);
            }
            for _ in 0..runs {
                for (i, (_, case)) in cases.iter().enumerate() {
                    let (elapsed, ok) = case.run(&keys, threads, decisions);
                    times[i].push(elapsed.as_secs_f64() * 1e9 / decisions as f64);
                    admitted[i] += ok;
                }
            }
            for (i, (name, _)) in cases.iter().enumerate() {
                times[i].sort_by(f64::total_cmp);
                rows.push(Row {
                    name,
                    workload,
                    threads,
                    ns_per_decision: times[i][times[i].len() / 2],
                    admitted: admitted[i] as f64 / (decisions * runs as u64) as f64,
                });
            }
        }
    }
    rows
}

fn print_summary(rows: &[Row], decisions: u64, runs: usize) {
    let ns_of = |name: &str, workload: Workload, threads: usize| {
        rows.iter()
            .find(|r| r.name == name && r.workload == workload && r.threads == threads)
            .map(|r| r.ns_per_decision)
    };
    println!();
    println!(
        "Summary: median of {runs} runs of {decisions} decisions each; \
         with {THREADS} threads, ns/decision is wall time / total decisions."
    );
    println!(
        "{:<16} {:<10} {:>7} {:>12} {:>14} {:>8} {:>14}",
        "algorithm",
        "workload",
        "threads",
        "ns/decision",
        "decisions/s",
        "admitted",
        "ours/governor"
    );
    println!("{}", "-".repeat(87));
    for row in rows {
        let ratio = if row.name == "gcra" {
            ns_of("governor_gcra", row.workload, row.threads)
                .map(|gov| format!("{:.2}x", gov / row.ns_per_decision))
                .unwrap_or_default()
        } else {
            String::new()
        };
        println!(
            "{:<16} {:<10} {:>7} {:>12.1} {:>14.0} {:>7.1}% {:>14}",
            row.name,
            row.workload.name(),
            row.threads,
            row.ns_per_decision,
            1e9 / row.ns_per_decision,
            row.admitted * 100.0,
            ratio
        );
    }
    println!();
    for threads in [1, THREADS] {
        for workload in Workload::ALL {
            if let (Some(ours), Some(gov)) = (
                ns_of("gcra", workload, threads),
                ns_of("governor_gcra", workload, threads),
            ) {
                println!(
                    "GCRA ours/governor throughput, {}, {threads} thread(s): {:.2} \
                     ({ours:.1} vs {gov:.1} ns/decision; > 1 means edgelimit is faster)",
                    workload.name(),
                    gov / ours
                );
            }
        }
    }
}

fn main() {
    let started = Instant::now();
    // `cargo bench` passes `--bench`; without it (e.g. `cargo test
    // --benches`) criterion runs each case once, and so does the summary.
    let full = std::env::args().any(|a| a == "--bench");
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(20)
        .nresamples(10_000)
        .configure_from_args();
    criterion_groups(&mut criterion);
    criterion.final_summary();

    let (decisions, runs) = if full {
        (SUMMARY_DECISIONS, SUMMARY_RUNS)
    } else {
        (1_000, 1)
    };
    let rows = measure_summary(decisions, runs);
    print_summary(&rows, decisions, runs);
    println!(
        "\nTotal bench time: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
