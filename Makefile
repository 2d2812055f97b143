# The README's commands. Every target installs what it needs first, so each one
# works on a fresh Debian 12 machine as root and again on the next run.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        := .venv
PY          := $(VENV)/bin/python
SYSTEM_PY   := /usr/bin/python3
export PATH := $(CURDIR)/$(VENV)/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Debian parts: the peers we test against and the system tools we drive.
APT_PACKAGES := python3 python3-venv python3-dev gcc make \
	busybox-static docker-registry skopeo umoci runc crun buildah podman conmon \
	containernetworking-plugins iptables iproute2 hyperfine libseccomp2 \
	libcap2-bin attr jq curl tmux util-linux

.PHONY: help setup apt venv bytecode demo test lint unit bench clean

help:
	@echo "make demo   set up, build localhost/busybox:latest and run a container"
	@echo "make test   set up, then ruff, mypy and every test"
	@echo "make bench  set up, then time portside beside the peer tools"

setup: apt venv

apt:
	@missing=$$(dpkg-query -W -f='$${Package} $${Status}\n' $(APT_PACKAGES) 2>/dev/null \
		| awk '$$NF != "installed" {print $$1}'; \
		for p in $(APT_PACKAGES); do dpkg-query -W $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$(echo $$missing | tr '\n' ' ')"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt scripts/portside-runtime.in scripts/portside.in
	@test -x $(PY) || $(SYSTEM_PY) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@# the runtime starts on every container: replace pip's wrapper by one without site
	@sed -e 's|@PYTHON@|$(CURDIR)/$(PY)|' -e 's|@SRC@|$(CURDIR)/src|' \
		-e 's|@BUNDLE@|$(CURDIR)/$(VENV)/lib/portside-runtime.bundle|' \
		scripts/portside-runtime.in > $(VENV)/bin/portside-runtime.tmp
	@chmod 755 $(VENV)/bin/portside-runtime.tmp
	@mv $(VENV)/bin/portside-runtime.tmp $(VENV)/bin/portside-runtime
	@# the CLI's own start-up is most of a warm call's cost: the same for `portside`
	@sed -e 's|@PYTHON@|$(CURDIR)/$(PY)|' -e 's|@SRC@|$(CURDIR)/src|' \
		-e "s|@SITE@|$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')|" \
		scripts/portside.in > $(VENV)/bin/portside.tmp
	@chmod 755 $(VENV)/bin/portside.tmp
	@mv $(VENV)/bin/portside.tmp $(VENV)/bin/portside
	@touch $@

# The runtime and the monitor start on every container: their start-up must not
# compile sources (some environments set PYTHONDONTWRITEBYTECODE), so compile once.
bytecode: venv
	@$(PY) -m compileall -q src >/dev/null
	@$(PY) -m portside.runtime.hotpath $(VENV)/lib/portside-runtime.bundle

demo: setup bytecode
	bash scripts/demo.sh

LINT_DIRS := $(wildcard src tests benchmarks)

lint: setup
	$(VENV)/bin/ruff check $(LINT_DIRS)
	$(VENV)/bin/ruff format --check $(LINT_DIRS)
	$(VENV)/bin/mypy

unit: setup
	$(VENV)/bin/pytest tests/unit

test: lint bytecode
	$(VENV)/bin/pytest tests

bench: setup bytecode
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
