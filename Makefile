# make test: create or reuse .venv, install torch (CPU wheel) then the project with its test extras, run every tier
#            of tests (default, realdata, e2e: tests/conftest.py); make check runs the default tier alone.
# make run:  the main job: the study on ml-latest-small (EDA, every model, segments, out/study-*/report.html);
#            it writes under out/ only, so the checkout stays clean.
# make docs: make run, then the study's table into docs/results/study.json, the content-hybrid experiment, the
#            similar-movies query and bench_models (the strong models beside the peer libraries, about 11
#            minutes), then every README table from docs/results/ (scripts/readme_tables.py), and the web
#            page's and the report's screenshots: the one target that changes tracked files.
# make serve: the HTTP API and web page on the `make run` output: the study's final models (its best model,
#            ItemKNN and NeuMF, fitted on every rating), at http://127.0.0.1:8000/ (PORT=... to change).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
DATA   ?= ml-latest-small
STAMP  := $(VENV)/.installed
# The team's MovieLens copies, when this checkout sits beside them; elsewhere the data is fetched.
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)),)
export MOVIEREC_DATA_DIR ?= $(SHARED_DATA)
endif

PORT   ?= 8000
STUDY  := out/study-$(DATA)

.PHONY: install browser postgres test check lint run docs serve bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first, from the pinned CPU wheel, so the project's torch>=2.4 is already satisfied
# and pip never pulls a multi-GB CUDA build.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# The report's browser test drives Debian's chromium (Playwright, executable /usr/bin/chromium).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	} || echo "warning: chromium could not be installed; the browser test will be skipped"

# PostgreSQL for the stored-people tests (tests/conftest.py starts a throwaway cluster with initdb and pg_ctl)
postgres:
	@{ command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; \
	} || echo "warning: PostgreSQL could not be installed; its tests will be skipped"

test: $(STAMP) browser postgres
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

# the default tier: unit and contract tests on synthetic data, the CLI in-process (tests/conftest.py: tiers)
check: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q -m "not realdata and not e2e"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

run: $(STAMP)
	$(BIN)/movierec study --data $(DATA) --out out/study-$(DATA)

docs: DATA = ml-latest-small
docs: run
	$(BIN)/python scripts/readme_tables.py collect --study out/study-ml-latest-small
	$(BIN)/movierec experiment configs/content-hybrid.toml --data ml-latest-small --out out/content-hybrid
	$(BIN)/python scripts/readme_tables.py collect --experiment out/content-hybrid
	$(BIN)/python scripts/readme_tables.py similar --data ml-latest-small
	$(BIN)/python benchmarks/bench_models.py
	$(BIN)/python scripts/readme_tables.py collect --models benchmarks/results/bench_models.json
	$(BIN)/python scripts/readme_tables.py render
	$(BIN)/python scripts/serve_screenshot.py $(STUDY) --out docs/images/serve.png --viewport-only
	$(BIN)/python scripts/report_screenshot.py $(STUDY) --out docs/study-report.png

serve: $(STAMP)
	@test -f $(STUDY)/study.json || { echo "no study in $(STUDY): run 'make run' first"; exit 2; }
	$(BIN)/movierec serve $(STUDY) --port $(PORT) --db default

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_data.py
	$(BIN)/python benchmarks/bench_eval.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
