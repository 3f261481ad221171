//! A Redis Cluster node dies under load behind the gateway: three masters
//! with a replica each on loopback, the gateway started with a dead first
//! seed, limiters deciding on ids spread over every slot. A master is
//! killed; its replica is promoted; decisions on its slots resume within a
//! few seconds of the promotion without touching the gateway, no id is
//! ever admitted over its limit, a pipeline spanning the dead and a live
//! master keeps the live master's results, and `/healthz` follows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use edgelimit::store::{RedisRestStore, RestOptions};
use edgelimit::{FixedWindow, Limiter};
use testkit::gateway::{Gateway, TOKEN};
use testkit::redis::Redis;
use testkit::resp;

const LIMIT: u64 = 3;

fn cli(node: &Redis, args: &[&str]) -> String {
    match node.conn().call(args) {
        Ok(resp::Reply::Int(n)) => n.to_string(),
        Ok(reply) => reply.text().unwrap_or_else(|| format!("{reply:?}")),
        Err(e) => format!("unreachable: {e}"),
    }
}

fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) -> Instant {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        thread::sleep(Duration::from_millis(20));
    }
    Instant::now()
}

/// Three masters, each with a replica in sync.
fn cluster() -> Vec<Redis> {
    let nodes = testkit::cluster::start(6, 1, 1000);
    wait_for("the cluster ready", Duration::from_secs(30), || {
        nodes.iter().all(|n| {
            let info = cli(n, &["CLUSTER", "INFO"]);
            let replication = cli(n, &["INFO", "replication"]);
            info.contains("cluster_state:ok")
                && (replication.contains("role:master")
                    || replication.contains("master_link_status:up"))
        })
    });
    nodes
}

/// The node serving `key` and the replica of it, as indexes into `nodes`.
fn master_and_replica(nodes: &[Redis], key: &str) -> (usize, usize) {
    let slot: u16 = cli(&nodes[0], &["CLUSTER", "KEYSLOT", key])
        .parse()
        .unwrap();
    let table = cli(&nodes[0], &["CLUSTER", "NODES"]);
    let serves = |line: &str| {
        line.split_whitespace()
            .skip(8)
            .any(|range| match range.split_once('-') {
                Some((a, b)) => (a.parse().unwrap()..=b.parse().unwrap()).contains(&slot),
                None => range.parse::<u16>().ok() == Some(slot),
            })
    };
    let port_of = |line: &str| -> u16 {
        let addr = line.split_whitespace().nth(1).unwrap();
        addr.split(['@', ':']).nth(1).unwrap().parse().unwrap()
    };
    let index = |port: u16| nodes.iter().position(|n| n.port == port).unwrap();
    let master = table
        .lines()
        .find(|l| serves(l))
        .expect("the slot's master");
    let master_id = master.split_whitespace().next().unwrap();
    let replica = table
        .lines()
        .find(|l| l.split_whitespace().nth(3) == Some(master_id))
        .expect("the master's replica");
    (index(port_of(master)), index(port_of(replica)))
}

/// One decision, as the load saw it.
struct Outcome {
    id: usize,
    at: Instant,
    /// `Some(window end)` when admitted, `None` when denied; `Err` for a
    /// failure.
    admitted: Result<Option<u64>, String>,
}

