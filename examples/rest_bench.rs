//! Closed-loop load generator for the Redis REST store, the Rust side of
//! `bench/redis-store/run.sh`.
//!
//! `--store blocking` (the default): `--concurrency` OS threads each with a
//! blocking [`Limiter`], all sharing one [`RedisRestStore`] (one HTTP
//! connection pool). `--store async`: as many tokio tasks sharing one
//! [`AsyncRedisRestStore`], whose concurrent calls share requests unless
//! `--batch off`. Time from Redis; `--deny-cache on` remembers denials.
//! Every thread or task decides one call, waits for the answer, and decides
//! again, cycling round-robin through `--keys` keys, for `--duration-secs`
//! after an unrecorded warm-up. Prints one JSON line: decisions per second,
//! latency percentiles of a decision, allowed and failed calls. Loopback
//! URLs only.
//!
//! ```sh
//! cargo run --release --example rest_bench -- --url http://127.0.0.1:8080 \
//!   --token t --algorithm token-bucket --concurrency 10
//! ```

use std::error::Error;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use edgelimit::store::{
    AsyncRedisRestStore, Batching, RedisRestStore, RestOptions, TimeSource, DEFAULT_DENY_CACHE,
};
use edgelimit::{Algorithm, Decision, Limiter, SlidingWindow, TokenBucket};

struct Args {
    url: String,
    token: String,
    algorithm: String,
    concurrency: usize,
    duration: Duration,
    warmup: Duration,
    keys: usize,
    store: String,
    batch: bool,
    /// `Batching::max_in_flight` / `max_calls` of the async store (0: the default).
    max_in_flight: usize,
    max_calls: usize,
    deny_cache: bool,
}

const USAGE: &str = "usage: rest_bench --url URL --token TOKEN \
    --algorithm token-bucket|sliding-window [--concurrency N] \
    [--duration-secs S] [--warmup-secs S] [--keys N] [--store blocking|async] \
    [--batch on|off] [--max-in-flight N] [--max-calls N] [--deny-cache on|off]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: String::new(),
        token: String::new(),
        algorithm: String::new(),
        concurrency: 1,
        duration: Duration::from_secs(5),
        warmup: Duration::from_millis(500),
        keys: 10_000,
        store: "blocking".into(),
        batch: true,
        max_in_flight: 0,
        max_calls: 0,
        deny_cache: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = |v: &str| v.parse::<f64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--url" => args.url = value,
            "--token" => args.token = value,
            "--algorithm" => args.algorithm = value,
            "--concurrency" => args.concurrency = number(&value)? as usize,
            "--duration-secs" => args.duration = Duration::from_secs_f64(number(&value)?),
            "--warmup-secs" => args.warmup = Duration::from_secs_f64(number(&value)?),
            "--keys" => args.keys = number(&value)? as usize,
            "--store" => args.store = value,
            "--batch" => args.batch = value == "on",
            "--max-in-flight" => args.max_in_flight = number(&value)? as usize,
            "--max-calls" => args.max_calls = number(&value)? as usize,
            "--deny-cache" => args.deny_cache = value == "on",
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    if args.url.is_empty() || args.token.is_empty() || args.concurrency == 0 || args.keys == 0 {
        return Err(USAGE.into());
    }
    let host = args
        .url
        .strip_prefix("http://")
        .and_then(|rest| rest.split(['/', ':']).next())
        .ok_or("only http:// URLs")?;
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err("rest_bench only targets loopback addresses".into());
    }
    Ok(args)
}

