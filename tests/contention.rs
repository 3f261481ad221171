//! Contention through the real gateway and a real `redis-server`: several OS
//! processes (this test binary run again as children) and many threads
//! hammering one key.
//!
//! - Rate limits: every decision's Redis time comes back with it, so the
//!   parent replays the observed decisions through the in-memory store at
//!   those times and requires the same answers, besides checking each
//!   algorithm's invariant (a fixed window admits exactly its limit once
//!   demand exceeds it, never more).
//! - Leases: at no instant more than `max` held, by a sweep over intervals
//!   during which each lease is known to be held.
//! - A Redis crash and restart with persistence on loses no lease and counts
//!   none twice; calls during the outage fail with a typed error, promptly.
//! - A holder killed with SIGKILL keeps its slot until its lease expires,
//!   not a millisecond less.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use edgelimit::algorithm::{Algorithm, LeaseOp, LeaseOutcome};
use edgelimit::store::{
    Answer, Consume, Key, LeaseStep, RedisRestStore, Remote, RestOptions, TimeSource, Transition,
};
use edgelimit::{
    Acquire, Concurrency, ConcurrencyLimiter, Decision, Error, FixedWindow, Gcra, Limiter,
    ManualClock, MemoryStore, SlidingWindow, Store, StoreError, SystemClock, TokenBucket,
};
use testkit::gateway::{Gateway, TOKEN};
use testkit::redis::Redis;

// ---------------------------------------------------------------------------
// Shared set-up.

/// Names the child's role; without it the child test does nothing.
const ROLE_ENV: &str = "EDGELIMIT_CONTENTION_ROLE";
const URL_ENV: &str = "EDGELIMIT_CONTENTION_URL";
const PREFIX_ENV: &str = "EDGELIMIT_CONTENTION_PREFIX";
/// Unix epoch milliseconds at which children start, and how long they run.
const START_ENV: &str = "EDGELIMIT_CONTENTION_START_MS";
const RUN_ENV: &str = "EDGELIMIT_CONTENTION_RUN_MS";
/// The name of the child test, run with `--exact`.
const CHILD_TEST: &str = "child_process";
/// Marks the lines children report on stdout.
const MARK: &str = "@@el ";

const PROCESSES: usize = 4;
const THREADS: usize = 8;
/// Upper bound of calls per child thread, whatever the time.
const MAX_CALLS_PER_THREAD: usize = 20_000;
/// The one key every process hammers.
const HOT_KEY: &str = "hot";

/// The tests below each start many processes and threads on a 2-core
/// machine: one at a time keeps timing assertions meaningful.
static HEAVY: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    HEAVY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

fn store(url: &str, options: RestOptions) -> RedisRestStore {
    RedisRestStore::with_options(url, TOKEN, options).expect("an HTTP client")
}

/// Redis's clock for every decision, and a timeout far above any latency.
fn hammer_options() -> RestOptions {
    RestOptions {
        timeout: Duration::from_secs(10),
        time: TimeSource::Redis,
        ..RestOptions::default()
    }
}

/// The rate limits under test, by name: every process builds the same.
const RATE_ALGORITHMS: [&str; 4] = ["fixed", "sliding", "bucket", "gcra"];
const WINDOW_MS: u64 = 1_000;
const WINDOW_LIMIT: u64 = 50;
const BUCKET: (u64, u64, u64) = (20, 5, 200); // capacity, refill, interval ms
const GCRA: (u64, u64, u64) = (50, 1_000, 10); // rate, period ms, burst

fn fixed() -> FixedWindow {
    FixedWindow::new(WINDOW_LIMIT, Duration::from_millis(WINDOW_MS)).unwrap()
}

fn sliding() -> SlidingWindow {
    SlidingWindow::new(WINDOW_LIMIT, Duration::from_millis(WINDOW_MS)).unwrap()
}

fn bucket() -> TokenBucket {
    let (capacity, refill, interval) = BUCKET;
    TokenBucket::new(capacity, refill, Duration::from_millis(interval)).unwrap()
}

fn gcra() -> Gcra {
    let (rate, period, burst) = GCRA;
    Gcra::new(rate, Duration::from_millis(period))
        .and_then(|g| g.with_burst(burst))
        .unwrap()
}

/// A transition that also returns the time the script decided at (Redis's
/// clock): the same request and the same decoding as the wrapped one.
struct Timed<T>(T);

