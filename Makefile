# Firebreak: `make run` (the main job on the embedded default), `make test` (the whole suite) and
# `make bench` (manipulated copies through Firebreak, vPDQ and TMK+PDQF; results in bench/results).
# Both create .venv and install what is missing, system packages included when running as root.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CLIPS_DIR ?= .cache/clips
BENCH_CACHE ?= .cache/bench-variants
export FIREBREAK_CLIPS_DIR ?= $(abspath $(CLIPS_DIR))

.PHONY: run test bench bench-data lint format typecheck clean

$(STAMP): pyproject.toml requirements.lock scripts/ensure-system-packages.sh
	bash scripts/ensure-system-packages.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

bench-data: $(STAMP)
	$(BIN)/firebreak clips fetch --dest $(FIREBREAK_CLIPS_DIR)

run: bench-data
	$(BIN)/firebreak demo --clips $(FIREBREAK_CLIPS_DIR)

bench: bench-data
	$(BIN)/firebreak bench variants --clips $(FIREBREAK_CLIPS_DIR) --cache $(BENCH_CACHE) --out bench/results
	$(BIN)/firebreak bench speed --minutes 10 --repeats 1 | tee bench/results/speed-$$(date +%F).txt
	$(BIN)/firebreak bench live --clips $(FIREBREAK_CLIPS_DIR) --out bench/results
	$(BIN)/firebreak bench api --minutes 2 --out bench/results
	$(BIN)/firebreak bench index --out bench/results
	$(BIN)/firebreak bench sweep --uploads 1000000 --workers 2 | tee bench/results/sweep-$$(date +%F).txt
	$(BIN)/firebreak bench text --train tests/data/text/train.jsonl --eval tests/data/text/eval.jsonl --out bench/results

test: bench-data
	$(BIN)/ruff check firebreak tests
	$(BIN)/ruff format --check firebreak tests
	$(BIN)/mypy firebreak
	$(BIN)/pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check firebreak tests
	$(BIN)/ruff format --check firebreak tests

format: $(STAMP)
	$(BIN)/ruff format firebreak tests
	$(BIN)/ruff check --fix firebreak tests

typecheck: $(STAMP)
	$(BIN)/mypy firebreak

clean:
	rm -rf $(VENV) .firebreak .pytest_cache .mypy_cache .ruff_cache
