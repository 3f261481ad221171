//! The memory store's hot path: the id in the key buffer, one `decide`
//! call, the decision in the output slots; exact numbers at injected times.

use edgelimit::wasm::{
    key_buffer, key_buffer_length, WasmAlgorithm, WasmMemoryStore, WasmRateLimiter,
};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::wasm_bindgen_test;

use crate::support::{decide, slots, taken_code, write_id};

fn limiter(algorithm: &WasmAlgorithm, store: &WasmMemoryStore, prefix: &str) -> WasmRateLimiter {
    WasmRateLimiter::with_memory(algorithm, store, prefix.into())
}

fn fixed(limit: f64, window: &str) -> WasmAlgorithm {
    WasmAlgorithm::fixed_window(limit, JsValue::from_str(window)).unwrap()
}

#[wasm_bindgen_test]
fn fixed_window_decisions_are_exact() {
    let store = WasmMemoryStore::new(None, None).unwrap();
    let rl = limiter(&fixed(3.0, "1 s"), &store, "fw:");
    // Slots: limit, remaining, reset, retry after, store failure, expiry.
    assert_eq!(
        decide(&rl, "alice", 1.0, 1_500.0, false),
        (1, [3.0, 2.0, 2_000.0, 0.0, 0.0, 0.0])
    );
    assert_eq!(
        decide(&rl, "alice", 2.0, 1_600.0, false),
        (1, [3.0, 0.0, 2_000.0, 0.0, 0.0, 0.0])
    );
    // Denied: retry when the window ends, 300 ms later.
    assert_eq!(
        decide(&rl, "alice", 1.0, 1_700.0, false),
        (0, [3.0, 0.0, 2_000.0, 300.0, 0.0, 0.0])
    );
    assert_eq!(
        decide(&rl, "alice", 1.0, 1_999.0, false),
        (0, [3.0, 0.0, 2_000.0, 1.0, 0.0, 0.0])
    );
    // Another id, and the same id in another limiter's prefix, start afresh.
    assert_eq!(decide(&rl, "bob", 1.0, 1_999.0, false).1[1], 2.0);
    let other = limiter(&fixed(3.0, "1 s"), &store, "other:");
    assert_eq!(decide(&other, "alice", 1.0, 1_999.0, false).1[1], 2.0);
    assert_eq!(store.size(), 3.0);
    // The next window.
    assert_eq!(
        decide(&rl, "alice", 1.0, 2_000.0, false),
        (1, [3.0, 2.0, 3_000.0, 0.0, 0.0, 0.0])
    );
}

#[wasm_bindgen_test]
fn gcra_spaces_calls_by_its_interval() {
    let store = WasmMemoryStore::new(None, None).unwrap();
    // 10 per second, bursts of 2: one call every 100 ms.
    let gcra = WasmAlgorithm::gcra(10.0, JsValue::from_str("1 s"), Some(2.0)).unwrap();
    let rl = limiter(&gcra, &store, "g:");
    assert_eq!(
        decide(&rl, "k", 1.0, 0.0, false),
        (1, [2.0, 1.0, 100.0, 0.0, 0.0, 0.0])
    );
    assert_eq!(
        decide(&rl, "k", 1.0, 0.0, false),
        (1, [2.0, 0.0, 200.0, 0.0, 0.0, 0.0])
    );
    assert_eq!(
        decide(&rl, "k", 1.0, 0.0, false),
        (0, [2.0, 0.0, 200.0, 100.0, 0.0, 0.0])
    );
    assert_eq!(
        decide(&rl, "k", 1.0, 50.0, false),
        (0, [2.0, 0.0, 200.0, 50.0, 0.0, 0.0])
    );
    assert_eq!(
        decide(&rl, "k", 1.0, 100.0, false),
        (1, [2.0, 0.0, 300.0, 0.0, 0.0, 0.0])
    );
    // A cost of 2 needs the whole burst back: 200 ms after 300 - 200.
    assert_eq!(
        decide(&rl, "k", 2.0, 100.0, false),
        (0, [2.0, 0.0, 300.0, 200.0, 0.0, 0.0])
    );
}

