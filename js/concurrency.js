// Concurrency: a semaphore of expiring leases per id, so a crashed holder
// cannot keep a slot forever.

import * as slot from "./boundary.js";
import { CoreConcurrency, CoreLeaseOp } from "./edgelimit.js";
import { checkId, checkNumber, checkPrefix, DEFAULT_MAX_ID_BYTES, invalid } from "./errors.js";
import { options } from "./options.js";
import { DEFAULT_PREFIX } from "./ratelimit.js";
import { CORE, checkStore, failureCode, memoryStore, TRANSPORT } from "./stores.js";
import { run } from "./transport.js";

const ACQUIRE = CoreLeaseOp.Acquire;
const RELEASE = CoreLeaseOp.Release;
const EXTEND = CoreLeaseOp.Extend;
const PEEK = CoreLeaseOp.Peek;
const ACQUIRE_UNFAIR = CoreLeaseOp.AcquireUnfair;
const WAIT = CoreLeaseOp.Wait;
const LEAVE = CoreLeaseOp.Leave;

// Node 20.4+, Deno, workerd and current browsers define it; the registered
// symbol is what `await using` looks up where a polyfill provides it.
const asyncDispose = Symbol.asyncDispose ?? Symbol.for("Symbol.asyncDispose");

/** Store errors a wait goes on through: trying again later may succeed. */
const TRANSIENT = new Set(["STORE_TIMEOUT", "STORE_UNREACHABLE", "STORE_UNAVAILABLE", "STORE_BUSY"]);

/** What a call that is no waiter's try sends for the waiter's place. */
const NO_PLACE = { number: 0, oldest: 0, next: 0, waiters: 0 };

/** How often the first waiter asks again, at most (plus jitter up to as much). */
const POLL_MS = 100;

export class Concurrency {
  #core;
  #failure;
  #transport;
  #fair;
  #maxIdBytes;
  /** Waiters by id, in arrival order: `{ woken, wake, number }`. */
  #waiters = new Map();

  constructor(config) {
    const {
      max,
      leaseTtl,
      store: given,
      prefix = DEFAULT_PREFIX,
      timeout,
      failure = "error",
      fair = true,
      maxIdBytes = DEFAULT_MAX_ID_BYTES,
    } = options("new Concurrency", config, [
      "max",
      "leaseTtl",
      "store",
      "prefix",
      "timeout",
      "failure",
      "fair",
      "maxIdBytes",
    ]);
    checkNumber("max", max);
    checkPrefix(prefix);
    if (typeof fair !== "boolean") throw invalid("fair must be true or false");
    this.#fair = fair;
    const policy = failureCode(failure);
    const store = checkStore(given ?? memoryStore());
    if (timeout !== undefined) checkNumber("timeout", timeout);
    this.#core =
      store.kind === "memory"
        ? CoreConcurrency.withMemory(max, leaseTtl, store[CORE], prefix)
        : CoreConcurrency.withRest(max, leaseTtl, store[CORE], prefix, policy, timeout);
    this.#core.limitIds(checkNumber("maxIdBytes", maxIdBytes));
    this.#maxIdBytes = maxIdBytes;
    this.#failure = failure;
    this.#transport = store[TRANSPORT];
    this.prefix = prefix;
  }

