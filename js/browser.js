// Browsers, Deno and bundlers: the module is fetched from beside this file.
// `new URL("…", import.meta.url)` is the form Vite, webpack and esbuild
// recognise as an asset reference, and Deno's fetch reads file: URLs.
// Top-level await: importers get a ready API with no init call.
import init from "./edgelimit.js";

await init({ module_or_path: new URL("./edgelimit_bg.wasm", import.meta.url) });

export * from "./api.js";
