# provenml: `make demo` runs the main reproduction, `make test` runs the test suite.
# Both create .venv on first use. torch is pinned first so pip takes the CPU wheel on disk.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_PIN := torch==2.13.0
RUNS ?= runs
# The demo's experiments: S3 (issue 2) and S1 (issue 3), small scale, 3 seeds each.
DEMO ?= wsd.multibudget wsd.river_valley selection.noisy_labels selection.scorer_size selection.clean_control

.PHONY: demo test test-all lint bench setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install $(TORCH_PIN)
	$(PY) -m pip install -e '.[all,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/provenml reproduce $(DEMO) --scale small --seeds 3 --jobs 3 --out $(RUNS)
	$(VENV)/bin/provenml report --runs $(RUNS) --out REPORT.md

test: $(STAMP)
	$(PY) -m pytest

test-all: $(STAMP)
	$(PY) -m pytest -m ''

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(RUNS) REPORT.md .pytest_cache .ruff_cache
