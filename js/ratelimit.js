// Ratelimit: the @upstash/ratelimit-shaped API over the core's rate limiter.

import { checkAccessList } from "./access.js";
import * as slot from "./boundary.js";
import { CoreAlgorithm, CoreMultiLimiter, CoreRateLimiter } from "./edgelimit.js";
import { checkId, checkNumber, checkPrefix, DEFAULT_MAX_ID_BYTES, EdgelimitError, invalid } from "./errors.js";
import { options as checkOptions } from "./options.js";
import { CORE, checkStore, failureCode, memoryStore, TRANSPORT } from "./stores.js";
import { run } from "./transport.js";
import { checkUpstashFlags, storeFromRedis } from "./upstash.js";
import { backoff, sleep } from "./wait.js";

export const DEFAULT_PREFIX = "edgelimit:";
const RESOLVED = Promise.resolve();

function algorithm(kind, core) {
  return Object.freeze({ kind, limit: core.limit, windowMs: core.windowMs, [CORE]: core });
}

function duration(name, value) {
  if (typeof value !== "number" && typeof value !== "string") {
    throw invalid(`${name} must be milliseconds or a duration such as "10 s"`);
  }
  return value;
}

function optional(name, value) {
  return value === undefined ? undefined : checkNumber(name, value);
}

/** One decision from the core's numbers for several limits, from `at`. */
function decisionAt(numbers, at) {
  return {
    success: numbers[at] === 1,
    limit: numbers[at + 1],
    remaining: numbers[at + 2],
    reset: numbers[at + 3],
    retryAfter: numbers[at + 4],
    reason: slot.REASONS[numbers[at + 5]],
  };
}

/**
 * A LimitResult for several limits from the core's numbers: the call's
 * decision, the limit that denied it, then each limit's decision.
 */
function multiResult(numbers) {
  const limits = [];
  for (let at = 7; at < numbers.length; at += 6) limits.push(decisionAt(numbers, at));
  const result = decisionAt(numbers, 0);
  result.deniedBy = numbers[6] < 0 ? undefined : numbers[6];
  result.limits = limits;
  result.pending = RESOLVED;
  return result;
}

/** A LimitResult from the core's slots. */
export function result(allowed, slots) {
  return {
    success: allowed,
    limit: slots[slot.LIMIT],
    remaining: slots[slot.REMAINING],
    reset: slots[slot.RESET],
    retryAfter: slots[slot.RETRY_AFTER],
    reason: slot.REASONS[slots[slot.REASON]],
    pending: RESOLVED,
  };
}

// The options of a call made without any: no object built or taken apart.
const NO_OPTIONS = Object.freeze({});
const CALL_OPTIONS = ["cost", "rate", "limit", "refillRate"];

// What new Ratelimit takes, and @upstash/ratelimit's names it does not.
const OPTIONS = [
  "limiter",
  "store",
  "redis",
  "prefix",
  "timeout",
  "failure",
  "lease",
  "onDecision",
  "dryRun",
  "maxIdBytes",
  "accessList",
  "blockFor",
  "ephemeralCache",
  "analytics",
  "enableTelemetry",
];
const UPSTASH_HINTS = {
  enableProtection: "edgelimit fetches no managed lists; give your own: accessList({ deny, allow })",
  denyListThreshold: "edgelimit fetches no managed lists; give your own: accessList({ deny, allow })",
  dynamicLimits: "give each call its limit instead: limit(id, { limit }), on the same state",
  ctx: "give Cloudflare's ctx.waitUntil the promise of returnLeases() instead",
};

/** A call's cost: `cost`, or @upstash/ratelimit's `rate` (default 1). */
function costOf(options) {
  if (options === NO_OPTIONS) return 1;
  const { cost, rate } = checkOptions("limit", options, CALL_OPTIONS);
  if (cost !== undefined && rate !== undefined && cost !== rate) throw invalid("give cost or rate, not both");
  return checkNumber("cost", cost ?? rate ?? 1);
}

/**
 * Whether a call has its own limit or (token buckets) refill rate, a user's
 * plan; both are then checked numbers or undefined.
 */
function hasTier(options) {
  if (options === NO_OPTIONS || (options.limit === undefined && options.refillRate === undefined)) return false;
  if (options.limit !== undefined) checkNumber("limit", options.limit);
  if (options.refillRate !== undefined) checkNumber("refillRate", options.refillRate);
  return true;
}

/** The units of the `lease` option, or undefined without leases. */
function leaseUnits(lease, inMemory) {
  if (lease === undefined) return undefined;
  if (lease === null || typeof lease !== "object") throw invalid("lease must be { units: n }");
  checkOptions("lease", lease, ["units"]);
  if (inMemory) {
    throw new EdgelimitError("INVALID_CONFIG", "lease needs a Redis store: in memory every call is already local");
  }
  return checkNumber("lease.units", lease.units);
}

