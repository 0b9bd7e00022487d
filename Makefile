# camgw: two commands do everything on a fresh Debian machine (as root):
#   make run    install what is missing, then start the embedded default (`camgw demo`)
#   make test   install what is missing, then run the test suite
# Others: make help (this list), make bench, make check (ruff + mypy), make clean.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

# Debian packages each target needs, as "command-or-file:package" pairs: a word starting with "/"
# is a file that the package installs (for packages without a command), anything else a command.
# GStreamer (RTSP camera simulator) is run by Debian's python3, not the venv: gst_rtsp.py.
# (a wrong guess only costs a redundant apt-get install of an installed package)
# redis-sentinel: tests/integration/test_sentinel.py runs its own Sentinels (never on 26379); the
# system Sentinel service the package would start is stopped and disabled when it is installed.
MULTIARCH  := $(shell /usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_config_var("MULTIARCH"))' 2>/dev/null || echo $$(uname -m)-linux-gnu)
GST_LIB    := /usr/lib/$(MULTIARCH)/gstreamer-1.0
RUN_DEBS   := redis-server:redis-server redis-sentinel:redis-sentinel ip:iproute2 \
              /usr/lib/python3/dist-packages/gi/__init__.py:python3-gi \
              /usr/lib/$(MULTIARCH)/girepository-1.0/GstRtspServer-1.0.typelib:gir1.2-gst-rtsp-server-1.0 \
              $(GST_LIB)/libgstvideotestsrc.so:gstreamer1.0-plugins-base \
              $(GST_LIB)/libgstrtp.so:gstreamer1.0-plugins-good \
              $(GST_LIB)/libgstx264.so:gstreamer1.0-plugins-ugly \
              $(GST_LIB)/libgstx265.so:gstreamer1.0-plugins-bad \
              $(GST_LIB)/libgstjpeg.so:gstreamer1.0-plugins-good \
              $(GST_LIB)/libgstpango.so:gstreamer1.0-x
# The dashboard's browser tests (tests/browser) and bench (bench/dashboard.py) drive Debian's
# Chromium headless (Playwright never downloads a browser); CJK fonts for the Chinese pages.
BROWSER_DEBS := chromium:chromium \
              /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc:fonts-noto-cjk
TEST_DEBS  := $(RUN_DEBS) $(BROWSER_DEBS)
BENCH_DEBS := $(RUN_DEBS) $(BROWSER_DEBS) nginx:nginx-light wrk:wrk

.PHONY: help run test bench check clean debs-run debs-test debs-bench

help:
	@echo "make run     install what is missing, then start the demo (private Redis, simulated"
	@echo "             cameras, gateway); prints the URL and one token per role. The first run"
	@echo "             installs Debian packages and the venv: 3-4 minutes; then seconds."
	@echo "make test    install what is missing, then run the test suite (about 8 minutes)"
	@echo "make check   ruff format, ruff check, mypy --strict (CI runs it after make test)"
	@echo "make bench   the benchmarks; each prints a table (bench/README.md)"
	@echo "make clean   remove the venv and caches; keeps var/ (the demo's registry, key, tokens;"
	@echo "             rm -rf var starts the demo afresh)"

run: debs-run $(STAMP)
	$(BIN)/camgw demo

test: debs-test $(STAMP)
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

debs-test:
	@$(MAKE) --no-print-directory _need PAIRS="$(TEST_DEBS)"

debs-bench:
	@$(MAKE) --no-print-directory _need PAIRS="$(BENCH_DEBS)"

# Install the Debian package of every missing command or file; elsewhere, say what to install.
_need:
	@missing=""; for pair in $(PAIRS); do \
	  what=$${pair%%:*}; \
	  case $$what in \
	    /*) [ -e "$$what" ] || missing="$$missing $${pair##*:}" ;; \
	    *) command -v $$what >/dev/null 2>&1 || [ -x /usr/sbin/$$what ] || missing="$$missing $${pair##*:}" ;; \
	  esac; \
	done; \
	if [ -n "$$missing" ]; then $(MAKE) --no-print-directory _apt PKGS="$$missing"; fi

_apt:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian packages:$(PKGS)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(PKGS) >/dev/null; \
	  case " $(PKGS) " in *" redis-sentinel "*) \
	    echo "stopping the system Sentinel the package starts (port 26379; the tests run their own)"; \
	    systemctl disable --now redis-sentinel >/dev/null 2>&1 || service redis-sentinel stop >/dev/null 2>&1 || true ;; \
	  esac; \
	else \
	  echo "camgw needs these packages:$(PKGS) (Debian: apt-get install$(PKGS))" >&2; exit 1; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
