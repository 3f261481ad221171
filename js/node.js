// Node (and Bun): the WebAssembly module is read from beside this file and
// instantiated synchronously at import, so the API is ready with no init call.
import { readFileSync } from "node:fs";
import { initSync } from "./edgelimit.js";
import { nodePost } from "./node-http.js";
import { usePost } from "./transport.js";

initSync({ module: readFileSync(new URL("./edgelimit_bg.wasm", import.meta.url)) });
// Requests through node:http, far cheaper per request than fetch here.
usePost(nodePost);

export * from "./api.js";
