# negawatt: `make demo` runs the network (later issues), `make test` runs the test suites.
# Every target installs what it needs first: .venv (pip), node_modules (npm), the Solidity
# compiler (native through py-solc-x where reachable, else the project's solcjs shim) and the
# Ape dependencies, then compiles the contracts. Nothing outside the repository is edited by hand.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export SOLCX_BINARY_PATH := $(CURDIR)/.toolchain/solcx
export PATH := $(CURDIR)/node_modules/.bin:$(BIN):$(PATH)
# Test runs print no Ape banner noise into CI logs.
export APE_DISABLE_TERMINAL_COLOR := 1

.PHONY: help setup compile postgres mosquitto chromium openadr web demo test test-contracts test-anvil slither bench clean

help:
	@echo "make demo    install what the demo needs, then the whole network on a local devnet: one flexibility event end to end"
	@echo "make setup   install everything (idempotent) and compile the contracts"
	@echo "make test    run the whole test suite (in-process EVM, then the contract suite on anvil)"
	@echo "make slither Slither on the contracts: fails on a Medium/High finding not in contracts/slither-triage.toml"
	@echo "make bench   python -m bench gas (gas of every protocol operation on anvil)"
	@echo "make clean   remove build output (keeps .venv and node_modules)"

setup: $(VENV)/.installed node_modules/.installed .toolchain/.solc compile web postgres mosquitto chromium openadr

$(VENV)/.installed: pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "negawatt needs Python >= 3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	@grep -q NEGAWATT_TOOLCHAIN $(VENV)/bin/activate || printf '\n# NEGAWATT_TOOLCHAIN: project-local compiler and npm binaries\nexport SOLCX_BINARY_PATH="%s"\nexport PATH="%s:$$PATH"\n' "$(SOLCX_BINARY_PATH)" "$(CURDIR)/node_modules/.bin" >> $(VENV)/bin/activate
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@anvil --version | head -1
	@touch $@

.toolchain/.solc: package-lock.json toolchain/provision_solc.py toolchain/solc-shim.js $(VENV)/.installed node_modules/.installed
	$(BIN)/python toolchain/provision_solc.py
	@touch $@

compile: $(VENV)/.installed node_modules/.installed .toolchain/.solc
	$(BIN)/ape pm install --force >/dev/null
	$(BIN)/python -m toolchain.compile_contracts