/** The core algorithms of `limiter`: one, or several decided as one call. */
function coreAlgorithms(limiter) {
  const limiters = Array.isArray(limiter) ? limiter : [limiter];
  if (limiters.length === 0 || limiters.some((one) => one?.[CORE] === undefined)) {
    throw invalid(
      'limiter must come from a factory such as Ratelimit.slidingWindow(10, "10 s"), or be an array of them',
    );
  }
  return limiters.map((one) => one[CORE]);
}

export class Ratelimit {
  #core;
  // Several limits as one call, or a block after a denial: the core's
  // CoreMultiLimiter, in place of #core.
  #multi;
  #inMemory;
  #transport;
  #onDecision;
  #dryRun;
  #maxIdBytes;

  constructor(config) {
    const {
      limiter,
      store: given,
      redis,
      prefix = DEFAULT_PREFIX,
      timeout,
      failure = "error",
      lease,
      onDecision,
      dryRun = false,
      maxIdBytes = DEFAULT_MAX_ID_BYTES,
      accessList,
      blockFor,
      ephemeralCache,
      analytics,
      enableTelemetry,
    } = checkOptions("new Ratelimit", config, OPTIONS, UPSTASH_HINTS);
    const algorithms = coreAlgorithms(limiter);
    const multi = Array.isArray(limiter) || blockFor !== undefined;
    if (blockFor !== undefined) duration("blockFor", blockFor);
    checkPrefix(prefix);
    const policy = failureCode(failure);
    // @upstash/ratelimit's names (see upstash.js): `redis` makes the store.
    checkUpstashFlags({ analytics, enableTelemetry });
    let store = given;
    if (redis !== undefined) {
      if (store !== undefined) throw invalid("give either store or redis, not both");
      store = storeFromRedis({ redis, ephemeralCache });
    } else if (ephemeralCache !== undefined) {
      throw invalid("ephemeralCache goes with redis; a store has its own denyCache option");
    }
    store = checkStore(store ?? memoryStore());
    this.#inMemory = store.kind === "memory";
    this.#transport = store[TRANSPORT];
    const units = leaseUnits(lease, this.#inMemory);
    if (multi && units !== undefined) {
      throw new EdgelimitError("INVALID_CONFIG", "lease takes one limit without blockFor");
    }
    const wait = optional("timeout", timeout);
    if (multi) {
      // The core takes its own copies: the factories' algorithms stay usable.
      const copies = algorithms.map((core) => core.copy());
      this.#multi = this.#inMemory
        ? CoreMultiLimiter.withMemory(copies, blockFor, store[CORE], prefix)
        : CoreMultiLimiter.withRest(copies, blockFor, store[CORE], prefix, policy, wait);
    } else {
      this.#core = this.#inMemory
        ? CoreRateLimiter.withMemory(algorithms[0], store[CORE], prefix)
        : CoreRateLimiter.withRest(algorithms[0], store[CORE], prefix, policy, wait, units);
    }
    const core = this.#multi ?? this.#core;
    core.limitIds(checkNumber("maxIdBytes", maxIdBytes));
    if (accessList !== undefined) core.useAccessList(checkAccessList(accessList));
    this.#maxIdBytes = maxIdBytes;
    if (onDecision !== undefined && typeof onDecision !== "function") throw invalid("onDecision must be a function");
    if (typeof dryRun !== "boolean") throw invalid("dryRun must be true or false");
    this.#onDecision = onDecision;
    this.#dryRun = dryRun;
    this.algorithm = limiter;
    this.prefix = prefix;
  }

  /**
   * `result` as the caller gets it (in a dry run, never a denial: the
   * decision's numbers with `reason: "dryRun"`), after reporting the
   * decision to `onDecision`.
   */
  #decided(id, cost, result, startedAt) {
    if (this.#onDecision !== undefined) {
      this.#report({
        ...this.#event(id, cost, startedAt),
        success: result.success,
        limit: result.limit,
        remaining: result.remaining,
        reset: result.reset,
        retryAfter: result.retryAfter,
        reason: result.reason,
      });
    }
    if (this.#dryRun && !result.success) return { ...result, success: true, reason: "dryRun" };
    return result;
  }

  #failed(id, cost, error, startedAt) {
    if (this.#onDecision !== undefined) this.#report({ ...this.#event(id, cost, startedAt), error });
    return error;
  }

  #event(id, cost, startedAt) {
    return {
      id,
      cost,
      prefix: this.prefix,
      algorithm: Array.isArray(this.algorithm) ? this.algorithm.map((a) => a.kind).join("+") : this.algorithm.kind,
      dryRun: this.#dryRun,
      storeMs: this.#inMemory ? 0 : performance.now() - startedAt,
    };
  }

  #report(event) {
    // An observer's failure is its own: it never changes a decision.
    try {
      this.#onDecision(event);
    } catch (error) {
      if (typeof globalThis.reportError === "function") globalThis.reportError(error);
      else console.error("edgelimit: onDecision threw", error);
    }
  }

  static fixedWindow(limit, window) {
    checkNumber("limit", limit);
    return algorithm("fixedWindow", CoreAlgorithm.fixedWindow(limit, duration("window", window)));
  }

  static slidingWindow(limit, window) {
    checkNumber("limit", limit);
    return algorithm("slidingWindow", CoreAlgorithm.slidingWindow(limit, duration("window", window)));
  }

  static slidingLog(limit, window) {
    checkNumber("limit", limit);
    return algorithm("slidingLog", CoreAlgorithm.slidingLog(limit, duration("window", window)));
  }

  static tokenBucket(refillRate, interval, maxTokens, config) {
    const { initialTokens } = checkOptions("tokenBucket", config, ["initialTokens"]);
    checkNumber("refillRate", refillRate);
    checkNumber("maxTokens", maxTokens);
    const core = CoreAlgorithm.tokenBucket(
      refillRate,
      duration("interval", interval),
      maxTokens,
      optional("initialTokens", initialTokens),
    );
    return algorithm("tokenBucket", core);
  }

  static gcra(rate, period, config) {
    const { burst } = checkOptions("gcra", config, ["burst"]);
    checkNumber("rate", rate);
    return algorithm("gcra", CoreAlgorithm.gcra(rate, duration("period", period), optional("burst", burst)));
  }

  limitSync(id, options = NO_OPTIONS) {
    const cost = costOf(options);
    const tiered = hasTier(options);
    checkId(id, this.#maxIdBytes);
    if (this.#multi !== undefined) return this.#limitSeveral(id, cost, tiered);
    let allowed;
    try {
      const length = slot.encodeId(id);
      const status = tiered
        ? this.#core.decideUnder(length, cost, Date.now(), options.limit, options.refillRate)
        : this.#core.decide(length, cost, Date.now(), false);
      allowed = slot.check(status);
    } catch (error) {
      throw this.#failed(id, cost, error, 0);
    }
    const decided = result(allowed, slot.output());
    return this.#onDecision === undefined && !this.#dryRun ? decided : this.#decided(id, cost, decided, 0);
  }

  limit(id, options = NO_OPTIONS) {
    // In memory the decision is made at once: no async function (whose
    // machinery costs more than the decision), but still a promise, and a
    // rejected one on error, never a throw.
    if (this.#inMemory) {
      try {
        return Promise.resolve(this.limitSync(id, options));
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return this.#limitRemote(id, options);
  }

  /** A call on several limits (or under a block) in memory. */
  #limitSeveral(id, cost, tiered) {
    if (tiered) throw invalid("a call's own limit needs a limiter of one limit");
    let decided;
    try {
      decided = multiResult(this.#multi.decide(id, cost, Date.now(), false));
    } catch (error) {
      throw this.#failed(id, cost, error, 0);
    }
    return this.#onDecision === undefined && !this.#dryRun ? decided : this.#decided(id, cost, decided, 0);
  }

  /** A call on several limits (or under a block) in Redis. */
  async #limitSeveralRemote(id, cost, tiered) {
    if (tiered) throw invalid("a call's own limit needs a limiter of one limit");
    const startedAt = this.#onDecision === undefined ? 0 : performance.now();
    let decided;
    try {
      const listed = this.#multi.listed(id, Date.now());
      const numbers =
        listed ?? (await run(this.#multi.restCall(id, cost, Date.now(), false), this.#transport, true)).multi;
      decided = multiResult(numbers);
    } catch (error) {
      throw this.#failed(id, cost, error, startedAt);
    }
    return this.#onDecision === undefined && !this.#dryRun ? decided : this.#decided(id, cost, decided, startedAt);
  }

  async #limitRemote(id, options) {
    const cost = costOf(options);
    const tiered = hasTier(options);
    checkId(id, this.#maxIdBytes);
    if (this.#multi !== undefined) return this.#limitSeveralRemote(id, cost, tiered);
    const startedAt = this.#onDecision === undefined ? 0 : performance.now();
    let decided;
    try {
      const length = slot.encodeId(id);
      const call = tiered
        ? this.#core.restCallUnder(length, cost, Date.now(), options.limit, options.refillRate)
        : this.#core.restCall(length, cost, Date.now(), false);
      if (call === undefined) {
        // Answered at once (a denial the deny cache proves, or units of a
        // quota lease): the numbers are in the output slots, read now.
        const slots = slot.output();
        decided = result(slots[slot.ALLOWED] === 1, slots);
      } else {
        const outcome = await run(call, this.#transport);
        decided = result(outcome.allowed, outcome.slots);
      }
    } catch (error) {
      throw this.#failed(id, cost, error, startedAt);
    }
    return this.#onDecision === undefined && !this.#dryRun ? decided : this.#decided(id, cost, decided, startedAt);
  }

  async blockUntilReady(id, timeout, config) {
    const {
      signal,
      cost: given,
      rate,
      limit,
      refillRate,
    } = checkOptions("blockUntilReady", config, ["signal", ...CALL_OPTIONS]);
    const cost = costOf({ cost: given, rate });
    checkNumber("timeout", timeout);
    const deadline = Date.now() + Math.max(0, timeout);
    for (;;) {
      signal?.throwIfAborted();
      const outcome = await this.limit(id, { cost, limit, refillRate });
      if (outcome.success) return outcome;
      const wait = backoff(outcome.retryAfter, Date.now(), deadline);
      if (wait < 0) return outcome;
      await sleep(wait, signal);
    }
  }

  async getRemaining(id) {
    checkId(id, this.#maxIdBytes);
    if (this.#multi !== undefined) {
      const numbers = this.#inMemory
        ? this.#multi.decide(id, 0, Date.now(), true)
        : (await run(this.#multi.restCall(id, 0, Date.now(), true), this.#transport, true)).multi;
      const { remaining, reset, limit, reason, limits } = multiResult(numbers);
      return { remaining, reset, limit, reason, limits };
    }
    let slots;
    if (this.#inMemory) {
      slot.check(this.#core.decide(slot.encodeId(id), 0, Date.now(), true));
      slots = slot.output();
    } else {
      ({ slots } = await run(this.#core.restCall(slot.encodeId(id), 0, Date.now(), true), this.#transport));
    }
    return { remaining: slots[slot.REMAINING], reset: slots[slot.RESET], limit: slots[slot.LIMIT] };
  }

  /**
   * Gives `units` back to `id`: a call that turned out cheaper than charged,
   * or failed upstream. Never more than `id` has used (nothing is minted);
   * answers what is left, as `getRemaining` does.
   */
  refund(id, units) {
    return this.#adjust(id, units, false);
  }

  /**
   * Charges `id` `units` on top of what it used (a failed login, abuse):
   * never past the limit, so `id` waits at most as long as after a full use.
   */
  penalize(id, units) {
    return this.#adjust(id, units, true);
  }

  async #adjust(id, units, penalty) {
    checkId(id, this.#maxIdBytes);
    checkNumber("units", units);
    if (this.#multi !== undefined) {
      throw new EdgelimitError("UNSUPPORTED", "refund and penalize need a limiter of one limit without blockFor");
    }
    let slots;
    if (this.#inMemory) {
      slot.check(this.#core.adjust(slot.encodeId(id), units, Date.now(), penalty));
      slots = slot.output();
    } else {
      ({ slots } = await run(this.#core.restAdjust(slot.encodeId(id), units, Date.now(), penalty), this.#transport));
    }
    return { remaining: slots[slot.REMAINING], reset: slots[slot.RESET], limit: slots[slot.LIMIT] };
  }

  /**
   * Gives every unspent quota lease back to Redis (see the `lease` option),
   * e.g. in `ctx.waitUntil` at the end of a Worker's request; calls made
   * together share one request. Nothing to do without leases.
   */
  async returnLeases() {
    if (this.#inMemory || this.#multi !== undefined) return;
    const calls = [];
    for (
      let call = this.#core.restReturnQuota(Date.now());
      call !== undefined;
      call = this.#core.restReturnQuota(Date.now())
    ) {
      calls.push(call);
    }
    await Promise.all(calls.map((call) => run(call, this.#transport)));
  }

  /** @upstash/ratelimit's name for `reset`. */
  resetUsedTokens(id) {
    return this.reset(id);
  }

  async reset(id) {
    checkId(id, this.#maxIdBytes);
    if (this.#multi !== undefined) {
      // Every limit's state, and the block.
      if (this.#inMemory) this.#multi.remove(id);
      else await Promise.all(this.#multi.restRemove(id).map((call) => run(call, this.#transport)));
      return;
    }
    if (this.#inMemory) slot.check(this.#core.remove(slot.encodeId(id)));
    else await run(this.#core.restRemove(id), this.#transport);
  }
}
