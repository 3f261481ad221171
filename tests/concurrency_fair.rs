//! Fair waiting across processes on Redis (through the real gateway): the
//! waiters of two limiters, each with its own store and queue as two
//! processes would have, acquire in arrival order; a limiter that waits no
//! more leaves the queue, and one that died stops holding its place within
//! a ticket's life.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use edgelimit::store::{RedisRestStore, RestOptions, TimeSource};
use edgelimit::{Acquire, Concurrency, ConcurrencyLimiter, SystemClock};
use testkit::gateway::{Gateway, TOKEN};
use testkit::redis::Redis;
use testkit::resp::{Conn, Reply};

type RedisJobs = ConcurrencyLimiter<RedisRestStore>;

struct Backend {
    redis: Redis,
    gateway: Gateway,
}

impl Backend {
    fn start() -> Self {
        let redis = Redis::start();
        let gateway = Gateway::start(redis.port);
        Self { redis, gateway }
    }

    /// A limiter as one process would have it: its own store, its own queue.
    fn process(&self, prefix: &str) -> RedisJobs {
        let options = RestOptions {
            time: TimeSource::Redis,
            timeout: Duration::from_secs(10),
            ..RestOptions::default()
        };
        let store = RedisRestStore::with_options(self.gateway.url(), TOKEN, options).unwrap();
        ConcurrencyLimiter::with_parts(
            Concurrency::new(1, "30 s").unwrap(),
            store,
            SystemClock,
            prefix,
        )
    }
}

/// A field of the semaphore's hash in Redis.
fn field(conn: &mut Conn, key: &str, field: &str) -> Option<String> {
    conn.call(&["HGET", key, field]).unwrap().text()
}

/// Waits until `key`'s queue has handed out `n` numbers: the `n`th waiter
/// has been denied once, and so has its place.
fn until_numbered(conn: &mut Conn, key: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while field(conn, key, "n").and_then(|v| v.parse::<u64>().ok()) != Some(n) {
        assert!(Instant::now() < deadline, "waiter {n} never queued");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn waiters_of_two_processes_acquire_in_arrival_order() {
    let backend = Backend::start();
    let mut conn = backend.redis.conn();
    let processes = [backend.process("fair:"), backend.process("fair:")];
    let held = processes[0].acquire("t").unwrap().permit().expect("free");
    // Arrivals alternate between the processes: a0, b1, a2, b3.
    let (tx, rx) = mpsc::channel();
    let mut threads = Vec::new();
    for n in 0..4u64 {
        let (jobs, tx) = (processes[n as usize % 2].clone(), tx.clone());
        threads.push(thread::spawn(move || {
            let permit = jobs
                .acquire_wait("t", Duration::from_secs(20))
                .unwrap()
                .permit()
                .expect("granted before the deadline");
            tx.send(n).unwrap();
            // Held a while: the other process's next waiter polls meanwhile,
            // and this one's is woken at the release, both wanting the slot.
            thread::sleep(Duration::from_millis(150));
            permit.release().unwrap();
        }));
        until_numbered(&mut conn, "fair:sem:{t}", n + 1);
    }
    held.release().unwrap();
    for thread in threads {
        thread.join().unwrap();
    }
    let order: Vec<u64> = rx.try_iter().collect();
    assert_eq!(order, [0, 1, 2, 3], "served in arrival order");
    assert_eq!(processes[1].peek("t").unwrap().remaining, 1);
    assert_eq!(
        field(&mut conn, "fair:sem:{t}", "n"),
        None,
        "nothing left behind"
    );
}

#[test]
fn a_plain_acquire_queues_behind_waiters_unless_unfair() {
    let backend = Backend::start();
    let mut conn = backend.redis.conn();
    let [here, there] = [backend.process("plain:"), backend.process("plain:")];
    let held = here.acquire("t").unwrap().permit().expect("free");
    let waiter = {
        let there = there.clone();
        thread::spawn(move || {
            there
                .acquire_wait("t", Duration::from_secs(20))
                .unwrap()
                .permit()
        })
    };
    until_numbered(&mut conn, "plain:sem:{t}", 1);
    // Released at once by `here`, whose own try comes before the other
    // process's next poll: the slot is the waiter's all the same.
    held.release().unwrap();
    assert!(
        matches!(here.acquire("t").unwrap(), Acquire::Denied(_)),
        "fair by default"
    );
    here.set_fair(false);
    let barged = here.acquire("t").unwrap();
    assert!(
        matches!(barged, Acquire::Granted(_)),
        "unfair takes the free slot"
    );
    drop(barged);
    assert!(waiter.join().unwrap().is_some());
}

#[test]
fn a_waiter_out_of_time_takes_its_place_out_of_the_queue() {
    let backend = Backend::start();
    let mut conn = backend.redis.conn();
    let [here, there] = [backend.process("leave:"), backend.process("leave:")];
    let held = here.acquire("t").unwrap().permit().expect("free");
    let denied = there.acquire_wait("t", Duration::from_millis(300)).unwrap();
    assert!(matches!(denied, Acquire::Denied(_)));
    // Its owner's ticket (a field `t<owner>`) is gone: the leave is sent
    // as the waiter gives up (a lapsed ticket would stay in the hash until
    // the next call on the key).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let Reply::Array(Some(fields)) = conn.call(&["HKEYS", "leave:sem:{t}"]).unwrap() else {
            panic!("the state is there");
        };
        let names: Vec<String> = fields.iter().filter_map(Reply::text).collect();
        if !names.iter().any(|name| name.starts_with('t')) {
            break;
        }
        assert!(Instant::now() < deadline, "the ticket stayed: {names:?}");
        thread::sleep(Duration::from_millis(10));
    }
    held.release().unwrap();
    assert!(matches!(here.acquire("t").unwrap(), Acquire::Granted(_)));
}

#[test]
fn a_release_wakes_a_waiter_at_once_on_redis() {
    // The example: max 1, 30 s leases; released after 100 ms, a
    // second acquire waiting up to 3 s gets the slot at the release, not
    // when the lease would expire.
    let backend = Backend::start();
    let jobs = backend.process("example:");
    let held = jobs.acquire("t").unwrap().permit().expect("free");
    let releaser = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        let released_at = Instant::now();
        held.release().unwrap();
        released_at
    });
    let started = Instant::now();
    let granted = jobs.acquire_wait("t", Duration::from_secs(3)).unwrap();
    let (waited, got_at) = (started.elapsed(), Instant::now());
    let released_at = releaser.join().unwrap();
    assert!(matches!(granted, Acquire::Granted(_)), "{granted:?}");
    assert!(
        waited >= Duration::from_millis(90),
        "granted before the release: {waited:?}"
    );
    let after = got_at.saturating_duration_since(released_at);
    eprintln!("granted {after:?} after the release");
    // Woken by the release, not by a poll (every 50-100 ms): a generous
    // margin on a busy machine, far below the 30 s lease.
    assert!(
        after < Duration::from_secs(1),
        "granted {after:?} after the release"
    );
}
