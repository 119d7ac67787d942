# turnjudge — the two commands of the quick start are `make demo` and `make test`.
# Both create .venv and install on first use (torch's CPU build first, then the project).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Offline everywhere: no model hub, no telemetry, no LangSmith.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export LANGSMITH_TRACING := false
export LANGGRAPH_CLI_NO_ANALYTICS := 1
export LANGGRAPH_NO_VERSION_CHECK := true

.PHONY: install browser demo test lint bench serve migrate db-stop clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch lies on local disk; plain `torch` would pull GBs of CUDA.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Headless Chromium and a Korean font for the HTML report tests (Debian packages, as root).
browser:
	@command -v chromium >/dev/null && fc-list :lang=ko | grep -q . || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; }

demo: install
	$(BIN)/turnjudge demo

test: install browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	status=0; $(BIN)/python -m pytest $(PYTEST_ARGS) || status=$$?; \
	  $(BIN)/turnjudge db stop; exit $$status

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	status=0; $(BIN)/python -m benchmarks || status=$$?; $(BIN)/turnjudge db stop; exit $$status

serve: install
	$(BIN)/turnjudge serve

migrate: install
	$(BIN)/turnjudge migrate

db-stop:
	$(BIN)/turnjudge db stop

clean: db-stop
	rm -rf $(VENV) .turnjudge .langgraph_api
