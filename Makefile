# Every target creates .venv and installs the project into it when missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export RAY_USAGE_STATS_ENABLED := 0
export RAY_ENABLE_UV_RUN_RUNTIME_ENV := 0

.PHONY: demo test test-slow bench chaos ui install clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	# requirements.lock pins the whole dependency tree so a fresh clone gets the same bytes.
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m flows.demo

# Under 15 minutes on 2 cores. Tests marked slow (the rest of the two-node cluster matrix, a
# training run killed and resumed on S3, training chaos) run in test-slow, which make bench runs too.
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" tests

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow tests

bench: $(STAMP) test-slow
	$(BIN)/python -m benchmarks.run_all

# The slow fault-injection trials (kill -9, concurrent writers, crashing items); figures go to the README.
chaos: $(STAMP)
	$(BIN)/python -m benchmarks.run_all chaos

# The Prefect server on 127.0.0.1:4200 and a served deployment of every dataset flow and of
# training (flows/serve.py): pick one in the UI, press Run. Ctrl-C stops both.
ui: $(STAMP)
	$(BIN)/python -m flows.serve --start-server --host 127.0.0.1 --port 4200

clean:
	rm -rf data .prefect