impl<T: Transition> Transition for Timed<T> {
    type State = T::State;
    type Output = (T::Output, u64);

    fn apply(
        &self,
        state: &mut Option<T::State>,
        now_ms: u64,
    ) -> Result<((T::Output, u64), u64), Error> {
        let (output, ttl) = self.0.apply(state, now_ms)?;
        Ok(((output, now_ms), ttl))
    }

    fn remote(&self) -> Result<Remote, Error> {
        self.0.remote()
    }

    fn decode(&self, reply: &[i64]) -> Result<Answer<(T::Output, u64), T::State>, StoreError> {
        let answer = self.0.decode(reply)?;
        Ok(Answer {
            output: (answer.output, answer.now_ms),
            now_ms: answer.now_ms,
            denied_state: answer.denied_state,
        })
    }
}

fn key<'a>(prefix: &'a str) -> Key<'a> {
    Key {
        prefix,
        id: HOT_KEY,
    }
}

/// One rate decision of cost 1 and Redis's time for it.
fn decide<A: Algorithm>(
    store: &RedisRestStore,
    prefix: &str,
    algorithm: &A,
) -> Result<(Decision, u64), Error> {
    let consume = Consume { algorithm, cost: 1 };
    store.transact(key(prefix), 0, &Timed(consume))
}

/// One lease operation and Redis's time for it.
fn lease_op(
    store: &RedisRestStore,
    prefix: &str,
    config: &Concurrency,
    op: LeaseOp,
) -> Result<(LeaseOutcome, u64), Error> {
    store.transact(key(prefix), 0, &Timed(LeaseStep { config, op }))
}

/// A small xorshift generator: hold times and ids need no more.
struct Rng(u64);

