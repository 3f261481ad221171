//! Waiting for a slot: a release through the limiter wakes the longest
//! waiting caller at once, in arrival order; a waiter that gives up leaves
//! the queue and passes on a wake it did not use.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use edgelimit::store::{Key, Store, Transition};
use edgelimit::{Acquire, Concurrency, ConcurrencyLimiter, Error, MemoryStore, SystemClock};

fn jobs(max: u64) -> ConcurrencyLimiter {
    ConcurrencyLimiter::new(Concurrency::new(max, "1 m").unwrap())
}

/// A timer that never fires: only a release can end the wait.
fn never(_: Duration) -> std::future::Pending<()> {
    std::future::pending()
}

/// A task waiting up to 30 s for a slot of "t", woken only by a release.
fn waiting_task(limiter: &ConcurrencyLimiter) -> tokio::task::JoinHandle<Result<Acquire, Error>> {
    let limiter = limiter.clone();
    tokio::spawn(async move {
        limiter
            .acquire_async("t", Duration::from_secs(30), never)
            .await
    })
}

/// Asserts that `task` is granted a slot within 5 s, saying `why` if not.
async fn assert_granted_soon(task: tokio::task::JoinHandle<Result<Acquire, Error>>, why: &str) {
    let granted = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect(why)
        .unwrap()
        .unwrap();
    assert!(matches!(granted, Acquire::Granted(_)), "{why}");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn an_async_waiter_is_woken_by_a_release_not_by_its_timer() {
    runtime().block_on(async {
        let limiter = jobs(1);
        let held = limiter.acquire("t").unwrap().permit().unwrap();
        let waiter = waiting_task(&limiter);
        tokio::task::yield_now().await; // the waiter tries, is denied, waits
        held.release().unwrap();
        assert_granted_soon(waiter, "a release wakes the waiter").await;
    });
}

#[test]
fn waiters_get_released_slots_in_arrival_order() {
    runtime().block_on(async {
        let limiter = jobs(1);
        let first = limiter.acquire("t").unwrap().permit().unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let (give_back, mut given_back) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for name in ["a", "b", "c"] {
            let (limiter, order, give_back) = (limiter.clone(), order.clone(), give_back.clone());
            tasks.push(tokio::spawn(async move {
                let granted = limiter
                    .acquire_async("t", Duration::from_secs(30), never)
                    .await;
                let Ok(Acquire::Granted(permit)) = granted else {
                    panic!("{name}: not granted")
                };
                order.lock().unwrap().push(name);
                give_back.send(permit).unwrap();
            }));
            tokio::task::yield_now().await; // queued before the next one
        }
        first.release().unwrap();
        for _ in 0..3 {
            let permit = tokio::time::timeout(Duration::from_secs(5), given_back.recv())
                .await
                .expect("each release wakes the next waiter")
                .unwrap();
            permit.release().unwrap();
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["a", "b", "c"]);
    });
}

#[test]
fn a_waiter_that_leaves_passes_its_wake_on() {
    runtime().block_on(async {
        let limiter = jobs(1);
        let held = limiter.acquire("t").unwrap().permit().unwrap();
        // The first waiter is woken, then dropped before it runs again.
        let first = waiting_task(&limiter);
        tokio::task::yield_now().await;
        let second = waiting_task(&limiter);
        tokio::task::yield_now().await;
        held.release().unwrap();
        first.abort();
        assert_granted_soon(
            second,
            "the wake the first waiter did not use reaches the second",
        )
        .await;
        assert!(first.await.unwrap_err().is_cancelled());
    });
}

#[test]
fn a_reset_wakes_every_waiter() {
    runtime().block_on(async {
        let limiter = jobs(2);
        let _a = limiter.acquire("t").unwrap().permit().unwrap();
        let _b = limiter.acquire("t").unwrap().permit().unwrap();
        let waiters: Vec<_> = (0..2).map(|_| waiting_task(&limiter)).collect();
        tokio::task::yield_now().await;
        limiter.reset("t").unwrap();
        for waiter in waiters {
            assert_granted_soon(waiter, "a reset frees every slot").await;
        }
    });
}

#[test]
fn a_blocked_thread_is_woken_by_a_release_sooner_than_its_poll() {
    // The release comes just after the waiter's first poll: polling alone
    // would see it about 45 ms later, a wake at once.
    let mut after_release = Vec::new();
    for _ in 0..3 {
        let limiter = jobs(1);
        let held = limiter.acquire("t").unwrap().permit().unwrap();
        let (released_at, release_time) = mpsc::channel();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(55));
            let at = Instant::now();
            held.release().unwrap();
            released_at.send(at).unwrap();
        });
        let granted = limiter.acquire_wait("t", Duration::from_secs(5)).unwrap();
        let granted_at = Instant::now();
        assert!(matches!(granted, Acquire::Granted(_)));
        releaser.join().unwrap();
        after_release.push(granted_at - release_time.recv().unwrap());
    }
    let fastest = after_release.iter().min().unwrap();
    assert!(
        *fastest < Duration::from_millis(20),
        "granted {after_release:?} after the releases"
    );
}

