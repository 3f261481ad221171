//! REST calls driven by hand, as js/transport.js drives them: calls added to
//! a batch, the body to POST, then each canned HTTP reply or transport
//! failure, and per call the status that says what to do next.

use edgelimit::wasm::{
    WasmAlgorithm, WasmConcurrency, WasmMemoryStore, WasmRateLimiter, WasmRestBatch, WasmRestCall,
    WasmRestStore,
};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::wasm_bindgen_test;

use crate::support::{error_code, slots, taken_code, words, write_id};

// Statuses of `receiveFrom` besides 1, 0 and -1.
const SEND_AGAIN: i32 = 2;
const RETRY_LATER: i32 = 3;
// Kinds of `fail`.
const TIMED_OUT: u8 = 0;
const REFUSED: u8 = 1;

const NOSCRIPT: &str = r#"{"error":"NOSCRIPT No matching script. Please use EVAL."}"#;

/// 3 per second in a fixed window, on a REST store with the caller's clock
/// (so the time is in the body), no deny cache, and `failure` as the
/// failure policy.
fn limiter(failure: u8) -> WasmRateLimiter {
    let algorithm = WasmAlgorithm::fixed_window(3.0, "1 s".into()).unwrap();
    let store = WasmRestStore::new(2_000.0, 2.0, true, 0.0).unwrap();
    WasmRateLimiter::with_rest(&algorithm, &store, "r:".into(), failure, None, None).unwrap()
}

fn consume(failure: u8) -> WasmRestCall {
    limiter(failure)
        .rest_call(write_id(b"alice"), 1.0, 1_500.0, false)
        .unwrap()
        .expect("a call to send")
}

/// `call` alone in a batch, as it must be sent now.
fn alone(call: &WasmRestCall) -> WasmRestBatch {
    let mut batch = WasmRestBatch::new(true);
    batch.add(call);
    batch
}

/// The body `call` alone would be sent with.
fn body(call: &WasmRestCall) -> String {
    alone(call).body()
}

/// Sends `call` alone; the HTTP reply `status`, `text` comes back.
fn receive(call: &mut WasmRestCall, status: u16, text: &str) -> i32 {
    let mut batch = alone(call);
    batch.receive(status, text);
    call.receive_from(&mut batch, 0)
}

/// Sends `call` alone; the request fails with `kind`.
fn fail(call: &mut WasmRestCall, kind: u8, message: &str) -> i32 {
    let mut batch = alone(call);
    batch.fail(kind, message.into(), call.timeout_ms());
    call.receive_from(&mut batch, 0)
}

