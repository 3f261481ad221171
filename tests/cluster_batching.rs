//! Batches on Redis Cluster (three real masters behind the gateway in
//! cluster mode): a batch's keys span slots, so Redis refuses the batch
//! script with CROSSSLOT; the store sends those calls again as a pipeline,
//! keeps doing so, and every decision is what it would have been.

use edgelimit::store::{AsyncRedisRestStore, Batching, RedisRestStore};
use edgelimit::{FixedWindow, Limiter};
use testkit::gateway::{Gateway, TOKEN};
use testkit::redis::Redis;
use testkit::tap::Tap;

/// Three masters sharing the slots.
fn cluster() -> Vec<Redis> {
    testkit::cluster::start(3, 0, 2000)
}

// One thread: the spawned calls all queue before the first batch leaves.
#[tokio::test]
async fn batches_fall_back_to_pipelines_on_a_cluster() {
    let nodes = cluster();
    let gateway = Gateway::start_with(nodes[0].port, &["--cluster"]);
    let tap = Tap::start(gateway.url());
    let batching = Batching {
        max_in_flight: 1,
        ..Batching::default()
    };
    let store =
        AsyncRedisRestStore::with_options(tap.url(), TOKEN, Default::default(), batching).unwrap();
    let limiter = Limiter::new(FixedWindow::new(2, "1 m").unwrap()).with_store(store);
    let ids: Vec<String> = (0..12).map(|i| format!("user-{i}")).collect();
    for round in 0..3 {
        let mut calls = tokio::task::JoinSet::new();
        for id in ids.clone() {
            let limiter = limiter.clone();
            calls.spawn(async move { limiter.limit_async(&id).await });
        }
        while let Some(decision) = calls.join_next().await {
            let d = decision.unwrap().unwrap();
            assert_eq!(d.allowed, round < 2, "round {round}: {d:?}");
        }
    }
    let seen = tap.take();
    assert!(
        seen.iter()
            .any(|s| s.body.contains(edgelimit::scripts::BATCH.sha1())),
        "a batch was tried"
    );
    let last = seen.last().unwrap();
    assert!(
        !last.body.contains(edgelimit::scripts::BATCH.sha1()),
        "then pipelines only"
    );

    // The blocking store's limit_many falls back alike.
    let url = tap.url();
    let blocking = tokio::task::spawn_blocking(move || {
        let store = RedisRestStore::new(url, TOKEN).unwrap();
        let limiter = Limiter::new(FixedWindow::new(1, "1 m").unwrap())
            .with_store(store)
            .with_prefix("many:");
        let calls: Vec<(&str, u64)> = ["a", "b", "c", "d", "a"]
            .into_iter()
            .map(|id| (id, 1))
            .collect();
        limiter
            .limit_many(&calls)
            .into_iter()
            .map(|d| d.unwrap().allowed)
            .collect::<Vec<_>>()
    });
    assert_eq!(blocking.await.unwrap(), [true, true, true, true, false]);
}
