// Type-checked against the package's index.d.ts, resolved through `exports`
// (tools/check-pkg.sh): a wrong `types` path or a broken declaration fails here.
import {
  type AccessList,
  accessList,
  Concurrency,
  clientIp,
  EdgelimitError,
  type LimitResult,
  memoryStore,
  Ratelimit,
  rateLimitHeaders,
  redisStore,
  withRateLimit,
} from "edgelimit";
import { rateLimit } from "edgelimit/hono";
import { Hono } from "hono";

const limiter = new Ratelimit({ limiter: Ratelimit.gcra(10, "1 s"), store: memoryStore() });
const result: LimitResult = limiter.limitSync("id");
const shared = new Ratelimit({
  limiter: Ratelimit.slidingWindow(10, "10 s"),
  store: redisStore({ url: "http://127.0.0.1:8079", token: "t" }),
  failure: "open",
});
const leases = new Concurrency({ max: 2, leaseTtl: "30 s" });
const handler = withRateLimit(async () => new Response("ok"), { limiter: shared });
const code: string | undefined = result.success ? undefined : new EdgelimitError("UNSUPPORTED", "x").code;

export { code, handler, leases };

const app = new Hono();
app.use("/api/*", rateLimit({ limiter: shared, key: (c) => c.req.header("x-client") ?? "anonymous" }));

export { app };

const migrated = new Ratelimit({
  redis: { url: "http://127.0.0.1:8079", token: "t" },
  limiter: Ratelimit.slidingWindow(10, "10 s"),
  analytics: true,
  ephemeralCache: new Map(),
});
const fromEnv = redisStore.fromEnv({ UPSTASH_REDIS_REST_URL: "http://127.0.0.1:8079", UPSTASH_REDIS_REST_TOKEN: "t" });
export async function migrate() {
  await migrated.limit("id", { rate: 2 });
  await migrated.resetUsedTokens("id");
  return fromEnv;
}

// Unknown options are rejected by the types as by the code.
// @ts-expect-error: no option "limt"
export const typo = new Ratelimit({ limiter: Ratelimit.gcra(10, "1 s"), limt: 5 });
// @ts-expect-error: no option "weight"
export const typoCall = limiter.limitSync("id", { weight: 2 });
// @ts-expect-error: no option "max"
export const typoStore = memoryStore({ max: 3 });
export const behindProxies = withRateLimit(async () => new Response("ok"), {
  limiter: shared,
  key: (request) => clientIp(request, { trustedProxies: ["10.0.0.0/8", "fd00::/8"], ipv6Prefix: 56 }),
  onUnidentified: () => new Response("who are you?", { status: 400 }),
});

// Deny and allow lists: the reasons they give are part of the result type.
const lists: AccessList = accessList({ deny: ["203.0.113.0/24"], allow: new Set(["user:ops"]) }).deny("user:666");
const listed = new Ratelimit({ limiter: Ratelimit.gcra(10, "1 s"), accessList: lists }).limitSync("user:666");
export const listedReason: "denyList" | "allowList" | "storeFailure" | "dryRun" | "blocked" | undefined = listed.reason;
export const checked: "deny" | "allow" | undefined = lists.check("203.0.113.7");
// @ts-expect-error: no option "block"
export const typoLists = accessList({ block: ["1.2.3.4"] });

// Several limits as one call, and a block: the limiter keeps their types.
const one = new Ratelimit({ limiter: Ratelimit.fixedWindow(1, "1 s") });
export const oneKind: string = one.algorithm.kind;
const quota = new Ratelimit({
  limiter: [Ratelimit.slidingWindow(10, "1 s"), Ratelimit.fixedWindow(10_000, "1 d")],
  blockFor: "15 m",
});
export const firstKind: string = quota.algorithm[0].kind;
export async function several() {
  const result = await quota.limit("id");
  const deniedBy: number | undefined = result.deniedBy;
  const left: number[] | undefined = result.limits?.map((d) => d.remaining);
  return [deniedBy, left, rateLimitHeaders(quota.algorithm, result)];
}
export const quotaHandler = withRateLimit(async () => new Response("ok"), { limiter: quota, key: () => "k" });
// @ts-expect-error: blockFor is a duration
export const badBlock = new Ratelimit({ limiter: Ratelimit.gcra(10, "1 s"), blockFor: true });
