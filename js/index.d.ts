// edgelimit: exact rate limiting for Workers, Deno, browsers and Node.
// One WebAssembly core; state in the isolate's memory or in Redis over the
// Upstash REST protocol.

/** Milliseconds, or text such as `"10 s"`, `"250ms"`, `"1 m"`, `"1h"`, `"1 d"`. */
export type Duration = number | `${number}${"" | " "}${"ms" | "s" | "m" | "h" | "d"}`;

/** Stable error codes: match on `error.code`, never on the message. */
export type ErrorCode =
  | "INVALID_CONFIG"
  | "INVALID_DURATION"
  | "INVALID_ARGUMENT"
  | "COST_EXCEEDS_LIMIT"
  | "DENY_LISTED"
  | "UNSUPPORTED"
  | "STORE_UNAUTHORIZED"
  | "STORE_FORBIDDEN"
  | "STORE_NOT_FOUND"
  | "STORE_SCRIPT_MISSING"
  | "STORE_COMMAND"
  | "STORE_TIMEOUT"
  | "STORE_UNREACHABLE"
  | "STORE_UNAVAILABLE"
  | "STORE_BUSY"
  | "STORE_MALFORMED_REPLY";

/**
 * Every error edgelimit throws or rejects with (an `AbortSignal`'s reason
 * excepted). `instanceof EdgelimitError` holds for errors raised in the
 * WebAssembly core as well.
 */
export declare class EdgelimitError extends Error {
  constructor(code: ErrorCode, message: string);
  readonly name: "EdgelimitError";
  readonly code: ErrorCode;
}

/** Where limiter state lives. */
export interface Store {
  readonly kind: "memory" | "redis";
}

export interface MemoryStoreOptions {
  /**
   * At most this many keys are kept (1 to 2^31 - 1). Default 100000. When
   * full, the keys whose state holds the fewest units go first (a client
   * held at its limit is kept), the soonest to expire among equals.
   */
  maxKeys?: number;
  /**
   * About this many bytes of state are kept, whichever bound comes first:
   * each key's entry, a long id, a sliding log's records. Default 33554432 (32 MiB).
   */
  maxBytes?: number;
}

/** State in this isolate's memory: fast, synchronous, not shared between isolates. */
export declare function memoryStore(options?: MemoryStoreOptions): Store;

/**
 * Ids, IP addresses and CIDR ranges (IPv4 and IPv6) that are always denied
 * or always admitted, decided before any store is asked. The most specific
 * entry decides: an exact id, then the longest range holding the id's
 * address (an id takes part in range matching when it is an address or a
 * network as `clientIp` writes them). An entry is on one list at a time.
 * Shared by every limiter given it; changes apply to their next call.
 * A malformed or mistyped range or address (`10.0.0.1/8`, `/33`,
 * `10.0.0.256`) and an entry with leading or trailing whitespace (a line
 * read with its `\r`) are `INVALID_ARGUMENT`, never an id that silently
 * matches nothing.
 */
export interface AccessList {
  /** Puts an entry on the deny list (off the allow list). */
  deny(entry: string): AccessList;
  /** Puts an entry on the allow list (off the deny list). */
  allow(entry: string): AccessList;
  /** Takes an entry off its list; whether it was on one. */
  remove(entry: string): boolean;
  /** Empties both lists. */
  clear(): void;
  /** Which list decides for `id`, if any. */
  check(id: string): "deny" | "allow" | undefined;
  /** Entries on both lists. */
  readonly size: number;
}

export interface AccessListOptions {
  deny?: Iterable<string>;
  allow?: Iterable<string>;
}

export declare function accessList(options?: AccessListOptions): AccessList;

export interface RedisStoreOptions {
  /** The Upstash REST URL, or an edgelimit-gateway's (e.g. `http://127.0.0.1:8079`). */
  url: string;
  /** Its bearer token. */
  token: string;
  /** Per-request timeout in milliseconds. Default 2000. */
  timeout?: number;
  /** Retries of a failed request, only where safe (never a request that may have consumed). Default 2. */
  retries?: number;
  /** Whose clock decides: Redis's `TIME` (default; every isolate agrees) or this isolate's `Date.now()`. */
  time?: "redis" | "caller";
  /**
   * Calls made in the same turn of the event loop share one request (default
   * `true`): consecutive decisions as one call of a batch script (`grouping:
   * "script"`; on Redis Cluster the store switches to `"pipeline"` at the first
   * CROSSSLOT), or one EVALSHA each in a `/pipeline`. Each call keeps its own
   * result, error and retries. `false`: one request per call.
   */
  batch?:
    | boolean
    | {
        /** Most calls in one request. Default 128. */
        maxCalls?: number;
        /** Most requests in flight; calls made meanwhile wait for the next. Default `Infinity`. */
        maxInFlight?: number;
        grouping?: "script" | "pipeline";
      };
  /**
   * Ids whose denial is remembered (default 10000; `0` or `false`: none). A
   * denied id's further calls are answered without a request for as long as
   * the state Redis sent back proves them denied; nothing is ever admitted
   * locally. A reset made by another client is seen once the denial runs out.
   */
  denyCache?: number | false;
}

