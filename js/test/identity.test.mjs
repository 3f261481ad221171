// Client identity: clientIp behind trusted proxies, and the default keys of
// withRateLimit, which trust only what the runtime vouches for.
import assert from "node:assert/strict";
import { test } from "node:test";
import { asCloudflareWorkers, clientIp, EdgelimitError, Ratelimit, withRateLimit } from "./edgelimit.mjs";
import { readmeExample, runExample } from "./readme.mjs";

const withForwarded = (value, headers = {}) =>
  new Request("https://example.com/", { headers: { "X-Forwarded-For": value, ...headers } });

test("clientIp: the right-most address that is not a trusted proxy", () => {
  const trustedProxies = ["10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.1"];
  // A client writes anything it likes on the left; proxies append what they saw.
  const chain = withForwarded("1.1.1.1, 6.6.6.6, 203.0.113.7, 192.0.2.1, 10.1.2.3");
  assert.equal(clientIp(chain, { trustedProxies }), "203.0.113.7");
  // No proxy trusted: the last hop is the client the nearest proxy saw.
  assert.equal(clientIp(chain), "10.1.2.3");
  assert.equal(clientIp(withForwarded("203.0.113.7, 2001:db8:ffff::9"), { trustedProxies }), "203.0.113.7");
  // Every hop trusted, no header, or a hop that is not an address: nobody.
  assert.equal(clientIp(withForwarded("10.0.0.1, 10.0.0.2"), { trustedProxies }), undefined);
  assert.equal(clientIp(new Request("https://example.com/"), { trustedProxies }), undefined);
  assert.equal(clientIp(withForwarded("203.0.113.7, not-an-ip, 10.0.0.1"), { trustedProxies }), undefined);
  assert.equal(clientIp(withForwarded(""), { trustedProxies }), undefined);
});

test("clientIp: the connection's peer decides whether headers count", () => {
  const trustedProxies = ["10.0.0.0/8"];
  const forged = withForwarded("203.0.113.7");
  // An untrusted peer is the client, whatever it claims.
  assert.equal(clientIp(forged, { trustedProxies, remoteAddress: "198.51.100.4" }), "198.51.100.4");
  assert.equal(clientIp(forged, { trustedProxies, remoteAddress: "::ffff:198.51.100.4" }), "198.51.100.4");
  // A trusted peer (your proxy) vouches for the header.
  assert.equal(clientIp(forged, { trustedProxies, remoteAddress: "10.9.9.9" }), "203.0.113.7");
  assert.equal(clientIp(forged, { trustedProxies, remoteAddress: "garbage" }), undefined);
});

test("clientIp: IPv6 clients are grouped by /64 (configurable); forms proxies write", () => {
  const a = clientIp(withForwarded("2001:db8:1:2:aaaa::1"));
  const b = clientIp(withForwarded("2001:0DB8:0001:0002:bbbb:cccc:dddd:eeee"));
  assert.equal(a, "2001:db8:1:2::/64");
  assert.equal(b, a, "one host rotating through its /64 is one client");
  assert.notEqual(clientIp(withForwarded("2001:db8:1:3::1")), a);
  assert.equal(clientIp(withForwarded("2001:db8:1:2:aaaa::1"), { ipv6Prefix: 128 }), "2001:db8:1:2:aaaa::1");
  assert.equal(clientIp(withForwarded("2001:db8:1:2:aaaa::1"), { ipv6Prefix: 48 }), "2001:db8:1::/48");
  assert.equal(clientIp(withForwarded("[2001:db8::7]:443")), "2001:db8::/64");
  assert.equal(clientIp(withForwarded("fe80::1%eth0")), "fe80::/64");
  assert.equal(clientIp(withForwarded("203.0.113.7:4711")), "203.0.113.7");
  assert.equal(clientIp(withForwarded("::ffff:203.0.113.7")), "203.0.113.7");
  assert.equal(clientIp(withForwarded("::")), "::/64");
  for (const bad of ["256.1.1.1", "01.2.3.4", "1.2.3", "1:2:3", "1::2::3", "12345::", "::1.2.3", "[::1", "1.2.3.4:x"]) {
    assert.equal(clientIp(withForwarded(bad)), undefined, bad);
  }
});

