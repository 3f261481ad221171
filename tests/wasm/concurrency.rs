//! Leases on the memory store through `CoreConcurrency.apply`: the status,
//! and the occupancy in the output slots (slot 5 is the lease's expiry).

use edgelimit::wasm::{WasmConcurrency, WasmMemoryStore};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::wasm_bindgen_test;

use crate::support::{slots, taken_code};

// Operations as JS names them.
const ACQUIRE: u8 = 0;
const RELEASE: u8 = 1;
const EXTEND: u8 = 2;
const PEEK: u8 = 3;

fn apply(c: &WasmConcurrency, op: u8, lease: &str, ttl: JsValue, now: f64) -> (i32, [f64; 6]) {
    let status = c.apply("job", op, lease, ttl, now, 0.0, 0.0, 0.0, 0.0);
    (status, slots())
}

#[wasm_bindgen_test]
fn leases_are_granted_up_to_max_and_freed() {
    let store = WasmMemoryStore::new(None, None).unwrap();
    let c = WasmConcurrency::with_memory(2.0, "10 s".into(), &store, "c:".into()).unwrap();
    let none = || JsValue::UNDEFINED;
    // Slots: max, free, all expired at, retry after, store failure, expiry.
    assert_eq!(
        apply(&c, ACQUIRE, "1", none(), 0.0),
        (1, [2.0, 1.0, 10_000.0, 0.0, 0.0, 10_000.0])
    );
    assert_eq!(
        apply(&c, ACQUIRE, "2", none(), 5.0),
        (1, [2.0, 0.0, 10_005.0, 0.0, 0.0, 10_005.0])
    );
    // Full: retry when the first lease expires.
    assert_eq!(
        apply(&c, ACQUIRE, "3", none(), 6.0),
        (0, [2.0, 0.0, 10_005.0, 9_994.0, 0.0, 0.0])
    );
    // Acquiring again with a held id takes no second slot.
    assert_eq!(
        apply(&c, ACQUIRE, "2", none(), 7.0),
        (1, [2.0, 0.0, 10_007.0, 0.0, 0.0, 10_007.0])
    );
    assert_eq!(
        apply(&c, RELEASE, "1", none(), 8.0),
        (1, [2.0, 1.0, 10_007.0, 0.0, 0.0, 0.0])
    );
    // Releasing twice: the second finds nothing held.
    assert_eq!(apply(&c, RELEASE, "1", none(), 9.0).0, 0);
    // A lease of its own length, then extended.
    let (status, s) = apply(&c, ACQUIRE, "3", "1 s".into(), 10.0);
    assert_eq!((status, s[1], s[5]), (1, 0.0, 1_010.0));
    let (status, s) = apply(&c, EXTEND, "3", JsValue::from(5_000.0), 100.0);
    assert_eq!((status, s[5]), (1, 5_100.0));
    assert_eq!(
        apply(&c, PEEK, "", none(), 200.0),
        (1, [2.0, 0.0, 10_007.0, 0.0, 0.0, 0.0])
    );
    // Expired leases free their slots by themselves.
    assert_eq!(apply(&c, PEEK, "", none(), 5_100.0).1[1], 1.0);
    assert_eq!(apply(&c, PEEK, "", none(), 10_007.0).1[1], 2.0);
    assert_eq!(
        apply(&c, EXTEND, "2", none(), 10_008.0).0,
        0,
        "expired leases cannot be extended"
    );
}

#[wasm_bindgen_test]
fn remove_drops_every_lease() {
    let store = WasmMemoryStore::new(None, None).unwrap();
    let c = WasmConcurrency::with_memory(1.0, "1 m".into(), &store, "r:".into()).unwrap();
    assert_eq!(
        c.apply(
            "job",
            ACQUIRE,
            "1",
            JsValue::UNDEFINED,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0
        ),
        1
    );
    assert_eq!(
        c.apply(
            "job",
            ACQUIRE,
            "2",
            JsValue::UNDEFINED,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0
        ),
        0
    );
    assert_eq!(c.remove("job"), 1);
    assert_eq!(
        c.apply(
            "job",
            ACQUIRE,
            "2",
            JsValue::UNDEFINED,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0
        ),
        1
    );
}

#[wasm_bindgen_test]
fn bad_lease_arguments_fail_with_codes() {
    let store = WasmMemoryStore::new(None, None).unwrap();
    let c = WasmConcurrency::with_memory(2.0, "10 s".into(), &store, "b:".into()).unwrap();
    let cases = [
        (ACQUIRE, "x", JsValue::UNDEFINED, "INVALID_ARGUMENT"),
        (ACQUIRE, "-1", JsValue::UNDEFINED, "INVALID_ARGUMENT"),
        (ACQUIRE, "1", JsValue::from(0.0), "INVALID_ARGUMENT"),
        (EXTEND, "1", "soon".into(), "INVALID_DURATION"),
        (9, "1", JsValue::UNDEFINED, "INVALID_ARGUMENT"),
    ];
    for (op, lease, ttl, code) in cases {
        assert_eq!(
            c.apply("job", op, lease, ttl, 0.0, 0.0, 0.0, 0.0, 0.0),
            -1,
            "op {op} lease {lease:?}"
        );
        assert_eq!(taken_code(), code, "op {op} lease {lease:?}");
    }
    assert_eq!(store.size(), 0.0, "nothing was stored");
}

#[wasm_bindgen_test]
fn lease_ids_are_fresh_odd_decimals() {
    let ids: Vec<String> = (0..50).map(|_| WasmConcurrency::lease_id()).collect();
    for id in &ids {
        let n: u64 = id.parse().expect("a decimal u64");
        assert_eq!(n % 2, 1, "never 0: the low bit is set");
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
}
