# Every target runs the one install step first: it is idempotent and takes seconds once done.
# Run as root (Mininet and Open vSwitch need it).
SHELL := /bin/bash
PY := .venv/bin/python
PYTEST := .venv/bin/pytest
WORKERS ?= auto

.PHONY: install demo test unit e2e bench report clean

install:
	@bash scripts/install.sh

demo: install
	@$(PY) -m twin.demo

test: install
	@bash scripts/run-tests.sh -n $(WORKERS)

unit: install
	@$(PYTEST) -m unit -q

e2e: install
	@$(PYTEST) -m e2e -n $(WORKERS)

bench: install
	@$(PY) bench/boot_time.py
	@$(PY) bench/cli_latency.py
	@$(PY) bench/suite_speedup.py
	@$(PY) bench/aaa_failover.py
	@$(PY) bench/ems_election.py
	@$(PY) bench/configsync.py
	@$(PY) bench/cluster_failover.py
	@$(PY) bench/vlinks.py
	@$(PY) bench/flow_hashing.py
	@$(PY) bench/flows.py

report: install
	@bash scripts/render-report.sh

clean: install
	@.venv/bin/twin clean
