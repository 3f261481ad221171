// Who is calling: a client address no client can choose. A limit keyed by a
// header the client sets (X-Forwarded-For straight from the request) is no
// limit: rotating the header buys a fresh quota on every request.

import { EdgelimitError, invalid } from "./errors.js";
import { options } from "./options.js";

const DEFAULT_IPV6_PREFIX = 64;

/** An IPv4 address as 4 bytes, or undefined. */
function parseV4(text) {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i];
    // Decimal only, no leading zeros: "010" is octal to some parsers.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part) || Number(part) > 255) return undefined;
    bytes[i] = Number(part);
  }
  return bytes;
}

/** The 16-bit words of one side of "::", or undefined; the last group may be dotted IPv4. */
function words(half, last) {
  if (half === "") return [];
  const groups = half.split(":");
  const out = [];
  for (let i = 0; i < groups.length; i++) {
    const group = groups[i];
    if (last && i === groups.length - 1 && group.includes(".")) {
      const v4 = parseV4(group);
      if (v4 === undefined) return undefined;
      out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
    } else if (/^[0-9a-fA-F]{1,4}$/.test(group)) {
      out.push(Number.parseInt(group, 16));
    } else {
      return undefined;
    }
  }
  return out;
}

/** An IPv6 address (zone dropped, trailing dotted IPv4 allowed) as 16 bytes, or undefined. */
function parseV6(text) {
  const zone = text.indexOf("%");
  const halves = (zone === -1 ? text : text.slice(0, zone)).split("::");
  if (halves.length > 2) return undefined;
  const head = words(halves[0], halves.length === 1);
  const tail = halves.length === 2 ? words(halves[1], true) : [];
  if (head === undefined || tail === undefined) return undefined;
  let full;
  if (halves.length === 1) {
    if (head.length !== 8) return undefined;
    full = head;
  } else {
    // "::" stands for at least one zero word.
    if (head.length + tail.length > 7) return undefined;
    full = [...head, ...new Array(8 - head.length - tail.length).fill(0), ...tail];
  }
  const bytes = new Uint8Array(16);
  full.forEach((word, i) => {
    bytes[2 * i] = word >> 8;
    bytes[2 * i + 1] = word & 0xff;
  });
  return bytes;
}

/**
 * An address as bytes (4 for IPv4, 16 for IPv6), from the forms proxies
 * write: `203.0.113.7`, `203.0.113.7:4711`, `2001:db8::1`, `[2001:db8::1]:443`;
 * IPv4-mapped IPv6 (`::ffff:203.0.113.7`) as IPv4. Undefined if not an address.
 */
export function parseIp(text) {
  if (typeof text !== "string") return undefined;
  let s = text.trim();
  if (s.startsWith("[")) {
    const end = s.indexOf("]");
    if (end === -1 || !/^(:\d{1,5})?$/.test(s.slice(end + 1))) return undefined;
    s = s.slice(1, end);
  } else if (/^[0-9.]+:\d{1,5}$/.test(s)) {
    s = s.slice(0, s.indexOf(":"));
  }
  if (!s.includes(":")) return parseV4(s);
  const v6 = parseV6(s);
  if (v6?.subarray(0, 10).every((b) => b === 0) && v6[10] === 0xff && v6[11] === 0xff) {
    return v6.slice(12);
  }
  return v6;
}

/** `bytes` with every bit after the first `bits` cleared. */
function masked(bytes, bits) {
  const out = Uint8Array.from(bytes);
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - 8 * i));
    out[i] &= (0xff00 >> keep) & 0xff;
  }
  return out;
}

/** Canonical text of an address: dotted IPv4, or RFC 5952 IPv6. */
function format(bytes) {
  if (bytes.length === 4) return bytes.join(".");
  const words = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i] << 8) | bytes[i + 1]);
  // The longest run of two or more zero words becomes "::" (the first one on a tie).
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) [best, bestLength] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = (ws) => ws.map((w) => w.toString(16)).join(":");
  if (best === -1) return hex(words);
  return `${hex(words.slice(0, best))}::${hex(words.slice(best + bestLength))}`;
}

/**
 * The id of a client at `address` (bytes): an IPv4 address as itself, an
 * IPv6 one as its network of `ipv6Prefix` bits (`2001:db8:1:2::/64`), since
 * one host commonly holds a whole /64 and could rotate through it.
 */
