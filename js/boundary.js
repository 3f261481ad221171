// The hot path into the core: the id is encoded straight into the module's
// key buffer and the decision read from its output slots, so a decision is a
// single call into WebAssembly with no allocation on either side.

import { coreMemory, keyBuffer, keyBufferLength, outBuffer, takeError } from "./edgelimit.js";

// Output slots, as src/wasm/io.rs writes them.
export const LIMIT = 0;
export const REMAINING = 1;
export const RESET = 2;
export const RETRY_AFTER = 3;
export const STORE_FAILURE = 4;
export const EXPIRES_AT = 5;
export const ALLOWED = 6;

const encoder = new TextEncoder();
let memory;
let keyView;
let outView;

// Views die when the memory grows (any call may grow it): renew them then.
function renew() {
  memory ??= coreMemory();
  keyView = new Uint8Array(memory.buffer, keyBuffer(0), keyBufferLength());
  outView = new Float64Array(memory.buffer, outBuffer(), 8);
}

/** Writes `id` into the key buffer; returns its length in bytes. */
export function encodeId(id) {
  // A grown memory detaches the old buffer, which empties its views.
  if (keyView === undefined || keyView.length === 0) renew();
  const length = id.length;
  // Short ASCII ids (IP addresses, user ids) are copied by hand: cheaper
  // than encodeInto for a few bytes.
  if (length <= 64 && length <= keyView.length) {
    let i = 0;
    for (; i < length; i++) {
      const code = id.charCodeAt(i);
      if (code > 0x7f) break;
      keyView[i] = code;
    }
    if (i === length) return length;
  }
  let { read, written } = encoder.encodeInto(id, keyView);
  if (read < length) {
    keyBuffer(length * 3);
    renew();
    ({ written } = encoder.encodeInto(id, keyView));
  }
  return written;
}

/** The output slots of the last synchronous call. */
export function output() {
  if (outView === undefined || outView.length === 0) renew();
  return outView;
}

/** The status of a synchronous call (1, 0 or -1), throwing on -1. */
export function check(status) {
  if (status < 0) throw takeError();
  return status === 1;
}
