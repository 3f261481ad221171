// edgelimit/hono: Hono middleware over an edgelimit Ratelimit.
import type { Context, MiddlewareHandler } from "hono";
import type { LimitResult, Ratelimit } from "./index.js";

export interface RateLimitOptions<C extends Context = Context> {
  /** The limiter, or a function of the context choosing one (e.g. per route or from `c.env`). */
  limiter: Ratelimit | ((c: C) => Ratelimit);
  /**
   * Whose usage a request counts against. Default, only where the runtime
   * knows the client: Cloudflare's `CF-Connecting-IP`, or on Deno the
   * connection's address. Elsewhere it is required (forwarded headers can be
   * forged; `clientIp` from "edgelimit" reads them behind your own proxies).
   */
  key?: (c: C) => string | undefined | Promise<string | undefined>;
  /** Units a request costs. Default 1. */
  cost?: (c: C) => number | Promise<number>;
  /** The client's own limit (its plan); undefined: the limiter's (see `LimitOptions.limit`). */
  limit?: (c: C) => number | undefined | Promise<number | undefined>;
  /** The response to a denied request. Default: 429 with a short text body. Headers are added to it. */
  onLimited?: (c: C, result: LimitResult) => Response | Promise<Response>;
  /** A request `key` cannot identify. Default: 400 with a short text body, no limiter called. */
  onUnidentified?: (c: C, next: () => Promise<void>) => Response | Promise<Response | undefined>;
}

/** Rate limits the routes it is mounted on; adds the RateLimit headers to every response. */
export declare function rateLimit<C extends Context = Context>(options: RateLimitOptions<C>): MiddlewareHandler;
