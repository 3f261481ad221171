//! Outages, timeouts, shutdown and configuration of the real binary.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use testkit::gateway::{auth, gateway_command, Gateway, FULL_TOKEN as TOKEN};
use testkit::http::http;
use testkit::port::free_port;
use testkit::process::signal;
use testkit::redis::Redis;

/// A Lua busy loop holding Redis for `ms` milliseconds.
fn busy_script(ms: u32) -> String {
    format!(
        r#"["EVAL","local t=redis.call('TIME') repeat local n=redis.call('TIME') until (n[1]-t[1])*1000000+(n[2]-t[2]) > {} return 1","0"]"#,
        ms * 1000
    )
}

#[test]
fn redis_restart_mid_traffic() {
    let mut r = Redis::start();
    let g = Arc::new(Gateway::with_tokens(
        &r.url(),
        &["--request-timeout-ms", "2000"],
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, unavailable, other) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (g, stop, ok, unavailable, other) = (
                g.clone(),
                stop.clone(),
                ok.clone(),
                unavailable.clone(),
                other.clone(),
            );
            thread::spawn(move || {
                let mut slowest = Duration::ZERO;
                // Bounded in count as well as by the stop flag.
                for _ in 0..200_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let t = Instant::now();
                    let res = g.post("/", r#"["INCR","hits"]"#);
                    slowest = slowest.max(t.elapsed());
                    match res.status {
                        200 => ok.fetch_add(1, Ordering::Relaxed),
                        503 => {
                            assert!(res.json()["error"].as_str().unwrap().contains("redis"));
                            unavailable.fetch_add(1, Ordering::Relaxed)
                        }
                        _ => other.fetch_add(1, Ordering::Relaxed),
                    };
                }
                slowest
            })
        })
        .collect();

    thread::sleep(Duration::from_millis(300));
    r.stop();
    thread::sleep(Duration::from_millis(300));
    let before_restart = ok.load(Ordering::Relaxed);
    r.restart();
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let slowest = workers
        .into_iter()
        .map(|w| w.join().unwrap())
        .max()
        .unwrap();

    assert!(before_restart > 0, "no traffic before the outage");
    assert!(unavailable.load(Ordering::Relaxed) > 0, "outage not seen");
    assert_eq!(other.load(Ordering::Relaxed), 0, "unexpected status codes");
    assert!(
        ok.load(Ordering::Relaxed) > before_restart,
        "no recovery after restart"
    );
    assert!(
        slowest < Duration::from_secs(3),
        "a request hung for {slowest:?}"
    );
    // The new server only saw post-restart increments, and they all count.
    let hits: usize = r.cli(&["GET", "hits"]).parse().unwrap();
    assert!(hits > 0);
}

