//! What the tests share: the JS side of the boundary, seen from Rust.

use edgelimit::wasm::{core_memory, key_buffer, out_buffer, take_error, WasmRateLimiter};
use js_sys::{Array, ArrayBuffer, Float64Array, Reflect, Uint8Array, WebAssembly, JSON};
use wasm_bindgen::{JsCast, JsValue};

/// The `code` of an error the bindings raised, after checking it is a JS
/// `Error` named `EdgelimitError` (what `instanceof EdgelimitError` tests).
pub fn code_of(error: &JsValue) -> String {
    assert!(
        error.is_instance_of::<js_sys::Error>(),
        "not an Error: {error:?}"
    );
    let name = Reflect::get(error, &"name".into()).unwrap();
    assert_eq!(name.as_string().as_deref(), Some("EdgelimitError"));
    let message = Reflect::get(error, &"message".into()).unwrap();
    assert!(
        !message.as_string().unwrap_or_default().is_empty(),
        "no message"
    );
    Reflect::get(error, &"code".into())
        .unwrap()
        .as_string()
        .expect("a string code")
}

/// The code of the error `result` must be.
pub fn error_code<T>(result: Result<T, JsValue>) -> String {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(error) => code_of(&error),
    }
}

/// The code of the error a -1 status left in `takeError`; taking it twice
/// must give nothing the second time.
pub fn taken_code() -> String {
    let code = code_of(&take_error());
    assert!(
        take_error().is_undefined(),
        "takeError must clear the error"
    );
    code
}

/// The module's memory as the JS side sees it (views over it die when it
/// grows, so each use takes the current buffer).
fn memory() -> ArrayBuffer {
    let memory: WebAssembly::Memory = core_memory().unchecked_into();
    memory.buffer().unchecked_into()
}

/// Writes `id` into the key buffer as js/boundary.js does; its length.
pub fn write_id(id: &[u8]) -> usize {
    let at = key_buffer(id.len()) as u32;
    Uint8Array::new_with_byte_offset_and_length(&memory(), at, id.len() as u32).copy_from(id);
    id.len()
}

/// The first six output slots: limit, remaining, reset, retry after, store
/// failure, lease expiry.
pub fn slots() -> [f64; 6] {
    let all = Float64Array::new_with_byte_offset_and_length(&memory(), out_buffer() as u32, 8);
    let mut six = [0.0; 6];
    all.subarray(0, 6).copy_to(&mut six);
    six
}

/// One memory-store decision for `id`: its status and slots.
pub fn decide(
    limiter: &WasmRateLimiter,
    id: &str,
    cost: f64,
    now: f64,
    peek: bool,
) -> (i32, [f64; 6]) {
    let len = write_id(id.as_bytes());
    let status = limiter.decide(len, cost, now, peek);
    (status, slots())
}

/// A JSON array of strings (a REST request body) as Rust strings.
pub fn words(body: &str) -> Vec<String> {
    let parsed = JSON::parse(body).expect("a JSON body");
    Array::from(&parsed)
        .iter()
        .map(|word| word.as_string().expect("every word a string"))
        .collect()
}
