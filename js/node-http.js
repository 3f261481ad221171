// The Redis store's requests in Node (and Bun): HTTP/1.1 written straight to
// kept-alive sockets (node:net, or node:tls for https), the same request as
// the fetch transport. A store's request is always one small POST with a
// JSON reply, so this needs none of node:http's generality: per request it
// costs a fraction of node:http's CPU (and far less than fetch), which is
// what a batch of decisions waits for. The node entry installs it.

import { CoreFetchFailure } from "./edgelimit.js";

// node:net and node:tls are loaded by the first request that needs them:
// node:tls alone takes longer to import than the rest of the package, and
// a limiter on the memory store never needs either.
let net;
let tls;
let loading;

function load(secure) {
  loading ??= import("node:net").then((m) => {
    net = m.default;
  });
  if (secure) {
    loading = loading.then(() =>
      import("node:tls").then((m) => {
        tls = m.default;
      }),
    );
  }
  const done = loading;
  // A failed import is tried again by the next request.
  done.catch(() => {
    if (loading === done) loading = undefined;
  });
  return done;
}

// What a failed request means to the core (see transport.js).
const TIMED_OUT = CoreFetchFailure.TimedOut;
const REFUSED = CoreFetchFailure.Refused;
const OTHER = CoreFetchFailure.Other;

// Idle connections kept per origin; more are closed as they free up.
const MAX_IDLE = 64;

// The most a reply may carry (as transport.js's MAX_REPLY_BYTES): past it,
// the connection is dropped instead of read on.
const MAX_REPLY_BYTES = 2 << 20;
const TOO_LARGE = `the reply is larger than ${MAX_REPLY_BYTES} bytes`;

const CRLF = Buffer.from("\r\n");
const HEAD_END = Buffer.from("\r\n\r\n");

/** Idle kept-alive connections per origin ("http://host:port"), latest last. */
const idle = new Map();

/** POSTs `body` to `url`; resolves to `{status, text}` or `{kind, message}`. */
export function nodePost(url, authorization, body, timeoutMs) {
  const target = originOf(url);
  if (net === undefined || (target.secure && tls === undefined)) {
    return load(target.secure).then(
      () => nodePost(url, authorization, body, timeoutMs),
      (error) => ({ kind: OTHER, message: `node:net or node:tls did not load: ${error.message}` }),
    );
  }
  const payload = Buffer.from(body);
  const head =
    `POST ${target.path} HTTP/1.1\r\nhost: ${target.host}\r\nauthorization: ${authorization}\r\n` +
    `content-type: application/json\r\ncontent-length: ${payload.length}\r\n\r\n`;
  return new Promise((resolve) => {
    const connection = take(target) ?? new Connection(target);
    connection.send(Buffer.concat([Buffer.from(head, "latin1"), payload]), timeoutMs, resolve);
  });
}

// Parsed URLs by their text: a store posts to one or two URLs.
const origins = new Map();

function originOf(url) {
  let target = origins.get(url);
  if (target === undefined) {
    const parsed = new URL(url);
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      throw new TypeError(`the Redis REST URL must be http: or https:, not ${parsed.protocol}`);
    }
    const secure = parsed.protocol === "https:";
    target = {
      key: parsed.origin,
      secure,
      // URL keeps an IPv6 address in brackets; sockets take it bare.
      hostname: parsed.hostname.replace(/^\[(.*)\]$/, "$1"),
      port: Number(parsed.port) || (secure ? 443 : 80),
      host: parsed.host,
      path: `${parsed.pathname}${parsed.search}`,
    };
    if (origins.size > 64) origins.clear();
    origins.set(url, target);
  }
  return target;
}

function take(target) {
  const free = idle.get(target.key);
  const connection = free?.pop();
  if (free?.length === 0) idle.delete(target.key);
  return connection;
}

function putBack(connection) {
  const free = idle.get(connection.target.key) ?? [];
  if (free.length >= MAX_IDLE) {
    connection.socket.destroy();
    return;
  }
  free.push(connection);
  idle.set(connection.target.key, free);
}

function forget(connection) {
  const free = idle.get(connection.target.key);
  const at = free?.indexOf(connection) ?? -1;
  if (at >= 0) free.splice(at, 1);
  if (free?.length === 0) idle.delete(connection.target.key);
}

