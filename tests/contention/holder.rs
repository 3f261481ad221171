//! A holder killed with SIGKILL keeps its slots until its leases expire.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use edgelimit::algorithm::LeaseOp;
use edgelimit::{Concurrency, ConcurrencyLimiter, SystemClock};

use crate::children::*;
use crate::setup::*;

pub(crate) const HOLDER_MAX: u64 = 2;
pub(crate) const HOLDER_LEASES_MS: [u64; 2] = [1_000, 1_500];

/// Takes both slots (leases of 1 and 1.5 s), reports
/// `held <expiry 1> <expiry 2>`, and waits to be killed.
pub(crate) fn child_holder() {
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