impl Rng {
    fn seeded(salt: u64) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
        Self((u64::from(std::process::id()) << 32 ^ salt << 16 ^ nanos) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ---------------------------------------------------------------------------
// Child processes.

/// Children are started by killing-on-drop guards; each reports on stdout.
struct Children {
    children: Vec<Child>,
    readers: Vec<std::thread::JoinHandle<String>>,
}

impl Children {
    fn new() -> Self {
        Self {
            children: Vec::new(),
            readers: Vec::new(),
        }
    }

    /// Runs this test binary's child test in `role`; its stdout is read in
    /// the background so a full pipe never blocks it.
    fn spawn(&mut self, role: &str, vars: &[(&str, String)]) {
        let mut child = self.command(role, vars).spawn().expect("spawn a child");
        let mut stdout = child.stdout.take().expect("piped stdout");
        self.children.push(child);
        self.readers.push(std::thread::spawn(move || {
            let mut out = String::new();
            let _ = stdout.read_to_string(&mut out);
            out
        }));
    }

    fn command(&self, role: &str, vars: &[(&str, String)]) -> Command {
        let exe = std::env::current_exe().expect("this test's path");
        let mut command = Command::new(exe);
        command
            .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads", "1"])
            .env(ROLE_ENV, role)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in vars {
            command.env(name, value);
        }
        command
    }

    /// Waits for every child to exit successfully within `limit`, and
    /// returns the marked lines each printed.
    fn finish(mut self, limit: Duration) -> Vec<Vec<String>> {
        let deadline = Instant::now() + limit;
        for (i, child) in self.children.iter_mut().enumerate() {
            loop {
                if let Some(status) = child.try_wait().expect("wait for a child") {
                    assert!(status.success(), "child {i} failed: {status}");
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "child {i} still running after {limit:?}"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        std::mem::take(&mut self.readers)
            .into_iter()
            .map(|reader| {
                let out = reader.join().expect("a stdout reader");
                marked_lines(&out)
            })
            .collect()
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The reported lines (without the mark) of a child's stdout, which also
/// holds the test harness's own lines.
fn marked_lines(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|line| line.find(MARK).map(|at| line[at + MARK.len()..].to_owned()))
        .collect()
}

fn fields(line: &str) -> Vec<u64> {
    line.split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or_else(|_| panic!("bad report {line:?}")))
        .collect()
}

/// Prints lines at once, each with the mark.
fn report(lines: &[String]) {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for line in lines {
        writeln!(out, "{MARK}{line}").expect("write to stdout");
    }
    out.flush().expect("flush stdout");
}

/// The test run again as a child process: does nothing unless the parent
/// set its role.
#[test]
fn child_process() {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    match role.as_str() {
        "rate" => child_rate(),
        "quota" => child_quota(),
        "leases" => child_leases(),
        "holder" => child_holder(),
        other => panic!("unknown role {other}"),
    }
}

/// Runs `work(thread, deadline)` on `THREADS` threads from the parent's start
/// time until its end, and reports every thread's lines.
fn run_threads(work: impl Fn(usize, u64) -> Vec<String> + Sync) {
    let start: u64 = env(START_ENV).parse().expect("a start time");
    let run: u64 = env(RUN_ENV).parse().expect("a run time");
    let now = unix_ms();
    if start > now {
        std::thread::sleep(Duration::from_millis(start - now));
    }
    let deadline = start + run;
    let lines: Vec<Vec<String>> = std::thread::scope(|s| {
        let work = &work;
        let handles: Vec<_> = (0..THREADS)
            .map(|t| s.spawn(move || work(t, deadline)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    report(&lines.concat());
}

/// Hammers the four rate-limited keys in turn; one line per decision:
/// `rate <algorithm index> <allowed> <now> <remaining> <reset> <retry>`.
fn child_rate() {
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

/// Units of each quota lease.
const QUOTA_UNITS: u64 = 5;

/// Hammers a fixed and a sliding window on one limiter each per process,
/// both taking quota leases; one line per decision:
/// `quota <0 fixed, 1 sliding> <allowed> <unix ms before> <unix ms after>
/// <reset>`.
fn child_quota() {
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

const LEASE_MAX: u64 = 5;
const LEASE_MS: u64 = 2_000;

/// Acquires, holds briefly, extends (which returns the time it was still
/// held at), releases; one line per granted lease:
/// `lease <acquired at> <confirmed held at> <occupancy> <extended> <released>`,
/// and `denied <count>` per thread.
fn child_leases() {
    let url = env(URL_ENV);
    let prefix = env(PREFIX_ENV);
    let limiter = ConcurrencyLimiter::with_parts(
        Concurrency::new(LEASE_MAX, Duration::from_millis(LEASE_MS)).unwrap(),
        store(&url, hammer_options()),
        SystemClock,
        prefix,
    );
    let lease = Duration::from_millis(LEASE_MS);
    run_threads(|thread, deadline| {
        let mut rng = Rng::seeded(thread as u64);
        let (mut lines, mut denied) = (Vec::new(), 0u64);
        for _ in 0..MAX_CALLS_PER_THREAD {
            if unix_ms() >= deadline {
                break;
            }
            match limiter.acquire_for(HOT_KEY, lease) {
                Ok(Acquire::Granted(mut permit)) => {
                    // A fresh id: the expiry is the acquire's time + lease.
                    let acquired_at = permit.expires_at_ms() - LEASE_MS;
                    let occupancy = LEASE_MAX - permit.decision().remaining;
                    std::thread::sleep(Duration::from_millis(2 + rng.below(10)));
                    let extended = permit.extend(lease);
                    let held_at = permit.expires_at_ms() - LEASE_MS;
                    let released = permit.release();
                    lines.push(match (extended, released) {
                        (Ok(extended), Ok(released)) => format!(
                            "lease {acquired_at} {held_at} {occupancy} {} {}",
                            u8::from(extended),
                            u8::from(released)
                        ),
                        (Err(e), _) | (_, Err(e)) => format!("error {e}"),
                    });
                }
                Ok(Acquire::Denied(_)) => {
                    denied += 1;
                    std::thread::sleep(Duration::from_millis(1 + rng.below(3)));
                }
                Err(e) => lines.push(format!("error {e}")),
            }
        }
        lines.push(format!("denied {denied}"));
        lines
    });
}

const HOLDER_MAX: u64 = 2;
const HOLDER_LEASES_MS: [u64; 2] = [1_000, 1_500];

/// Takes both slots (leases of 1 and 1.5 s), reports
/// `held <expiry 1> <expiry 2>`, and waits to be killed.
fn child_holder() {
    let limiter = ConcurrencyLimiter::with_parts(
        Concurrency::new(HOLDER_MAX, Duration::from_millis(HOLDER_LEASES_MS[0])).unwrap(),
        store(&env(URL_ENV), hammer_options()),
        SystemClock,
        env(PREFIX_ENV),
    );
    let first = limiter.acquire(HOT_KEY).unwrap().permit().expect("free");
    let second = limiter
        .acquire_for(HOT_KEY, Duration::from_millis(HOLDER_LEASES_MS[1]))
        .unwrap()
        .permit()
        .expect("free");
    report(&[format!(
        "held {} {}",
        first.expires_at_ms(),
        second.expires_at_ms()
    )]);
    // Killed long before this; the permits are never dropped.
    std::thread::sleep(Duration::from_secs(30));
    panic!("the holder was not killed");
}

// ---------------------------------------------------------------------------
// Checks.

struct Backend {
    gateway: Gateway,
    // Dropped after the gateway.
    _redis: Redis,
}

impl Backend {
    fn start() -> Self {
        let redis = Redis::start();
        let gateway = Gateway::start(redis.port);
        Self {
            gateway,
            _redis: redis,
        }
    }
}

/// Spawns `PROCESSES` children in `role` against `url`, starting together
/// shortly and running for `run_ms`; returns their reported lines.
fn run_children(role: &str, url: &str, prefix: &str, run_ms: u64) -> Vec<String> {
    let start = unix_ms() + 700;
    let vars = [
        (URL_ENV, url.to_owned()),
        (PREFIX_ENV, prefix.to_owned()),
        (START_ENV, start.to_string()),
        (RUN_ENV, run_ms.to_string()),
    ];
    let mut children = Children::new();
    for _ in 0..PROCESSES {
        children.spawn(role, &vars);
    }
    let limit = Duration::from_millis(run_ms) + Duration::from_secs(25);
    children.finish(limit).concat()
}

/// One observed rate decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Observed {
    now: u64,
    allowed: bool,
    remaining: u64,
    reset_ms: u64,
    retry_after_ms: u64,
}

/// Decisions sharing one millisecond of Redis time, with their time.
fn by_millisecond(observed: &[Observed]) -> BTreeMap<u64, Vec<Observed>> {
    let mut groups: BTreeMap<u64, Vec<Observed>> = BTreeMap::new();
    for o in observed {
        groups.entry(o.now).or_default().push(*o);
    }
    groups
}

/// Replays the decisions through the in-memory store at the times Redis
/// made them. Scripts run one at a time and Redis's clock does not go back,
/// so sorted by time they are in the order they ran, except within one
/// millisecond, where every call (cost 1, same time) is alike: each
/// millisecond's decisions must be, as a multiset, what the in-memory store
/// answers to as many calls at that time.
fn replay_in_memory<A: Algorithm + Clone>(name: &str, algorithm: &A, observed: &[Observed]) {
    let clock = ManualClock::new(0);
    let memory = Limiter::new(algorithm.clone())
        .with_store(MemoryStore::new())
        .with_clock(clock.clone());
    for (now, group) in by_millisecond(observed) {
        clock.set(now);
        let mut expected: Vec<Observed> = (0..group.len())
            .map(|_| {
                let d = memory.limit(HOT_KEY).unwrap();
                Observed {
                    now,
                    allowed: d.allowed,
                    remaining: d.remaining,
                    reset_ms: d.reset_ms,
                    retry_after_ms: d.retry_after_ms,
                }
            })
            .collect();
        let mut got = group;
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "{name}: the decisions at {now} ms");
    }
}

/// Admitted counts up to and including each millisecond, in time order.
fn admitted_by_time(observed: &[Observed]) -> Vec<(u64, u64)> {
    let mut total = 0;
    by_millisecond(observed)
        .into_iter()
        .map(|(now, group)| {
            total += group.iter().filter(|o| o.allowed).count() as u64;
            (now, total)
        })
        .collect()
}

fn check_fixed_window(observed: &[Observed]) {
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
fn check_sliding_window(observed: &[Observed]) {
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
fn check_token_bucket(observed: &[Observed]) {
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
fn check_gcra(observed: &[Observed]) {
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

/// The most of the half-open intervals `[from, to)` covering one instant.
fn max_overlap(intervals: &[(u64, u64)]) -> usize {
    let mut events: Vec<(u64, i64)> = intervals
        .iter()
        .filter(|(from, to)| from < to)
        .flat_map(|&(from, to)| [(from, 1), (to, -1)])
        .collect();
    // At one time, ends before starts: the intervals are half-open.
    events.sort();
    let (mut held, mut most) = (0i64, 0i64);
    for (_, step) in events {
        held += step;
        most = most.max(held);
    }
    most as usize
}

/// A lease is known to be held from the time of its acquire (`at`, the
/// script's clock, which never goes back) until a later extend confirmed it
/// live (`held_at`); its release comes after. Any instant strictly inside
/// such intervals sees all of them held at once, so more than `max`
/// overlapping is a slot handed out twice. Equal times are not ordered, so
/// an interval ending at a millisecond does not meet one starting then.
#[test]
fn leases_never_exceed_max_across_processes() {
    let _heavy = one_at_a_time();
    let backend = Backend::start();
    let url = backend.gateway.url();
    let lines = run_children("leases", &url, "leases:", 2_500);
    let mut intervals = Vec::new();
    let mut denied = 0;
    for line in &lines {
        assert!(!line.starts_with("error"), "a call failed: {line}");
        let f = fields(line);
        match f[..] {
            [count] if line.starts_with("denied") => denied += count,
            [acquired_at, held_at, occupancy, extended, released] => {
                assert_eq!(extended, 1, "a held lease was lost: {line}");
                assert_eq!(released, 1, "a held lease was lost: {line}");
                assert!(held_at >= acquired_at, "{line}");
                assert!(
                    (1..=LEASE_MAX).contains(&occupancy),
                    "occupancy after an acquire: {line}"
                );
                intervals.push((acquired_at, held_at, occupancy));
            }
            _ => panic!("bad report {line:?}"),
        }
    }
    eprintln!("{} leases granted, {denied} denied", intervals.len());
    assert!(
        intervals.len() >= 100 && denied > 0,
        "too little contention: {} granted, {denied} denied",
        intervals.len()
    );
    let spans: Vec<(u64, u64)> = intervals.iter().map(|&(a, h, _)| (a, h)).collect();
    let most = max_overlap(&spans);
    assert!(most as u64 <= LEASE_MAX, "{most} leases held at once");
    assert_eq!(
        most as u64, LEASE_MAX,
        "32 threads competing for {LEASE_MAX} slots never held them all"
    );
    // The occupancy an acquire reports counts at least itself and every
    // lease acquired in an earlier millisecond and confirmed in a later one.
    for &(at, _, occupancy) in &intervals {
        let surely_held = spans.iter().filter(|&&(a, h)| a < at && at < h).count() as u64;
        assert!(
            occupancy > surely_held,
            "an acquire at {at} reported {occupancy} held, but {surely_held} others were"
        );
    }
    // Every lease was released: all slots are free, none counted twice.
    let limiter = ConcurrencyLimiter::with_parts(
        Concurrency::new(LEASE_MAX, Duration::from_millis(LEASE_MS)).unwrap(),
        store(&url, hammer_options()),
        SystemClock,
        "leases:",
    );
    assert_eq!(limiter.peek(HOT_KEY).unwrap().remaining, LEASE_MAX);
}

/// What the restart test's threads saw.
#[derive(Default)]
struct Tally {
    /// Known-held intervals, as in the cross-process test.
    spans: Vec<(u64, u64)>,
    /// Failed calls, with how long each took.
    failures: Vec<(StoreError, Duration)>,
    granted: u64,
    denied: u64,
}

const RESTART_MAX: u64 = 5;

/// Short timeouts, so that calls during the outage end soon.
fn outage_options() -> RestOptions {
    RestOptions {
        timeout: Duration::from_millis(1_000),
        retries: 2,
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        time: TimeSource::Redis,
        ..RestOptions::default()
    }
}

/// The longest a failing call may take: every attempt timing out, plus the
/// longest backoffs.
fn outage_bound() -> Duration {
    let o = outage_options();
    o.timeout * (o.retries + 1) + o.backoff_max * o.retries + Duration::from_millis(500)
}

/// Runs `op` until it gets an answer, by sending the same operation (same
/// lease id: idempotent) again after each failure. Returns the answer and
/// whether some failed attempt may have taken effect.
fn until_answered(
    store: &RedisRestStore,
    config: &Concurrency,
    op: LeaseOp,
    tally: &mut Tally,
) -> ((LeaseOutcome, u64), bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut maybe_applied = false;
    loop {
        let started = Instant::now();
        match lease_op(store, "restart:", config, op) {
            Ok(answer) => return (answer, maybe_applied),
            Err(Error::Store(e)) => {
                maybe_applied |= !e.surely_not_applied();
                tally.failures.push((e, started.elapsed()));
            }
            Err(e) => panic!("{op:?}: {e}"),
        }
        assert!(Instant::now() < deadline, "{op:?}: no answer for 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Acquire, hold, extend, release, retrying each step with the same id
/// through failures, until `stop`.
fn lease_worker(url: &str, thread: u64, stop: &AtomicBool) -> Tally {
    let store = store(url, outage_options());
    let config = Concurrency::new(RESTART_MAX, "30 s").unwrap();
    let mut rng = Rng::seeded(thread);
    let mut tally = Tally::default();
    for n in 0..MAX_CALLS_PER_THREAD as u64 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let id = (thread + 1) << 32 | n;
        let acquire = LeaseOp::Acquire { id, ttl_ms: 0 };
        let ((outcome, _), _) = until_answered(&store, &config, acquire, &mut tally);
        let Some(expires_at) = outcome.expires_at_ms.filter(|_| outcome.allowed) else {
            tally.denied += 1;
            std::thread::sleep(Duration::from_millis(2 + rng.below(5)));
            continue;
        };
        tally.granted += 1;
        let acquired_at = expires_at - config.lease_ms();
        std::thread::sleep(Duration::from_millis(2 + rng.below(8)));
        let extend = LeaseOp::Extend { id, ttl_ms: 0 };
        let ((extended, _), _) = until_answered(&store, &config, extend, &mut tally);
        assert!(extended.allowed, "lease {id} was lost before its release");
        let held_at = extended.expires_at_ms.unwrap() - config.lease_ms();
        tally.spans.push((acquired_at, held_at));
        let ((released, _), maybe_applied) =
            until_answered(&store, &config, LeaseOp::Release { id }, &mut tally);
        assert!(
            released.allowed || maybe_applied,
            "lease {id} was gone at its release"
        );
    }
    tally
}

#[test]
fn leases_survive_a_redis_restart() {
    let _heavy = one_at_a_time();
    let mut redis = Redis::start_persistent();
    let gateway = Gateway::start(redis.port);
    let url = gateway.url();
    let config = Concurrency::new(RESTART_MAX, "30 s").unwrap();
    let store = store(&url, outage_options());
    let op = |op| lease_op(&store, "restart:", &config, op);

    // Three long leases held across the restart; two slots left to fight over.
    let held: [u64; 3] = [1, 2, 3];
    let mut spans = Vec::new();
    let mut held_since = Vec::new();
    for id in held {
        let (o, _) = op(LeaseOp::Acquire { id, ttl_ms: 0 }).unwrap();
        assert!(o.allowed, "slot for {id}");
        held_since.push(o.expires_at_ms.unwrap() - config.lease_ms());
    }

    let stop = AtomicBool::new(false);
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let (url, stop) = (&url, &stop);
                s.spawn(move || lease_worker(url, t, stop))
            })
            .collect();
        let guard = StopOnDrop(&stop);
        std::thread::sleep(Duration::from_millis(800));

        // A crash: SIGKILL, nothing but the append-only file survives.
        redis.stop();
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        let during = op(LeaseOp::Acquire { id: 99, ttl_ms: 0 });
        let took = started.elapsed();
        assert!(
            matches!(
                during,
                Err(Error::Store(
                    StoreError::Unavailable(_)
                        | StoreError::Unreachable(_)
                        | StoreError::Timeout { .. }
                ))
            ),
            "an acquire while Redis is down: {during:?}"
        );
        assert!(took <= outage_bound(), "a failing call took {took:?}");
        std::thread::sleep(Duration::from_millis(300));
        redis.restart();

        std::thread::sleep(Duration::from_millis(1_200));
        drop(guard);
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });

    let (mut granted, mut denied, mut failures) = (0, 0, Vec::new());
    for tally in tallies {
        granted += tally.granted;
        denied += tally.denied;
        failures.extend(tally.failures);
        spans.extend(tally.spans);
    }
    let mut kinds = BTreeMap::new();
    for (error, _) in &failures {
        let kind = format!("{error:?}");
        *kinds
            .entry(kind[..kind.find('(').unwrap_or(kind.len())].to_owned())
            .or_insert(0) += 1;
    }
    eprintln!("{granted} granted, {denied} denied, failed calls: {kinds:?}");
    assert!(!failures.is_empty(), "no call saw the outage");
    for (error, took) in &failures {
        assert!(error.is_transient(), "not a backend outage: {error:?}");
        assert!(*took <= outage_bound(), "a failing call took {took:?}");
    }
    assert!(granted >= 10 && denied > 0, "too little contention");

    // The acquire made during the outage never took effect.
    let (o, _) = op(LeaseOp::Release { id: 99 }).unwrap();
    assert!(
        !o.allowed,
        "the acquire sent while Redis was down was applied"
    );
    // The leases held across the restart are still there and still counted.
    for (&id, &since) in held.iter().zip(&held_since) {
        let (o, now) = op(LeaseOp::Extend { id, ttl_ms: 0 }).unwrap();
        assert!(o.allowed, "lease {id} did not survive the restart");
        spans.push((since, now.max(since)));
    }
    let (peeked, _) = op(LeaseOp::Peek).unwrap();
    assert_eq!(
        peeked.decision.remaining,
        RESTART_MAX - held.len() as u64,
        "the workers released every lease they took, exactly once"
    );
    let mut fill = Vec::new();
    for id in 100..110 {
        let (o, _) = op(LeaseOp::Acquire { id, ttl_ms: 0 }).unwrap();
        if !o.allowed {
            break;
        }
        fill.push(id);
    }
    assert_eq!(fill.len() as u64, RESTART_MAX - held.len() as u64);
    for id in held.into_iter().chain(fill) {
        let (o, _) = op(LeaseOp::Release { id }).unwrap();
        assert!(o.allowed, "release of {id}");
    }
    assert_eq!(op(LeaseOp::Peek).unwrap().0.decision.remaining, RESTART_MAX);
    let most = max_overlap(&spans);
    assert!(most as u64 <= RESTART_MAX, "{most} leases held at once");
}

/// Sets the flag when dropped, so worker threads end even on a panic.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn a_killed_holder_keeps_its_slots_until_its_leases_expire() {
    let _heavy = one_at_a_time();
    let backend = Backend::start();
    let url = backend.gateway.url();
    let mut children = Children::new();
    let vars = [
        (URL_ENV, url.clone()),
        (PREFIX_ENV, "holder:".to_owned()),
        (START_ENV, "0".to_owned()),
        (RUN_ENV, "0".to_owned()),
    ];
    let mut holder = children
        .command("holder", &vars)
        .spawn()
        .expect("spawn the holder");
    let stdout = holder.stdout.take().expect("piped stdout");
    children.children.push(holder);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(at) = line.find(MARK) {
                let _ = tx.send(line[at + MARK.len()..].to_owned());
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the holder's report");
    let holder = &mut children.children[0];
    holder.kill().expect("SIGKILL");
    let status = holder.wait().unwrap();
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "killed, not exited: {status}");
    }
    let [e1, e2] = fields(&line)[..] else {
        panic!("bad report {line:?}");
    };
    assert!(e1 < e2, "{line}");

    let config = Concurrency::new(HOLDER_MAX, Duration::from_millis(HOLDER_LEASES_MS[0])).unwrap();
    let store = store(&url, hammer_options());
    let mut ids = 1_000..;
    let mut granted_at = Vec::new();
    let mut denials = [0; 2];
    let deadline = Instant::now() + Duration::from_secs(10);
    while granted_at.len() < 2 {
        assert!(Instant::now() < deadline, "the slots were never freed");
        let id = ids.next().unwrap();
        let acquire = LeaseOp::Acquire { id, ttl_ms: 10_000 };
        let (o, now) = lease_op(&store, "holder:", &config, acquire).unwrap();
        // The next of the dead holder's leases to expire.
        let expiry = [e1, e2][granted_at.len()];
        if now < expiry {
            assert!(
                !o.allowed,
                "a slot was handed out at {now}, before {expiry}"
            );
            assert_eq!(o.decision.retry_after_ms, expiry - now, "at {now}");
            denials[granted_at.len()] += 1;
        } else {
            assert!(
                o.allowed,
                "the lease ending at {expiry} still held at {now}"
            );
            granted_at.push(now);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        denials.iter().all(|&n| n > 0),
        "each slot was tried before its expiry: {denials:?}"
    );
    eprintln!("slots freed at {granted_at:?} for expiries {e1}, {e2}");
}