/** One socket to an origin, carrying one request at a time. */
class Connection {
  constructor(target) {
    this.target = target;
    this.reused = false;
    // The request in progress: its resolve, timer and the reply so far.
    this.pending = null;
    const options = { host: target.hostname, port: target.port };
    if (target.secure) {
      // SNI and the certificate's name check need a name, not an address.
      if (net.isIP(target.hostname) === 0) options.servername = target.hostname;
      this.socket = tls.connect(options);
    } else {
      this.socket = net.connect(options);
    }
    this.socket.setNoDelay(true);
    this.socket.on("data", (chunk) => this.#received(chunk));
    this.socket.on("error", (error) => this.#ended(error));
    this.socket.on("close", () => this.#ended(null));
  }

  send(request, timeoutMs, resolve) {
    const reply = new Reply();
    const timer = setTimeout(() => {
      this.#finish({ kind: TIMED_OUT, message: `no reply within ${timeoutMs} ms` });
      this.socket.destroy();
    }, timeoutMs);
    this.pending = { resolve, timer, reply };
    this.socket.ref();
    this.socket.write(request);
  }

  #received(chunk) {
    const pending = this.pending;
    if (pending === null) {
      // Bytes nobody asked for: the connection can no longer be trusted.
      this.socket.destroy();
      return;
    }
    let done;
    try {
      done = pending.reply.push(chunk);
    } catch (error) {
      this.#finish({ kind: OTHER, message: `malformed reply: ${error.message}` });
      this.socket.destroy();
      return;
    }
    if (!done) return;
    const { status, text, keepAlive } = pending.reply;
    this.#finish({ status, text });
    if (keepAlive && !this.socket.destroyed) {
      this.reused = true;
      this.socket.unref();
      putBack(this);
    } else {
      this.socket.destroy();
    }
  }

  #ended(error) {
    forget(this);
    const pending = this.pending;
    if (pending === null) return;
    if (pending.reply.untilClose && error === null) {
      // A reply without a length ends with its connection.
      const { status, text } = pending.reply.finishAtClose();
      this.#finish({ status, text });
      return;
    }
    const message = error?.message ?? "the connection closed before the reply was complete";
    this.#finish({ kind: this.#kind(error, pending.reply), message });
  }

  #kind(error, reply) {
    if (error?.code === "ECONNREFUSED") return REFUSED;
    // A kept-alive connection the server had already closed, with not a
    // byte of reply: the request did not reach it (as node:http's
    // reusedSocket case).
    const reset = error === null || error.code === "ECONNRESET" || error.code === "EPIPE";
    if (this.reused && reset && reply.empty) return REFUSED;
    return OTHER;
  }

  #finish(outcome) {
    const pending = this.pending;
    if (pending === null) return;
    this.pending = null;
    clearTimeout(pending.timer);
    pending.resolve(outcome);
  }
}

/** An HTTP/1.1 reply read as it arrives: status, headers, then the body. */
class Reply {
  constructor() {
    this.empty = true;
    this.status = 0;
    this.keepAlive = true;
    this.text = "";
    // "head" until the head is read; then how the body ends: "length",
    // "chunked" or "close" (a reply without a length ends with its
    // connection).
    this.mode = "head";
    this.length = 0;
    // Bytes not yet parsed (head, chunked framing), and the body's parts
    // (as received, or taken out of their chunks), joined once at the end.
    this.buffer = Buffer.alloc(0);
    this.parts = [];
    this.received = 0;
  }

  get untilClose() {
    return this.mode === "close";
  }

  /** Takes the next bytes; true once the reply is complete. */
  push(chunk) {
    this.empty = false;
    if (this.mode === "length" || this.mode === "close") return this.#body(chunk);
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    while (this.mode === "head") {
      const end = this.buffer.indexOf(HEAD_END);
      if (end < 0) {
        if (this.buffer.length > 64 * 1024) throw new Error("head too large");
        return false;
      }
      const head = this.buffer.toString("latin1", 0, end);
      this.buffer = this.buffer.subarray(end + 4);
      this.#head(head);
    }
    if (this.mode === "chunked") return this.#chunked();
    const rest = this.buffer;
    this.buffer = Buffer.alloc(0);
    return this.#body(rest);
  }

