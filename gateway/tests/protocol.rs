//! The Upstash REST protocol against a real redis-server.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;
use testkit::gateway::{auth, Gateway, FULL_TOKEN as TOKEN, RO_TOKEN};
use testkit::http::http;
use testkit::redis::Redis;

fn setup() -> (Redis, Gateway) {
    let r = Redis::start();
    let g = Gateway::with_tokens(&r.url(), &["--max-body-bytes", "65536"]);
    (r, g)
}

#[test]
fn single_commands_map_resp_to_json() {
    let (_r, g) = setup();
    let res = g.post("/", r#"["SET","k","v"]"#);
    assert_eq!((res.status, res.json()), (200, json!({"result": "OK"})));
    assert_eq!(g.post("/", r#"["GET","k"]"#).json(), json!({"result": "v"}));
    // Integers are JSON numbers, bulk strings stay strings, nil is null.
    assert_eq!(
        g.post("/", r#"["INCRBY","n",5]"#).json(),
        json!({"result": 5})
    );
    assert_eq!(g.post("/", r#"["GET","n"]"#).json(), json!({"result": "5"}));
    assert_eq!(
        g.post("/", r#"["GET","missing"]"#).json(),
        json!({"result": null})
    );
    g.post("/", r#"["RPUSH","l","a","b"]"#);
    assert_eq!(
        g.post("/", r#"["LRANGE","l",0,-1]"#).json(),
        json!({"result": ["a","b"]})
    );
    // Numbers are sent as their literal text.
    g.post("/", r#"["ZADD","z",1.5,"m"]"#);
    assert_eq!(
        g.post("/", r#"["ZRANGE","z",0,-1,"WITHSCORES"]"#).json(),
        json!({"result": ["m","1.5"]})
    );
    // Nested arrays.
    let res = g.post("/", r#"["EVAL","return {1,{'a',{2}},false}","0"]"#);
    assert_eq!(res.json(), json!({"result": [1, ["a", [2]], null]}));
}

#[test]
fn command_errors_are_400_json() {
    let (_r, g) = setup();
    let res = g.post("/", r#"["NOSUCHCOMMAND","x"]"#);
    assert_eq!(res.status, 400);
    assert!(res.json()["error"]
        .as_str()
        .unwrap()
        .starts_with("ERR unknown command"));
    g.post("/", r#"["SET","s","x"]"#);
    let res = g.post("/", r#"["INCR","s"]"#);
    assert_eq!(res.status, 400);
    assert_eq!(
        res.json(),
        json!({"error": "ERR value is not an integer or out of range"})
    );
}

#[test]
fn malformed_requests_are_400_json() {
    let (_r, g) = setup();
    for body in [
        "{not json",
        "",
        r#"{"a":1}"#,
        "[]",
        r#"["GET",null]"#,
        r#"["GET",["x"]]"#,
        "[[[[[[[[[[1]]]]]]]]]]",
    ] {
        let res = g.post("/", body);
        assert_eq!(res.status, 400, "body {body:?}");
        assert!(res.json()["error"].is_string(), "body {body:?}");
    }
    for body in ["[]", r#"["GET","a"]"#, r#"[["GET","a"], 5]"#, "nope"] {
        let res = g.post("/pipeline", body);
        assert_eq!(res.status, 400, "body {body:?}");
        assert!(res.json()["error"].is_string());
    }
    // Non-UTF-8 JSON bytes.
    let res = g.request("POST", "/", &[auth()], b"[\"GET\",\"\xff\"]");
    assert_eq!(res.status, 400);
}

#[test]
fn pipeline_keeps_order_and_per_command_errors() {
    let (_r, g) = setup();
    let res = g.post(
        "/pipeline",
        r#"[["SET","a","1"],["INCR","a"],["HSET","h","f","v"],["INCR","h"],["NOPE"],["GET","a"],["GET","zz"]]"#,
    );
    assert_eq!(res.status, 200);
    let v = res.json();
    assert_eq!(v[0], json!({"result": "OK"}));
    assert_eq!(v[1], json!({"result": 2}));
    assert_eq!(v[2], json!({"result": 1}));
    assert!(v[3]["error"].as_str().unwrap().starts_with("WRONGTYPE"));
    assert!(v[4]["error"]
        .as_str()
        .unwrap()
        .starts_with("ERR unknown command"));
    assert_eq!(v[5], json!({"result": "2"}));
    assert_eq!(v[6], json!({"result": null}));
    assert_eq!(v.as_array().unwrap().len(), 7);
}

#[test]
fn multi_exec_is_atomic_and_reports_errors() {
    let (r, g) = setup();
    let res = g.post(
        "/multi-exec",
        r#"[["SET","m","1"],["INCR","m"],["LPUSH","m","x"],["GET","m"]]"#,
    );
    assert_eq!(res.status, 200);
    let v = res.json();
    assert_eq!(v[0], json!({"result": "OK"}));
    assert_eq!(v[1], json!({"result": 2}));
    assert!(v[2]["error"].as_str().unwrap().starts_with("WRONGTYPE"));
    assert_eq!(v[3], json!({"result": "2"}));

    // A command that cannot be queued aborts the whole transaction.
    let res = g.post("/multi-exec", r#"[["SET","m","9"],["NOPE"]]"#);
    assert_eq!(res.status, 400);
    assert!(res.json()["error"]
        .as_str()
        .unwrap()
        .starts_with("EXECABORT"));
    assert_eq!(r.cli(&["GET", "m"]), "2");

    // Nested MULTI is refused before anything runs.
    let res = g.post("/multi-exec", r#"[["SET","m","9"],["MULTI"]]"#);
    assert_eq!(res.status, 400);
    assert_eq!(r.cli(&["GET", "m"]), "2");

    // Concurrent transactions never interleave: each sees its own pair.
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let port = g.port;
            std::thread::spawn(move || {
                let body = format!(r#"[["SET","t{i}","{i}"],["INCR","counter"],["GET","t{i}"]]"#);
                let res = http(port, "POST", "/multi-exec", &[auth()], body.as_bytes());
                assert_eq!(res.json()[2], json!({"result": i.to_string()}));
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(r.cli(&["GET", "counter"]), "8");
}

#[test]
fn path_style_commands() {
    let (_r, g) = setup();
    assert_eq!(g.get("/set/p/hello").json(), json!({"result": "OK"}));
    assert_eq!(g.get("/get/p").json(), json!({"result": "hello"}));
    // Percent-decoding, and a POST body appended as the last argument.
    assert_eq!(g.get("/set/sp%20ace/a%2Fb").json(), json!({"result": "OK"}));
    assert_eq!(g.get("/get/sp%20ace").json(), json!({"result": "a/b"}));
    let res = g.request("POST", "/set/body", &[auth()], b"{\"json\": [1, 2]}");
    assert_eq!(res.json(), json!({"result": "OK"}));
    assert_eq!(
        g.get("/get/body").json(),
        json!({"result": "{\"json\": [1, 2]}"})
    );
    assert_eq!(g.get("/incrby/c/3").json(), json!({"result": 3}));
    assert_eq!(g.get("/nosuchcmd/x").status, 400);
}

#[test]
fn auth_is_required() {
    let (r, g) = setup();
    for headers in [
        vec![],
        vec![("Authorization", "Bearer wrong".to_string())],
        vec![("Authorization", format!("Basic {TOKEN}"))],
        vec![("Authorization", format!("Bearer {TOKEN}x"))],
    ] {
        let res = g.request("POST", "/", &headers, br#"["SET","x","1"]"#);
        assert_eq!(res.status, 401);
        assert_eq!(res.json(), json!({"error": "Unauthorized"}));
    }
    assert_eq!(g.request("GET", "/get/x?_token=nope", &[], b"").status, 401);
    assert_eq!(
        g.request("POST", "/pipeline", &[], b"[[\"GET\",\"x\"]]")
            .status,
        401
    );
    assert_eq!(r.cli(&["EXISTS", "x"]), "0");

    let path = format!("/set/x/1?_token={TOKEN}");
    assert_eq!(
        g.request("GET", &path, &[], b"").json(),
        json!({"result": "OK"})
    );
    let lower = ("authorization", format!("bearer {TOKEN}"));
    assert_eq!(g.request("GET", "/get/x", &[lower], b"").status, 200);
}

#[test]
fn read_only_tokens_cannot_write() {
    let (r, g) = setup();
    r.cli(&["SET", "ro", "1"]);
    let ro = ("Authorization", format!("Bearer {RO_TOKEN}"));
    let res = g.request("POST", "/", std::slice::from_ref(&ro), br#"["GET","ro"]"#);
    assert_eq!(res.json(), json!({"result": "1"}));
    for (path, body) in [
        ("/", r#"["SET","ro","2"]"#),
        ("/", r#"["EVAL","return redis.call('SET','ro','2')","0"]"#),
        ("/", r#"["FLUSHALL"]"#),
        ("/pipeline", r#"[["GET","ro"],["INCR","ro"]]"#),
        ("/multi-exec", r#"[["INCR","ro"]]"#),
    ] {
        let res = g.request("POST", path, std::slice::from_ref(&ro), body.as_bytes());
        assert_eq!(res.status, 403, "{path} {body}");
        assert!(res.json()["error"].as_str().unwrap().starts_with("NOPERM"));
    }
    let res = g.request("GET", &format!("/incr/ro?_token={RO_TOKEN}"), &[], b"");
    assert_eq!(res.status, 403);
    assert_eq!(r.cli(&["GET", "ro"]), "1");
    let res = g.request(
        "POST",
        "/",
        &[ro],
        br#"["EVAL_RO","return redis.call('GET','ro')","1","ro"]"#,
    );
    assert_eq!(res.json(), json!({"result": "1"}));
}

#[test]
fn base64_encoding_covers_every_string() {
    let (_r, g) = setup();
    assert_eq!(
        g.post64("/", r#"["SET","b","hello"]"#).json(),
        json!({"result": "OK"})
    );
    assert_eq!(
        g.post64("/", r#"["GET","b"]"#).json(),
        json!({"result": "aGVsbG8="})
    );
    assert_eq!(
        g.post64("/", r#"["PING"]"#).json(),
        json!({"result": "UE9ORw=="})
    );
    assert_eq!(
        g.post64("/", r#"["TYPE","b"]"#).json(),
        json!({"result": "c3RyaW5n"})
    );
    assert_eq!(
        g.post64("/", r#"["STRLEN","b"]"#).json(),
        json!({"result": 5})
    );
    // A stored value "OK" is a bulk string, so it is encoded.
    g.post("/", r#"["SET","okv","OK"]"#);
    assert_eq!(
        g.post64("/", r#"["GET","okv"]"#).json(),
        json!({"result": "T0s="})
    );
    let v = g
        .post64(
            "/pipeline",
            r#"[["HSET","hh","f","v"],["HGETALL","hh"],["GET","none"]]"#,
        )
        .json();
    assert_eq!(
        v,
        json!([{"result": 1}, {"result": ["Zg==", "dg=="]}, {"result": null}])
    );
    let res = g.post64("/", r#"["INCR","b"]"#);
    assert_eq!(
        res.json(),
        json!({"error": "ERR value is not an integer or out of range"})
    );
}

#[test]
fn binary_values_survive_with_base64() {
    let (_r, g) = setup();
    let bytes: Vec<u8> = (0..=255u8).collect();
    let res = g.request("POST", "/set/bin", &[auth()], &bytes);
    assert_eq!(res.json(), json!({"result": "OK"}));
    let res = g.post64("/", r#"["GET","bin"]"#);
    let got = STANDARD
        .decode(res.json()["result"].as_str().unwrap())
        .unwrap();
    assert_eq!(got, bytes);
    // Binary keys in path segments too.
    let res = g.request("POST", "/set/%00%FF%FE", &[auth()], b"\xc3\x28");
    assert_eq!(res.status, 200);
    let res = g.request(
        "GET",
        "/get/%00%FF%FE",
        &[auth(), ("Upstash-Encoding", "base64".into())],
        b"",
    );
    assert_eq!(
        STANDARD
            .decode(res.json()["result"].as_str().unwrap())
            .unwrap(),
        b"\xc3\x28"
    );
    // Without base64, invalid UTF-8 is replaced (documented behaviour).
    assert_eq!(
        g.get("/get/%00%FF%FE").json(),
        json!({"result": "\u{fffd}("})
    );
}

#[test]
fn wrong_methods_are_405() {
    let (_r, g) = setup();
    for (m, p) in [
        ("GET", "/pipeline"),
        ("GET", "/multi-exec"),
        ("GET", "/"),
        ("PUT", "/"),
        ("DELETE", "/get/a"),
        ("PATCH", "/set/a/b"),
        ("POST", "/healthz"),
    ] {
        let res = g.request(m, p, &[auth()], b"");
        assert_eq!(res.status, 405, "{m} {p}");
        assert_eq!(res.json(), json!({"error": "Method not allowed"}));
    }
}

#[test]
fn oversize_bodies_are_413() {
    let (r, g) = setup();
    let big = format!(r#"["SET","big","{}"]"#, "a".repeat(70_000));
    let res = g.post("/", &big);
    assert_eq!(res.status, 413);
    assert!(res.json()["error"].as_str().unwrap().contains("too large"));
    let res = g.request("POST", "/set/big", &[auth()], &vec![b'x'; 70_000]);
    assert_eq!(res.status, 413);
    assert_eq!(r.cli(&["EXISTS", "big"]), "0");
    // Just under the limit is fine.
    let ok = format!(r#"["SET","big","{}"]"#, "a".repeat(60_000));
    assert_eq!(g.post("/", &ok).status, 200);
}

#[test]
fn unsupported_commands_are_refused() {
    let (_r, g) = setup();
    for body in [
        r#"["SUBSCRIBE","c"]"#,
        r#"["BLPOP","l","0"]"#,
        r#"["SELECT","1"]"#,
        r#"["MULTI"]"#,
    ] {
        let res = g.post("/", body);
        assert_eq!(res.status, 400, "{body}");
        assert!(res.json()["error"]
            .as_str()
            .unwrap()
            .contains("not supported"));
    }
    // The connection is still healthy afterwards.
    assert_eq!(g.post("/", r#"["PING"]"#).json(), json!({"result": "PONG"}));
}

#[test]
fn allow_list_limits_commands() {
    let r = Redis::start();
    let g = Gateway::with_tokens(&r.url(), &["--allow-command", "get,evalsha,script|load"]);
    assert_eq!(g.post("/", r#"["GET","a"]"#).status, 200);
    assert_eq!(g.post("/", r#"["SCRIPT","LOAD","return 1"]"#).status, 200);
    for body in [
        r#"["SET","a","1"]"#,
        r#"["SCRIPT","FLUSH"]"#,
        r#"["EVAL","return 1","0"]"#,
    ] {
        let res = g.post("/", body);
        assert_eq!(res.status, 403, "{body}");
    }
    let res = g.post("/pipeline", r#"[["GET","a"],["DEL","a"]]"#);
    assert_eq!(res.status, 403);
}

#[test]
fn healthz_reports_redis_state() {
    let mut r = Redis::start();
    let g = Gateway::with_tokens(&r.url(), &[]);
    let res = g.request("GET", "/healthz", &[], b"");
    assert_eq!((res.status, res.json()), (200, json!({"status": "ok"})));
    r.stop();
    let res = g.request("GET", "/healthz", &[], b"");
    assert_eq!(res.status, 503);
    assert_eq!(res.json()["status"], "unavailable");
}
