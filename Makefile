# Two commands on a fresh Debian machine: `make demo` (the default sweep on the
# emulated Cortex-M4, with its report) and `make test`. Each installs what it needs.

VENV    := .venv
PYTHON  := $(VENV)/bin/python
# chromium: the report test opens the HTML report in a headless browser; g++: the Arduino board
# support is compile-checked against a stub of the Arduino API.
APT_PKGS := gcc-arm-none-eabi libnewlib-arm-none-eabi binutils-arm-none-eabi qemu-system-arm gcc g++ chromium

.PHONY: demo test lint setup system-packages

demo: setup
	$(VENV)/bin/harness sweep --config configs/digits.toml

test: setup lint
	$(PYTHON) -m pytest

# ruff's rules and format are pyproject.toml's; a lint error or an unformatted file fails the tests.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

setup: system-packages $(VENV)/.installed
	$(PYTHON) -m harness.toolchain

# apt only when something is missing, so a set-up machine needs no root.
system-packages:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -e '.[test]'
	@# PlatformIO requires pyserial and labgrid pyserial-labgrid, and both install serial/: whichever pip put
	@# last won. labgrid's fork (pyproject.toml's pin) must, for its RFC 2217 fixes.
	$(PYTHON) -m pip install -q --force-reinstall --no-deps "$$(grep -o 'pyserial-labgrid==[0-9.]*' pyproject.toml)"
	touch $@
