// Cloudflare Workers (workerd, wrangler): a `.wasm` import is already a
// compiled WebAssembly.Module (Workers cannot compile wasm from bytes at run
// time), so instantiating it synchronously at import is cheap and allowed.

import { initSync } from "./edgelimit.js";
import wasmModule from "./edgelimit_bg.wasm";

initSync({ module: wasmModule });

export * from "./api.js";
