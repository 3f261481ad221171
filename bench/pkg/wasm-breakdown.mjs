// Where the WebAssembly module's bytes go: code by crate and module (from
// the name section), the data segments, and the largest functions. A
// function is counted where its name says, with whatever was inlined into
// it (an exported method holds much of the core it calls). Reads a
// module that kept its names (bench/pkg/wasm-breakdown.sh builds one the
// way `make pkg` builds the real one, names kept).
//
//   node bench/pkg/wasm-breakdown.mjs <module.wasm> [largest functions to list]
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const [file, top = "25"] = process.argv.slice(2);
const bytes = readFileSync(file);
let at = 8;
const leb = () => {
  let value = 0;
  let shift = 0;
  let byte;
  do {
    byte = bytes[at++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  return value;
};
const skipLimits = () => {
  const flags = bytes[at++];
  leb();
  if (flags & 1) leb();
};

let imported = 0;
const bodies = [];
const names = new Map();
const segments = [];
while (at < bytes.length) {
  const id = bytes[at++];
  const size = leb();
  const end = at + size;
  if (id === 2) {
    for (let n = leb(); n > 0; n--) {
      // Module and field names; `at += leb()` would read `at` before leb moves it.
      for (let name = 0; name < 2; name++) {
        const length = leb();
        at += length;
      }
      const kind = bytes[at++];
      if (kind === 0) {
        leb();
        imported++;
      } else if (kind === 1) {
        at++;
        skipLimits();
      } else if (kind === 2) skipLimits();
      else at += 2;
    }
  } else if (id === 10) {
    for (let n = leb(); n > 0; n--) {
      const length = leb();
      bodies.push(length);
      at += length;
    }
  } else if (id === 11) {
    for (let n = leb(); n > 0; n--) {
      const mode = leb();
      if (mode === 2) leb();
      if (mode !== 1) while (bytes[at++] !== 0x0b);
      const length = leb();
      segments.push(bytes.subarray(at, at + length));
      at += length;
    }
  } else if (id === 0) {
    const nameLength = leb();
    const name = bytes.toString("utf8", at, at + nameLength);
    at += nameLength;
    while (name === "name" && at < end) {
      const sub = bytes[at++];
      const subEnd = leb() + at;
      if (sub === 1) {
        for (let n = leb(); n > 0; n--) {
          const index = leb();
          const length = leb();
          names.set(index, bytes.toString("utf8", at, at + length));
          at += length;
        }
      }
      at = subEnd;
    }
  }
  at = end;
}

// First match wins: order from the most specific.
const groups = [
  ["formatting (core::fmt)", /fmt|Formatter|Display|Debug|PadAdapter|write_str|format/],
  ["panics and unwraps", /panic|unwrap_failed|expect_failed|_fail\b|assert/],
  ["str and UTF-8", /str::|from_utf8|char::/],
  ["integer division (u128)", /__udivti3|__umodti3|compiler_builtins/],
  ["allocator (talc)", /talc|__rust_alloc|__rust_dealloc|__rust_realloc|__rdl/],
  ["hashbrown", /hashbrown/],
  ["foldhash", /foldhash/],
  ["alloc: Vec, String", /alloc::|raw_vec|RawVec|Vec<|String|to_vec|join|from_elem/],
  ["wasm-bindgen glue and shims", /wasm_bindgen|__wbg|__wbindgen|externref|multivalue shim/],
  ["exported methods (core*)", /^core[a-z]+_/],
  ["edgelimit::wasm (bindings)", /edgelimit::wasm/],
  ["edgelimit::store::redis_rest", /redis_rest/],
  ["edgelimit::store::memory", /store::memory/],
  ["edgelimit::algorithm", /algorithm/],
  ["edgelimit::limiter", /limiter/],
  ["edgelimit::store (other)", /store/],
  ["edgelimit (other)", /edgelimit/],
  ["std and core (other)", /std|core/],
];
const rows = bodies.map((size, i) => [names.get(i + imported) ?? `#${i + imported}`, size]);
const totals = new Map();
for (const [name, size] of rows) {
  const group = groups.find(([, pattern]) => pattern.test(name))?.[0] ?? "unnamed";
  totals.set(group, (totals.get(group) ?? 0) + size);
}
const code = bodies.reduce((sum, size) => sum + size, 0);
const data = segments.reduce((sum, s) => sum + s.length, 0);
const gz = (buffer) => gzipSync(buffer, { level: 9 }).length;
console.log(`${file}: ${bytes.length} B (${gz(bytes)} B gzip -9, names included)`);
console.log(`code ${code} B in ${bodies.length} functions; data ${data} B in ${segments.length} segments`);
console.log("\n| code by origin | bytes | share of code |\n|---|---:|---:|");
for (const [group, size] of [...totals].sort((a, b) => b[1] - a[1])) {
  console.log(`| ${group} | ${size} | ${((100 * size) / code).toFixed(1)} % |`);
}
// The Lua scripts are the one large text: the segment holding `local EL_`.
const scripts = segments.find((s) => s.includes("local EL_"));
console.log("\n| data | bytes | gzip -9 |\n|---|---:|---:|");
if (scripts) console.log(`| segment with the Lua scripts | ${scripts.length} | ${gz(scripts)} |`);
const rest = Buffer.concat(segments.filter((s) => s !== scripts));
console.log(`| other segments (strings, tables) | ${rest.length} | ${gz(rest)} |`);
console.log(`\nlargest ${top} functions:`);
for (const [name, size] of rows.sort((a, b) => b[1] - a[1]).slice(0, Number(top))) {
  console.log(`${String(size).padStart(7)}  ${name.replace(/::h[0-9a-f]{16}$/, "").slice(0, 120)}`);
}