/** State in Redis over the Upstash REST protocol: shared by every isolate and region. */
export declare const redisStore: {
  (options: RedisStoreOptions): Store;
  /**
   * A Redis store from Upstash's environment names: UPSTASH_REDIS_REST_URL
   * and UPSTASH_REDIS_REST_TOKEN (else KV_REST_API_URL and KV_REST_API_TOKEN),
   * read from `env` (a Worker's `env`) or the process (`process.env`;
   * `Deno.env`, which needs `--allow-env`).
   */
  fromEnv(env?: Record<string, string | undefined>, options?: Omit<RedisStoreOptions, "url" | "token">): Store;
};

/** A configured algorithm, made by the `Ratelimit` factories. */
export interface Algorithm {
  readonly kind: "fixedWindow" | "slidingWindow" | "slidingLog" | "tokenBucket" | "gcra";
  /** The most admitted at once (limit, capacity or burst). */
  readonly limit: number;
  /** The policy's window in milliseconds, as advertised in `RateLimit-Policy`. */
  readonly windowMs: number;
}

export interface RatelimitOptions<L extends Algorithm | readonly Algorithm[] = Algorithm | readonly Algorithm[]> {
  /**
   * The limit, or several limits decided as one call (a burst limit and a
   * daily quota): a call is admitted only when each admits it, and then
   * charged to all; denied by any, it is charged to none. One store request
   * (one critical section in memory). No two limits of one algorithm over
   * one window (`INVALID_CONFIG`).
   */
  limiter: L;
  /**
   * Once a call is denied, the id stays denied for this long (the login rule
   * against guessing passwords), with `reason: "blocked"` and the exact
   * `retryAfter`; nothing is charged meanwhile, and denials while blocked do
   * not prolong it. Not with `lease`; `refund` and `penalize` then reject
   * with `UNSUPPORTED`, as they do for several limits.
   */
  blockFor?: Duration;
  /** Default: a `memoryStore()` of its own. */
  store?: Store;
  /**
   * @upstash/ratelimit's way to name the store: an `@upstash/redis` client,
   * or `{ url, token }` (not with `store`).
   */
  redis?: { url: string; token: string } | object;
  /** With `redis`: `false` turns the deny cache off; a Map (ignored) or nothing leaves it on. */
  ephemeralCache?: Map<string, number> | false;
  /** Accepted for @upstash/ratelimit code; edgelimit sends no analytics (see `onDecision`). */
  analytics?: boolean;
  /** Accepted for @upstash/ratelimit code; edgelimit sends no telemetry. */
  enableTelemetry?: boolean;
  /**
   * Namespace of this limiter's keys. Default `"edgelimit:"`. A key is the
   * prefix, a `:` unless it ends with one, the algorithm and its time base,
   * and the id as a Redis hash tag: `edgelimit:sw:10000:{203.0.113.7}`.
   * Limiters of different algorithms or windows never share state; no `{` or `}`.
   */
  prefix?: string;
  /** Per-request store timeout in milliseconds, overriding the store's. */
  timeout?: number;
  /**
   * What to answer when the store fails after its retries: `"error"` rejects
   * with an `EdgelimitError` (default), `"open"` allows, `"closed"` denies
   * (retry after 1 s). Either decision carries `reason: "storeFailure"`.
   */
  failure?: "error" | "open" | "closed";
  /**
   * Quota leases (Redis stores; fixed and sliding windows): a call that goes
   * to Redis takes up to `units` units of its window in all, and later calls
   * on that id in this isolate spend them without a request until they run
   * out or the window ends: about one request per `units` admitted calls.
   * Never admits more than the limit; units leased here are unavailable to
   * other isolates until spent, given back (with this isolate's next request
   * for the id, or `returnLeases()`) or their window ends: at most
   * `units - 1` per isolate and id. `remaining` counts this isolate's
   * unspent units as available.
   */
  lease?: { units: number };
  /**
   * Called after every decision (and every failed call) with what was
   * decided and how long the store took; costs nothing when unset. Runs
   * synchronously: hand heavy work off. What it throws is reported
   * (`reportError`, else `console.error`) and never changes a decision.
   */
  onDecision?: (event: DecisionEvent) => void;
  /**
   * Decides and reports (`onDecision`) as usual, but never denies: a call
   * the limit would deny gets `success: true` with `reason: "dryRun"` and
   * the decision's real numbers. For rolling out a new limit.
   */
  dryRun?: boolean;
  /** The longest id accepted, in UTF-8 bytes; longer is `INVALID_ARGUMENT`. Default 1024. */
  maxIdBytes?: number;
  /**
   * Deny and allow lists (from `accessList()`), decided before the store
   * is asked: a denied id gets `reason: "denyList"`, an allowed one
   * `reason: "allowList"`, and nothing is counted for either.
   */
  accessList?: AccessList;
}