  /** The reply of a connection that closed: complete if read until close. */
  finishAtClose() {
    return { status: this.status, text: Buffer.concat(this.parts).toString("utf8") };
  }

  #body(chunk) {
    if (chunk.length > 0) {
      this.parts.push(chunk);
      this.received += chunk.length;
      if (this.received > MAX_REPLY_BYTES) throw new Error(TOO_LARGE);
    }
    if (this.mode === "close" || this.received < this.length) return false;
    // Bytes past the reply: nothing was asked for them, and a connection
    // out of step with its requests must not be used again.
    if (this.received > this.length) this.keepAlive = false;
    const body = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
    this.text = body.toString("utf8", 0, this.length);
    this.parts = [];
    return true;
  }

  #head(text) {
    const lines = text.split("\r\n");
    const match = /^HTTP\/1\.([01]) (\d{3})/.exec(lines[0]);
    if (match === null) throw new Error(`not an HTTP/1.x status line: ${lines[0].slice(0, 40)}`);
    const status = Number(match[2]);
    // An interim reply (100 Continue and the like): the real one follows.
    if (status >= 100 && status < 200) return;
    this.status = status;
    this.keepAlive = match[1] === "1";
    let contentLength = -1;
    let chunked = false;
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i].indexOf(":");
      if (colon < 0) continue;
      const name = lines[i].slice(0, colon).trim().toLowerCase();
      const value = lines[i]
        .slice(colon + 1)
        .trim()
        .toLowerCase();
      if (name === "content-length") {
        const length = Number(value);
        if (!/^\d+$/.test(value) || !Number.isSafeInteger(length)) throw new Error("bad content-length");
        if (contentLength >= 0 && contentLength !== length) throw new Error("conflicting content-length");
        contentLength = length;
        if (length > MAX_REPLY_BYTES) throw new Error(TOO_LARGE);
      } else if (name === "transfer-encoding") {
        chunked = value.split(",").pop().trim() === "chunked";
        if (!chunked) throw new Error(`unsupported transfer-encoding: ${value.slice(0, 40)}`);
      } else if (name === "connection") {
        if (value.includes("close")) this.keepAlive = false;
        else if (value.includes("keep-alive")) this.keepAlive = true;
      }
    }
    if (status === 204 || status === 304) {
      this.mode = "length";
    } else if (chunked) {
      // Chunked wins over a length (RFC 9112, 6.3); a reply with both may
      // have been meant to be read otherwise: its connection is not reused.
      this.mode = "chunked";
      if (contentLength >= 0) this.keepAlive = false;
    } else if (contentLength >= 0) {
      this.mode = "length";
      this.length = contentLength;
    } else {
      this.mode = "close";
      this.keepAlive = false;
    }
  }

  #chunked() {
    for (;;) {
      const line = this.buffer.indexOf(CRLF);
      if (line < 0) return false;
      const digits = this.buffer.toString("latin1", 0, line).split(";")[0].trim();
      if (!/^[0-9a-f]{1,12}$/i.test(digits)) throw new Error("bad chunk size");
      const size = parseInt(digits, 16);
      if (this.received + size > MAX_REPLY_BYTES) throw new Error(TOO_LARGE);
      if (size === 0) {
        // The last chunk; trailers, if any, end with an empty line.
        const end = this.buffer.indexOf(HEAD_END, line);
        if (end < 0) return false;
        if (this.buffer.length > end + 4) this.keepAlive = false;
        this.text = Buffer.concat(this.parts).toString("utf8");
        return true;
      }
      if (this.buffer.length < line + 2 + size + 2) return false;
      if (!this.buffer.subarray(line + 2 + size, line + 4 + size).equals(CRLF)) {
        throw new Error("a chunk longer than its size");
      }
      this.parts.push(this.buffer.subarray(line + 2, line + 2 + size));
      this.received += size;
      if (this.received > MAX_REPLY_BYTES) throw new Error(TOO_LARGE);
      this.buffer = this.buffer.subarray(line + 2 + size + 2);
    }
  }
}