#[test]
fn a_waiter_out_of_time_is_denied_and_leaves_the_queue() {
    let limiter = jobs(1);
    let held = limiter.acquire("t").unwrap().permit().unwrap();
    let denied = limiter
        .acquire_wait("t", Duration::from_millis(80))
        .unwrap();
    assert!(matches!(denied, Acquire::Denied(d) if !d.allowed));
    // Nobody waits any more: the release frees the slot for the next caller.
    held.release().unwrap();
    assert!(limiter.acquire("t").unwrap().permit().is_some());
}

/// A memory store counting the transactions made on it.
struct Counting {
    inner: MemoryStore,
    calls: Arc<AtomicU64>,
}

impl Store for Counting {
    fn transact<T: Transition>(
        &self,
        key: Key<'_>,
        now_ms: u64,
        step: &T,
    ) -> Result<T::Output, Error> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.transact(key, now_ms, step)
    }

    fn remove(&self, key: Key<'_>) -> Result<(), Error> {
        self.inner.remove(key)
    }
}

#[test]
fn ten_thousand_waiters_cost_a_few_store_calls_each_not_a_poll_each() {
    const WAITERS: u64 = 10_000;
    runtime().block_on(async {
        let calls = Arc::new(AtomicU64::new(0));
        let store = Counting {
            inner: MemoryStore::new(),
            calls: calls.clone(),
        };
        let config = Concurrency::new(4, "1 m").unwrap();
        let limiter = ConcurrencyLimiter::with_parts(config, store, SystemClock, "jobs:");
        let held: Vec<_> = (0..4)
            .map(|_| limiter.acquire("t").unwrap().permit().unwrap())
            .collect();
        let started = Instant::now();
        let tasks: Vec<_> = (0..WAITERS)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move {
                    let granted = limiter
                        .acquire_async("t", Duration::from_secs(60), tokio::time::sleep)
                        .await
                        .unwrap();
                    let Acquire::Granted(permit) = granted else {
                        panic!("not granted")
                    };
                    permit.release_async().await.unwrap();
                })
            })
            .collect();
        tokio::task::yield_now().await; // every waiter queued
        let queued = calls.load(Ordering::Relaxed);
        // A while with every slot held: only the first waiter polls.
        tokio::time::sleep(Duration::from_millis(300)).await;
        for permit in held {
            permit.release_async().await.unwrap();
        }
        for task in tasks {
            task.await.unwrap();
        }
        let per_waiter = (calls.load(Ordering::Relaxed) - queued) as f64 / WAITERS as f64;
        // Woken, tried and granted, released, and the next head woken: a
        // handful of calls each, however long the queue was or waited (a
        // poll each every 50 ms would be 6 more each here).
        assert!(
            per_waiter < 5.0,
            "{per_waiter:.2} store calls per waiter after queueing"
        );
        assert!(started.elapsed() < Duration::from_secs(60));
        assert_eq!(limiter.peek("t").unwrap().remaining, 4);
    });
}

/// A store that grants the first acquire but never answers it, as a
/// request whose reply is lost; every other call is answered.
struct LostReply {
    inner: MemoryStore,
    lose: std::sync::atomic::AtomicBool,
}

impl edgelimit::store::AsyncStore for LostReply {
    fn transact_async<'a, T>(
        &'a self,
        key: Key<'a>,
        now_ms: u64,
        transition: &'a T,
    ) -> impl std::future::Future<Output = Result<T::Output, Error>> + Send + 'a
    where
        T: Transition + Sync,
        T::Output: Send,
    {
        let answer = self.inner.transact(key, now_ms, transition);
        let lost = self.lose.swap(false, Ordering::Relaxed);
        async move {
            if lost {
                std::future::pending::<()>().await;
            }
            answer
        }
    }

    fn remove_async<'a>(
        &'a self,
        key: Key<'a>,
    ) -> impl std::future::Future<Output = Result<(), Error>> + Send + 'a {
        std::future::ready(self.inner.remove(key))
    }
}

#[test]
fn an_acquire_given_up_before_its_answer_releases_its_lease() {
    runtime().block_on(async {
        let store = LostReply {
            inner: MemoryStore::new(),
            lose: true.into(),
        };
        let config = Concurrency::new(1, "1 m").unwrap();
        let limiter = ConcurrencyLimiter::with_parts(config, store, SystemClock, "jobs:");
        let gave_up = tokio::time::timeout(
            Duration::from_millis(50),
            limiter.acquire_for_async("t", Duration::ZERO),
        )
        .await;
        assert!(gave_up.is_err(), "the reply never came");
        // The store granted it; dropping the call released it again.
        assert_eq!(limiter.peek_async("t").await.unwrap().remaining, 1);
        assert!(matches!(
            limiter
                .acquire_for_async("t", Duration::ZERO)
                .await
                .unwrap(),
            Acquire::Granted(_)
        ));
    });
}
