//! Several limits as one call on Redis Cluster (three real masters behind
//! the gateway in cluster mode): every key of one id shares the id's hash
//! slot (`prefix{id}`), so one script call reads and writes them all, for
//! ids all over the slots.

use edgelimit::store::RedisRestStore;
use edgelimit::{FixedWindow, Gcra, MultiLimiter, Reason, SlidingLog};
use testkit::gateway::{Gateway, TOKEN};
use testkit::tap::Tap;

#[test]
fn several_limits_and_a_block_decide_in_one_script_call_on_a_cluster() {
    let nodes = testkit::cluster::start(3, 0, 2000);
    let gateway = Gateway::start_with(nodes[0].port, &["--cluster"]);
    let tap = Tap::start(gateway.url());
    let store = RedisRestStore::new(tap.url(), TOKEN).unwrap();
    let limiter = MultiLimiter::new([
        FixedWindow::new(2, "1 h").unwrap().into(),
        Gcra::new(10, "1 h").unwrap().into(),
        SlidingLog::new(10, "1 h").unwrap().into(),
    ])
    .unwrap()
    .with_block("1 h")
    .unwrap()
    .with_store(store);
    // Ids whose slots fall on every master.
    let ids: Vec<String> = (0..24).map(|i| format!("user-{i}")).collect();
    for id in &ids {
        for _ in 0..2 {
            assert!(limiter.limit(id).unwrap().decision.allowed, "{id}");
        }
        let denied = limiter.limit(id).unwrap();
        assert_eq!(denied.denied_by, Some(0), "{id}");
        assert_eq!(denied.decision.reason, Some(Reason::Blocked));
        assert_eq!(denied.limits[2].remaining, 8, "{id}: nothing charged");
    }
    let seen = tap.take();
    let multi = edgelimit::scripts::MULTI.sha1();
    let calls = seen.iter().filter(|s| s.body.contains(multi)).count();
    // One request per call (the script's code is sent once more per master
    // the first time: NOSCRIPT, then EVAL).
    assert!(calls >= ids.len() * 3, "{calls} script calls");
    assert!(seen.len() <= ids.len() * 3 + 3, "{} requests", seen.len());
}
