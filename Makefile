# camgw: two commands do everything on a fresh Debian machine (as root):
#   make run    install what is missing, then start the embedded default (`camgw demo`)
#   make test   install what is missing, then run the test suite
# Others: make bench (benchmarks, prints tables), make check (ruff + mypy), make clean.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

# Debian packages each target needs, as "command:package" pairs.
RUN_DEBS   := redis-server:redis-server
BENCH_DEBS := $(RUN_DEBS) nginx:nginx-light wrk:wrk

.PHONY: run test bench check clean debs-run debs-bench

run: debs-run $(STAMP)
	$(BIN)/camgw demo

test: debs-run $(STAMP)
	$(BIN)/python -m pytest -q

bench: debs-bench $(STAMP)
	$(BIN)/python bench/run.py

check: $(STAMP)
	$(BIN)/ruff format --check gateway adapters tests bench
	$(BIN)/ruff check gateway adapters tests bench
	$(BIN)/mypy gateway adapters

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "camgw needs Python 3.11+"'
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || $(MAKE) --no-print-directory _apt PKGS=python3-venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,dev]'
	rm -f $(VENV)/.installed-*
	touch $@

debs-run:
	@$(MAKE) --no-print-directory _need PAIRS="$(RUN_DEBS)"

debs-bench:
	@$(MAKE) --no-print-directory _need PAIRS="$(BENCH_DEBS)"

# Install the Debian package of every missing command; elsewhere, say what to install.
_need:
	@missing=""; for pair in $(PAIRS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || [ -x /usr/sbin/$${pair%%:*} ] || missing="$$missing $${pair##*:}"; \
	done; \
	if [ -n "$$missing" ]; then $(MAKE) --no-print-directory _apt PKGS="$$missing"; fi

_apt:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian packages:$(PKGS)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(PKGS) >/dev/null; \
	else \
	  echo "camgw needs these packages:$(PKGS) (Debian: apt-get install$(PKGS))" >&2; exit 1; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
