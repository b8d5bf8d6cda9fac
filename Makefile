# imagemint: every target installs what it needs first (idempotent).
#   make serve   the API on http://127.0.0.1:3000 on the embedded default, with a demo image
#   make test    lint, template checks and the whole test suite (what .ci/run calls)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
SAMVENV := .venv-sam
PY := $(VENV)/bin/python
PEERS := tests/peers
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
SAMSTAMP := $(SAMVENV)/.installed-1.170.0
NPMSTAMP := $(PEERS)/node_modules/.installed-$(shell cat $(PEERS)/package-lock.json | sha1sum | cut -c1-12)
export SAM_CLI_TELEMETRY := 0

.PHONY: setup serve test lint template-check unit integration bench build deploy clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

$(SAMSTAMP):
	test -x $(SAMVENV)/bin/python || $(PYTHON) -m venv $(SAMVENV)
	$(SAMVENV)/bin/python -m pip install -q aws-sam-cli==1.170.0
	touch $@

$(NPMSTAMP): $(PEERS)/package.json $(PEERS)/package-lock.json
	# npm ci refuses this lock: npm leaves the other platforms' optional anvil binaries out of it.
	cd $(PEERS) && npm install --no-audit --no-fund --loglevel=error
	rm -f $(PEERS)/node_modules/.installed-* && touch $@

setup: $(STAMP) $(SAMSTAMP) $(NPMSTAMP)

serve: $(STAMP) $(NPMSTAMP)
	$(VENV)/bin/imagemint serve --host 127.0.0.1 --port $${PORT:-3000}

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

template-check: $(STAMP) $(SAMSTAMP)
	$(VENV)/bin/cfn-lint template.yaml
	$(SAMVENV)/bin/sam validate --lint --region us-east-1

unit: $(STAMP)
	$(VENV)/bin/pytest tests/unit -q

integration: setup
	$(VENV)/bin/pytest tests/integration -q

test: setup lint template-check
	$(VENV)/bin/pytest tests -q -ra

bench: setup
	$(PY) tests/bench/bench.py

build: $(SAMSTAMP)
	$(SAMVENV)/bin/sam build

deploy: build
	$(SAMVENV)/bin/sam deploy --guided

clean:
	rm -rf $(VENV) $(SAMVENV) .aws-sam $(PEERS)/node_modules .imagemint
