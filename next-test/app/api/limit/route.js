// An edge route handler: 2 calls per minute and id, in the isolate's memory.
import { Ratelimit, rateLimitHeaders } from "edgelimit";

export const runtime = "edge";

const ratelimit = new Ratelimit({ limiter: Ratelimit.fixedWindow(2, "1 m"), prefix: "route:" });

export async function GET(request) {
  const id = new URL(request.url).searchParams.get("id") ?? "anonymous";
  const result = await ratelimit.limit(id);
  return Response.json(
    { success: result.success, remaining: result.remaining },
    { status: result.success ? 200 : 429, headers: rateLimitHeaders(ratelimit.algorithm, result) },
  );
}
