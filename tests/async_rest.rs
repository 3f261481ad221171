//! The async REST store in tokio, against the real gateway and a real
//! `redis-server`: in an axum server, batching concurrent calls into one
//! `/pipeline` request (mixed results, NOSCRIPT mid-batch, a timed-out
//! batch, call order), and the blocking store refusing to run inside a
//! runtime instead of panicking.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use edgelimit::scripts;
use edgelimit::store::{
    AsyncRedisRestStore, Batching, Grouping, RedisRestStore, RestOptions, TimeSource,
};
use edgelimit::{
    Acquire, Concurrency, ConcurrencyLimiter, Decision, Error, FailurePolicy, FixedWindow, Gcra,
    Limiter, StoreError, SystemClock, Tier, TokenBucket,
};
use testkit::gateway::{Gateway, TOKEN};
use testkit::redis::Redis;
use testkit::tap::Tap;

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
}

/// Polls every future in turn until all are done, each first poll in list
/// order: on a current-thread runtime, calls made this way all queue before
/// any batch leaves, in this order.
async fn join_in_order<T>(futures: Vec<Pin<Box<dyn Future<Output = T> + Send + '_>>>) -> Vec<T> {
    let mut futures: Vec<_> = futures.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (slot, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                if let Poll::Ready(value) = future.as_mut().poll(cx) {
                    *output = Some(value);
                    *slot = None;
                }
            }
        }
        if futures.iter().all(Option::is_none) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

fn batched(max_in_flight: usize) -> Batching {
    Batching {
        max_in_flight,
        ..Batching::default()
    }
}