/// What one thread or task measured.
#[derive(Default)]
struct Stats {
    latencies_us: Vec<u32>,
    allowed: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Stats {
    /// Records a call that began at `began` (before `measure_from`: warm-up,
    /// not recorded) and took `took`.
    fn record(
        &mut self,
        began: Instant,
        measure_from: Instant,
        took: Duration,
        result: Result<Decision, edgelimit::Error>,
    ) {
        if began < measure_from {
            return;
        }
        match result {
            Ok(decision) if decision.reason.is_none() => {
                self.latencies_us
                    .push(took.as_micros().min(u32::MAX as u128) as u32);
                self.allowed += u64::from(decision.allowed);
            }
            Ok(decision) => {
                self.errors += 1;
                self.first_error
                    .get_or_insert(format!("{:?}", decision.reason));
            }
            Err(error) => {
                self.errors += 1;
                self.first_error.get_or_insert(error.to_string());
            }
        }
    }

    fn merge(&mut self, other: Stats) {
        self.latencies_us.extend(other.latencies_us);
        self.allowed += other.allowed;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    let options = RestOptions {
        time: TimeSource::Redis,
        deny_cache: if args.deny_cache {
            DEFAULT_DENY_CACHE
        } else {
            0
        },
        ..RestOptions::default()
    };
    match args.algorithm.as_str() {
        // Capacity 100, 10 tokens back every second.
        "token-bucket" => run(&args, options, TokenBucket::new(100, 10, "1 s")?),
        // 100 calls per sliding 10 s.
        "sliding-window" => run(&args, options, SlidingWindow::new(100, "10 s")?),
        other => Err(format!("unknown algorithm {other:?}\n{USAGE}").into()),
    }
}

fn run<A>(args: &Args, options: RestOptions, algorithm: A) -> Result<(), Box<dyn Error>>
where
    A: Algorithm + Clone + Send + Sync + 'static,
{
    let keys: Arc<Vec<String>> = Arc::new((0..args.keys).map(|i| format!("user:{i}")).collect());
    let stats = match args.store.as_str() {
        "blocking" => {
            let store = RedisRestStore::with_options(&args.url, &args.token, options)?;
            run_threads(args, &keys, Limiter::new(algorithm).with_store(store))?
        }
        "async" => {
            let batching = match args.batch {
                true => {
                    let default = Batching::default();
                    let or_default = |n: usize, d: usize| if n == 0 { d } else { n };
                    Batching {
                        max_in_flight: or_default(args.max_in_flight, default.max_in_flight),
                        max_calls: or_default(args.max_calls, default.max_calls),
                        ..default
                    }
                }
                false => Batching::OFF,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let store =
                    AsyncRedisRestStore::with_options(&args.url, &args.token, options, batching)?;
                run_tasks(args, &keys, Limiter::new(algorithm).with_store(store)).await
            })?
        }
        other => return Err(format!("unknown store {other:?}\n{USAGE}").into()),
    };
    report(args, stats);
    Ok(())
}

/// `--concurrency` OS threads, each deciding with the blocking store.
fn run_threads<A>(
    args: &Args,
    keys: &Arc<Vec<String>>,
    limiter: Limiter<A, RedisRestStore>,
) -> Result<Stats, Box<dyn Error>>
where
    A: Algorithm + Clone + Send + Sync + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(args.concurrency + 1));
    let (warmup, duration) = (args.warmup, args.duration);
    let threads: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let limiter = limiter.clone();
            let (keys, next, start) = (keys.clone(), next.clone(), start.clone());
            std::thread::spawn(move || {
                let mut stats = Stats {
                    latencies_us: Vec::with_capacity(1 << 16),
                    ..Stats::default()
                };
                start.wait();
                let t0 = Instant::now();
                let (measure_from, end) = (t0 + warmup, t0 + warmup + duration);
                loop {
                    let began = Instant::now();
                    if began >= end {
                        break;
                    }
                    let key = &keys[next.fetch_add(1, Ordering::Relaxed) % keys.len()];
                    let result = limiter.limit(key);
                    stats.record(began, measure_from, began.elapsed(), result);
                }
                stats
            })
        })
        .collect();
    start.wait();
    let mut all = Stats::default();
    for thread in threads {
        all.merge(thread.join().map_err(|_| "a load thread panicked")?);
    }
    Ok(all)
}

/// `--concurrency` tokio tasks, each deciding with the async store.
async fn run_tasks<A>(
    args: &Args,
    keys: &Arc<Vec<String>>,
    limiter: Limiter<A, AsyncRedisRestStore>,
) -> Result<Stats, Box<dyn Error>>
where
    A: Algorithm + Clone + Send + Sync + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let (measure_from, end) = (t0 + args.warmup, t0 + args.warmup + args.duration);
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let limiter = limiter.clone();
            let (keys, next) = (keys.clone(), next.clone());
            tokio::spawn(async move {
                let mut stats = Stats::default();
                for i in 0u64.. {
                    let began = Instant::now();
                    if began >= end {
                        break;
                    }
                    let key = &keys[next.fetch_add(1, Ordering::Relaxed) % keys.len()];
                    let result = limiter.limit_async(key).await;
                    stats.record(began, measure_from, began.elapsed(), result);
                    if i % 64 == 63 {
                        // Answers from the deny cache never wait: let the
                        // other tasks run, as a server's would.
                        tokio::task::yield_now().await;
                    }
                }
                stats
            })
        })
        .collect();
    let mut all = Stats::default();
    for task in tasks {
        all.merge(task.await?);
    }
    Ok(all)
}

fn report(args: &Args, mut all: Stats) {
    if let Some(error) = &all.first_error {
        eprintln!(
            "rest_bench: {} failed decisions, first: {error}",
            all.errors
        );
    }
    all.latencies_us.sort_unstable();
    let decisions = all.latencies_us.len();
    let pct = |p: f64| -> f64 {
        if decisions == 0 {
            return 0.0;
        }
        let rank = ((p / 100.0) * decisions as f64).ceil() as usize;
        f64::from(all.latencies_us[rank.clamp(1, decisions) - 1]) / 1000.0
    };
    let secs = args.duration.as_secs_f64();
    println!(
        "{{\"decisions\":{decisions},\"allowed\":{},\"errors\":{},\"secs\":{secs:.3},\
         \"rps\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
        all.allowed,
        all.errors,
        decisions as f64 / secs,
        pct(50.0),
        pct(99.0),
    );
}