#[wasm_bindgen_test]
fn peek_writes_nothing() {
    let store = WasmMemoryStore::new(None, None).unwrap();
    let rl = limiter(&fixed(3.0, "1 s"), &store, "p:");
    assert_eq!(
        decide(&rl, "k", 0.0, 1_500.0, true),
        (1, [3.0, 3.0, 1_500.0, 0.0, 0.0, 0.0])
    );
    assert_eq!(store.size(), 0.0);
    decide(&rl, "k", 1.0, 1_500.0, false);
    for _ in 0..3 {
        assert_eq!(
            decide(&rl, "k", 0.0, 1_600.0, true),
            (1, [3.0, 2.0, 2_000.0, 0.0, 0.0, 0.0])
        );
    }
    assert_eq!(store.size(), 1.0);

    // Where the difference shows: a bucket starting below capacity. A cost-0
    // decision stores the new bucket (its refill clock starts), a peek does
    // not, so one second later the two keys hold different counts.
    let bucket =
        WasmAlgorithm::token_bucket(1.0, JsValue::from_str("1 s"), 3.0, Some(1.0)).unwrap();
    let rl = limiter(&bucket, &store, "tb:");
    assert_eq!(
        decide(&rl, "peeked", 0.0, 0.0, true),
        (1, [3.0, 1.0, 2_000.0, 0.0, 0.0, 0.0])
    );
    assert_eq!(
        decide(&rl, "read", 0.0, 0.0, false),
        (1, [3.0, 1.0, 2_000.0, 0.0, 0.0, 0.0])
    );
    assert_eq!(store.size(), 2.0);
    assert_eq!(
        decide(&rl, "peeked", 1.0, 1_000.0, false),
        (1, [3.0, 0.0, 4_000.0, 0.0, 0.0, 0.0])
    );
    assert_eq!(
        decide(&rl, "read", 1.0, 1_000.0, false),
        (1, [3.0, 1.0, 3_000.0, 0.0, 0.0, 0.0])
    );
}

#[wasm_bindgen_test]
fn remove_forgets_an_id() {
    let store = WasmMemoryStore::new(None, None).unwrap();
    let rl = limiter(&fixed(2.0, "1 m"), &store, "r:");
    decide(&rl, "k", 2.0, 0.0, false);
    assert_eq!(decide(&rl, "k", 1.0, 1.0, false).0, 0);
    let len = write_id(b"k");
    assert_eq!(rl.remove(len), 1);
    assert_eq!(store.size(), 0.0);
    assert_eq!(
        decide(&rl, "k", 1.0, 2.0, false),
        (1, [2.0, 1.0, 60_000.0, 0.0, 0.0, 0.0])
    );
    // Forgetting an id never seen is not an error.
    let len = write_id(b"nobody");
    assert_eq!(rl.remove(len), 1);
}

#[wasm_bindgen_test]
fn impossible_costs_fail_and_change_nothing() {
    let store = WasmMemoryStore::new(None, None).unwrap();
    let rl = limiter(&fixed(3.0, "1 s"), &store, "c:");
    decide(&rl, "k", 1.0, 1_500.0, false);
    let before = slots();
    let (status, after) = decide(&rl, "k", 4.0, 1_500.0, false);
    assert_eq!(status, -1);
    assert_eq!(taken_code(), "COST_EXCEEDS_LIMIT");
    assert_eq!(after, before, "a failed call writes no slots");
    assert_eq!(decide(&rl, "k", 1.5, 1_500.0, false).0, -1);
    assert_eq!(taken_code(), "INVALID_ARGUMENT");
    // Still one unit taken.
    assert_eq!(decide(&rl, "k", 0.0, 1_500.0, true).1[1], 2.0);
}

#[wasm_bindgen_test]
fn key_buffer_grows_and_ids_are_utf8() {
    let store = WasmMemoryStore::new(None, None).unwrap();
    let rl = limiter(&fixed(3.0, "1 s"), &store, "u:");
    // Multi-byte ids are distinct keys, byte for byte.
    assert_eq!(decide(&rl, "zoë", 1.0, 0.0, false).1[1], 2.0);
    assert_eq!(decide(&rl, "zoe", 1.0, 0.0, false).1[1], 2.0);
    assert_eq!(decide(&rl, "zoë", 1.0, 0.0, false).1[1], 1.0);
    // An id longer than the buffer grows it to the next power of two.
    let long = "x".repeat(300);
    assert!(key_buffer_length() < 300);
    assert_eq!(decide(&rl, &long, 1.0, 0.0, false).1[1], 2.0);
    assert_eq!(key_buffer_length(), 512);
    assert_eq!(decide(&rl, &long, 1.0, 0.0, false).1[1], 1.0);
    // A length past the buffer, or bytes that are not UTF-8, are refused.
    key_buffer(0);
    assert_eq!(rl.decide(513, 1.0, 0.0, false), -1);
    assert_eq!(taken_code(), "INVALID_ARGUMENT");
    let len = write_id(&[0x66, 0xff, 0x6f]);
    assert_eq!(rl.decide(len, 1.0, 0.0, false), -1);
    assert_eq!(taken_code(), "INVALID_ARGUMENT");
    assert_eq!(store.size(), 3.0);
}