#[wasm_bindgen_test]
fn evalsha_then_eval_on_noscript_then_the_decision() {
    let mut call = consume(0);
    assert_eq!(call.timeout_ms(), 2_000.0);
    // EVALSHA sha 1 {key} now cost peek limit window.
    let first = words(&body(&call));
    assert_eq!(first[0], "EVALSHA");
    assert_eq!(
        first[2..],
        ["1", "r:fw:1000:{alice}", "1500", "1", "0", "3", "1000"]
    );
    let sha = first[1].clone();

    assert_eq!(receive(&mut call, 400, NOSCRIPT), SEND_AGAIN);
    let second = words(&body(&call));
    assert_eq!(second[0], "EVAL");
    assert_eq!(second[2..], first[2..], "the same key and arguments");
    let code = &second[1];
    assert!(
        code.starts_with("-- edgelimit fixed_window\n"),
        "{code:.40}"
    );
    assert_eq!(sha1_smol::Sha1::from(code).digest().to_string(), sha);

    // The script's reply: allowed, remaining, reset, retry after, now.
    assert_eq!(
        receive(&mut call, 200, r#"{"result":[1,2,2000,0,1500]}"#),
        1
    );
    assert_eq!(slots(), [3.0, 2.0, 2_000.0, 0.0, 0.0, 0.0]);
}

#[wasm_bindgen_test]
fn a_denial_is_data() {
    let mut call = consume(0);
    assert_eq!(
        receive(&mut call, 200, r#"{"result":[0,0,2000,300,1700]}"#),
        0
    );
    assert_eq!(slots(), [3.0, 0.0, 2_000.0, 300.0, 0.0, 0.0]);
}

#[wasm_bindgen_test]
fn a_refused_connection_is_retried_later_then_reported() {
    let mut call = consume(0);
    // Exponential backoff from 50 ms with full jitter: [25, 50], then [50, 100].
    assert_eq!(
        fail(&mut call, REFUSED, "connect ECONNREFUSED 127.0.0.1:1"),
        RETRY_LATER
    );
    let first = call.delay_ms();
    assert!((25.0..=50.0).contains(&first), "{first}");
    assert_eq!(
        fail(&mut call, REFUSED, "connect ECONNREFUSED 127.0.0.1:1"),
        RETRY_LATER
    );
    let second = call.delay_ms();
    assert!((50.0..=100.0).contains(&second), "{second}");
    // Two retries, then the error.
    assert_eq!(
        fail(&mut call, REFUSED, "connect ECONNREFUSED 127.0.0.1:1"),
        -1
    );
    assert_eq!(taken_code(), "STORE_UNREACHABLE");
    // After a retry the body is the same EVALSHA.
    assert_eq!(words(&body(&call))[0], "EVALSHA");
}

#[wasm_bindgen_test]
fn a_timeout_retries_reads_but_never_a_consuming_call() {
    let mut call = consume(0);
    assert_eq!(
        fail(&mut call, TIMED_OUT, "timed out"),
        -1,
        "it may have consumed"
    );
    assert_eq!(taken_code(), "STORE_TIMEOUT");
    let mut peek = limiter(0)
        .rest_call(write_id(b"alice"), 0.0, 1_500.0, true)
        .unwrap()
        .unwrap();
    assert_eq!(words(&body(&peek))[4..], ["1500", "0", "1", "3", "1000"]);
    assert_eq!(fail(&mut peek, TIMED_OUT, "timed out"), RETRY_LATER);
    assert_eq!(
        receive(&mut peek, 200, r#"{"result":[1,3,1500,0,1500]}"#),
        1
    );
    assert_eq!(slots(), [3.0, 3.0, 1_500.0, 0.0, 0.0, 0.0]);
}

#[wasm_bindgen_test]
fn store_errors_have_codes() {
    let cases = [
        (401, r#"{"error":"Unauthorized"}"#, "STORE_UNAUTHORIZED"),
        (403, "forbidden", "STORE_FORBIDDEN"),
        (
            403,
            r#"{"error":"ERR command not allowed: FLUSHALL"}"#,
            "STORE_FORBIDDEN",
        ),
        (404, "Not Found", "STORE_NOT_FOUND"),
        (
            400,
            r#"{"error":"ERR wrong number of arguments"}"#,
            "STORE_COMMAND",
        ),
        (
            400,
            r#"{"error":"ERR unknown command 'nowhere'"}"#,
            "STORE_NOT_FOUND",
        ),
        (200, r#"{"result":"OK"}"#, "STORE_MALFORMED_REPLY"),
        (
            200,
            r#"{"result":[1,4,2000,0,1500]}"#,
            "STORE_MALFORMED_REPLY",
        ),
        (200, "not json", "STORE_MALFORMED_REPLY"),
        (502, "<html>bad gateway</html>", "STORE_UNAVAILABLE"),
    ];
    for (status, text, code) in cases {
        let mut call = consume(0);
        assert_eq!(receive(&mut call, status, text), -1, "{status} {text}");
        assert_eq!(taken_code(), code, "{status} {text}");
    }
    // NOSCRIPT after EVAL means the server cannot run the script at all.
    let mut call = consume(0);
    assert_eq!(receive(&mut call, 400, NOSCRIPT), SEND_AGAIN);
    assert_eq!(receive(&mut call, 400, NOSCRIPT), -1);
    assert_eq!(taken_code(), "STORE_MALFORMED_REPLY");
}

#[wasm_bindgen_test]
fn failure_policies_decide_instead_of_failing() {
    // Open: admitted, flagged as a store failure, nothing known remains.
    let mut open = consume(1);
    assert_eq!(receive(&mut open, 503, "Service Unavailable"), 1);
    assert_eq!(slots(), [3.0, 0.0, 1_500.0, 0.0, 1.0, 0.0]);
    // Closed: denied, retry in a second.
    let mut closed = consume(2);
    assert_eq!(receive(&mut closed, 503, "Service Unavailable"), 0);
    assert_eq!(slots(), [3.0, 0.0, 1_500.0, 1_000.0, 1.0, 0.0]);
}

#[wasm_bindgen_test]
fn misconfiguration_is_raised_whatever_the_policy() {
    for policy in [1, 2] {
        for (status, text, code) in [
            (401, r#"{"error":"Unauthorized"}"#, "STORE_UNAUTHORIZED"),
            (
                403,
                r#"{"error":"ERR command not allowed"}"#,
                "STORE_FORBIDDEN",
            ),
            (404, "Not Found", "STORE_NOT_FOUND"),
        ] {
            let mut call = consume(policy);
            assert_eq!(receive(&mut call, status, text), -1, "{policy} {status}");
            assert_eq!(taken_code(), code);
        }
    }
}

#[wasm_bindgen_test]
fn a_huge_error_reply_makes_a_short_message() {
    let mut call = consume(0);
    let reply = format!(r#"{{"error":"ERR {}"}}"#, "x".repeat(1 << 20));
    assert_eq!(receive(&mut call, 400, &reply), -1);
    let error = edgelimit::wasm::take_error();
    let message = js_sys::Reflect::get(&error, &"message".into())
        .unwrap()
        .as_string()
        .unwrap();
    assert!(message.len() < 400, "{} bytes", message.len());
}

#[wasm_bindgen_test]
fn redis_time_leaves_the_time_argument_empty() {
    let algorithm = WasmAlgorithm::gcra(10.0, "1 s".into(), Some(2.0)).unwrap();
    let store = WasmRestStore::new(2_000.0, 2.0, false, 0.0).unwrap();
    let rl =
        WasmRateLimiter::with_rest(&algorithm, &store, "g:".into(), 0, Some(250.0), None).unwrap();
    let call = rl
        .rest_call(write_id(b"k"), 2.0, 1_500.0, false)
        .unwrap()
        .unwrap();
    assert_eq!(
        call.timeout_ms(),
        250.0,
        "the limiter's timeout overrides the store's"
    );
    // now, cost, peek, rate, period, burst.
    assert_eq!(
        words(&body(&call))[3..],
        ["g:gcra:1000/10:{k}", "", "2", "0", "10", "1000", "2"]
    );
    assert_eq!(
        error_code(rl.rest_call(write_id(b"k"), 3.0, 0.0, false)),
        "COST_EXCEEDS_LIMIT"
    );
}

#[wasm_bindgen_test]
fn remove_is_a_del() {
    let mut call = limiter(0).rest_remove("alice").unwrap().unwrap();
    assert_eq!(words(&body(&call)), ["DEL", "r:fw:1000:{alice}"]);
    assert_eq!(receive(&mut call, 200, r#"{"result":0}"#), 1);
}

#[wasm_bindgen_test]
fn lease_calls_carry_the_operation_and_read_the_expiry() {
    let store = WasmRestStore::new(2_000.0, 2.0, true, 0.0).unwrap();
    let c = WasmConcurrency::with_rest(2.0, "10 s".into(), &store, "c:".into(), 0, None).unwrap();
    let mut call = c
        .rest_call(
            "job",
            0,
            "7",
            JsValue::UNDEFINED,
            1_000.0,
            0.0,
            0.0,
            0.0,
            0.0,
        )
        .unwrap()
        .unwrap();
    // now, op, lease id, ttl (0: the configured one), max, lease.
    assert_eq!(
        words(&body(&call))[3..],
        ["c:sem:{job}", "1000", "acquire", "7", "0", "2", "10000"]
    );
    // allowed, decision allowed, free, reset, retry after, now, expiry,
    // a waiter's number.
    assert_eq!(
        receive(&mut call, 200, r#"{"result":[1,1,1,11000,0,1000,11000,0]}"#),
        1
    );
    assert_eq!(slots(), [2.0, 1.0, 11_000.0, 0.0, 0.0, 11_000.0]);
}

#[wasm_bindgen_test]
fn stores_refuse_the_other_kind_of_call() {
    let mut rest = limiter(0);
    assert_eq!(rest.decide(0, 1.0, 0.0, false), -1);
    assert_eq!(taken_code(), "UNSUPPORTED");
    assert_eq!(rest.remove(0), -1);
    assert_eq!(taken_code(), "UNSUPPORTED");
    let algorithm = WasmAlgorithm::fixed_window(3.0, "1 s".into()).unwrap();
    let memory = WasmMemoryStore::new(None, None).unwrap();
    rest = WasmRateLimiter::with_memory(&algorithm, &memory, "m:".into());
    assert_eq!(
        error_code(rest.rest_call(write_id(b"k"), 1.0, 0.0, false)),
        "UNSUPPORTED"
    );
}

#[wasm_bindgen_test]
fn calls_in_one_batch_share_one_script_call_and_each_reads_its_reply() {
    let rl = limiter(0);
    let mut a = rl
        .rest_call(write_id(b"a"), 1.0, 1_500.0, false)
        .unwrap()
        .unwrap();
    let mut b = rl
        .rest_call(write_id(b"b"), 1.0, 1_500.0, false)
        .unwrap()
        .unwrap();
    let mut batch = WasmRestBatch::new(true);
    batch.add(&a);
    batch.add(&b);
    assert_eq!(batch.path(), "");
    let sent = words(&batch.body());
    assert_eq!(sent[0], "EVALSHA");
    // Two keys, then per call: script number, argument count, arguments;
    // `b`'s are `a`'s again, so only 0.
    assert_eq!(
        sent[2..],
        [
            "2",
            "r:fw:1000:{a}",
            "r:fw:1000:{b}",
            "1",
            "5",
            "1500",
            "1",
            "0",
            "3",
            "1000",
            "0"
        ]
    );
    batch.receive(200, r#"{"result":[[1,2,2000,0,1500],"WRONGTYPE no"]}"#);
    assert!(!batch.regroup());
    assert_eq!(a.receive_from(&mut batch, 0), 1);
    assert_eq!(slots(), [3.0, 2.0, 2_000.0, 0.0, 0.0, 0.0]);
    assert_eq!(b.receive_from(&mut batch, 1), -1);
    assert_eq!(taken_code(), "STORE_COMMAND");
    // A reply is read once.
    assert_eq!(a.receive_from(&mut batch, 0), -1);
    assert_eq!(taken_code(), "INVALID_ARGUMENT");

    // Redis Cluster refuses keys of different slots: both go again.
    let mut a = rl
        .rest_call(write_id(b"a"), 1.0, 1_500.0, false)
        .unwrap()
        .unwrap();
    let mut b = rl
        .rest_call(write_id(b"b"), 1.0, 1_500.0, false)
        .unwrap()
        .unwrap();
    let mut batch = WasmRestBatch::new(true);
    batch.add(&a);
    batch.add(&b);
    batch.receive(
        400,
        r#"{"error":"CROSSSLOT Keys in request don't hash to the same slot"}"#,
    );
    assert!(batch.regroup());
    assert_eq!(a.receive_from(&mut batch, 0), SEND_AGAIN);
    assert_eq!(b.receive_from(&mut batch, 1), SEND_AGAIN);
    let mut pipeline = WasmRestBatch::new(false);
    pipeline.add(&a);
    pipeline.add(&b);
    assert_eq!(pipeline.path(), "/pipeline");
}

#[wasm_bindgen_test]
fn a_denial_is_remembered_and_answers_later_calls_without_a_request() {
    let algorithm = WasmAlgorithm::fixed_window(3.0, "1 s".into()).unwrap();
    let store = WasmRestStore::new(2_000.0, 2.0, true, 100.0).unwrap();
    let rl = WasmRateLimiter::with_rest(&algorithm, &store, "d:".into(), 0, None, None).unwrap();
    let mut call = rl
        .rest_call(write_id(b"k"), 1.0, 1_500.0, false)
        .unwrap()
        .unwrap();
    // Denied, with the state Redis holds: window start 1000, count 3.
    assert_eq!(
        receive(&mut call, 200, r#"{"result":[0,0,2000,500,1500,1000,3]}"#),
        0
    );
    // Later in the window: answered here, with the numbers Redis would give.
    assert!(rl
        .rest_call(write_id(b"k"), 1.0, 1_800.0, false)
        .unwrap()
        .is_none());
    assert_eq!(slots(), [3.0, 0.0, 2_000.0, 200.0, 0.0, 0.0]);
    // Once the window is over the call goes to Redis.
    assert!(rl
        .rest_call(write_id(b"k"), 1.0, 2_000.0, false)
        .unwrap()
        .is_some());
    // A reset forgets it.
    let mut other = rl
        .rest_call(write_id(b"j"), 1.0, 1_500.0, false)
        .unwrap()
        .unwrap();
    receive(&mut other, 200, r#"{"result":[0,0,2000,500,1500,1000,3]}"#);
    assert!(rl
        .rest_call(write_id(b"j"), 1.0, 1_600.0, false)
        .unwrap()
        .is_none());
    rl.rest_remove("j").unwrap();
    assert!(rl
        .rest_call(write_id(b"j"), 1.0, 1_600.0, false)
        .unwrap()
        .is_some());
}
