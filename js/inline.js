// Any runtime, any bundler: the WebAssembly module travels inside this
// package as base64 (wasm-inline.js), so nothing is fetched or read at run
// time: no asset for a bundler to copy, no permission for Deno to grant.
// About a third larger than the module itself; compiled asynchronously
// (top-level await), as browsers require for modules of this size.
import init from "./edgelimit.js";
import base64 from "./wasm-inline.js";

const binary = atob(base64);
const bytes = new Uint8Array(binary.length);
for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
await init({ module_or_path: bytes });

export * from "./api.js";
