// A static server for the page and the built package, on 127.0.0.1 and a
// free port. Only the two directories the page needs are served, with the
// MIME types a browser insists on: a module script must be JavaScript, and
// WebAssembly.instantiateStreaming only accepts `application/wasm`.

import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { extname, join, normalize, sep } from "node:path";

// Debian's build (tools/ensure-chromium.sh); Playwright's own download does
// not work offline. Without the networking flags Chromium keeps trying to
// reach Google's services and stalls on a closed network.
export const CHROMIUM = {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
};

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
};
/** Serves `root`'s `served` folders (by default pkg/ and browser-test/);
 * resolves to `{ url, close }`. */
export async function serve(root, served = ["pkg", "browser-test"]) {
  const server = createServer(async (request, response) => {
    try {
      // normalize() resolves "..", so the first segment is where it points.
      const path = normalize(decodeURIComponent(new URL(request.url, "http://x").pathname));
      const type = TYPES[extname(path)];
      if (request.method !== "GET" || !served.includes(path.split(sep)[1]) || !type) {
        throw new Error("not served");
      }
      const body = await readFile(join(root, path));
      response.writeHead(200, { "content-type": type, "cache-control": "no-store" }).end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        // Playwright's keep-alive sockets would hold close() open.
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
