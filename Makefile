# Omniroute developer commands. Tools run from .venv/bin, so nothing needs activating.
# The README's two commands: `make test` and `make demo` (both set the machine up first).

SHELL := /bin/bash
.DEFAULT_GOAL := help

BIN := .venv/bin
PYTHON := $(BIN)/python
BUF := $(CURDIR)/node_modules/.bin/buf
PY_PACKAGES := router queues simulations

.PHONY: help install proto lint fmt test fuzz chaos cancel-storm model bench demo serve check-buf

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

install: ## set up everything: redis-server, .venv, generated protobuf code, buf
	@bash scripts/setup.sh

proto: ## generate router/pb/ from proto/omniroute/v1/*.proto
	@PYTHON=$(PYTHON) bash scripts/proto.sh

lint: check-buf ## ruff, mypy, buf lint and buf format
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(PY_PACKAGES)
	cd proto && $(BUF) lint && $(BUF) format -d --exit-code

fmt: check-buf ## fix what ruff can, format Python and protos
	$(BIN)/ruff check --fix-only --exit-zero .
	$(BIN)/ruff format .
	cd proto && $(BUF) format -w

test: install ## set up, lint, then run the tests
	@$(MAKE) --no-print-directory lint
	$(BIN)/pytest -q

fuzz: ## every RPC fuzzed from the proto descriptors, 10,000 calls each (~30 min; make test: 1,000)
	OMNIROUTE_FUZZ_EXAMPLES=10000 $(BIN)/pytest -q tests/grpc/test_fuzz.py --timeout 3600

chaos: ## the chaos smoke run and its negative control alone (~5 min; also in make test)
	$(BIN)/pytest -q tests/chaos/test_smoke.py -s

cancel-storm: ## 100,000 calls cancelled at random moments, every reply checked (~15 min)
	OMNIROUTE_CANCEL_STORM=100000 $(BIN)/pytest -q tests/grpc/test_cancel_storm.py -s -k never_get --timeout 3600

model: ## the API against its model: 1,000 sequences of 50 steps, P1-P3 after each (~10 min)
	OMNIROUTE_MODEL_SEQUENCES=1000 OMNIROUTE_MODEL_STEPS=50 $(BIN)/pytest -q tests/grpc/test_model.py -s --timeout 7200

bench: ## run the benchmarks (figures and ratios)
	$(PYTHON) benchmarks/run_all.py

demo: install ## set up, then run the demo
	$(BIN)/omniroute demo --web-port 8080 --linger

serve: install ## set up, then serve gRPC (embedded Redis unless REDIS_URL is set)
	$(BIN)/omniroute serve

check-buf:
	@test -x $(BUF) || { echo "buf not found at $(BUF): run \`make install\` (needs npm)" >&2; exit 1; }