#[test]
fn redis_down_gives_503_fast() {
    let port = free_port();
    let g = Gateway::with_tokens(&format!("redis://127.0.0.1:{port}"), &[]);
    let t = Instant::now();
    let res = g.post("/", r#"["GET","a"]"#);
    assert_eq!(res.status, 503);
    assert!(res.json()["error"]
        .as_str()
        .unwrap()
        .starts_with("ERR redis unavailable"));
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(g.post("/pipeline", r#"[["GET","a"]]"#).status, 503);
}

#[test]
fn stalled_redis_hits_the_request_timeout() {
    let r = Redis::start();
    let g = Gateway::with_tokens(&r.url(), &["--request-timeout-ms", "500"]);
    assert_eq!(g.post("/", r#"["SET","a","1"]"#).status, 200);
    signal(r.pid(), "STOP");
    let t = Instant::now();
    let res = g.post("/", r#"["GET","a"]"#);
    let waited = t.elapsed();
    signal(r.pid(), "CONT");
    assert_eq!(res.status, 504);
    assert!(res.json()["error"].as_str().unwrap().contains("timed out"));
    assert!(waited < Duration::from_secs(2), "waited {waited:?}");
    // Once Redis resumes the same connections serve again, in order.
    assert_eq!(g.post("/", r#"["GET","a"]"#).json(), json!({"result": "1"}));
}

#[test]
fn sigterm_finishes_in_flight_requests() {
    let r = Redis::start();
    let mut g = Gateway::with_tokens(&r.url(), &[]);
    let port = g.port;
    let slow =
        thread::spawn(move || http(port, "POST", "/", &[auth()], busy_script(600).as_bytes()));
    thread::sleep(Duration::from_millis(200));
    let status = g
        .terminate(Duration::from_secs(10))
        .expect("gateway exited");
    assert!(status.success(), "exit status {status:?}");
    let res = slow.join().unwrap();
    assert_eq!(res.json(), json!({"result": 1}));
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn env_vars_and_token_file() {
    let r = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens");
    std::fs::write(&file, "# tokens\nfile-full\nreadonly: file-ro\n").unwrap();
    let file = file.to_str().unwrap();
    let g = Gateway::start_raw(
        &r.url(),
        &[],
        &[
            ("EDGELIMIT_GATEWAY_TOKEN", "env-a,env-b"),
            ("EDGELIMIT_GATEWAY_TOKEN_FILE", file),
            ("EDGELIMIT_GATEWAY_MAX_BODY_BYTES", "100"),
        ],
    );
    for t in ["env-a", "env-b", "file-full"] {
        let res = g.request("GET", &format!("/set/k/{t}?_token={t}"), &[], b"");
        assert_eq!(res.status, 200, "{t}");
    }
    assert_eq!(
        g.request("GET", "/get/k?_token=file-ro", &[], b"").status,
        200
    );
    assert_eq!(
        g.request("GET", "/set/k/x?_token=file-ro", &[], b"").status,
        403
    );
    assert_eq!(
        g.request("GET", "/get/k?_token=env-c", &[], b"").status,
        401
    );
    let big = vec![b'x'; 200];
    assert_eq!(
        g.request("POST", "/set/k?_token=env-a", &[], &big).status,
        413
    );
}

#[test]
fn refuses_to_start_without_a_token() {
    let r = Redis::start();
    let out = gateway_command(&r.url(), free_port(), &[], &[])
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no token configured"));
}

/// An empty token would let in any request carrying an empty one
/// (`?_token=`): the gateway refuses to start, naming where it came from.
#[test]
fn refuses_to_start_with_an_empty_token() {
    let r = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens");
    std::fs::write(&file, "a-long-enough-token-1\nreadonly:\n").unwrap();
    let file = file.to_str().unwrap();
    // Flags, environment, and the source the message must name.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 4] = [
        (&["--token", ""], &[], "--token"),
        (
            &[],
            &[("EDGELIMIT_GATEWAY_TOKEN", "a-long-enough-token-1,")],
            "--token",
        ),
        (&["--read-only-token", ""], &[], "--read-only-token"),
        (&["--token-file", file], &[], "line 2"),
    ];
    for (args, env, named) in cases {
        let out = gateway_command(&r.url(), free_port(), args, env)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} {env:?} started");
        assert!(
            stderr.contains("empty token") && stderr.contains(named),
            "{stderr}"
        );
    }
    // A short token starts, with a warning.
    let short = Gateway::start_raw(&r.url(), &["--token", "short"], &[]);
    thread::sleep(Duration::from_millis(300));
    let log = std::fs::read_to_string(&short.log).unwrap();
    assert!(log.contains("shorter than 16 bytes"), "{log}");
    assert!(!log.contains("short\""), "the token itself is never logged");
}

#[test]
fn logs_never_contain_tokens() {
    let r = Redis::start();
    let mut g = Gateway::start_raw(
        &format!("redis://:hunter2pw@127.0.0.1:{}", r.port),
        &["--token", TOKEN],
        &[("EDGELIMIT_GATEWAY_LOG", "debug")],
    );
    // Wrong password: requests fail, and that failure is logged.
    g.request("GET", &format!("/get/a?_token={TOKEN}"), &[], b"");
    g.post("/", r#"["GET","a"]"#);
    g.request("GET", "/get/a?_token=wrong-token-value", &[], b"");
    g.terminate(Duration::from_secs(10));
    let log = g.log_text();
    assert!(log.contains("listening"), "{log}");
    assert!(log.contains("request"), "{log}");
    for secret in [TOKEN, "wrong-token-value", "hunter2pw"] {
        assert!(!log.contains(secret), "log leaks {secret}: {log}");
    }
}

#[test]
fn single_threaded_runtime_without_timeout() {
    let r = Redis::start();
    let g = Gateway::with_tokens(&r.url(), &["--threads", "1", "--request-timeout-ms", "0"]);
    assert_eq!(g.post("/", r#"["INCR","n"]"#).json(), json!({"result": 1}));
    let v = g.post("/pipeline", r#"[["INCR","n"],["GET","n"]]"#).json();
    assert_eq!(v, json!([{"result": 2}, {"result": "2"}]));
    let res = g.post("/", &busy_script(100));
    assert_eq!(res.json(), json!({"result": 1}));
}

/// With several serving threads (more than this machine may have cores),
/// concurrent connections are all served, each request once, on one Redis
/// connection per serving thread at most (the default pool).
#[test]
fn several_serving_threads_serve_every_connection() {
    let r = Redis::start();
    let g = Arc::new(Gateway::with_tokens(&r.url(), &["--threads", "3"]));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let g = g.clone();
            thread::spawn(move || {
                (0..40)
                    .map(|_| {
                        g.post("/", r#"["INCR","n"]"#).json()["result"]
                            .as_i64()
                            .unwrap()
                    })
                    .collect::<Vec<i64>>()
            })
        })
        .collect();
    let mut seen: Vec<i64> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=320).collect::<Vec<i64>>(), "each INCR ran once");
    let v = g.post("/pipeline", r#"[["INCR","n"],["GET","n"]]"#).json();
    assert_eq!(v, json!([{"result": 321}, {"result": "321"}]));
    // Every client but the one asking.
    let clients = r.conn().call(&["CLIENT", "LIST"]).unwrap().text().unwrap();
    let from_gateway = clients.lines().count() - 1;
    assert!((1..=3).contains(&from_gateway), "{clients}");
}

/// A read-only token's endless script no longer holds Redis: past the
/// request timeout the gateway kills it (it wrote nothing), and every
/// client is served again within timeout + 1 s. `--read-only-scripts deny`
/// refuses such scripts outright.
#[test]
fn a_read_only_script_that_outruns_its_request_is_killed() {
    let r = Redis::start();
    // Redis takes SCRIPT KILL once a script has run this long.
    r.conn()
        .call(&["CONFIG", "SET", "busy-reply-threshold", "300"])
        .unwrap();
    let g = Gateway::with_tokens(&r.url(), &["--request-timeout-ms", "700"]);
    let read_only = (
        "authorization",
        format!("Bearer {}", testkit::gateway::RO_TOKEN),
    );
    let endless = br#"["EVAL_RO","local i=0 while true do i=i+1 end","0"]"#;
    let started = Instant::now();
    let res = g.request("POST", "/", std::slice::from_ref(&read_only), endless);
    assert_eq!(res.status, 504);
    // Served again soon after the timeout.
    let deadline = started + Duration::from_millis(700 + 1_000);
    loop {
        let ping = g.post("/", r#"["INCR","after"]"#);
        if ping.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still blocked: {} {}",
            ping.status,
            ping.text()
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert!(
        started.elapsed() < Duration::from_millis(1_700),
        "{:?}",
        started.elapsed()
    );

    let strict = Gateway::with_tokens(&r.url(), &["--read-only-scripts", "deny"]);
    let refused = strict.request("POST", "/", &[read_only], br#"["EVAL_RO","return 1","0"]"#);
    assert_eq!(refused.status, 403, "{}", refused.text());
}

/// `/metrics` (with a token) counts requests by route and status, their
/// latency and failures; a 5xx is logged with its reason, never a secret.
#[test]
fn metrics_and_the_reason_of_every_5xx() {
    let mut r = Redis::start();
    let g = Gateway::with_tokens(&r.url(), &["--request-timeout-ms", "1000"]);
    for _ in 0..3 {
        assert_eq!(g.post("/", r#"["INCR","seen"]"#).status, 200);
    }
    assert_eq!(g.post("/pipeline", r#"[["PING"],["PING"]]"#).status, 200);
    assert_eq!(g.request("POST", "/", &[], br#"["PING"]"#).status, 401);
    assert_eq!(
        g.request("GET", "/metrics", &[], b"").status,
        401,
        "a token is needed"
    );
    r.stop();
    assert_eq!(g.post("/", r#"["INCR","seen"]"#).status, 503);

    let scrape = g.request("GET", "/metrics", &[auth()], b"");
    assert_eq!(scrape.status, 200);
    let text = scrape.text();
    for line in [
        r#"edgelimit_gateway_requests_total{route="command",status="200"} 3"#,
        r#"edgelimit_gateway_requests_total{route="pipeline",status="200"} 1"#,
        r#"edgelimit_gateway_requests_total{route="command",status="401"} 1"#,
        r#"edgelimit_gateway_requests_total{route="command",status="503"} 1"#,
        r#"edgelimit_gateway_failures_total{kind="unavailable"} 1"#,
        "# TYPE edgelimit_gateway_request_duration_seconds histogram",
        "edgelimit_gateway_request_duration_seconds_count ",
        "edgelimit_gateway_connections_open ",
        "edgelimit_gateway_scripts_cached 0",
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    let log = std::fs::read_to_string(&g.log).unwrap();
    let failed = log
        .lines()
        .find(|l| l.contains("request failed"))
        .unwrap_or_default();
    assert!(
        failed.contains("status=503") && failed.contains("reason="),
        "{log}"
    );
    assert!(
        !log.contains(TOKEN) && !log.contains("seen"),
        "no token, no key in the logs"
    );
}
