//! `--limiter-only`: edgelimit's limiters work unchanged (decide, reset,
//! concurrency), and nothing else gets through, not even through Lua.

use edgelimit::store::{RedisRestStore, RestOptions, TimeSource};
use edgelimit::{Concurrency, ConcurrencyLimiter, Error, FixedWindow, Limiter, StoreError};
use testkit::gateway::{Gateway, TOKEN};
use testkit::redis::Redis;

fn store(g: &Gateway) -> RedisRestStore {
    let options = RestOptions {
        time: TimeSource::Redis,
        ..RestOptions::default()
    };
    RedisRestStore::with_options(g.url(), TOKEN, options).unwrap()
}

/// POSTs `body` to `path` with the token the limiters use.
fn post(g: &Gateway, path: &str, body: &str) -> testkit::http::Resp {
    let auth = ("authorization", format!("Bearer {TOKEN}"));
    testkit::http::http(g.port, "POST", path, &[auth], body.as_bytes())
}

#[test]
fn limiters_work_and_nothing_else_gets_through() {
    let redis = Redis::start();
    let g = Gateway::start_with(
        redis.port,
        &["--limiter-only", "--key-prefix", "edgelimit:,app:"],
    );
    let mut conn = redis.conn();
    conn.call(&["SET", "precious", "data"]).unwrap();

    // Decisions, batches, reads and resets, with the default prefix and another.
    for prefix in ["edgelimit:", "app:"] {
        let limiter = Limiter::new(FixedWindow::new(2, "1 h").unwrap())
            .with_store(store(&g))
            .with_prefix(prefix);
        assert!(limiter.limit("user").unwrap().allowed);
        assert_eq!(limiter.limit_many(&[("user", 1), ("other", 1)]).len(), 2);
        assert!(!limiter.limit("user").unwrap().allowed);
        limiter.reset("user").unwrap();
        assert_eq!(limiter.remaining("user").unwrap().remaining, 2, "{prefix}");
    }
    let jobs = ConcurrencyLimiter::with_parts(
        Concurrency::new(1, "1 m").unwrap(),
        store(&g),
        edgelimit::SystemClock,
        "edgelimit:",
    );
    let permit = jobs.acquire("job").unwrap();
    assert!(matches!(permit, edgelimit::Acquire::Granted(_)));
    drop(permit);
    jobs.reset("job").unwrap();

    // A limiter under a prefix the gateway does not serve: forbidden, typed.
    let elsewhere = Limiter::new(FixedWindow::new(2, "1 h").unwrap())
        .with_store(store(&g))
        .with_prefix("other:");
    assert!(matches!(
        elsewhere.limit("user"),
        Err(Error::Store(StoreError::Forbidden(_)))
    ));

    // The attacks an allow-list naming `eval` lets through.
    for body in [
        r#"["FLUSHALL"]"#,
        r#"["EVAL","return redis.call('FLUSHALL')","0"]"#,
        r#"["EVAL","return redis.call('KEYS','*')","0"]"#,
        r#"["EVAL_RO","local i=0 while true do i=i+1 end","0"]"#,
        r#"["SET","edgelimit:x","1"]"#,
        r#"["DEL","precious"]"#,
        r#"["SCRIPT","FLUSH"]"#,
        r#"["KEYS","*"]"#,
    ] {
        let res = post(&g, "/", body);
        assert_eq!(res.status, 403, "{body}: {}", res.text());
        assert!(res.json()["error"].as_str().unwrap().contains("NOPERM"));
    }
    let pipeline = post(&g, "/pipeline", r#"[["PING"],["FLUSHALL"]]"#);
    assert_eq!(pipeline.status, 403, "a pipeline never half-runs");
    assert_eq!(
        conn.call(&["GET", "precious"]).unwrap(),
        testkit::resp::Reply::Bulk(Some(b"data".to_vec()))
    );
}
