//! Waiting through faults, on Redis through the real gateway: a holder that
//! dies (its lease expires, and the next waiter elsewhere gets the slot at
//! that moment, within its poll interval); Redis killed and restarted with
//! persistence on while callers wait (no permit lost or doubled); and the
//! requests waiting costs Redis, counted across two processes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use edgelimit::algorithm::LeaseOp;
use edgelimit::store::{Key, LeaseStep, RedisRestStore, RestOptions, Store, TimeSource};
use edgelimit::{Acquire, Concurrency, ConcurrencyLimiter, Error, SystemClock};
use testkit::gateway::{Gateway, TOKEN};
use testkit::redis::Redis;
use testkit::resp::Conn;
use testkit::tap::Tap;

type RedisJobs = ConcurrencyLimiter<RedisRestStore>;

/// A limiter as one process would have it: its own store, its own queue.
fn process(url: &str, config: Concurrency, prefix: &str, options: RestOptions) -> RedisJobs {
    let store = RedisRestStore::with_options(url, TOKEN, options).unwrap();
    ConcurrencyLimiter::with_parts(config, store, SystemClock, prefix)
}

fn options() -> RestOptions {
    RestOptions {
        time: TimeSource::Redis,
        timeout: Duration::from_secs(10),
        ..RestOptions::default()
    }
}

/// Short timeouts, so that calls during an outage end soon.
fn outage_options() -> RestOptions {
    RestOptions {
        time: TimeSource::Redis,
        timeout: Duration::from_millis(1_000),
        retries: 2,
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..RestOptions::default()
    }
}

/// Waits until `key`'s queue has handed out at least `n` numbers.
fn until_numbered(conn: &mut Conn, key: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = conn.call(&["HGET", key, "n"]).unwrap().text();
        if got
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|got| got >= n)
        {
            return;
        }
        assert!(Instant::now() < deadline, "{n} waiters never queued");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_dead_holders_slot_goes_to_the_next_waiter_when_its_lease_ends() {
    let redis = Redis::start();
    let gateway = Gateway::start(redis.port);
    let url = gateway.url();
    let config = Concurrency::new(1, "30 s").unwrap();
    let holder = process(&url, config, "dead:", options());
    let waiter = process(&url, config, "dead:", options());
    // The holder takes a 1 s lease and dies: its permit is never released.
    let permit = holder
        .acquire_for("t", Duration::from_millis(1_000))
        .unwrap()
        .permit()
        .expect("free");
    let expiry = permit.expires_at_ms();
    std::mem::forget(permit);
    let granted = waiter
        .acquire_wait("t", Duration::from_secs(10))
        .unwrap()
        .permit()
        .expect("the slot once the dead holder's lease ended");
    // Granted on Redis's clock at `expires_at - lease`.
    let granted_at = granted.expires_at_ms() - config.lease_ms();
    assert!(
        granted_at >= expiry,
        "granted at {granted_at}, before {expiry}"
    );
    // The first waiter polls every 50-100 ms; a generous margin on a busy
    // machine, far below the 10 s the waiter would wait.
    let late = granted_at - expiry;
    assert!(late < 2_000, "granted {late} ms after the lease ended");
    eprintln!("granted {late} ms after the dead holder's lease ended");
    granted.release().unwrap();
}

