//! What every contention test shares: the environment a child reads, the
//! limits under test, one decision or lease step with Redis's time, the
//! gateway and Redis behind it.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use edgelimit::algorithm::{Algorithm, LeaseOp, LeaseOutcome};
use edgelimit::store::{
    key_prefix, Answer, Consume, Key, LeaseStep, RedisRestStore, Remote, RestOptions, TimeSource,
    Transition, SEMAPHORE,
};
use edgelimit::{
    Concurrency, Decision, Error, FixedWindow, Gcra, SlidingWindow, Store, StoreError, TokenBucket,
};
use testkit::gateway::{Gateway, TOKEN};
use testkit::redis::Redis;

/// Names the child's role; without it the child test does nothing.
pub(crate) const ROLE_ENV: &str = "EDGELIMIT_CONTENTION_ROLE";
pub(crate) const URL_ENV: &str = "EDGELIMIT_CONTENTION_URL";
pub(crate) const PREFIX_ENV: &str = "EDGELIMIT_CONTENTION_PREFIX";
/// Unix epoch milliseconds at which children start, and how long they run.
pub(crate) const START_ENV: &str = "EDGELIMIT_CONTENTION_START_MS";
pub(crate) const RUN_ENV: &str = "EDGELIMIT_CONTENTION_RUN_MS";
/// The path of the child test, run with `--exact`.
pub(crate) const CHILD_TEST: &str = "children::child_process";
/// Marks the lines children report on stdout.
pub(crate) const MARK: &str = "@@el ";

pub(crate) const PROCESSES: usize = 4;
pub(crate) const THREADS: usize = 8;
/// Upper bound of calls per child thread, whatever the time.
pub(crate) const MAX_CALLS_PER_THREAD: usize = 20_000;
/// The one key every process hammers.
pub(crate) const HOT_KEY: &str = "hot";

/// The tests below each start many processes and threads on a 2-core
/// machine: one at a time keeps timing assertions meaningful.
pub(crate) static HEAVY: Mutex<()> = Mutex::new(());

pub(crate) fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    HEAVY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

pub(crate) fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

pub(crate) fn store(url: &str, options: RestOptions) -> RedisRestStore {
    RedisRestStore::with_options(url, TOKEN, options).expect("an HTTP client")
}

/// Redis's clock for every decision, and a timeout far above any latency.
pub(crate) fn hammer_options() -> RestOptions {
    RestOptions {
        timeout: Duration::from_secs(10),
        time: TimeSource::Redis,
        ..RestOptions::default()
    }
}

/// The rate limits under test, by name: every process builds the same.
pub(crate) const RATE_ALGORITHMS: [&str; 4] = ["fixed", "sliding", "bucket", "gcra"];
pub(crate) const WINDOW_MS: u64 = 1_000;
pub(crate) const WINDOW_LIMIT: u64 = 50;
pub(crate) const BUCKET: (u64, u64, u64) = (20, 5, 200); // capacity, refill, interval ms
pub(crate) const GCRA: (u64, u64, u64) = (50, 1_000, 10); // rate, period ms, burst

pub(crate) fn fixed() -> FixedWindow {
    FixedWindow::new(WINDOW_LIMIT, Duration::from_millis(WINDOW_MS)).unwrap()
}

pub(crate) fn sliding() -> SlidingWindow {
    SlidingWindow::new(WINDOW_LIMIT, Duration::from_millis(WINDOW_MS)).unwrap()
}

pub(crate) fn bucket() -> TokenBucket {
    let (capacity, refill, interval) = BUCKET;
    TokenBucket::new(capacity, refill, Duration::from_millis(interval)).unwrap()
}

pub(crate) fn gcra() -> Gcra {
    let (rate, period, burst) = GCRA;
    Gcra::new(rate, Duration::from_millis(period))
        .and_then(|g| g.with_burst(burst))
        .unwrap()
}

/// A transition that also returns the time the script decided at (Redis's
/// clock): the same request and the same decoding as the wrapped one.
pub(crate) struct Timed<T>(T);

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

    fn held(&self, (output, _): &(T::Output, u64)) -> u64 {
        self.0.held(output)
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

pub(crate) fn key<'a>(prefix: &'a str) -> Key<'a> {
    Key {
        prefix,
        id: HOT_KEY,
    }
}

/// One rate decision of cost 1 and Redis's time for it.
pub(crate) fn decide<A: Algorithm>(
    store: &RedisRestStore,
    prefix: &str,
    algorithm: &A,
) -> Result<(Decision, u64), Error> {
    let consume = Consume { algorithm, cost: 1 };
    store.transact(key(prefix), 0, &Timed(consume))
}

/// One lease operation and Redis's time for it, on the key a
/// `ConcurrencyLimiter` with `prefix` uses.
pub(crate) fn lease_op(
    store: &RedisRestStore,
    prefix: &str,
    config: &Concurrency,
    op: LeaseOp,
) -> Result<(LeaseOutcome, u64), Error> {
    let semaphore = key_prefix(prefix, SEMAPHORE);
    store.transact(key(&semaphore), 0, &Timed(LeaseStep { config, op }))
}

/// A small xorshift generator: hold times and ids need no more.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn seeded(salt: u64) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
        Self((u64::from(std::process::id()) << 32 ^ salt << 16 ^ nanos) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub(crate) struct Backend {
    pub(crate) gateway: Gateway,
    // Dropped after the gateway.
    _redis: Redis,
}

impl Backend {
    pub(crate) fn start() -> Self {
        let redis = Redis::start();
        let gateway = Gateway::start(redis.port);
        Self {
            gateway,
            _redis: redis,
        }
    }
}
