// The README's JavaScript examples, run as written with their imports
// pointed at the built package (and the tools' copies of peer packages).

import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const README = new URL("../../README.md", import.meta.url);
const root = new URL("../../", import.meta.url);
const entry = globalThis.Deno ? "pkg/browser.js" : "pkg/node.js";
const IMPORTS = {
  edgelimit: new URL(entry, root).href,
  "edgelimit/hono": new URL("pkg/hono.js", root).href,
  hono: new URL("tools/js/node_modules/hono/dist/index.js", root).href,
};

/** The README's `js` code block that contains `marker`. */
export function readmeExample(marker) {
  const text = readFileSync(README, "utf8");
  const blocks = [...text.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
  const found = blocks.filter((code) => code.includes(marker));
  if (found.length !== 1) throw new Error(`${found.length} README examples contain ${marker}`);
  return found[0];
}

/** Imports `code` as a module, its bare imports resolved as above, then `epilogue` appended. */
export async function runExample(code, epilogue = "") {
  const rewritten = code.replace(/from "([^"]+)"/g, (all, name) =>
    IMPORTS[name] ? `from ${JSON.stringify(IMPORTS[name])}` : all,
  );
  const dir = mkdtempSync(join(tmpdir(), "edgelimit-readme-"));
  const file = join(dir, "example.mjs");
  writeFileSync(file, `${rewritten}\n${epilogue}\n`);
  return import(pathToFileURL(file).href);
}
