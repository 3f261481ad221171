// The hot path into the core: the id is encoded straight into the module's
// key buffer and the decision read from its output slots, so a decision is a
// single call into WebAssembly with no allocation on either side.

import {
  CoreReason,
  CoreSlot,
  CoreStatus,
  coreMemory,
  keyBuffer,
  keyBufferLength,
  outBuffer,
  takeError,
} from "./edgelimit.js";

// Output slots, as the core numbers them.
export const LIMIT = CoreSlot.Limit;
export const REMAINING = CoreSlot.Remaining;
export const RESET = CoreSlot.Reset;
export const RETRY_AFTER = CoreSlot.RetryAfter;
export const REASON = CoreSlot.Reason;
// What the reason slot holds: the failure policy decided (the store
// failed), or a deny or allow list did.
export const STORE_FAILED = CoreReason.StoreFailure;
export const REASONS = [];
REASONS[CoreReason.StoreFailure] = "storeFailure";
REASONS[CoreReason.DenyList] = "denyList";
REASONS[CoreReason.AllowList] = "allowList";
REASONS[CoreReason.Blocked] = "blocked";
export const EXPIRES_AT = CoreSlot.ExpiresAt;
export const ALLOWED = CoreSlot.Allowed;
export const NUMBER = CoreSlot.Number;

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

/** Whether a synchronous call admitted, throwing when it failed. */
export function check(status) {
  if (status === CoreStatus.Failed) throw takeError();
  return status === CoreStatus.Admitted;
}
