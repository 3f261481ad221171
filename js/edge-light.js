// Next.js edge runtime (middleware, `runtime = "edge"` route handlers) and
// Vercel Edge Functions: `fetch` of a file beside the module fails there and
// compiling WebAssembly from bytes is not allowed, so the module is imported
// with `?module`, which their bundlers (webpack, Turbopack) turn into a
// compiled WebAssembly.Module.

import { initSync } from "./edgelimit.js";
import wasmModule from "./edgelimit_bg.wasm?module";

initSync({ module: wasmModule });

export * from "./api.js";