/** What `onDecision` receives. */
export interface DecisionEvent {
  id: string;
  cost: number;
  /** The limiter's prefix and algorithm. */
  prefix: string;
  algorithm: string;
  /** Whether the limiter runs dry (see `dryRun`). */
  dryRun: boolean;
  /** Milliseconds the store took (0 for the memory store). */
  storeMs: number;
  /** The decision itself (absent when the call failed). */
  success?: boolean;
  limit?: number;
  remaining?: number;
  reset?: number;
  retryAfter?: number;
  reason?: "storeFailure" | "denyList" | "allowList" | "blocked";
  /** Why the call failed, when it did. */
  error?: EdgelimitError;
}

export interface LimitOptions {
  /** Units to take; 0 only reads. Default 1. */
  cost?: number;
  /** @upstash/ratelimit's name for `cost`. */
  rate?: number;
  /**
   * This call's own limit (a user's plan) instead of the limiter's, on the
   * same state: the usage already made counts against it. A window's or a
   * log's limit, GCRA's burst, a token bucket's `maxTokens`.
   */
  limit?: number;
  /**
   * A token bucket's own refill rate for this call (a user's plan): at
   * least the limiter's, per the same interval.
   */
  refillRate?: number;
}

export interface LimitResult {
  /** Whether the call was admitted (and its cost consumed). */
  success: boolean;
  /** The most admitted at once (the call's own `limit` when it gave one). */
  limit: number;
  /** Units still admissible right now, after this call. */
  remaining: number;
  /** Unix time in milliseconds at which the limiter is back to `limit`. */
  reset: number;
  /**
   * For a denial, milliseconds until the same cost can be admitted (exact);
   * 0 when admitted; `Infinity` for the deny list (as is `reset`).
   */
  retryAfter: number;
  /**
   * `"storeFailure"`: the store failed and the `failure` policy decided;
   * `"denyList"` / `"allowList"`: the limiter's `accessList` decided, without
   * the store (denied: `remaining` 0; allowed: `remaining` is the limit);
   * `"dryRun"`: the limit would have denied this call (see `dryRun`);
   * `"blocked"`: the id is blocked after a denial (see `blockFor`).
   */
  reason?: "storeFailure" | "denyList" | "allowList" | "dryRun" | "blocked";
  /** Resolved: kept for code written against `@upstash/ratelimit`. */
  pending: Promise<void>;
  /**
   * With several limits (or `blockFor`): each limit's own decision, in the
   * order given. For a denied call nothing was charged, and a limit that
   * would have admitted it tells what it has without it. The call's
   * `remaining` is the least of theirs, `reset` the latest, `retryAfter`
   * the time after which all would admit it, `limit` that of the limit that
   * denied it, or else of the one with the least left.
   */
  limits?: LimitDecision[];
  /** With several limits: the index of the first limit that denied the call. */
  deniedBy?: number;
}

/** One limit's decision within a call on several limits. */
export interface LimitDecision {
  success: boolean;
  limit: number;
  remaining: number;
  reset: number;
  retryAfter: number;
  reason?: "storeFailure" | "denyList" | "allowList" | "blocked";
}

export interface BlockOptions extends LimitOptions {
  signal?: AbortSignal;
}

export declare class Ratelimit<L extends Algorithm | readonly Algorithm[] = Algorithm | readonly Algorithm[]> {
  constructor(options: RatelimitOptions<L>);

  /** `limit` calls per fixed window of `window`. */
  static fixedWindow(limit: number, window: Duration): Algorithm;
  /** `limit` calls per sliding `window`, the previous window weighted in. */
  static slidingWindow(limit: number, window: Duration): Algorithm;
  /** Exactly `limit` calls in any `window`: a log of timestamps. */
  static slidingLog(limit: number, window: Duration): Algorithm;
  /** `refillRate` tokens every `interval`, up to `maxTokens` (as in `@upstash/ratelimit`). */
  static tokenBucket(
    refillRate: number,
    interval: Duration,
    maxTokens: number,
    options?: { initialTokens?: number },
  ): Algorithm;
  /** `rate` calls per `period`, evenly spaced, with bursts of up to `burst` (default `rate`). */
  static gcra(rate: number, period: Duration, options?: { burst?: number }): Algorithm;

