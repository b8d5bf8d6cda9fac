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
SERVESTAMP := $(VENV)/.serve-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
SAMSTAMP := $(SAMVENV)/.installed-1.170.0
NPMSTAMP := $(PEERS)/node_modules/.installed-$(shell cat $(PEERS)/package-lock.json | sha1sum | cut -c1-12)
CLIENTS := tests/clients
CLIENTSTAMP := $(CLIENTS)/node_modules/.installed-$(shell cat $(CLIENTS)/package-lock.json | sha1sum | cut -c1-12)
export SAM_CLI_TELEMETRY := 0

.PHONY: setup serve test lint template-check unit integration bench soak build sizes deploy clean

# What serving needs: the project and its runtime dependencies (no dev tools, no npm, no sam).
# --no-compile: Python compiles only the modules a run imports, not all 120 packages up front.
$(SERVESTAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile -e .
	rm -f $(VENV)/.serve-* && touch $@

$(STAMP): $(SERVESTAMP)
	$(PY) -m pip install -q -e '.[dev]'
	# The serve install skips byte-compiling; the suite's local runtime enforces Lambda and step
	# timeouts, so compile once here rather than inside the first tests' cold starts.
	$(PY) -m compileall -q -j 0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" > /dev/null || true
	rm -f $(VENV)/.installed-* && touch $@

$(SAMSTAMP):
	test -x $(SAMVENV)/bin/python || $(PYTHON) -m venv $(SAMVENV)
	$(SAMVENV)/bin/python -m pip install -q aws-sam-cli==1.170.0
	touch $@

$(NPMSTAMP): $(PEERS)/package.json $(PEERS)/package-lock.json
	# npm ci refuses this lock: npm leaves the other platforms' optional anvil binaries out of it.
	cd $(PEERS) && npm install --no-audit --no-fund --loglevel=error
	rm -f $(PEERS)/node_modules/.installed-* && touch $@

$(CLIENTSTAMP): $(CLIENTS)/package.json $(CLIENTS)/package-lock.json
	cd $(CLIENTS) && npm ci --no-audit --no-fund --loglevel=error
	rm -f $(CLIENTS)/node_modules/.installed-* && touch $@

setup: $(STAMP) $(SAMSTAMP) $(NPMSTAMP) $(CLIENTSTAMP)

# The embedded chain's Zora artifacts ship in the dev package: serving needs no npm tree.
serve: $(SERVESTAMP)
	$(VENV)/bin/imagemint serve --host 127.0.0.1 --port $${PORT:-3000}

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m imagemint_dev.importlint --no-cache  # lint-imports over all three layer folders

template-check: $(STAMP) $(SAMSTAMP)
	$(VENV)/bin/cfn-lint template.yaml
	$(SAMVENV)/bin/sam validate --lint --region us-east-1

unit: $(STAMP)
	$(VENV)/bin/pytest tests/unit -q

integration: setup
	$(VENV)/bin/pytest tests/integration -q

test: setup lint template-check
	IMAGEMINT_ARTIFACTS=$(CURDIR)/.artifacts $(VENV)/bin/pytest tests -q -ra

bench: setup
	$(PY) tests/bench/bench.py

# The local runtime left running (issue 12): 1,000 generations sequential, then 1,000 at 4 clients.
soak: setup
	$(PY) tests/bench/soak.py --generations $(or $(GENERATIONS),1000) --concurrency 1,4 --every 100

build: $(SAMSTAMP)
	$(SAMVENV)/bin/sam build

# sam build, then each function's unzipped total (code + layers) and each layer's zip against Lambda's
# limits (250 MB, 45 MB), .pyc for python3.12 in every layer, no second boto3.
sizes: $(STAMP) $(SAMSTAMP)
	$(PY) tests/bench/layer_sizes.py --sam $(SAMVENV)/bin/sam

deploy: build
	$(SAMVENV)/bin/sam deploy --guided

clean:
	rm -rf $(VENV) $(SAMVENV) .aws-sam $(PEERS)/node_modules $(CLIENTS)/node_modules .imagemint
