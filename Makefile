# voxswitch — `make run` and `make test` work on a fresh Debian machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# chromium + chromium-driver: the dashboard's browser tests (Playwright drives the system
# browser; no browser download)
APT_PACKAGES := espeak-ng sip-tester baresip-core sox tshark chromium chromium-driver
STAMP := $(VENV)/.installed

.PHONY: install run test check bench bench-quick clean apt screenshots

install: $(STAMP)

# Debian packages first (idempotent: only what is missing is installed).
apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  echo 'wireshark-common wireshark-common/install-setuid boolean false' | $$SUDO debconf-set-selections; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends $$missing; \
	fi

# setup.py and the .pyx too: the editable install compiles the kernel into the tree.
$(STAMP): pyproject.toml setup.py media/dsp/_dtmf_kernel.pyx media/_udpio.pyx
	@$(MAKE) --no-print-directory apt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

run: install
	$(VENV)/bin/voxswitch serve --print-dashboard

# Three workers on two cores: most integration tests wait on peers and timers, not the
# CPU. Each file stays on one worker (module fixtures); tests/support/ports.py gives each
# worker its own port slice.
PYTEST_WORKERS ?= 3
PYTEST := $(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

test: install
	$(PYTEST)

check: install
	$(VENV)/bin/ruff check media signaling control tests bench
	$(VENV)/bin/mypy
	$(PYTEST)

bench: install
	$(PY) bench/engine.py
	$(PY) bench/sip_parse.py
	$(PY) bench/memory.py
	$(PY) bench/dtmf.py
	$(PY) bench/mixer.py
	$(PY) bench/receive.py
	$(PY) bench/bridge.py
	$(PY) bench/dial_rate.py
	$(PY) bench/talkoff.py
	$(PY) bench/amd.py
	$(PY) bench/recording.py

# Every benchmark in its smoke mode (small sizes, seconds): what tests/bench runs.
bench-quick: install
	@for b in bench/[!_]*.py; do echo "== $$b" >&2; $(PY) $$b --quick || exit 1; done

# The dashboard's browser tests, keeping their screenshots in docs/ (shown in the README).
screenshots: install
	VOXSWITCH_SCREENSHOTS=$(CURDIR)/docs $(PY) -m pytest -q tests/integration/test_dashboard.py

clean:
	rm -rf $(VENV) voxswitch-data .pytest_cache build media/dsp/_dtmf_kernel.c media/_udpio.c media/dsp/*.so media/*.so
