//! Buffers shared with JavaScript, so the hot path crosses the boundary once:
//! the caller encodes the id straight into `KEY`, makes one call, and reads
//! the decision from `OUT`, with no allocation and no string copy.

use std::cell::{Cell, RefCell};

use wasm_bindgen::prelude::*;

use super::codes::{ReasonCode, Slot, Status, SLOTS};
use super::error::invalid_argument;
use crate::algorithm::LeaseOutcome;
use crate::Decision;

/// Slots of `OUT`: the decision's numbers, where [`Slot`] says.
pub(crate) const LIMIT: usize = Slot::Limit as usize;
pub(crate) const REMAINING: usize = Slot::Remaining as usize;
pub(crate) const RESET: usize = Slot::Reset as usize;
pub(crate) const RETRY_AFTER: usize = Slot::RetryAfter as usize;
pub(crate) const REASON: usize = Slot::Reason as usize;
pub(crate) const EXPIRES_AT: usize = Slot::ExpiresAt as usize;
pub(crate) const ALLOWED: usize = Slot::Allowed as usize;
pub(crate) const NUMBER: usize = Slot::Number as usize;

thread_local! {
    static KEY: RefCell<Vec<u8>> = RefCell::new(vec![0; 256]);
    static OUT: Cell<[f64; SLOTS]> = const { Cell::new([0.0; SLOTS]) };
    static LAST_ERROR: RefCell<JsValue> = const { RefCell::new(JsValue::UNDEFINED) };
}

/// The key buffer, grown to at least `min_len` bytes. Its address changes
/// only when it grows.
#[wasm_bindgen(js_name = keyBuffer)]
pub fn key_buffer(min_len: usize) -> *mut u8 {
    KEY.with(|key| {
        let mut key = key.borrow_mut();
        if key.len() < min_len {
            key.resize(min_len.next_power_of_two(), 0);
        }
        key.as_mut_ptr()
    })
}

/// The key buffer's size in bytes.
#[wasm_bindgen(js_name = keyBufferLength)]
pub fn key_buffer_length() -> usize {
    KEY.with(|key| key.borrow().len())
}

/// The address of the output slots (8 numbers).
#[wasm_bindgen(js_name = outBuffer)]
pub fn out_buffer() -> *const f64 {
    OUT.with(|out| out.as_ptr() as *const f64)
}

/// The module's memory, for views over the buffers.
#[wasm_bindgen(js_name = coreMemory)]
pub fn core_memory() -> JsValue {
    wasm_bindgen::memory()
}

/// The error of the last call that answered -1.
#[wasm_bindgen(js_name = takeError)]
pub fn take_error() -> JsValue {
    LAST_ERROR.with(|error| error.replace(JsValue::UNDEFINED))
}

/// The [`Status`] a synchronous call answers: admitted, denied, or failed
/// (the error waits in `takeError`).
pub(crate) fn status(result: Result<bool, JsValue>) -> i32 {
    match result {
        Ok(true) => Status::Admitted as i32,
        Ok(false) => Status::Denied as i32,
        Err(error) => {
            LAST_ERROR.with(|last| *last.borrow_mut() = error);
            Status::Failed as i32
        }
    }
}

/// Runs `f` on the id the caller encoded into the first `len` bytes.
pub(crate) fn with_id<R>(len: usize, f: impl FnOnce(&str) -> R) -> Result<R, JsValue> {
    KEY.with(|key| {
        let key = key.borrow();
        let bytes = key
            .get(..len)
            .ok_or_else(|| invalid_argument("id longer than the key buffer"))?;
        let id = std::str::from_utf8(bytes).map_err(|_| invalid_argument("id is not UTF-8"))?;
        Ok(f(id))
    })
}

/// Writes a decision's numbers to `OUT`; answers whether it admits.
pub(crate) fn write(decision: &Decision) -> bool {
    OUT.with(|out| out.set(slots(decision, None)));
    decision.allowed
}

/// Writes a lease outcome's numbers to `OUT`; answers whether the lease is
/// held (or was granted).
pub(crate) fn write_lease(outcome: &LeaseOutcome) -> bool {
    let decision = Decision {
        allowed: outcome.allowed,
        ..outcome.decision
    };
    let mut slots = slots(&decision, outcome.expires_at_ms);
    slots[NUMBER] = outcome.number as f64;
    OUT.with(|out| out.set(slots));
    outcome.allowed
}

/// Milliseconds as JavaScript takes them: `u64::MAX` (never) is Infinity.
fn time(ms: u64) -> f64 {
    match ms {
        u64::MAX => f64::INFINITY,
        ms => ms as f64,
    }
}

/// A decision's numbers, as `OUT` holds them.
fn slots(decision: &Decision, expires_at_ms: Option<u64>) -> [f64; SLOTS] {
    let mut slots = [0.0; SLOTS];
    slots[LIMIT] = decision.limit as f64;
    slots[REMAINING] = decision.remaining as f64;
    slots[RESET] = time(decision.reset_ms);
    slots[RETRY_AFTER] = time(decision.retry_after_ms);
    slots[REASON] = f64::from(ReasonCode::of(decision.reason));
    slots[EXPIRES_AT] = expires_at_ms.unwrap_or(0) as f64;
    slots[ALLOWED] = decision.allowed as u8 as f64;
    slots
}
