# edgelimit: `make demo` shows the limiter working; `make test` runs every test.

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: fuzz mutants all demo demo-rust test-next test-worker test test-rust test-gateway test-deps test-long lint wasm-check pkg pkg-check test-js bench bench-redis bench-gateway bench-pkg bench-cluster bench-multi clean test-wasm test-browser

all: test

## Builds the npm package, runs the example Worker in workerd and fires a
## burst of requests at it, printing each answer's rate-limit headers.
demo: pkg
	bash worker-example/run.sh demo

## The Rust demo on the embedded in-memory store.
demo-rust:
	$(CARGO) run --quiet --release --example demo

GATEWAY_TARGET := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
GATEWAY_BIN := $(GATEWAY_TARGET)/debug/edgelimit-gateway

## Formatting, lints, then every test: Rust, the gateway, the npm package in
## Node, Deno, workerd and headless Chromium. Installs what it needs
## (redis-server, chromium, wasm-bindgen-cli, npm packages).
test: lint wasm-check test-rust test-gateway pkg-check test-js test-worker test-wasm test-browser test-next

## The Rust tests: unit, property, Redis and gateway differential tests.
test-rust: test-deps
	EDGELIMIT_GATEWAY_BIN=$(GATEWAY_BIN) $(CARGO) test --workspace --all-features

## The gateway's Node tests, with the real @upstash clients (its Rust
## tests run in test-rust, with the rest of the workspace).
test-gateway: test-deps
	bash gateway/run-tests.sh

## What the tests run against: a real redis-server and the real gateway.
test-deps:
	bash tools/ensure-redis.sh
	$(CARGO) build --quiet -p edgelimit-gateway --bin edgelimit-gateway

## The core and its wasm tests (tests/wasm/) must keep compiling to
## WebAssembly, as lint-clean as natively (their code paths differ:
## cfg(target_arch = "wasm32")).
wasm-check:
	rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || rustup target add wasm32-unknown-unknown
	$(CARGO) clippy --quiet --lib --test wasm --target wasm32-unknown-unknown -- -D warnings

## The npm package in pkg/: the core as WebAssembly plus the JS entries.
pkg:
	bash tools/build-pkg.sh

## Builds pkg/, then loads it in Node (by name, through `exports`), Deno, and a Workers bundle.
pkg-check: pkg
	bash tools/check-pkg.sh

## The JS suite on the built package, in Node and in Deno.
test-js: test-deps pkg
	EDGELIMIT_GATEWAY_BIN=$(GATEWAY_BIN) bash tools/test-js.sh

## The WebAssembly bindings' own tests (tests/wasm/), under Node and in
## headless Chromium; both runs must pass the same number of tests.
test-wasm:
	bash tools/ensure-chromium.sh
	bash tools/test-wasm.sh

## The built package in headless Chromium, as a page uses it: a module
## script importing pkg/browser.js, driven by Playwright.
test-browser: pkg
	bash tools/ensure-chromium.sh
	bash browser-test/run.sh

## The package in a Next.js app: an edge middleware and an edge route
## handler, `next build` (Turbopack, webpack) then `next start`.
test-next: pkg
	bash next-test/run.sh

## The example Worker in workerd: the memory store, and Redis through the gateway.
test-worker: test-deps pkg
	EDGELIMIT_GATEWAY_BIN=$(GATEWAY_BIN) bash worker-example/run.sh test

## The property tests with many more cases.
test-long: test-deps
	EDGELIMIT_GATEWAY_BIN=$(GATEWAY_BIN) PROPTEST_CASES=20000 $(CARGO) test --workspace --release

## Mutation testing (cargo-mutants, pinned, installed into .cache/): every
## change to the algorithms and the stores' pure parts must fail one of the
## fast tests; what .cargo/mutants.toml excludes is argued equivalent there.
## Not part of `make test` (it takes long); the report is in mutants.out/.
## Property tests run from a fixed seed, so a run is reproducible.
## MUTANTS_ARGS adds cargo-mutants options, e.g. --re 'src/store/memory\.rs'.
## Exit status 3 (some mutants timed out: an endless loop, so the change
## was noticed) passes unless mutants.out/missed.txt names a mutant:
## cargo-mutants reports 3 rather than 2 (a mutant missed) when a run has
## both.
mutants:
	PROPTEST_RNG_SEED=18 PROPTEST_MAX_SHRINK_ITERS=0 PROPTEST_DISABLE_FAILURE_PERSISTENCE=1 \
		"$$(bash tools/ensure-cargo-mutants.sh)" mutants --jobs 1 $(MUTANTS_ARGS); \
		status=$$?; [ $$status -eq 0 ] || { [ $$status -eq 3 ] && ! [ -s mutants.out/missed.txt ]; }

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings
	bash tools/lint-js.sh

## Fuzzing (not in make test; nightly, cargo-fuzz installed on first use):
## the gateway's JSON command and RESP readers and the store's REST reply
## readers, FUZZ_SECONDS (default 30) each; a crash fails the run.
fuzz:
	bash tools/fuzz.sh

## Side-by-side benchmarks; prints ratios against the peers.
bench:
	$(CARGO) bench --bench decisions
	$(MAKE) bench-redis
	$(MAKE) bench-gateway
	$(MAKE) bench-cluster
	$(MAKE) bench-pkg
	$(MAKE) bench-multi

## Several limits as one call next to one limit: time and store requests
## per decision, in memory and on Redis through the gateway.
bench-multi: test-deps
	$(CARGO) build --quiet --release -p edgelimit-gateway --bin edgelimit-gateway
	EDGELIMIT_GATEWAY_BIN=$(CURDIR)/target/release/edgelimit-gateway $(CARGO) run --quiet --release --example multi_cost

## The Redis REST store next to @upstash/ratelimit, through the gateway.
bench-redis:
	bash bench/redis-store/run.sh

## EVALSHA through the gateway next to direct Redis and webdis.
bench-gateway:
	bash bench/gateway/run.sh

## The gateway in front of one Redis and of a three-master cluster.
bench-cluster:
	bash bench/gateway/cluster.sh

## The npm package next to its JS peers: Worker bundle size (fails above
## 60 KB gz), wasm instantiation and import time, in-memory decisions/s.
bench-pkg:
	$(MAKE) pkg
	bash bench/pkg/run.sh

## Everything the build and the test scripts make or install inside the
## repository (nothing outside it): target/, pkg/, .cache/ (wasm-bindgen,
## cargo-mutants), cargo-mutants' mutants.out*/, the Next.js builds and
## bench/pkg/out/, npm's node_modules/ and wrangler's .wrangler/ folders.
clean:
	$(CARGO) clean
	rm -rf pkg .cache mutants.out mutants.out.old next-test/.next* next-test/next-env.d.ts bench/pkg/out
	rm -rf fuzz/target fuzz/corpus fuzz/artifacts gateway/fuzz/target gateway/fuzz/corpus gateway/fuzz/artifacts
	find . -name node_modules -type d -prune -exec rm -rf {} +
	find . -name .wrangler -type d -prune -exec rm -rf {} +
