// The Node entry's HTTP/1.1 client (pkg/node-http.js) against servers that
// answer as real ones may: split anywhere, chunked, interim replies, closed
// connections, HTTP/1.0, TLS. Deno's entry uses fetch instead.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer as createHttpsServer } from "node:https";
import { createServer } from "node:net";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const skip = globalThis.Deno ? "the Deno entry posts with fetch" : false;
const { nodePost } = skip ? {} : await import("../../pkg/node-http.js");

const TIMED_OUT = 0;
const REFUSED = 1;
const OTHER = 2;

/**
 * A TCP server answering each request (read up to its body's declared
 * length) with `answer(request, socket)`; counts connections and keeps the
 * requests it read.
 */
async function rawServer(answer) {
  const state = { connections: 0, requests: [], sockets: new Set() };
  const server = createServer((socket) => {
    state.connections += 1;
    state.sockets.add(socket);
    socket.on("close", () => state.sockets.delete(socket));
    let buffer = Buffer.alloc(0);
    socket.on("data", (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        const end = buffer.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buffer.toString("latin1", 0, end);
        const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (buffer.length < end + 4 + length) return;
        const body = buffer.subarray(end + 4, end + 4 + length);
        buffer = buffer.subarray(end + 4 + length);
        const request = { head, body: body.toString("utf8"), bytes: length };
        state.requests.push(request);
        answer(request, socket);
      }
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  state.url = `http://127.0.0.1:${server.address().port}/pipeline`;
  state.close = () => {
    for (const socket of state.sockets) socket.destroy();
    return new Promise((resolve) => server.close(resolve));
  };
  return state;
}

/** Writes `bytes` one at a time, a few milliseconds apart. */
async function trickle(socket, bytes) {
  for (const byte of Buffer.from(bytes)) {
    if (socket.destroyed) return;
    socket.write(Buffer.of(byte));
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

const ok = (text, extra = "") =>
  `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\n${extra}\r\n${text}`;

test("a reply split into single bytes; one kept-alive connection for many requests", { skip }, async () => {
  const server = await rawServer((request, socket) => trickle(socket, ok(`{"result":${request.bytes}}`)));
  try {
    const body = JSON.stringify(["EVALSHA", "é", "ключ", "🙂"]);
    for (let i = 0; i < 5; i++) {
      const reply = await nodePost(server.url, "Bearer t", body, 5_000);
      assert.deepEqual(reply, { status: 200, text: `{"result":${Buffer.byteLength(body)}}` });
    }
    assert.equal(server.connections, 1);
    const head = server.requests[0].head;
    assert.match(head, /^POST \/pipeline HTTP\/1\.1\r\n/);
    assert.match(head, /\r\nauthorization: Bearer t(\r\n|$)/);
    assert.equal(server.requests[0].body, body, "the body arrives intact, its length in bytes");
  } finally {
    await server.close();
  }
});

test("chunked replies, with extensions and trailers, and interim 1xx replies", { skip }, async () => {
  const replies = [
    'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{"res\r\n9;ext=1\r\nult":"é"\r\n1\r\n}\r\n0\r\n\r\n',
    'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n{"result":1\r\n1\r\n}\r\n0\r\nx-trailer: 1\r\n\r\n',
  ];
  let next = 0;
  const server = await rawServer((_, socket) => trickle(socket, replies[next++]));
  try {
    assert.deepEqual(await nodePost(server.url, "Bearer t", "[]", 5_000), { status: 200, text: '{"result":"é"}' });
    assert.deepEqual(await nodePost(server.url, "Bearer t", "[]", 5_000), { status: 200, text: '{"result":1}' });
    assert.equal(server.connections, 1, "a chunked reply keeps its connection");
  } finally {
    await server.close();
  }
});

test("a large reply in many pieces; chunked wins over a length, and that connection is not reused", {
  skip,
}, async () => {
  const big = JSON.stringify({ result: "é".repeat(100_000) });
  const replies = [
    async (socket) => {
      const bytes = Buffer.from(ok(big));
      for (let at = 0; at < bytes.length; at += 1000) {
        socket.write(bytes.subarray(at, at + 1000));
        if (at % 50_000 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      }
    },
    (socket) =>
      socket.write(
        'HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{"a"\r\n1\r\n}\r\n0\r\n\r\n',
      ),
    (socket) => socket.write(ok('{"result":3}')),
  ];
  let next = 0;
  const server = await rawServer((_, socket) => replies[next++](socket));
  try {
    assert.deepEqual(await nodePost(server.url, "Bearer t", "[]", 5_000), { status: 200, text: big });
    assert.deepEqual(await nodePost(server.url, "Bearer t", "[]", 5_000), { status: 200, text: '{"a"}' });
    assert.deepEqual(await nodePost(server.url, "Bearer t", "[]", 5_000), { status: 200, text: '{"result":3}' });
    assert.equal(server.connections, 2, "kept after the large reply, not after the ambiguous one");
  } finally {
    await server.close();
  }
});

test("Connection: close, HTTP/1.0, a reply read until close and bytes past a reply each end their connection", {
  skip,
}, async () => {
  const replies = [
    (socket) => socket.write(ok('{"result":1}', "connection: close\r\n")),
    (socket) => socket.end('HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{"result":2}'),
    (socket) => socket.write(`${ok('{"result":3}')}HTTP/1.1 200 OK\r\n`),
    (socket) => socket.write(ok('{"result":4}')),
  ];
  let next = 0;
  const server = await rawServer((_, socket) => replies[next++](socket));
  try {
    for (let i = 1; i <= 4; i++) {
      assert.deepEqual(await nodePost(server.url, "Bearer t", "[]", 5_000), { status: 200, text: `{"result":${i}}` });
    }
    assert.equal(server.connections, 4, "a new connection after each of the first three");
  } finally {
    await server.close();
  }
});

test("a malformed reply fails its request only; the next gets a fresh connection", { skip }, async () => {
  const replies = [
    "HTTP/9 what\r\n\r\n",
    "HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
    "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
    "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1g\r\na\r\n0\r\n\r\n",
    "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nabc",
    "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\nabc",
    ok('{"result":"fine"}'),
  ];
  let next = 0;
  const server = await rawServer((_, socket) => socket.write(replies[next++]));
  try {
    for (let i = 0; i < 6; i++) {
      const reply = await nodePost(server.url, "Bearer t", "[]", 5_000);
      assert.equal(reply.kind, OTHER);
      assert.match(reply.message, /malformed reply/);
    }
    assert.deepEqual(await nodePost(server.url, "Bearer t", "[]", 5_000), { status: 200, text: '{"result":"fine"}' });
    assert.equal(server.connections, 7);
  } finally {
    await server.close();
  }
});

test("silence is a timeout; refused and cut connections say whether the request could have run", { skip }, async () => {
  const silent = await rawServer(() => {});
  const started = Date.now();
  const timedOut = await nodePost(silent.url, "Bearer t", "[]", 100);
  assert.equal(timedOut.kind, TIMED_OUT);
  assert.ok(Date.now() - started >= 100);
  await silent.close();

  // Nothing listening: the request never arrived.
  const refused = await nodePost(silent.url, "Bearer t", "[]", 5_000);
  assert.equal(refused.kind, REFUSED, refused.message);

  // A fresh connection cut after the request was sent: it may have run.
  const cutting = await rawServer((_, socket) => socket.destroy());
  try {
    const cut = await nodePost(cutting.url, "Bearer t", "[]", 5_000);
    assert.equal(cut.kind, OTHER, cut.message);
  } finally {
    await cutting.close();
  }
});

test("an idle connection the server closes is dropped, not reused", { skip }, async () => {
  const server = await rawServer((_, socket) => {
    socket.write(ok('{"result":"ok"}'));
    setTimeout(() => socket.destroy(), 10);
  });
  try {
    for (let i = 0; i < 3; i++) {
      assert.equal((await nodePost(server.url, "Bearer t", "[]", 5_000)).status, 200);
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
    assert.equal(server.connections, 3);
  } finally {
    await server.close();
  }
});

test("https: the certificate is checked, the reply read over TLS", {
  skip: skip || (process.versions.bun && "spawns node"),
}, async () => {
  const fixtures = new URL("./fixtures/", import.meta.url);
  const server = createHttpsServer(
    {
      key: readFileSync(new URL("localhost-key.pem", fixtures)),
      cert: readFileSync(new URL("localhost-cert.pem", fixtures)),
    },
    (request, response) => {
      const chunks = [];
      request.on("data", (chunk) => chunks.push(chunk));
      request.on("end", () => {
        response.setHeader("content-type", "application/json");
        response.end(JSON.stringify({ result: Buffer.concat(chunks).toString("utf8") }));
      });
    },
  );
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = server.address().port;
  const client = `
    const { nodePost } = await import(${JSON.stringify(new URL("../../pkg/node-http.js", import.meta.url).href)});
    const out = [];
    for (const host of ["127.0.0.1", "localhost", "127.0.0.1"]) out.push(await nodePost("https://" + host + ":${port}/", "Bearer t", '["PING"]', 5000));
    console.log(JSON.stringify(out));`;
  const run = (extraCa) =>
    new Promise((resolve) => {
      const env = { ...process.env };
      if (extraCa) env.NODE_EXTRA_CA_CERTS = fileURLToPath(new URL("localhost-cert.pem", fixtures));
      else delete env.NODE_EXTRA_CA_CERTS;
      const child = spawn(process.execPath, ["--input-type=module", "-e", client], { env });
      let out = "";
      child.stdout.on("data", (chunk) => (out += chunk));
      child.on("close", () => resolve(JSON.parse(out)));
    });
  try {
    const trusted = await run(true);
    assert.deepEqual(trusted, Array(3).fill({ status: 200, text: '{"result":"[\\"PING\\"]"}' }));
    const untrusted = await run(false);
    for (const reply of untrusted) {
      assert.equal(reply.kind, OTHER);
      assert.match(reply.message, /certificate/i);
    }
  } finally {
    server.closeAllConnections?.();
    server.close();
  }
});

test("a reply past 2 MiB is dropped unread, however it is framed", { skip }, async () => {
  const huge = `{"result":"${"x".repeat(3 << 20)}"}`;
  const framings = {
    length: (socket) => socket.end(ok(huge)),
    declared: (socket) => socket.end("HTTP/1.1 200 OK\r\ncontent-length: 50000000\r\n\r\n{"),
    chunked: (socket) => {
      socket.write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
      for (let i = 0; i < 6; i++) socket.write(`100000\r\n${"x".repeat(0x100000)}\r\n`);
      socket.end("0\r\n\r\n");
    },
    close: (socket) => socket.end(`HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n${huge}`),
  };
  for (const [name, answer] of Object.entries(framings)) {
    const server = await rawServer((_request, socket) => answer(socket));
    try {
      const started = performance.now();
      const reply = await nodePost(server.url, "Bearer t", "[]", 5_000);
      assert.equal(reply.kind, OTHER, name);
      assert.match(reply.message, /larger than 2097152 bytes/, name);
      assert.ok(performance.now() - started < 2_000, name);
    } finally {
      await server.close();
    }
  }
});