test("clientIp: bad options are typed errors", () => {
  const request = withForwarded("203.0.113.7");
  for (const [options, code] of [
    [{ trustedProxies: "10.0.0.0/8" }, "INVALID_ARGUMENT"],
    [{ trustedProxies: [42] }, "INVALID_ARGUMENT"],
    [{ trustedProxies: ["10.0.0.0/33"] }, "INVALID_CONFIG"],
    [{ trustedProxies: ["10.0.0.0/"] }, "INVALID_CONFIG"],
    [{ trustedProxies: ["proxy.internal"] }, "INVALID_CONFIG"],
    [{ ipv6Prefix: 0 }, "INVALID_CONFIG"],
    [{ ipv6Prefix: 64.5 }, "INVALID_CONFIG"],
  ]) {
    assert.throws(
      () => clientIp(request, options),
      (error) => error instanceof EdgelimitError && error.code === code,
    );
  }
});

const hello = () => new Response("hello");
const oneAnHour = () => new Ratelimit({ limiter: Ratelimit.fixedWindow(1, "1 h") });

test("withRateLimit: no default key where the runtime vouches for no address", async () => {
  if (globalThis.Deno) {
    // Deno: the connection's address, passed second by Deno.serve.
    const handler = withRateLimit(hello, { limiter: oneAnHour() });
    const info = (hostname) => ({ remoteAddr: { transport: "tcp", hostname, port: 4711 } });
    const forged = withForwarded("10.0.0.1");
    assert.equal((await handler(forged, info("203.0.113.7"))).status, 200);
    assert.equal((await handler(withForwarded("10.0.0.2"), info("203.0.113.7"))).status, 429);
    assert.equal((await handler(forged, info("203.0.113.8"))).status, 200);
  } else {
    assert.throws(() => withRateLimit(hello, { limiter: oneAnHour() }), { code: "INVALID_CONFIG" });
  }
});

test("withRateLimit on Workers: CF-Connecting-IP only; forwarded headers buy nothing", async () => {
  const handler = await asCloudflareWorkers(() => withRateLimit(hello, { limiter: oneAnHour() }));
  const from = (ip, forwarded) =>
    new Request("https://example.com/", { headers: { "CF-Connecting-IP": ip, "X-Forwarded-For": forwarded } });
  assert.equal((await handler(from("203.0.113.7", "1.1.1.1"))).status, 200);
  assert.equal((await handler(from("203.0.113.7", "2.2.2.2"))).status, 429, "rotating X-Forwarded-For");
  assert.equal((await handler(from("2001:db8:1:2::1", "x"))).status, 200);
  assert.equal((await handler(from("2001:db8:1:2::ffff", "y"))).status, 429, "the same /64");
  // No identity: refused, and no quota is shared by the unidentified.
  const nobody = await handler(withForwarded("203.0.113.9"));
  assert.equal(nobody.status, 400);
  assert.match(await nobody.text(), /cannot be identified/);
  assert.equal(nobody.headers.get("RateLimit-Policy"), null);
  assert.equal((await handler(withForwarded("203.0.113.9"))).status, 400);
});

test("withRateLimit: an explicit path for requests no key identifies", async () => {
  let asked = 0;
  const limiter = oneAnHour();
  const counting = {
    algorithm: limiter.algorithm,
    limit: (id, options) => {
      asked++;
      return limiter.limit(id, options);
    },
  };
  const handler = withRateLimit(hello, {
    limiter: counting,
    key: (request) => request.headers.get("x-api-key") ?? undefined,
    onUnidentified: () => new Response("sign in first", { status: 401 }),
  });
  const response = await handler(new Request("https://example.com/"));
  assert.equal(response.status, 401);
  assert.equal(await response.text(), "sign in first");
  for (const empty of ["", null]) {
    const keyed = withRateLimit(hello, { limiter: counting, key: () => empty });
    assert.equal((await keyed(new Request("https://example.com/"))).status, 400);
  }
  assert.equal(asked, 0, "the limiter is never asked about nobody");
  assert.throws(() => withRateLimit(hello, { limiter, key: () => "k", onUnidentified: 400 }), {
    code: "INVALID_ARGUMENT",
  });
});

test("the README's clientIp example runs as written", async () => {
  const { handler } = await runExample(readmeExample("clientIp(request, { trustedProxies"), "export { handler };");
  const via = (forwarded) => new Request("https://example.com/", { headers: { "X-Forwarded-For": forwarded } });
  const first = await handler(via("6.6.6.6, 203.0.113.7, 10.0.0.2"));
  assert.equal(first.status, 200);
  assert.equal(first.headers.get("X-RateLimit-Remaining"), "99");
  // A forged left part does not make a new client.
  assert.equal((await handler(via("7.7.7.7, 203.0.113.7, 10.0.0.3"))).headers.get("X-RateLimit-Remaining"), "98");
  assert.equal((await handler(via("10.0.0.2"))).status, 400);
});
