//! Reading a reply's body natively (reqwest): capped, so a reply of any
//! size costs at most this much memory and never makes a large message.
//! (In WebAssembly the JavaScript transport applies the same cap.)

use crate::StoreError;

/// The most a reply may carry: a batch of decisions needs a few hundred
/// kilobytes at most, so anything past this is not a store's reply (a
/// proxy's page, a misrouted download) and is not read on.
pub(crate) const MAX_REPLY_BYTES: usize = 2 << 20;

/// The failure of a reply past [`MAX_REPLY_BYTES`]: the request may have
/// run, like any reply that could not be read.
pub(crate) fn too_large() -> StoreError {
    StoreError::Unavailable(format!("the reply is larger than {MAX_REPLY_BYTES} bytes"))
}

/// Whether a declared length is already past the cap.
pub(crate) fn declared_too_large(length: Option<u64>) -> bool {
    length.is_some_and(|length| length > MAX_REPLY_BYTES as u64)
}

/// A reply's body as text, from its bytes (already capped).
pub(crate) fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
}
