# edgelimit: `make demo` shows the limiter working; `make test` runs every test.

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: all demo test test-long lint bench clean

all: test

## Runs the demo on the embedded in-memory store.
demo:
	$(CARGO) run --quiet --release --example demo

## Formatting, lints, then every test.
test: lint
	$(CARGO) test --workspace

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