  /** The limiter's algorithm, or its limits in order. */
  readonly algorithm: L;
  readonly prefix: string;

  /** Takes `cost` units for `id`; a denial resolves with `success: false`. */
  limit(id: string, options?: LimitOptions): Promise<LimitResult>;
  /** The same, synchronously: memory store only (else throws `UNSUPPORTED`). */
  limitSync(id: string, options?: LimitOptions): LimitResult;
  /**
   * Waits until `id` is admitted or `timeout` ms have passed; resolves with the
   * last result (`success: false` when out of time). Rejects with the signal's
   * reason when aborted.
   */
  blockUntilReady(id: string, timeout: number, options?: BlockOptions): Promise<LimitResult>;
  /** What a call would get now, writing nothing. */
  getRemaining(id: string): Promise<{
    remaining: number;
    reset: number;
    limit: number;
    /** With several limits (or `blockFor`): `"blocked"` while the id is. */
    reason?: "blocked" | "storeFailure" | "denyList" | "allowList";
    /** With several limits (or `blockFor`): each limit's. */
    limits?: LimitDecision[];
  }>;
  /**
   * Gives `units` back to `id` (a call that turned out cheaper, or failed
   * upstream): never more than it used. Answers what is left.
   */
  refund(id: string, units: number): Promise<{ remaining: number; reset: number; limit: number }>;
  /**
   * Charges `id` `units` on top of its use (a failed login, abuse): never
   * past the limit. Answers what is left.
   */
  penalize(id: string, units: number): Promise<{ remaining: number; reset: number; limit: number }>;
  /** Forgets `id`'s usage. */
  reset(id: string): Promise<void>;
  /** @upstash/ratelimit's name for `reset`. */
  resetUsedTokens(id: string): Promise<void>;
  /** Gives every unspent quota lease (the `lease` option) back to Redis in one request. */
  returnLeases(): Promise<void>;
}

export interface ConcurrencyOptions {
  /** Leases held at once. */
  max: number;
  /** How long a lease lasts unless released or extended (so a crashed holder cannot leak it). */
  leaseTtl: Duration;
  store?: Store;
  /** Namespace of this limiter's keys (`edgelimit:sem:{id}` by default). */
  prefix?: string;
  timeout?: number;
  failure?: "error" | "open" | "closed";
  /**
   * true (default): waiters acquire in arrival order, across isolates on a Redis store, and an
   * acquire without a timeout takes only a slot no waiter is owed. false: any free slot is taken.
   */
  fair?: boolean;
  /** The longest id accepted, in UTF-8 bytes; longer is `INVALID_ARGUMENT`. Default 1024. */
  maxIdBytes?: number;
}

export interface AcquireOptions {
  /** Milliseconds to wait for a free lease; 0 (default) answers at once. */
  timeout?: number;
  /** This lease's time to live, overriding `leaseTtl`. */
  leaseTtl?: Duration;
  signal?: AbortSignal;
}

declare global {
  // Declared by lib esnext.disposable (TypeScript 5.2+); merged away there.
  // Under older libs (a Workers tsconfig's es2022) it is empty, so these
  // typings compile without skipLibCheck; `await using` needs the lib anyway.
  interface AsyncDisposable {}
}

/** A lease on a concurrency limiter, or the refusal of one. */
export interface Permit extends AsyncDisposable {
  readonly acquired: boolean;
  /** The lease's id (empty when not acquired). */
  readonly id: string;
  readonly limit: number;
  /** Leases still free after this one. */
  readonly remaining: number;
  /** Unix milliseconds at which the lease expires (0 when not acquired). */
  readonly expiresAt: number;
  /** When refused: milliseconds until the soonest lease expires. */
  readonly retryAfter: number;
  readonly reason?: "storeFailure";
  /** Gives the lease back; safe to call twice, a no-op when not acquired. */
  release(): Promise<void>;
  /** Renews the lease for `ttl` (default the limiter's); false if it had already expired. */
  extend(ttl?: Duration): Promise<boolean>;
}

export declare class Concurrency {
  constructor(options: ConcurrencyOptions);
  acquire(id: string, options?: AcquireOptions): Promise<Permit>;
  /** Leases held and free for `id`, changing nothing. */
  getRemaining(id: string): Promise<{ remaining: number; limit: number }>;
  /** Drops every lease of `id`. */
  reset(id: string): Promise<void>;
}