fn store(url: String, options: RestOptions, batching: Batching) -> AsyncRedisRestStore {
    AsyncRedisRestStore::with_options(url, TOKEN, options, batching).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_axum_server_limits_through_the_async_store() {
    let backend = Backend::start();
    let store = AsyncRedisRestStore::new(backend.gateway.url(), TOKEN).unwrap();
    let limiter = Limiter::new(FixedWindow::new(5, "1 m").unwrap()).with_store(store);

    async fn handler(
        State(limiter): State<Limiter<FixedWindow, AsyncRedisRestStore, SystemClock>>,
        Path(client): Path<String>,
    ) -> (StatusCode, String) {
        match limiter.limit_async(&client).await {
            Ok(d) if d.allowed => (StatusCode::OK, d.remaining.to_string()),
            Ok(d) => (StatusCode::TOO_MANY_REQUESTS, d.retry_after_ms.to_string()),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
    let app = axum::Router::new()
        .route("/{client}", axum::routing::get(handler))
        .with_state(limiter);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let client = reqwest::Client::new();
    let requests = (0..40).map(|i| {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            let who = ["alice", "bob"][i % 2];
            client
                .get(format!("{url}/{who}"))
                .send()
                .await
                .unwrap()
                .status()
        })
    });
    let mut statuses = Vec::new();
    for request in requests.collect::<Vec<_>>() {
        statuses.push(request.await.unwrap());
    }
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((ok, limited), (10, 30), "5 per client, the rest limited");
    server.abort();
}

/// Decides two calls together: loads the scripts a batch and a lone call
/// use, so that what follows needs no EVAL.
async fn warm_up<A: edgelimit::Algorithm + Sync>(
    limiter: &Limiter<A, AsyncRedisRestStore, SystemClock>,
) {
    let calls = (0..2)
        .map(|_| {
            Box::pin(limiter.limit_async("warm-up")) as Pin<Box<dyn Future<Output = _> + Send>>
        })
        .collect();
    join_in_order(calls).await;
    limiter.limit_async("warm-up").await.unwrap();
}

#[tokio::test]
async fn concurrent_calls_share_one_request_in_call_order() {
    let backend = Backend::start();
    let tap = Tap::start(backend.gateway.url());
    for grouping in [Grouping::Script, Grouping::Pipeline] {
        let batching = Batching {
            grouping,
            ..batched(1)
        };
        let store = store(tap.url(), RestOptions::default(), batching);
        let limiter = Limiter::new(Gcra::new(4, "1 m").unwrap())
            .with_store(store)
            .with_prefix(format!("{grouping:?}:"));
        warm_up(&limiter).await;
        tap.take();

        let calls = (0..10)
            .map(|_| Box::pin(limiter.limit_async("k")) as Pin<Box<dyn Future<Output = _> + Send>>)
            .collect();
        let decisions: Vec<Decision> = join_in_order(calls)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let admitted: Vec<bool> = decisions.iter().map(|d| d.allowed).collect();
        assert_eq!(
            admitted,
            [true, true, true, true, false, false, false, false, false, false]
        );
        let remaining: Vec<u64> = decisions[..4].iter().map(|d| d.remaining).collect();
        assert_eq!(remaining, [3, 2, 1, 0], "decided in call order");
        let seen = tap.take();
        assert_eq!(seen.len(), 1, "one request: {seen:?}");
        match grouping {
            // One command: a call of the batch script carrying the ten.
            Grouping::Script => {
                assert_eq!(seen[0].path, "");
                let head = format!(r#"["EVALSHA","{}","10","#, scripts::BATCH.sha1());
                assert!(seen[0].body.starts_with(&head), "{}", seen[0].body);
            }
            _ => assert_eq!(
                (seen[0].path.as_str(), seen[0].commands()),
                ("/pipeline", 10)
            ),
        }
    }
}

#[tokio::test]
async fn one_batch_carries_successes_and_errors_each_to_its_caller() {
    let backend = Backend::start();
    let tap = Tap::start(backend.gateway.url());
    let limiter = Limiter::new(TokenBucket::new(3, 1, "1 s").unwrap()).with_store(store(
        tap.url(),
        RestOptions::default(),
        batched(1),
    ));
    warm_up(&limiter).await;
    // A key of the wrong type: its script fails with a Redis error.
    let mut conn = backend.redis.conn();
    conn.call(&["SET", "edgelimit:tb:1000:{broken}", "x"])
        .unwrap();
    tap.take();

    let calls = ["a", "broken", "b"]
        .into_iter()
        .map(|id| Box::pin(limiter.limit_async(id)) as Pin<Box<dyn Future<Output = _> + Send>>)
        .collect();
    let answers: Vec<Result<Decision, Error>> = join_in_order(calls).await;
    let [a, broken, b] = <[_; 3]>::try_from(answers).unwrap();
    assert_eq!(a.unwrap().remaining, 2);
    assert!(
        matches!(broken, Err(Error::Store(StoreError::Command(ref m))) if m.contains("WRONGTYPE")),
        "{broken:?}"
    );
    assert_eq!(b.unwrap().remaining, 2);
    assert_eq!(tap.take().len(), 1, "one request for the three");
    // The store keeps working after the error.
    assert_eq!(limiter.limit_async("a").await.unwrap().remaining, 1);
}

#[tokio::test]
async fn noscript_in_a_batch_sends_the_code_once() {
    let backend = Backend::start();
    let tap = Tap::start(backend.gateway.url());
    for grouping in [Grouping::Script, Grouping::Pipeline] {
        let batching = Batching {
            grouping,
            ..batched(1)
        };
        let store = store(tap.url(), RestOptions::default(), batching);
        let prefix = format!("{grouping:?}:");
        let gcra = Limiter::new(Gcra::new(10, "1 s").unwrap())
            .with_store(store.clone())
            .with_prefix(&prefix);
        let bucket = Limiter::new(TokenBucket::new(10, 1, "1 s").unwrap())
            .with_store(store)
            .with_prefix(&prefix);
        let mut conn = backend.redis.conn();
        conn.call(&["SCRIPT", "FLUSH"]).unwrap();
        // Only the GCRA script is cached again.
        assert!(gcra.limit_async("warm-up").await.unwrap().allowed);
        tap.take();

        let calls: Vec<Pin<Box<dyn Future<Output = _> + Send>>> = vec![
            Box::pin(gcra.limit_async("x")),
            Box::pin(bucket.limit_async("z")),
            Box::pin(gcra.limit_async("y")),
        ];
        let remaining: Vec<u64> = join_in_order(calls)
            .await
            .into_iter()
            .map(|d| d.unwrap().remaining)
            .collect();
        assert_eq!(remaining, [9, 9, 9]);
        let seen = tap.take();
        assert_eq!(seen.len(), 2, "{seen:?}");
        match grouping {
            // The batch script was not cached: the batch goes again with
            // its code, once.
            Grouping::Script => {
                assert!(seen[0].body.starts_with(r#"["EVALSHA""#));
                assert!(seen[1].body.starts_with(r#"["EVAL","-- edgelimit batch"#));
            }
            // Only the bucket's script was missing: that call alone goes
            // again, with its code.
            _ => {
                assert_eq!(seen[0].commands(), 3);
                assert_eq!(seen[1].path, "");
                assert!(seen[1]
                    .body
                    .starts_with(r#"["EVAL","-- edgelimit token_bucket"#));
            }
        }
    }
}

#[tokio::test]
async fn a_batch_that_times_out_fails_its_consuming_calls_once_and_retries_reads() {
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            sockets.push(socket);
        }
    });
    let options = RestOptions {
        timeout: Duration::from_millis(200),
        retries: 2,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(20),
        ..RestOptions::default()
    };
    let limiter = Limiter::new(FixedWindow::new(3, "1 m").unwrap()).with_store(store(
        url,
        options,
        batched(1),
    ));
    let started = Instant::now();
    let calls: Vec<Pin<Box<dyn Future<Output = _> + Send>>> = vec![
        Box::pin(limiter.limit_async("a")),
        Box::pin(limiter.limit_async("b")),
        Box::pin(limiter.remaining_async("c")),
    ];
    let answers = join_in_order(calls).await;
    let waited = started.elapsed();
    for answer in &answers {
        assert_eq!(answer, &Err(Error::Store(StoreError::Timeout { ms: 200 })));
    }
    // The consuming calls gave up after the batch's one timeout (they may
    // have been applied); the read was tried three times.
    assert!(waited >= Duration::from_millis(600), "{waited:?}");
    assert!(waited < Duration::from_millis(1_500), "{waited:?}");
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blocking_store_blocks_a_multi_threaded_runtime_only_where_allowed() {
    let backend = Backend::start();
    // On a worker: through block_in_place, the other tasks moved first.
    let store = RedisRestStore::new(backend.gateway.url(), TOKEN).unwrap();
    let limiter = Limiter::new(FixedWindow::new(3, "1 m").unwrap()).with_store(store);
    assert_eq!(limiter.limit("k").unwrap().remaining, 2);
    // In a blocking thread of the runtime, as tokio recommends.
    let blocking = limiter.clone();
    let remaining = tokio::task::spawn_blocking(move || blocking.limit("k").unwrap().remaining);
    assert_eq!(remaining.await.unwrap(), 1);
    drop(limiter);
}

#[tokio::test]
async fn the_blocking_store_refuses_to_block_a_current_thread_runtime() {
    let backend = Backend::start();
    assert_eq!(
        RedisRestStore::new(backend.gateway.url(), TOKEN).unwrap_err(),
        StoreError::BlockingInAsyncRuntime
    );
    // Made outside the runtime, used and dropped inside it.
    let url = backend.gateway.url();
    let store = std::thread::spawn(move || RedisRestStore::new(url, TOKEN).unwrap())
        .join()
        .unwrap();
    let limiter = Limiter::new(FixedWindow::new(3, "1 m").unwrap())
        .with_store(store)
        .with_failure_policy(FailurePolicy::Open);
    assert_eq!(
        limiter.limit("k"),
        Err(Error::Store(StoreError::BlockingInAsyncRuntime)),
        "a misuse is never answered by the failure policy"
    );
    drop(limiter);
    // Its blocking threads may block.
    let url = backend.gateway.url();
    let in_blocking_thread = tokio::task::spawn_blocking(move || {
        let store = RedisRestStore::new(url, TOKEN).unwrap();
        let limiter = Limiter::new(FixedWindow::new(3, "1 m").unwrap()).with_store(store);
        limiter.limit("j").unwrap().remaining
    });
    assert_eq!(in_blocking_thread.await.unwrap(), 2);
}

#[test]
fn the_async_store_outside_a_runtime_is_an_error() {
    let backend = Backend::start();
    let store = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async { AsyncRedisRestStore::new(backend.gateway.url(), TOKEN) })
        .unwrap();
    let limiter = Limiter::new(FixedWindow::new(3, "1 m").unwrap()).with_store(store);
    let mut call = Box::pin(limiter.limit_async("k"));
    let polled = call.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    assert_eq!(
        polled,
        Poll::Ready(Err(Error::Store(StoreError::NoAsyncRuntime)))
    );
}

#[tokio::test]
async fn leases_through_the_async_store_are_released_on_drop() {
    let backend = Backend::start();
    let store = AsyncRedisRestStore::with_options(
        backend.gateway.url(),
        TOKEN,
        RestOptions {
            time: TimeSource::Redis,
            ..RestOptions::default()
        },
        Batching::default(),
    )
    .unwrap();
    let jobs = ConcurrencyLimiter::with_parts(
        Concurrency::new(2, "10 s").unwrap(),
        store,
        SystemClock,
        "jobs:",
    );
    let once = Duration::ZERO;
    let sleep = tokio::time::sleep;
    let Acquire::Granted(first) = jobs.acquire_async("t", once, sleep).await.unwrap() else {
        panic!("free")
    };
    let Acquire::Granted(second) = jobs.acquire_async("t", once, sleep).await.unwrap() else {
        panic!("free")
    };
    assert!(matches!(
        jobs.acquire_async("t", once, sleep).await.unwrap(),
        Acquire::Denied(_)
    ));
    assert_eq!(jobs.peek_async("t").await.unwrap().remaining, 0);
    assert!(second.release_async().await.unwrap());
    drop(first); // released by a task of the runtime
    let deadline = Instant::now() + Duration::from_secs(5);
    while jobs.peek_async("t").await.unwrap().remaining < 2 {
        assert!(
            Instant::now() < deadline,
            "the dropped permit was not released"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A waiter is granted the slot a holder gives back.
    let Acquire::Granted(held) = jobs.acquire_async("u", once, sleep).await.unwrap() else {
        panic!("free")
    };
    let Acquire::Granted(_other) = jobs.acquire_async("u", once, sleep).await.unwrap() else {
        panic!("free")
    };
    let waiter = jobs.acquire_async("u", Duration::from_secs(3), sleep);
    let releaser = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        held.release_async().await.unwrap();
    };
    let (granted, ()) = tokio::join!(waiter, releaser);
    assert!(matches!(granted.unwrap(), Acquire::Granted(_)));
}

#[tokio::test]
async fn a_call_under_a_tier_counts_on_the_configured_state() {
    let backend = Backend::start();
    let store = store(
        backend.gateway.url(),
        RestOptions::default(),
        Batching::default(),
    );
    let limiter = Limiter::new(FixedWindow::new(10, "1 h").unwrap()).with_store(store);
    let pro = Tier::limit(1_000);
    for _ in 0..10 {
        assert!(limiter.limit_async("u").await.unwrap().allowed);
    }
    assert!(!limiter.limit_async("u").await.unwrap().allowed);
    let d = limiter.limit_under_async("u", 5, &pro).await.unwrap();
    assert_eq!((d.allowed, d.limit, d.remaining), (true, 1_000, 985));
    // The configured limit sees the 15 units: still denied, nothing spent.
    let d = limiter.limit_async("u").await.unwrap();
    assert_eq!((d.allowed, d.remaining), (false, 0));
    assert_eq!(
        limiter.limit_under_async("u", 1, &Tier::limit(0)).await,
        Err(Error::Tier(edgelimit::ConfigError::Zero { what: "limit" }))
    );
}

#[tokio::test]
async fn refunds_and_penalties_over_the_async_store() {
    let backend = Backend::start();
    let store = store(
        backend.gateway.url(),
        RestOptions::default(),
        Batching::default(),
    );
    let limiter = Limiter::new(Gcra::new(2, "1 h").unwrap()).with_store(store);
    assert!(limiter.limit_with_cost_async("u", 2).await.unwrap().allowed);
    assert!(!limiter.limit_async("u").await.unwrap().allowed);
    assert_eq!(limiter.refund_async("u", 1).await.unwrap().remaining, 1);
    assert!(limiter.limit_async("u").await.unwrap().allowed);
    assert_eq!(limiter.penalize_async("u", 1).await.unwrap().remaining, 0);
}
