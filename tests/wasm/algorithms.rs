//! The algorithm factories: good configurations read back, bad ones
//! rejected with a coded `EdgelimitError` before any decision is made.

use edgelimit::wasm::{WasmAlgorithm, WasmConcurrency, WasmMemoryStore, WasmRestStore};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::wasm_bindgen_test;

use crate::support::error_code;

fn s(text: &str) -> JsValue {
    JsValue::from_str(text)
}

#[wasm_bindgen_test]
fn configurations_read_back_limit_and_window() {
    let fixed = WasmAlgorithm::fixed_window(10.0, s("1 m")).unwrap();
    assert_eq!((fixed.limit(), fixed.window_ms()), (10.0, 60_000.0));
    let sliding = WasmAlgorithm::sliding_window(5.0, JsValue::from(250.0)).unwrap();
    assert_eq!((sliding.limit(), sliding.window_ms()), (5.0, 250.0));
    let log = WasmAlgorithm::sliding_log(3.0, s("2s")).unwrap();
    assert_eq!((log.limit(), log.window_ms()), (3.0, 2_000.0));
    // An empty bucket of 5 refilled 2 per second is full after 3 s.
    let bucket = WasmAlgorithm::token_bucket(2.0, s("1 s"), 5.0, None).unwrap();
    assert_eq!((bucket.limit(), bucket.window_ms()), (5.0, 3_000.0));
    // GCRA's limit is its burst, not its rate.
    let gcra = WasmAlgorithm::gcra(10.0, s("1 s"), Some(2.0)).unwrap();
    assert_eq!((gcra.limit(), gcra.window_ms()), (2.0, 1_000.0));
    assert_eq!(
        WasmAlgorithm::gcra(10.0, s("1 s"), None).unwrap().limit(),
        10.0
    );
}

#[wasm_bindgen_test]
fn bad_configurations_are_invalid_config() {
    let cases = [
        (
            "zero limit",
            WasmAlgorithm::fixed_window(0.0, s("1 s")).err(),
        ),
        (
            "zero window",
            WasmAlgorithm::sliding_window(5.0, JsValue::from(0.0)).err(),
        ),
        (
            "log too long",
            WasmAlgorithm::sliding_log(100_001.0, s("1 s")).err(),
        ),
        (
            "zero refill",
            WasmAlgorithm::token_bucket(0.0, s("1 s"), 5.0, None).err(),
        ),
        (
            "initial above capacity",
            WasmAlgorithm::token_bucket(1.0, s("1 s"), 5.0, Some(6.0)).err(),
        ),
        (
            "zero burst",
            WasmAlgorithm::gcra(10.0, s("1 s"), Some(0.0)).err(),
        ),
        // limit × window must stay exact in Lua's doubles (2^53).
        (
            "inexact product",
            WasmAlgorithm::fixed_window(9_000_000_000_000.0, s("1 d")).err(),
        ),
    ];
    for (what, error) in cases {
        let error = error.unwrap_or_else(|| panic!("{what}: accepted"));
        assert_eq!(error_code(Err::<(), _>(error)), "INVALID_CONFIG", "{what}");
    }
}

#[wasm_bindgen_test]
fn bad_durations_are_invalid_duration() {
    for text in ["ten seconds", "1.5 s", "10", "-1 s", "1 sec", ""] {
        let code = error_code(WasmAlgorithm::fixed_window(10.0, s(text)));
        assert_eq!(code, "INVALID_DURATION", "{text:?}");
    }
    let code = error_code(WasmAlgorithm::gcra(10.0, s("1 fortnight"), None));
    assert_eq!(code, "INVALID_DURATION");
}

#[wasm_bindgen_test]
fn numbers_that_are_not_whole_counts_are_invalid_argument() {
    for limit in [1.5, -1.0, f64::NAN, f64::INFINITY, 9_007_199_254_740_992.0] {
        let code = error_code(WasmAlgorithm::fixed_window(limit, s("1 s")));
        assert_eq!(code, "INVALID_ARGUMENT", "{limit}");
    }
    // A window that is neither milliseconds nor text.
    let code = error_code(WasmAlgorithm::fixed_window(10.0, JsValue::TRUE));
    assert_eq!(code, "INVALID_ARGUMENT");
    let code = error_code(WasmAlgorithm::token_bucket(1.0, s("1 s"), 5.0, Some(0.5)));
    assert_eq!(code, "INVALID_ARGUMENT");
}

#[wasm_bindgen_test]
fn stores_and_concurrency_validate_too() {
    assert_eq!(
        error_code(WasmMemoryStore::new(Some(1.5), None)),
        "INVALID_ARGUMENT"
    );
    assert_eq!(WasmMemoryStore::new(None, None).unwrap().size(), 0.0);
    // 2^32 keys would wrap to 0 in 32-bit WebAssembly.
    for (keys, bytes) in [
        (Some(4_294_967_296.0), None),
        (Some(0.0), None),
        (None, Some(0.0)),
    ] {
        assert_eq!(
            error_code(WasmMemoryStore::new(keys, bytes)),
            "INVALID_CONFIG"
        );
    }
    assert_eq!(
        error_code(WasmRestStore::new(-1.0, 2.0, false, 0.0)),
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        error_code(WasmRestStore::new(1.0, 2.0, false, -5.0)),
        "INVALID_ARGUMENT"
    );
    let store = WasmMemoryStore::new(None, None).unwrap();
    let concurrency = |max: f64, lease: &str| {
        WasmConcurrency::with_memory(max, s(lease), &store, "c:".into()).map(drop)
    };
    assert!(concurrency(10_000.0, "1 s").is_ok());
    assert_eq!(error_code(concurrency(0.0, "1 s")), "INVALID_CONFIG");
    assert_eq!(error_code(concurrency(10_001.0, "1 s")), "INVALID_CONFIG");
    assert_eq!(error_code(concurrency(1.0, "0 s")), "INVALID_CONFIG");
    assert_eq!(error_code(concurrency(1.0, "soon")), "INVALID_DURATION");
}
