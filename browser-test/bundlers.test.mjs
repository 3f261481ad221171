// The package through the bundlers users build with, each bundle run in
// headless Chromium: esbuild with `edgelimit/inline` (esbuild copies no
// assets, so the module must travel inside the JS), Vite and webpack with
// the default entry (they copy the module that `new URL("…wasm",
// import.meta.url)` names). The package is installed from its packed
// tarball, as users get it.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { build as esbuild } from "esbuild";
import { chromium } from "playwright-core";
import { build as vite } from "vite";
import webpack from "webpack";
import { CHROMIUM, serve } from "./server.mjs";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const APP = fileURLToPath(new URL("./bundle-app/", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "edgelimit-bundlers-"));
after(() => rmSync(dir, { recursive: true, force: true }));

before(() => {
  const tarball = execFileSync("npm", ["pack", "--silent", "--pack-destination", dir], { cwd: join(ROOT, "pkg") })
    .toString()
    .trim();
  writeFileSync(join(dir, "package.json"), '{ "name": "app", "private": true, "type": "module" }\n');
  execFileSync("npm", ["install", "--silent", "--no-audit", "--no-fund", "--offline", join(dir, tarball)], {
    cwd: dir,
  });
});

/** The app's sources in `name`/, importing `specifier`. */
function sources(name, specifier) {
  const src = join(dir, "src", name);
  mkdirSync(src, { recursive: true });
  const main = readFileSync(join(APP, "main.js"), "utf8").replace('from "edgelimit"', `from "${specifier}"`);
  writeFileSync(join(src, "main.js"), main);
  cpSync(join(APP, "index.html"), join(src, "index.html"));
  return src;
}

/** Opens out/`name`/index.html in Chromium; the page's results and problems. */
async function run(name) {
  const server = await serve(dir, ["out"]);
  const problems = [];
  let browser;
  try {
    browser = await chromium.launch(CHROMIUM);
    const page = await browser.newPage();
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      if (message.type() === "error" || message.type() === "warning") problems.push(message.text());
    });
    page.on("response", (response) => {
      if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`);
    });
    await page.goto(`${server.url}/out/${name}/index.html`);
    await page
      .waitForFunction(() => window.results !== undefined, null, { timeout: 20_000 })
      .catch((error) => problems.push(`no results: ${error.message}`));
    return { results: await page.evaluate(() => window.results), problems };
  } finally {
    await browser?.close();
    await server.close();
  }
}

function check({ results, problems }) {
  assert.deepEqual(problems, []);
  assert.equal(results.failed, undefined, results.failed);
  assert.deepEqual(results, { decisions: [true, true, false], remaining: 0 });
}

/** The app importing `specifier`, bundled by esbuild into out/`name`/. */
async function esbuildApp(name, specifier, logLevel) {
  const src = sources(name, specifier);
  const out = join(dir, "out", name);
  await esbuild({
    entryPoints: [join(src, "main.js")],
    bundle: true,
    format: "esm",
    platform: "browser",
    outfile: join(out, "main.js"),
    absWorkingDir: dir,
    logLevel,
  });
  cpSync(join(src, "index.html"), join(out, "index.html"));
}

test("esbuild: edgelimit/inline needs no asset", async () => {
  await esbuildApp("esbuild", "edgelimit/inline", "warning");
  check(await run("esbuild"));
});

test("esbuild with the default entry fails as documented: the module is not copied", async () => {
  await esbuildApp("esbuild-default", "edgelimit", "silent");
  const { problems } = await run("esbuild-default");
  assert.ok(
    problems.some((p) => /HTTP 404: .*edgelimit_bg\.wasm/.test(p)),
    `expected the missing module's 404, got ${JSON.stringify(problems)}`,
  );
});

test("Vite: the default entry, the module copied as an asset", async () => {
  const src = sources("vite", "edgelimit");
  await vite({
    root: src,
    base: "./",
    logLevel: "warn",
    configFile: false,
    // Top-level await: the entry instantiates the module before exporting.
    build: { outDir: join(dir, "out", "vite"), emptyOutDir: true, target: "es2022" },
  });
  check(await run("vite"));
});

test("webpack: the default entry, the module copied as an asset", async () => {
  const src = sources("webpack", "edgelimit");
  const out = join(dir, "out", "webpack");
  const stats = await new Promise((resolve, reject) =>
    webpack(
      {
        mode: "production",
        context: dir,
        entry: join(src, "main.js"),
        output: { path: out, filename: "main.js", module: true },
        experiments: { outputModule: true },
        target: "web",
      },
      (error, result) => (error ? reject(error) : resolve(result)),
    ),
  );
  assert.equal(stats.hasErrors(), false, stats.toString("errors-only"));
  cpSync(join(src, "index.html"), join(out, "index.html"));
  check(await run("webpack"));
});
