//! Lua scripts with Upstash-only shebang flags, addressed by the SHA-1 of
//! their original text, across script-cache loss.

use serde_json::json;
use sha1::{Digest, Sha1};
use testkit::gateway::Gateway;
use testkit::redis::Redis;

const SCRIPT: &str = "#!lua flags=allow-key-locking\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])";

fn sha(s: &str) -> String {
    Sha1::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn body(args: &[&str]) -> String {
    serde_json::to_string(args).unwrap()
}

#[test]
fn plain_redis_rejects_the_flag_but_the_gateway_runs_it() {
    let r = Redis::start();
    let g = Gateway::with_tokens(&r.url(), &[]);
    assert!(r
        .cli(&["EVAL", SCRIPT, "1", "k", "1"])
        .contains("Unexpected flag"));
    let res = g.post("/", &body(&["EVAL", SCRIPT, "1", "k", "2"]));
    assert_eq!(res.json(), json!({"result": 2}));
    // Known flags are kept: a no-writes script still cannot write.
    let ro = "#!lua flags=allow-key-locking,no-writes\nreturn redis.call('SET', KEYS[1], 'x')";
    let res = g.post("/", &body(&["EVAL", ro, "1", "k"]));
    assert_eq!(res.status, 400);
    assert!(res.json()["error"]
        .as_str()
        .unwrap()
        .contains("Write commands are not allowed"));
    // A plain script is passed through untouched.
    let res = g.post("/", &body(&["EVAL", "return ARGV[1]", "0", "hi"]));
    assert_eq!(res.json(), json!({"result": "hi"}));
}

#[test]
fn script_load_and_evalsha_use_the_original_sha() {
    let r = Redis::start();
    let g = Gateway::with_tokens(&r.url(), &[]);
    let orig = sha(SCRIPT);
    let res = g.post("/", &body(&["SCRIPT", "LOAD", SCRIPT]));
    assert_eq!(res.json(), json!({"result": orig}));
    let res = g.post(
        "/",
        &body(&[
            "SCRIPT",
            "EXISTS",
            &orig,
            "0000000000000000000000000000000000000000",
        ]),
    );
    assert_eq!(res.json(), json!({"result": [1, 0]}));
    let res = g.post("/", &body(&["EVALSHA", &orig, "1", "k", "5"]));
    assert_eq!(res.json(), json!({"result": 5}));
    // Upper-case SHA, pipeline and transaction forms.
    let res = g.post(
        "/",
        &body(&["EVALSHA", &orig.to_uppercase(), "1", "k", "1"]),
    );
    assert_eq!(res.json(), json!({"result": 6}));
    let p = format!(r#"[["EVALSHA","{orig}","1","k","1"],["GET","k"]]"#);
    assert_eq!(
        g.post("/pipeline", &p).json(),
        json!([{"result": 7}, {"result": "7"}])
    );
    assert_eq!(
        g.post("/multi-exec", &p).json(),
        json!([{"result": 8}, {"result": "8"}])
    );
}

#[test]
fn evalsha_survives_script_cache_loss() {
    let mut r = Redis::start();
    let g = Gateway::with_tokens(&r.url(), &[]);
    let orig = sha(SCRIPT);
    assert_eq!(g.post("/", &body(&["SCRIPT", "LOAD", SCRIPT])).status, 200);

    // Redis restarts: its script cache is empty, the gateway still knows the
    // text and re-sends it.
    r.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let res = loop {
        let res = g.post("/", &body(&["EVALSHA", &orig, "1", "k", "3"]));
        if res.status != 503 || std::time::Instant::now() > deadline {
            break res;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(res.json(), json!({"result": 3}));

    // Cache flushed behind the gateway's back: same recovery, in a pipeline.
    r.cli(&["SCRIPT", "FLUSH"]);
    let p = format!(
        r#"[["GET","k"],["EVALSHA","{orig}","1","k","1"],["EVALSHA","{orig}","1","k","1"]]"#
    );
    let v = g.post("/pipeline", &p).json();
    assert_eq!(v, json!([{"result": "3"}, {"result": 4}, {"result": 5}]));
}

#[test]
fn unknown_sha_is_noscript_and_flush_forgets() {
    let r = Redis::start();
    let g = Gateway::with_tokens(&r.url(), &[]);
    let res = g.post("/", &body(&["EVALSHA", &sha("return 1"), "0"]));
    assert_eq!(res.status, 400);
    assert!(res.json()["error"]
        .as_str()
        .unwrap()
        .starts_with("NOSCRIPT"));

    // The client recovery path: EVALSHA fails, EVAL succeeds, EVALSHA works.
    let orig = sha(SCRIPT);
    assert_eq!(
        g.post("/", &body(&["EVALSHA", &orig, "1", "k", "1"]))
            .status,
        400
    );
    assert_eq!(
        g.post("/", &body(&["EVAL", SCRIPT, "1", "k", "1"])).json(),
        json!({"result": 1})
    );
    assert_eq!(
        g.post("/", &body(&["EVALSHA", &orig, "1", "k", "1"]))
            .json(),
        json!({"result": 2})
    );

    // SCRIPT FLUSH through the gateway behaves as on Redis.
    assert_eq!(
        g.post("/", r#"["SCRIPT","FLUSH"]"#).json(),
        json!({"result": "OK"})
    );
    let res = g.post("/", &body(&["EVALSHA", &orig, "1", "k", "1"]));
    assert!(res.json()["error"]
        .as_str()
        .unwrap()
        .starts_with("NOSCRIPT"));
    let res = g.post("/", &body(&["SCRIPT", "EXISTS", &orig]));
    assert_eq!(res.json(), json!({"result": [0]}));
}