#[test]
fn decisions_survive_a_master_failover() {
    let mut nodes = cluster();
    // A first seed nobody listens on: the gateway learns the cluster from
    // the next one.
    let dead_seed = testkit::port::free_port();
    let seed = format!("redis://127.0.0.1:{}", nodes[1].port);
    let gateway = Gateway::start_with(dead_seed, &["--cluster", "--cluster-seed", &seed]);

    // Ids over every slot, each a hash tag: its keys live in the slot of
    // its tag whatever the limiter adds around it.
    let ids: Vec<String> = (0..120).map(|i| format!("{{u-{i}}}")).collect();
    let (victim, replica) = master_and_replica(&nodes, &ids[0]);
    let on_victim: Vec<bool> = ids
        .iter()
        .map(|id| master_and_replica(&nodes, id).0 == victim)
        .collect();

    let outcomes = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (url, ids) = (gateway.url(), ids.clone());
            let (outcomes, stop) = (outcomes.clone(), stop.clone());
            thread::spawn(move || {
                let options = RestOptions {
                    timeout: Duration::from_secs(3),
                    ..RestOptions::default()
                };
                let store = RedisRestStore::with_options(url, TOKEN, options).unwrap();
                let limiter = Limiter::new(FixedWindow::new(LIMIT, "1 s").unwrap())
                    .with_store(store)
                    .with_prefix("fo:");
                let mut i = w;
                while !stop.load(Ordering::Relaxed) {
                    let id = i % ids.len();
                    let admitted = match limiter.limit(&ids[id]) {
                        Ok(d) if d.reason.is_none() => Ok(d.allowed.then_some(d.reset_ms)),
                        Ok(d) => Err(format!("{d:?}")),
                        Err(e) => Err(e.to_string()),
                    };
                    let outcome = Outcome {
                        id,
                        at: Instant::now(),
                        admitted,
                    };
                    outcomes.lock().unwrap().push(outcome);
                    i += 7;
                    thread::sleep(Duration::from_millis(2));
                }
            })
        })
        .collect();

    thread::sleep(Duration::from_millis(800));
    let killed_at = Instant::now();
    drop(nodes.remove(victim)); // SIGKILL
    let replica = if replica > victim {
        replica - 1
    } else {
        replica
    };

    // At once, before the cluster notices: a pipeline over the dead master
    // and a live one keeps the live one's result.
    let on_dead = ids[0].clone();
    let on_live = ids
        .iter()
        .zip(&on_victim)
        .find(|(_, &v)| !v)
        .map(|(id, _)| id.clone())
        .unwrap();
    let body = format!(r#"[["SET","p:{on_dead}","1"],["SET","p:{on_live}","2"]]"#);
    let (status, reply) = gateway.call("POST", "/pipeline", &body);
    assert_eq!(status, 200, "{reply}");
    // [{"error": …}, {"result": "OK"}], as the Upstash protocol answers.
    let (dead, live) = reply.split_once("},{").expect("two replies");
    // TRYAGAIN when it was never sent; had the request gone out on a
    // connection the kill had not yet been seen on, an error saying it may
    // have run.
    assert!(dead.starts_with(r#"[{"error":""#), "{reply}");
    assert!(
        live == r#""result":"OK"}]"# || live.starts_with(r#""error":"CLUSTERDOWN"#),
        "{reply}"
    );

    // Health is not ok until the replica serves the slots.
    let (status, health) = gateway.call("GET", "/healthz", "");
    assert_eq!(status, 503, "{health}");
    assert!(health.contains("\"degraded\"") || health.contains("\"unavailable\""));

    let promoted_at = wait_for("the replica promoted", Duration::from_secs(15), || {
        cli(&nodes[replica], &["ROLE"]).contains("master")
            || cli(&nodes[replica], &["INFO", "replication"]).contains("role:master")
    });
    let healthy_at = wait_for(
        "/healthz 200 after promotion",
        Duration::from_secs(10),
        || gateway.call("GET", "/healthz", "").0 == 200,
    );
    thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }

    let outcomes = outcomes.lock().unwrap();
    // Never over the limit, in any window, on any id.
    let mut admitted: HashMap<(usize, u64), u64> = HashMap::new();
    for o in outcomes.iter() {
        if let Ok(Some(window)) = o.admitted {
            *admitted.entry((o.id, window)).or_default() += 1;
        }
    }
    let over: Vec<_> = admitted.iter().filter(|(_, &n)| n > LIMIT).collect();
    assert!(over.is_empty(), "ids over their limit: {over:?}");

    // Decisions on the dead master's slots resume soon after promotion.
    let resumed_at = outcomes
        .iter()
        .filter(|o| o.at > promoted_at && on_victim[o.id] && o.admitted.is_ok())
        .map(|o| o.at)
        .min()
        .expect("decisions on the failed master's slots resumed");
    let resumed_after = resumed_at.saturating_duration_since(promoted_at);
    assert!(
        resumed_after < Duration::from_secs(3),
        "resumed {resumed_after:?} after promotion"
    );
    // And from then on nothing fails.
    let settled = resumed_at.max(healthy_at) + Duration::from_millis(500);
    let late_failures: Vec<_> = outcomes
        .iter()
        .filter(|o| o.at > settled)
        .filter_map(|o| o.admitted.as_ref().err())
        .collect();
    assert!(
        late_failures.is_empty(),
        "failures after recovery: {late_failures:?}"
    );
    let before: usize = outcomes.iter().filter(|o| o.at < killed_at).count();
    let after: usize = outcomes.iter().filter(|o| o.at > settled).count();
    assert!(
        before > 50 && after > 50,
        "load before {before}, after {after}"
    );
    eprintln!(
        "killed → promoted {:?}, promoted → decisions resumed {:?}, → /healthz 200 {:?}",
        promoted_at - killed_at,
        resumed_after,
        healthy_at.saturating_duration_since(promoted_at)
    );
}
