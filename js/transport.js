// The Redis REST store's transport: the host's global `fetch`. The core
// decides what to send and what each reply means (EVALSHA, EVAL on NOSCRIPT,
// which failures are safe to retry, the failure policy); this file only
// moves bytes and enforces the timeout.

import { check, output } from "./boundary.js";
import { sleep } from "./wait.js";

// Statuses of CoreRestCall.receive/fail besides 1, 0 and -1.
const SEND_AGAIN = 2;
const RETRY_LATER = 3;

// What a failed fetch means to the core: 0 timed out, 1 refused (the request
// never arrived), 2 anything else (it may have run).
const TIMED_OUT = 0;
const REFUSED = 1;
const OTHER = 2;

function describe(error) {
  const cause = error?.cause?.message;
  return `${error?.message ?? error}${cause ? `: ${cause}` : ""}`;
}

function kind(error, timedOut) {
  if (timedOut) return TIMED_OUT;
  // Node (undici) names the cause; Deno and workerd say it in the message.
  const refused =
    error?.cause?.code === "ECONNREFUSED" || /ECONNREFUSED|connection refused/i.test(describe(error));
  return refused ? REFUSED : OTHER;
}

async function post(store, body, timeoutMs) {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  try {
    const response = await fetch(store.url, {
      method: "POST",
      headers: { authorization: store.authorization, "content-type": "application/json" },
      body,
      signal: controller.signal,
    });
    return { status: response.status, text: await response.text() };
  } catch (error) {
    return { kind: kind(error, timedOut), message: describe(error) };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs a CoreRestCall to its end. Resolves to whether it was admitted (or
 * done) and a copy of the decision's numbers; rejects with the core's error.
 */
export async function run(call, store) {
  try {
    for (;;) {
      const reply = await post(store, call.body, call.timeoutMs);
      const status =
        reply.kind === undefined ? call.receive(reply.status, reply.text) : call.fail(reply.kind, reply.message);
      if (status === SEND_AGAIN) continue;
      if (status === RETRY_LATER) {
        await sleep(call.delayMs);
        continue;
      }
      // Read the numbers now: other calls may overwrite them after an await.
      return { allowed: check(status), slots: output().slice() };
    }
  } finally {
    call.free();
  }
}