/** A Workers/Deno `fetch` handler. */
export type FetchHandler<Env = unknown, Ctx = unknown> = (
  request: Request,
  env: Env,
  ctx: Ctx,
) => Response | Promise<Response>;

/**
 * The handler `withRateLimit` returns: `env` and `ctx` optional, so it is a
 * Workers `ExportedHandler`'s `fetch`, a `Deno.ServeDefaultExport`'s (which
 * passes two arguments) and a plain `(request) => Response` alike.
 */
export type RateLimitedHandler<Env = unknown, Ctx = unknown> = (
  request: Request,
  env?: Env,
  ctx?: Ctx,
) => Promise<Response>;

export interface WithRateLimitOptions<Env = unknown, Ctx = unknown> {
  /** The limiter, or a function choosing it per request (e.g. from `env`). */
  limiter: Ratelimit | ((request: Request, env: Env, ctx: Ctx) => Ratelimit);
  /**
   * Whose usage a request counts against. Default, only where the runtime
   * knows the client: on Cloudflare Workers `CF-Connecting-IP`, on Deno the
   * connection's address (IPv6 grouped by /64). Elsewhere it is required
   * (`INVALID_CONFIG` without it): forwarded headers can be forged; behind
   * your own proxies use {@link clientIp}. An answer of `undefined`, `null`
   * or `""` identifies no one: see `onUnidentified`.
   */
  key?: (request: Request, env: Env, ctx: Ctx) => string | undefined | Promise<string | undefined>;
  /** Units a request costs. Default 1. */
  cost?: (request: Request, env: Env, ctx: Ctx) => number;
  /** The client's own limit (its plan); undefined: the limiter's. See `LimitOptions.limit`. */
  limit?: (request: Request, env: Env, ctx: Ctx) => number | undefined | Promise<number | undefined>;
  /** The response to a denied request. Default: 429 with a short text body. Headers are added to it. */
  onLimited?: (request: Request, result: LimitResult) => Response | Promise<Response>;
  /**
   * The response to a request `key` cannot identify (no shared quota for
   * them all). Default: 400 with a short text body, no limiter called.
   */
  onUnidentified?: (request: Request, env: Env, ctx: Ctx) => Response | Promise<Response>;
}

export interface ClientIpOptions {
  /** Your own proxies: addresses and CIDR ranges, IPv4 or IPv6. Default none. */
  trustedProxies?: readonly string[];
  /** The connection's peer address, when the runtime gives it (e.g. Node's `socket.remoteAddress`). */
  remoteAddress?: string;
  /** Bits of an IPv6 address that name one client. Default 64. */
  ipv6Prefix?: number;
}

/**
 * The client's address behind proxies you run: the right-most
 * `X-Forwarded-For` address that is not a trusted proxy (an untrusted
 * `remoteAddress` is itself the client). IPv4 as `203.0.113.7`, IPv6 as its
 * network (`2001:db8:1:2::/64`). `undefined` when nothing qualifies.
 */
export declare function clientIp(request: Request, options?: ClientIpOptions): string | undefined;

/**
 * Wraps a `fetch` handler: a denied request gets 429 with `Retry-After`; every
 * response carries `RateLimit-Policy`, `RateLimit` and the legacy
 * `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (only the
 * policy and `Retry-After` when the store failed and the failure policy decided).
 */
export declare function withRateLimit<Env = unknown, Ctx = unknown>(
  handler: FetchHandler<Env, Ctx>,
  options: WithRateLimitOptions<Env, Ctx>,
): RateLimitedHandler<Env, Ctx>;

/** The rate-limit response headers for a result. */
export declare function rateLimitHeaders(algorithm: Algorithm | readonly Algorithm[], result: LimitResult): Headers;

export interface ThrottleOptions<Args extends unknown[]> {
  /** Whose usage a call counts against. Default `"throttle"`. */
  key?: string | ((...args: Args) => string);
  /** Units a call costs. Default 1. */
  cost?: number;
  /** Aborting rejects every waiting call with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * Wraps `fn` so that each call first waits for capacity on `limiter` (it
 * never fails for lack of capacity), then runs. A key on the limiter's deny
 * list can never be admitted: its calls reject with `DENY_LISTED`.
 */
export declare function throttle<Args extends unknown[], R>(
  fn: (...args: Args) => R,
  limiter: Ratelimit,
  options?: ThrottleOptions<Args>,
): (...args: Args) => Promise<Awaited<R>>;