#[test]
fn waiters_through_a_redis_restart_lose_and_double_no_permit() {
    let mut redis = Redis::start_persistent();
    let gateway = Gateway::start(redis.port);
    let url = gateway.url();
    const MAX: u64 = 2;
    let config = Concurrency::new(MAX, "30 s").unwrap();
    let processes = [
        process(&url, config, "restart:", outage_options()),
        process(&url, config, "restart:", outage_options()),
    ];
    let held: Vec<_> = (0..MAX)
        .map(|_| processes[0].acquire("t").unwrap().permit().expect("free"))
        .collect();
    // Holders at once, as the callers see them: never above MAX.
    let holding = Arc::new(AtomicU64::new(0));
    let most = Arc::new(AtomicU64::new(0));
    let waiters: Vec<_> = (0..6)
        .map(|n| {
            let jobs = processes[n % 2].clone();
            let (holding, most) = (Arc::clone(&holding), Arc::clone(&most));
            let url = url.clone();
            thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut failures = 0;
                // A first try made while Redis is down fails; then the wait
                // goes on through the outage.
                let permit = loop {
                    let within = deadline.saturating_duration_since(Instant::now());
                    match jobs.acquire_wait("t", within) {
                        Ok(Acquire::Granted(permit)) => break permit,
                        Ok(Acquire::Denied(d)) => panic!("no slot within 60 s: {d:?}"),
                        Err(Error::Store(e)) if e.is_transient() => failures += 1,
                        Err(e) => panic!("{e}"),
                    }
                };
                let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(20));
                holding.fetch_sub(1, Ordering::SeqCst);
                release(permit, &url, &config);
                failures
            })
        })
        .collect();
    let mut conn = redis.conn();
    until_numbered(&mut conn, "restart:sem:{t}", 6);
    drop(conn);

    // A crash while they wait: SIGKILL; the append-only file keeps every
    // write (fsync always). The outage lasts several polls.
    redis.stop();
    thread::sleep(Duration::from_millis(500));
    redis.restart();
    for permit in held {
        release(permit, &url, &config);
    }
    let failures: u64 = waiters.into_iter().map(|w| w.join().unwrap()).sum();
    eprintln!("{failures} waits ended by the outage and begun again");
    assert!(
        most.load(Ordering::SeqCst) <= MAX,
        "more holders than slots"
    );
    let peeked = processes[1].peek("t").unwrap();
    assert_eq!(peeked.remaining, MAX, "every slot released, exactly once");
    // Exactly MAX slots to take. Unfairly: a waiter's ticket may outlive
    // it by up to a second (its removal can race a poll), and a fair
    // acquire leaves slots to tickets; slots, not the queue, are checked.
    processes[1].set_fair(false);
    for _ in 0..MAX {
        std::mem::forget(
            processes[1]
                .acquire("t")
                .unwrap()
                .permit()
                .expect("a free slot"),
        );
    }
    assert!(matches!(
        processes[1].acquire("t").unwrap(),
        Acquire::Denied(_)
    ));
}

/// Releases `permit`; after a failure, again by its id straight on the
/// store (a release is idempotent) until it is answered.
fn release(permit: edgelimit::Permit<RedisRestStore>, url: &str, config: &Concurrency) {
    let id = permit.id();
    if permit.release().is_ok() {
        return;
    }
    let store = RedisRestStore::with_options(url, TOKEN, outage_options()).unwrap();
    let step = LeaseStep {
        config,
        op: LeaseOp::Release { id },
    };
    let key = Key {
        prefix: "restart:",
        id: "t",
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = store.transact(key, 0, &step) {
        assert!(Instant::now() < deadline, "no release for 30 s: {e}");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn waiting_costs_each_process_a_bounded_number_of_requests() {
    let redis = Redis::start();
    let gateway = Gateway::start(redis.port);
    let tap = Tap::start(gateway.url());
    let config = Concurrency::new(1, "30 s").unwrap();
    let processes = [
        process(&tap.url(), config, "cost:", options()),
        process(&tap.url(), config, "cost:", options()),
    ];
    let held = processes[0].acquire("t").unwrap().permit().expect("free");
    const PER_PROCESS: usize = 50;
    let waiters: Vec<_> = (0..2 * PER_PROCESS)
        .map(|n| {
            let jobs = processes[n % 2].clone();
            thread::spawn(move || {
                let permit = jobs
                    .acquire_wait("t", Duration::from_secs(60))
                    .unwrap()
                    .permit();
                drop(permit.expect("granted"));
            })
        })
        .collect();
    let mut conn = redis.conn();
    until_numbered(&mut conn, "cost:sem:{t}", 2 * PER_PROCESS as u64);
    tap.take();
    let started = Instant::now();
    thread::sleep(Duration::from_secs(2));
    let commands = tap.take().iter().map(|s| s.commands()).sum::<usize>();
    let seconds = started.elapsed().as_secs_f64();
    let per_process = commands as f64 / seconds / 2.0;
    eprintln!(
        "{PER_PROCESS} waiters in each of 2 processes: {per_process:.1} Redis commands a second \
         per process, {:.3} per waiter",
        per_process / PER_PROCESS as f64
    );
    // Only each process's first waiter polls, every 50-100 ms: at most 20
    // a second (a poll each waiter would be 1,000 a second per process).
    assert!(
        per_process <= 25.0,
        "{per_process:.1} commands a second per process"
    );
    drop(held);
    for waiter in waiters {
        waiter.join().unwrap();
    }
}