  async acquire(id, config) {
    const { timeout = 0, leaseTtl, signal } = options("acquire", config, ["timeout", "leaseTtl", "signal"]);
    checkId(id, this.#maxIdBytes);
    checkNumber("timeout", timeout);
    // One lease id for every attempt: acquiring by a held id is idempotent,
    // so a retried request never takes two slots.
    const lease = CoreConcurrency.leaseId();
    const deadline = Date.now() + Math.max(0, timeout);
    // In the queue before the first try, so that no release between a
    // denial and the wait goes unseen.
    const place = this.#enqueue(id);
    let granted = false;
    // The last denial the store answered, and the error of the last try if it failed.
    let answered;
    let failed;
    try {
      for (;;) {
        signal?.throwIfAborted();
        // A waiter's try keeps its place in the store's queue (fair), so
        // that waiters elsewhere are served in arrival order too; a single
        // try takes a slot no waiter is owed (fair) or any free one.
        const op = !this.#fair ? ACQUIRE_UNFAIR : timeout > 0 ? WAIT : ACQUIRE;
        const queue = this.#waiters.get(id);
        const standing = {
          number: place.number,
          // Where this limiter stands in the store's queue: its waiters' lowest
          // number; and its other waiters', for the store to keep once this one
          // is granted.
          oldest: queue?.numbers.lowest() ?? 0,
          next: queue?.numbers.lowestBut(place.number) ?? 0,
          waiters: queue?.size ?? 1,
        };
        let outcome;
        try {
          outcome = await this.#acquireOnce(id, lease, leaseTtl, op, standing);
          answered = outcome.slots;
          failed = undefined;
        } catch (error) {
          // Waiting through an outage (Redis restarting): a poll that failed
          // is made again at the next, until the deadline; the place in the
          // store's queue is kept by the number.
          if (answered === undefined || !TRANSIENT.has(error?.code)) throw error;
          failed = error;
          outcome = { allowed: false, slots: answered };
        }
        const { allowed, slots } = outcome;
        if (Date.now() >= deadline && failed !== undefined) throw failed;
        if (place.number === 0 && slots[slot.NUMBER] > 0) {
          place.number = slots[slot.NUMBER];
          this.#waiters.get(id)?.numbers.add(place.number);
        }
        const now = Date.now();
        if (allowed && signal?.aborted) {
          // Granted as the caller gave up: the slot goes back.
          await this.#lease(id, lease)
            .release()
            .catch(() => {});
          signal.throwIfAborted();
        }
        if (allowed || now >= deadline) {
          granted = allowed;
          return new Permit(this.#lease(id, lease), allowed, slots);
        }
        // Woken, but the slot went to a caller that did not wait: first in
        // line still.
        if (place.woken) this.#requeueFirst(id, place);
        // Only the first waiter polls: retryAfter is the soonest expiry (a
        // release may come first: one through this limiter wakes the first
        // waiter at once; one elsewhere, on Redis or through another limiter
        // on the same memory store, is seen at its next poll). The others
        // sleep until their turn or their deadline.
        let wait = deadline - now;
        if (this.#waiters.get(id)?.first() === place) {
          wait = Math.min(wait, Math.max(1, slots[slot.RETRY_AFTER]), POLL_MS + Math.floor(Math.random() * POLL_MS));
        }
        await this.#pause(place, wait, signal);
      }
    } finally {
      // Leading the queue without a slot: the owner's place in the store's
      // queue goes (the next waiter here, woken now, takes it again with
      // its own number).
      const head = place.woken || this.#waiters.get(id)?.first() === place;
      if (!granted && head && place.number > 0) this.#apply(id, LEAVE, "", undefined).catch(() => {});
      this.#leave(id, place);
    }
  }

  /**
   * One acquire. When the store did not answer (an error, or a decision of
   * the failure policy), it may still have granted the lease, with no permit
   * to release it: it is released in the background (a release of a lease
   * not held changes nothing).
   */
  async #acquireOnce(id, lease, leaseTtl, op, place) {
    let outcome;
    try {
      outcome = await this.#apply(id, op, lease, leaseTtl, place);
    } catch (error) {
      this.#releaseUnanswered(id, lease);
      throw error;
    }
    if (outcome.slots[slot.REASON] === slot.STORE_FAILED) this.#releaseUnanswered(id, lease);
    return outcome;
  }

  #releaseUnanswered(id, lease) {
    this.#apply(id, RELEASE, lease, undefined).then(
      () => this.#wake(id),
      () => {},
    );
  }

  /** A place at the end of `id`'s queue. */
  #enqueue(id) {
    const place = { woken: false, left: false, wake: undefined, number: 0 };
    this.#queue(id).push(place);
    return place;
  }

  #queue(id) {
    let queue = this.#waiters.get(id);
    if (queue === undefined) {
      queue = new Queue();
      this.#waiters.set(id, queue);
    }
    return queue;
  }

  #requeueFirst(id, place) {
    place.woken = false;
    this.#queue(id).unshift(place);
  }

  /**
   * Leaves `id`'s queue. Leaving its head (or woken, which took the waiter
   * out of it) wakes the next: it may get a slot this one did not take, or
   * one more, and polls from then on.
   */
  #leave(id, place) {
    const queue = this.#waiters.get(id);
    if (place.number > 0) queue?.numbers.delete(place.number);
    const first = queue?.first() === place;
    if (first) queue.shift();
    else if (!place.woken) queue?.remove(place);
    place.left = true;
    if (queue?.first() === undefined) this.#waiters.delete(id);
    if (first || place.woken) this.#wake(id);
  }

  /** Resolves after `ms`, or sooner when woken; rejects when `signal` aborts. */
  #pause(place, ms, signal) {
    return new Promise((resolve, reject) => {
      if (place.woken) return resolve();
      signal?.throwIfAborted();
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        place.wake = undefined;
      };
      const onAbort = () => {
        done();
        reject(signal.reason);
      };
      const timer = setTimeout(() => {
        done();
        resolve();
      }, ms);
      place.wake = () => {
        done();
        resolve();
      };
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Wakes the first waiter for `id`: a lease of it was released here. */
  #wake(id) {
    const queue = this.#waiters.get(id);
    const first = queue?.shift();
    if (queue?.first() === undefined) this.#waiters.delete(id);
    if (first === undefined) return;
    first.woken = true;
    first.wake?.();
  }

  /** Wakes every waiter for `id`: its leases were all dropped here. */
  #wakeAll(id) {
    const queue = this.#waiters.get(id);
    this.#waiters.delete(id);
    for (let place = queue?.shift(); place !== undefined; place = queue.shift()) {
      place.woken = true;
      place.wake?.();
    }
  }

  async getRemaining(id) {
    checkId(id, this.#maxIdBytes);
    const { slots } = await this.#apply(id, PEEK, "", undefined);
    return { remaining: slots[slot.REMAINING], limit: slots[slot.LIMIT] };
  }

  async reset(id) {
    checkId(id, this.#maxIdBytes);
    if (this.#transport === undefined) slot.check(this.#core.remove(id));
    else await run(this.#core.restRemove(id), this.#transport);
    this.#wakeAll(id);
  }

  /** One lease operation on either store; `place` is a waiter's (WAIT): `{ number, oldest, next, waiters }`. */
  async #apply(id, op, lease, ttl, place = NO_PLACE) {
    const { number, oldest, next, waiters } = place;
    if (this.#transport !== undefined) {
      return run(this.#core.restCall(id, op, lease, ttl, Date.now(), number, oldest, next, waiters), this.#transport);
    }
    const allowed = slot.check(this.#core.apply(id, op, lease, ttl, Date.now(), number, oldest, next, waiters));
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

/**
 * Waiters in arrival order, with the head's moves in constant time (an
 * array's shift and unshift copy the whole array: quadratic for a long
 * queue). A waiter leaving from the middle is only marked, and skipped.
 */
class Queue {
  #items = [];
  #head = 0;
  /** How many wait: the places in the array, less those marked as left. */
  size = 0;
  /** The waiters' numbers in the store's queue. */
  numbers = new Numbers();

  push(place) {
    this.#items.push(place);
    this.size++;
  }

  /** Takes a waiter out from the middle: only marked, and skipped later. */
  remove(place) {
    if (place.left) return;
    place.left = true;
    this.size--;
  }

  /** The first waiter still in the queue, or undefined. */
  first() {
    while (this.#head < this.#items.length && this.#items[this.#head].left) this.#items[this.#head++] = undefined;
    return this.#items[this.#head];
  }

  shift() {
    const place = this.first();
    if (place !== undefined) {
      this.#items[this.#head++] = undefined;
      this.size--;
    }
    // Drop the consumed slots once they are most of the array.
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return place;
  }

  unshift(place) {
    this.size++;
    if (this.#head > 0) this.#items[--this.#head] = place;
    else this.#items.unshift(place);
  }
}

class Permit {
  #lease;
  #held;

  constructor(lease, acquired, slots) {
    this.acquired = acquired;
    // A grant by the "open" failure policy holds no lease.
    this.#held = this.acquired && slots[slot.REASON] !== slot.STORE_FAILED;
    this.#lease = lease;
    this.id = this.#held ? lease.id : "";
    this.limit = slots[slot.LIMIT];
    this.remaining = slots[slot.REMAINING];
    this.expiresAt = slots[slot.EXPIRES_AT];
    this.retryAfter = slots[slot.RETRY_AFTER];
    this.reason = slots[slot.REASON] === slot.STORE_FAILED ? "storeFailure" : undefined;
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

/**
 * A set of numbers with its lowest at hand: a binary heap, from which a
 * number is deleted lazily (when it reaches the top). Numbers are unique.
 */
class Numbers {
  #heap = [];
  #gone = new Set();

  add(n) {
    const heap = this.#heap;
    let i = heap.push(n) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent] <= n) break;
      heap[i] = heap[parent];
      i = parent;
    }
    heap[i] = n;
  }

  delete(n) {
    this.#gone.add(n);
  }

  /** The lowest number, or 0. */
  lowest() {
    while (this.#heap.length > 0 && this.#gone.has(this.#heap[0])) this.#gone.delete(this.#pop());
    return this.#heap[0] ?? 0;
  }

  /** The lowest number other than `own`, or 0. */
  lowestBut(own) {
    const lowest = this.lowest();
    if (lowest !== own || own === 0) return lowest;
    this.#pop();
    const next = this.lowest();
    this.add(own);
    return next;
  }

  #pop() {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        let child = 2 * i + 1;
        if (child >= heap.length) break;
        if (child + 1 < heap.length && heap[child + 1] < heap[child]) child++;
        if (heap[child] >= last) break;
        heap[i] = heap[child];
        i = child;
      }
      heap[i] = last;
    }
    return top;
  }
}