# The oracle's PostgreSQL store is tested against a real server (started by the tests with
# initdb/pg_ctl); Debian's postgresql package provides them, installed here when run as root.
postgres:
	@if command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "PostgreSQL server binaries: present"; \
	elif [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
			&& echo "PostgreSQL server binaries: installed postgresql"; \
	else \
		echo "PostgreSQL server binaries missing: install Debian's postgresql (the PostgreSQL tests need it)"; \
	fi

# The node's MQTT driver is tested against a real Mosquitto broker (started by the tests on a free
# port); Debian's mosquitto package provides it, installed here when run as root.
mosquitto:
	@if command -v mosquitto >/dev/null || ls /usr/sbin/mosquitto >/dev/null 2>&1; then \
		echo "Mosquitto broker: present"; \
	elif [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null) \
			&& echo "Mosquitto broker: installed mosquitto"; \
	else \
		echo "Mosquitto broker missing: install Debian's mosquitto (the node's MQTT driver tests need it)"; \
	fi

# The web app (web/, TypeScript + Vite + viem), built from web/package-lock.json into web/dist, which
# `negawatt api serve` serves at /. Rebuilt when a source file changes.
WEB_SOURCES := web/package.json web/package-lock.json web/index.html web/vite.config.ts web/tsconfig.json \
	$(shell find web/src -type f 2>/dev/null)
web: web/dist/.built

web/dist/.built: $(WEB_SOURCES)
	npm ci --prefix web --no-audit --no-fund --loglevel=error
	npm run --prefix web --silent build
	@touch $@

# The web app's browser tests drive Debian's chromium through Playwright (which cannot download its
# own browsers here); installed here when run as root.
chromium:
	@if command -v chromium >/dev/null; then \
		echo "Chromium: present"; \
	elif [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
			&& echo "Chromium: installed chromium"; \
	else \
		echo "Chromium missing: install Debian's chromium (the web app's browser tests need it)"; \
	fi

# The VTN facade's tests (tests/vtn/) drive the stock OpenADR client, openadr3-client 2.4.2, which needs
# Python >= 3.12 while the project stays on 3.11: it gets its own venv, from its lock file.
PYTHON312 ?= $(shell for c in python3.12 $(HOME)/.pyenv/versions/3.12*/bin/python; do \
	$$c -c "import sys; sys.exit(sys.version_info[:2] != (3, 12))" >/dev/null 2>&1 && { command -v $$c; break; }; done)
OPENADR_LOCK := tests/vtn/clients/requirements.lock
openadr: .venv-openadr/.installed

.venv-openadr/.installed: $(OPENADR_LOCK)
	@if [ -z "$(PYTHON312)" ]; then \
		echo "error: Python 3.12 not found (PATH or ~/.pyenv/versions/3.12*): the VTN tests' stock openadr3-client needs it; set PYTHON312=/path/to/python3.12"; exit 1; \
	fi
	@test -x .venv-openadr/bin/python || $(PYTHON312) -m venv .venv-openadr
	.venv-openadr/bin/python -m pip install --quiet --no-deps -r $(OPENADR_LOCK)
	@touch $@

# The demo needs the Python tree, anvil, the compiled contracts and the web app, not the test-only servers.
demo: $(VENV)/.installed node_modules/.installed .toolchain/.solc compile web
	$(BIN)/negawatt devnet demo $(DEMO_ARGS)

# Two processes share the 2 cores: the main suite (in-process EVM and every unit and service test) and,
# alongside it, the suites that mostly wait on anvil and subprocesses: the contract suite on anvil (its
# own anvil on a free port), then the devnet end-to-end tests (tests/e2e) and the browser tests
# (tests/web). The second process's output is kept in .test-alongside.log and printed after the main
# suite's; `make test` fails if any of them fails.
ALONGSIDE := tests/e2e tests/web
test: setup slither
	@echo "the contract suite on anvil, then $(ALONGSIDE), run alongside: their output follows the main suite's"
	@export NEGAWATT_REQUIRE_POSTGRES=1 NEGAWATT_REQUIRE_BROWSER=1; \
	( $(BIN)/ape test tests/contracts --network ethereum:local:foundry; contracts=$$?; \
	  $(BIN)/ape test $(ALONGSIDE) --durations=10; alongside=$$?; \
	  echo "contract suite on anvil: exit $$contracts; $(ALONGSIDE): exit $$alongside"; \
	  test $$contracts -eq 0 && test $$alongside -eq 0 ) > .test-alongside.log 2>&1 & second=$$!; \
	$(BIN)/ape test tests $(addprefix --ignore=,$(ALONGSIDE)) --durations=25; main=$$?; \
	wait $$second; alongside=$$?; \
	echo "---- alongside: ape test tests/contracts --network ethereum:local:foundry; ape test $(ALONGSIDE) ----"; \
	cat .test-alongside.log; \
	echo "main suite: exit $$main; alongside (contracts on anvil, $(ALONGSIDE)): exit $$alongside"; \
	test $$main -eq 0 && test $$alongside -eq 0

test-contracts: setup
	$(BIN)/ape test tests/contracts

test-anvil: setup
	$(BIN)/ape test tests/contracts --network ethereum:local:foundry

# Static analysis of every contract (mocks too) on the standard-JSON input ape-solidity builds, through
# crytic-compile's solc-json route (the solcjs shim answers only --standard-json); see toolchain/slither_check.py.
slither: $(VENV)/.installed node_modules/.installed .toolchain/.solc compile
	$(BIN)/python -m toolchain.slither_check

bench: setup
	$(BIN)/python -m bench gas

clean:
	rm -rf .build contracts/.cache .toolchain deployments/ethereum-local.json runs web/dist .test-alongside.log
