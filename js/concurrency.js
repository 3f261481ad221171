// Concurrency: a semaphore of expiring leases per id, so a crashed holder
// cannot keep a slot forever.

import { CoreConcurrency } from "./edgelimit.js";
import * as slot from "./boundary.js";
import { checkId, checkNumber, invalid } from "./errors.js";
import { DEFAULT_PREFIX } from "./ratelimit.js";
import { CORE, TRANSPORT, checkStore, failureCode, memoryStore } from "./stores.js";
import { run } from "./transport.js";

const ACQUIRE = 0;
const RELEASE = 1;
const EXTEND = 2;
const PEEK = 3;

// Node 20.4+, Deno, workerd and current browsers define it; the registered
// symbol is what `await using` looks up where a polyfill provides it.
const asyncDispose = Symbol.asyncDispose ?? Symbol.for("Symbol.asyncDispose");

/** How often a waiter on a Redis store asks again, at most (plus jitter up to as much). */
const POLL_MS = 100;

export class Concurrency {
  #core;
  #failure;
  #transport;
  /** Waiters by id, in arrival order: each a function waking it. */
  #waiters = new Map();

  constructor({ max, leaseTtl, store, prefix = DEFAULT_PREFIX, timeout, failure = "error" } = {}) {
    checkNumber("max", max);
    if (typeof prefix !== "string") throw invalid("prefix must be a string");
    const policy = failureCode(failure);
    store = checkStore(store ?? memoryStore());
    if (timeout !== undefined) checkNumber("timeout", timeout);
    this.#core =
      store.kind === "memory"
        ? CoreConcurrency.withMemory(max, leaseTtl, store[CORE], prefix)
        : CoreConcurrency.withRest(max, leaseTtl, store[CORE], prefix, policy, timeout);
    this.#failure = failure;
    this.#transport = store[TRANSPORT];
    this.prefix = prefix;
  }

  async acquire(id, { timeout = 0, leaseTtl, signal } = {}) {
    checkId(id);
    checkNumber("timeout", timeout);
    // One lease id for every attempt: acquiring by a held id is idempotent,
    // so a retried request never takes two slots.
    const lease = CoreConcurrency.leaseId();
    const deadline = Date.now() + Math.max(0, timeout);
    for (;;) {
      signal?.throwIfAborted();
      const { allowed, slots } = await this.#apply(id, ACQUIRE, lease, leaseTtl);
      const now = Date.now();
      if (allowed || now >= deadline) return new Permit(this.#lease(id, lease), allowed, slots);
      // retryAfter is the soonest expiry: a release may come first. One of
      // this limiter's wakes the waiters here at once, in arrival order; one
      // elsewhere (another isolate on Redis) is seen at the next poll.
      let wait = Math.min(Math.max(1, slots[slot.RETRY_AFTER]), deadline - now);
      if (this.#transport !== undefined) wait = Math.min(wait, POLL_MS + Math.floor(Math.random() * POLL_MS));
      await this.#released(id, wait, signal);
    }
  }

  /** Resolves after `ms`, or sooner when a lease of `id` is released here. */
  #released(id, ms, signal) {
    return new Promise((resolve, reject) => {
      signal?.throwIfAborted();
      const queue = this.#waiters.get(id) ?? [];
      this.#waiters.set(id, queue);
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        const at = queue.indexOf(wake);
        if (at >= 0) queue.splice(at, 1);
        if (queue.length === 0 && this.#waiters.get(id) === queue) this.#waiters.delete(id);
      };
      const wake = () => {
        done();
        resolve();
      };
      const onAbort = () => {
        done();
        reject(signal.reason);
      };
      const timer = setTimeout(wake, ms);
      signal?.addEventListener("abort", onAbort, { once: true });
      queue.push(wake);
    });
  }

  /** Wakes the first waiter for `id` (a lease of it was released here). */
  #wake(id) {
    this.#waiters.get(id)?.shift()?.();
  }

  async getRemaining(id) {
    checkId(id);
    const { slots } = await this.#apply(id, PEEK, "", undefined);
    return { remaining: slots[slot.REMAINING], limit: slots[slot.LIMIT] };
  }

  async reset(id) {
    checkId(id);
    if (this.#transport === undefined) slot.check(this.#core.remove(id));
    else await run(this.#core.restRemove(id), this.#transport);
  }

  /** One lease operation on either store. */
  async #apply(id, op, lease, ttl) {
    if (this.#transport !== undefined) {
      return run(this.#core.restCall(id, op, lease, ttl, Date.now()), this.#transport);
    }
    const allowed = slot.check(this.#core.apply(id, op, lease, ttl, Date.now()));
    return { allowed, slots: slot.output().slice() };
  }

  /** What a permit may do with its lease. */
  #lease(id, lease) {
    return {
      id: lease,
      release: async () => {
        try {
          await this.#apply(id, RELEASE, lease, undefined);
        } catch (error) {
          // The lease expires on its own; only "error" wants to hear of it.
          if (this.#failure === "error") throw error;
        } finally {
          this.#wake(id);
        }
      },
      extend: async (ttl) => {
        const { allowed, slots } = await this.#apply(id, EXTEND, lease, ttl);
        return { held: allowed, expiresAt: slots[slot.EXPIRES_AT] };
      },
    };
  }
}

class Permit {
  #lease;
  #held;

  constructor(lease, acquired, slots) {
    this.acquired = acquired;
    // A grant by the "open" failure policy holds no lease.
    this.#held = this.acquired && slots[slot.STORE_FAILURE] !== 1;
    this.#lease = lease;
    this.id = this.#held ? lease.id : "";
    this.limit = slots[slot.LIMIT];
    this.remaining = slots[slot.REMAINING];
    this.expiresAt = slots[slot.EXPIRES_AT];
    this.retryAfter = slots[slot.RETRY_AFTER];
    this.reason = slots[slot.STORE_FAILURE] === 1 ? "storeFailure" : undefined;
  }

  async release() {
    if (!this.#held) return;
    this.#held = false;
    await this.#lease.release();
  }

  async extend(ttl) {
    if (!this.#held) return false;
    const { held, expiresAt } = await this.#lease.extend(ttl);
    if (held) this.expiresAt = expiresAt;
    else this.#held = false;
    return held;
  }

  [asyncDispose]() {
    return this.release();
  }
}