function clientId(bytes, ipv6Prefix) {
  if (bytes.length === 4 || ipv6Prefix === 128) return format(bytes);
  return `${format(masked(bytes, ipv6Prefix))}/${ipv6Prefix}`;
}

/** A trusted proxy: an address or a CIDR range, parsed. */
function parseRange(entry) {
  if (typeof entry !== "string") throw invalid("trustedProxies must be addresses or CIDR ranges (strings)");
  const slash = entry.indexOf("/");
  const bytes = parseIp(slash === -1 ? entry : entry.slice(0, slash));
  const width = bytes === undefined ? 0 : bytes.length * 8;
  const suffix = slash === -1 ? String(width) : entry.slice(slash + 1);
  const bits = Number(suffix);
  if (bytes === undefined || !/^\d{1,3}$/.test(suffix) || bits > width) {
    throw new EdgelimitError(
      "INVALID_CONFIG",
      `trustedProxies: "${entry.slice(0, 60)}" is not an address or CIDR range`,
    );
  }
  return { bytes: masked(bytes, bits), bits };
}

const parsedLists = new WeakMap();

function ranges(trustedProxies) {
  if (!Array.isArray(trustedProxies)) throw invalid("trustedProxies must be an array of addresses or CIDR ranges");
  let parsed = parsedLists.get(trustedProxies);
  if (parsed === undefined) {
    parsed = trustedProxies.map(parseRange);
    parsedLists.set(trustedProxies, parsed);
  }
  return parsed;
}

function trusted(bytes, list) {
  return list.some(
    (range) => range.bytes.length === bytes.length && masked(bytes, range.bits).every((b, i) => b === range.bytes[i]),
  );
}

function checkPrefix(ipv6Prefix) {
  if (!Number.isInteger(ipv6Prefix) || ipv6Prefix < 1 || ipv6Prefix > 128) {
    throw new EdgelimitError("INVALID_CONFIG", "ipv6Prefix must be a whole number from 1 to 128");
  }
  return ipv6Prefix;
}

/**
 * The client's address behind proxies you run: the right-most address of
 * `X-Forwarded-For` that is not one of `trustedProxies` (each proxy appends
 * the address it saw, so everything left of your own proxies may be forged).
 * `remoteAddress`, when given, is the connection's peer: an untrusted peer
 * is itself the client, and its headers are ignored. IPv6 clients are
 * grouped by `ipv6Prefix` bits (default 64). Undefined when no address
 * qualifies: such a request has no identity, never a shared one.
 */
export function clientIp(request, config) {
  const {
    trustedProxies = [],
    remoteAddress,
    ipv6Prefix = DEFAULT_IPV6_PREFIX,
  } = options("clientIp", config, ["trustedProxies", "remoteAddress", "ipv6Prefix"]);
  const list = ranges(trustedProxies);
  checkPrefix(ipv6Prefix);
  if (remoteAddress !== undefined) {
    const peer = parseIp(remoteAddress);
    if (peer === undefined) return undefined;
    if (!trusted(peer, list)) return clientId(peer, ipv6Prefix);
  }
  const header = request?.headers?.get?.("X-Forwarded-For");
  if (typeof header !== "string") return undefined;
  const hops = header.split(",");
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = parseIp(hops[i]);
    // Not an address where a proxy of yours wrote one: the chain is not
    // what it claims, so nothing in it identifies the client.
    if (hop === undefined) return undefined;
    if (!trusted(hop, list)) return clientId(hop, ipv6Prefix);
  }
  return undefined;
}

/** The runtime's own client address, when it has one no client can forge. */
export function runtimeClient() {
  if (globalThis.navigator?.userAgent === "Cloudflare-Workers") {
    // Cloudflare sets CF-Connecting-IP on every request from the internet.
    return (request) => {
      const bytes = parseIp(request.headers.get("CF-Connecting-IP"));
      return bytes === undefined ? undefined : clientId(bytes, DEFAULT_IPV6_PREFIX);
    };
  }
  if (typeof globalThis.Deno?.version?.deno === "string") {
    // Deno.serve passes the connection's info second.
    return (_request, info) => {
      const bytes = parseIp(info?.remoteAddr?.hostname);
      return bytes === undefined ? undefined : clientId(bytes, DEFAULT_IPV6_PREFIX);
    };
  }
  return undefined;
}
