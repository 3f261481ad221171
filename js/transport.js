// The Redis REST store's transport: the host's global `fetch`, with calls
// made together sharing one request. The core decides what each request
// carries (EVALSHA, EVAL on NOSCRIPT, `/` for one call, `/pipeline` for
// more), what each reply means for each call, which failures are safe to
// retry and the failure policy; this file only moves bytes, groups calls
// and enforces the timeout.

import { ALLOWED, output } from "./boundary.js";
import { CoreFetchFailure, CoreRestBatch, CoreStatus, takeError } from "./edgelimit.js";
import { sleep } from "./wait.js";

// Statuses of CoreRestCall.receiveFrom besides admitted, denied and failed.
const SEND_AGAIN = CoreStatus.SendAgain;
const RETRY_LATER = CoreStatus.RetryLater;

// What a failed fetch means to the core: timed out, refused (the request
// never arrived), or anything else (it may have run).
const TIMED_OUT = CoreFetchFailure.TimedOut;
const REFUSED = CoreFetchFailure.Refused;
const OTHER = CoreFetchFailure.Other;

function describe(error) {
  const cause = error?.cause?.message;
  return `${error?.message ?? error}${cause ? `: ${cause}` : ""}`;
}

function kind(error, timedOut) {
  if (timedOut) return TIMED_OUT;
  // Node (undici) names the cause; Deno and workerd say it in the message.
  const refused = error?.cause?.code === "ECONNREFUSED" || /ECONNREFUSED|connection refused/i.test(describe(error));
  return refused ? REFUSED : OTHER;
}

/**
 * The most a reply may carry: a batch of 128 decisions needs a few hundred
 * kilobytes at most, so anything past this is not a store's reply (a proxy's
 * page, a misrouted download), and is not read on.
 */
export const MAX_REPLY_BYTES = 2 << 20;

const TOO_LARGE = `the reply is larger than ${MAX_REPLY_BYTES} bytes`;

/** The body of `response` as text, or undefined once it passes MAX_REPLY_BYTES. */
async function cappedText(response) {
  if (Number(response.headers.get("content-length")) > MAX_REPLY_BYTES) return undefined;
  if (response.body === null) return "";
  const reader = response.body.getReader();
  const parts = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_REPLY_BYTES) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    parts.push(value);
  }
  const body = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    body.set(part, at);
    at += part.byteLength;
  }
  return new TextDecoder().decode(body);
}

/**
 * POSTs with the global `fetch`; resolves to `{status, text}` or `{kind,
 * message}`. The timeout covers the whole reply, body included.
 */
async function fetchPost(url, authorization, body, timeoutMs) {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { authorization, "content-type": "application/json" },
      body,
      signal: controller.signal,
    });
    const text = await cappedText(response);
    if (text === undefined) {
      controller.abort();
      return { kind: OTHER, message: TOO_LARGE };
    }
    return { status: response.status, text };
  } catch (error) {
    return { kind: kind(error, timedOut), message: describe(error) };
  } finally {
    clearTimeout(timer);
  }
}

// How requests are made: the host's fetch, unless the runtime's entry
// installs something cheaper (node.js: node-http.js).
let post = fetchPost;

/** Makes the store's requests with `poster` from now on. */
export function usePost(poster) {
  post = poster;
}

/** What a call's reply left: its status, and its numbers or its error. */
function settled(status) {
  if (status === CoreStatus.Failed) return { status, error: takeError() };
  // Read now: the next call overwrites the output slots.
  const decided = status === CoreStatus.Admitted || status === CoreStatus.Denied;
  return { status, slots: decided ? output().slice() : undefined };
}

/**
 * One store's requests. Calls made in the same turn of the event loop (and
 * those waiting while `maxInFlight` requests are out) leave together: one
 * call as `POST /`, more as one `POST /pipeline`, in the order they were
 * made. Each call keeps its own reply, error, NOSCRIPT recovery and retries.
 */
export class Transport {
  #url;
  #authorization;
  #maxCalls;
  #maxInFlight;
  // Consecutive script calls share one call of the batch script, until
  // Redis refuses to group keys of different cluster slots.
  #grouped;
  #queue = [];
  #inFlight = 0;
  #scheduled = false;

  constructor(url, token, { maxCalls, maxInFlight, grouping }) {
    this.#url = url.replace(/\/+$/, "");
    this.#authorization = `Bearer ${token}`;
    this.#maxCalls = maxCalls;
    this.#maxInFlight = maxInFlight;
    this.#grouped = grouping === "script";
  }

  /** Sends `call` as it stands; resolves with what its reply left. */
  exchange(call) {
    return new Promise((settle) => {
      this.#queue.push({ call, settle });
      this.#schedule();
    });
  }

  #schedule() {
    if (this.#scheduled || this.#queue.length === 0 || this.#inFlight >= this.#maxInFlight) return;
    this.#scheduled = true;
    // Calls made before the current microtasks have run join this request.
    queueMicrotask(() => {
      this.#scheduled = false;
      this.#flush();
    });
  }

  #flush() {
    while (this.#queue.length > 0 && this.#inFlight < this.#maxInFlight) {
      // Calls share a request only when they share a timeout.
      const timeoutMs = this.#queue[0].call.timeoutMs;
      const batch = [];
      const rest = [];
      for (const entry of this.#queue) {
        (entry.call.timeoutMs === timeoutMs && batch.length < this.#maxCalls ? batch : rest).push(entry);
      }
      this.#queue = rest;
      this.#inFlight += 1;
      this.#send(batch, timeoutMs).finally(() => {
        this.#inFlight -= 1;
        this.#schedule();
      });
    }
  }

  async #send(entries, timeoutMs) {
    const batch = new CoreRestBatch(this.#grouped);
    try {
      for (const { call } of entries) batch.add(call);
      const reply = await post(this.#url + batch.path, this.#authorization, batch.body, timeoutMs);
      if (reply.kind === undefined) batch.receive(reply.status, reply.text);
      else batch.fail(reply.kind, reply.message, timeoutMs);
      if (batch.regroup) this.#grouped = false;
      for (const [index, { call, settle }] of entries.entries()) settle(settled(call.receiveFrom(batch, index)));
    } catch (error) {
      // Only a defect gets here; no caller is left waiting.
      for (const { settle } of entries) settle({ status: CoreStatus.Failed, error });
    } finally {
      batch.free();
    }
  }
}

/**
 * Runs a CoreRestCall to its end. Resolves to whether it was admitted (or
 * done) and a copy of the decision's numbers; rejects with the core's
 * error. `undefined` is a call the deny cache answered: a denial whose
 * numbers are in the output slots. With `multi`, also the numbers of a
 * CoreMultiLimiter's call.
 */
export async function run(call, transport, multi = false) {
  // Answered by the core (a denial its deny cache proves, or a call its
  // quota lease pays for): the decision is in the output slots.
  if (call === undefined) {
    const slots = output().slice();
    return { allowed: slots[ALLOWED] === 1, slots };
  }
  try {
    for (;;) {
      const { status, slots, error } = await transport.exchange(call);
      if (status === SEND_AGAIN) continue;
      if (status === RETRY_LATER) {
        await sleep(call.delayMs);
        continue;
      }
      if (status === CoreStatus.Failed) throw error;
      // A multi-limit call's numbers, read before the call is freed.
      if (multi) return { allowed: status === CoreStatus.Admitted, slots, multi: call.multi };
      return { allowed: status === CoreStatus.Admitted, slots };
    }
  } finally {
    call.free();
  }
}
