// Node (and Bun): the WebAssembly module is read from beside this file and
// instantiated synchronously at import, so the API is ready with no init call.
import { readFileSync } from "node:fs";
import { initSync } from "./edgelimit.js";
import { nodePost } from "./node-http.js";
import { usePost } from "./transport.js";

initSync({ module: readFileSync(new URL("./edgelimit_bg.wasm", import.meta.url)) });
// Requests on kept-alive sockets (node-http.js), far cheaper per request
// than fetch or node:http here.
usePost(nodePost);

export * from "./api.js";
