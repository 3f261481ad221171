//! Deny and allow lists for JavaScript: the core's [`AccessList`], shared
//! by the limiters given it.

use wasm_bindgen::prelude::*;

use super::error::Coded;
use crate::{AccessList, Listed};

/// Deny and allow lists (`accessList()` in the package).
#[wasm_bindgen(js_name = CoreAccessList)]
#[derive(Default)]
pub struct WasmAccessList {
    pub(crate) inner: AccessList,
}

#[wasm_bindgen(js_class = CoreAccessList)]
impl WasmAccessList {
    /// Empty lists.
    #[wasm_bindgen(constructor)]
    pub fn new() -> WasmAccessList {
        Self::default()
    }

    /// Puts `entry` (an id, an IP address or a CIDR range) on the deny list,
    /// or on the allow list when `allow`.
    pub fn put(&self, entry: &str, allow: bool) -> Result<(), JsValue> {
        let list = if allow { Listed::Allow } else { Listed::Deny };
        self.inner.put(entry, list).map_err(|error| error.to_js())
    }

    /// Takes `entry` off its list; whether it was on one.
    pub fn remove(&self, entry: &str) -> Result<bool, JsValue> {
        self.inner.remove(entry).map_err(|error| error.to_js())
    }

    /// Empties both lists.
    pub fn clear(&self) {
        self.inner.clear();
    }

    /// How many entries both lists hold.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> f64 {
        self.inner.len() as f64
    }

    /// 1 when `id` is denied, 2 when allowed, 0 when on neither list.
    pub fn check(&self, id: &str) -> u8 {
        match self.inner.check(id) {
            None => 0,
            Some(Listed::Deny) => 1,
            Some(Listed::Allow) => 2,
        }
    }
}
