# edgelimit: `make demo` shows the limiter working; `make test` runs every test.

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: all demo test test-long lint wasm-check bench clean

all: test

## Runs the demo on the embedded in-memory store.
demo:
	$(CARGO) run --quiet --release --example demo

## Formatting, lints, then every test.
test: lint wasm-check
	$(CARGO) test --workspace

## The core must keep compiling to WebAssembly.
wasm-check:
	rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || rustup target add wasm32-unknown-unknown
	$(CARGO) build --quiet --lib --target wasm32-unknown-unknown

## The property tests with many more cases.
test-long:
	PROPTEST_CASES=20000 $(CARGO) test --workspace --release

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Side-by-side benchmarks; prints ratios against the peers.
bench:
	$(CARGO) bench --bench decisions

clean:
	$(CARGO) clean
