// Paths and small helpers shared by the bench/pkg scripts.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const here = dirname(fileURLToPath(import.meta.url));
/** The built npm package (`make pkg`), linked as node_modules/edgelimit by run.sh. */
export const pkgDir = join(here, "..", "..", "pkg");

/** Bytes after `gzip -9` itself: zlib's level 9 comes out about 0.5% larger. */
export const gz = (bytes) => execFileSync("gzip", ["-9", "-c"], { input: bytes, maxBuffer: 1 << 30 }).length;

/** KB as in "27.8 KB gz": 1000 bytes. */
export const kb = (bytes) => (bytes / 1000).toFixed(1);

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

export const ratio = (a, b) => (b > 0 ? (a / b).toFixed(2) : "n/a");

export const version = (name) =>
  JSON.parse(readFileSync(join(here, "node_modules", name, "package.json"), "utf8")).version;

/** One progress line on stderr: stdout carries only the Markdown report. */
export const log = (...a) => console.error(...a);

/** Runs `script` (in this folder) in a fresh Node process; returns the JSON it prints. */
export const child = (script, ...args) =>
  JSON.parse(execFileSync(process.execPath, [join(here, script), ...args], { cwd: here, encoding: "utf8" }));
