// Node (and Bun): the WebAssembly module is read from beside this file and
// instantiated synchronously at import, so the API is ready with no init call.
import { readFileSync } from "node:fs";
import { initSync } from "./edgelimit.js";

initSync({ module: readFileSync(new URL("./edgelimit_bg.wasm", import.meta.url)) });

export * from "./api.js";
