# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint deps-debian deps-npm

# Debian's python3 needs python3-venv for `-m venv`; install it when missing (as root).
$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); apt-get update -q && apt-get install -y -q python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip

# setup.py and the C source: a change rebuilds the decoder's fast path (collector/decoding).
$(VENV)/.installed-run: pyproject.toml setup.py collector/decoding/_fastotlp.c | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml setup.py collector/decoding/_fastotlp.c | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed-run

# The bundled config requires a bearer token; make one on first run, readable only by you.
data/ingest-token:
	mkdir -p data
	umask 077 && $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(32))' > $@
	@echo "Generated an ingest token in $@ (give it to Claude Code, see README)."

# The REST API needs a read key; make one the same way.
data/api-key:
	mkdir -p data
	umask 077 && $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(32))' > $@
	@echo "Generated an API read key in $@ (send it as x-api-key, see README)."

run: $(VENV)/.installed-run data/ingest-token data/api-key
	CC_INGEST_TOKEN="$${CC_INGEST_TOKEN:-$$(cat data/ingest-token)}" \
	CC_API_KEY="$${CC_API_KEY:-$$(cat data/api-key)}" \
	$(BIN)/cc-collector serve --config otel-config.yaml

# Debian packages the tests run for real: PostgreSQL server binaries (tests/pg.py starts a
# throwaway cluster), Prometheus + promtool (rules and dashboard queries), amtool
# (Alertmanager config) and docker-compose (`config -q` of the stack). Only missing ones are
# installed, in one apt call (as root); with everything present this is a no-op.
deps-debian:
	@missing=""; \
	found_pg=""; for bin in $${PG_BINDIR:-} /usr/lib/postgresql/*/bin; do \
		[ -x "$$bin/initdb" ] && [ -x "$$bin/pg_ctl" ] && [ -x "$$bin/postgres" ] && found_pg=1; \
	done; \
	[ -n "$$found_pg" ] || missing="$$missing postgresql"; \
	command -v prometheus >/dev/null && command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v amtool >/dev/null || missing="$$missing prometheus-alertmanager"; \
	command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "Missing Debian packages:$$missing. Run 'make deps-debian' as root." >&2; exit 1; \
	fi; \
	echo "Installing Debian packages:$$missing"; \
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing

# The real Claude Code CLI for tests/e2e, pinned, installed once into .cache/ (Node >= 20; on
# Node 20 the pin matters: newer releases need Node 22). The tests reuse it.
CLAUDE_VERSION := 2.1.330
CLAUDE_BIN := .cache/claude-code/node_modules/@anthropic-ai/claude-code-linux-x64/claude
deps-npm:
	@[ -x $(CLAUDE_BIN) ] && $(CLAUDE_BIN) --version 2>/dev/null | grep -q '^$(CLAUDE_VERSION)' || { \
		echo "Installing @anthropic-ai/claude-code@$(CLAUDE_VERSION) into .cache/claude-code"; \
		mkdir -p .cache/claude-code && npm install --engine-strict=false --no-audit --no-fund \
			--prefix .cache/claude-code @anthropic-ai/claude-code@$(CLAUDE_VERSION); }

lint: $(VENV)/.installed-test
	$(BIN)/ruff check collector exporters tests bench

test: deps-debian deps-npm $(VENV)/.installed-test
	$(MAKE) lint
	$(BIN)/python -m pytest

# Benchmarks (bench/, results in docs/performance.md): scripts that print figures, never tests.
# `make bench-quick` (under 2 minutes) checks a change; `make bench` is the full suite (about an
# hour). Both write bench/results/<date>-<name>.json and fail if a run lost or invented data.
.PHONY: bench bench-quick
bench: $(VENV)/.installed-run
	$(BIN)/python -m bench.run

bench-quick: $(VENV)/.installed-run
	$(BIN)/python -m bench.run --quick
