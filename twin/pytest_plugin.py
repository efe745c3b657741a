"""pytest plugin for twin labs (registered through the `pytest11` entry point).

`@pytest.mark.lab("labs/default.yaml")` on a module or class and the `lab` fixture boot the lab once
for the tests that share it, and tear it down afterwards even when a test fails, times out
(pytest-timeout's signal method) or is interrupted. Every worker gets its own prefix and ports from
the machine-wide registry, so `pytest -n auto` needs nothing more.
"""
from __future__ import annotations

import atexit
import os
from pathlib import Path

import pytest

_ACTIVE: dict[str, object] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("twin")
    g.addoption("--lab-keep", action="store_true", default=False,
                help="leave a lab up after a failed test, and print how to reach it")
    g.addoption("--lab-timeout", type=float, default=120.0, help="seconds a lab may take to boot")


def pytest_configure(config: pytest.Config) -> None:
    for line in ("unit: fast tests of logic, no lab booted",
                 "e2e: boots a lab and checks with real traffic and real clients",
                 "slow: takes more than a few seconds even on its own",
                 "lab(path): the lab file the module's or class's `lab` fixture boots"):
        config.addinivalue_line("markers", line)
    if not hasattr(config, "workerinput") and os.geteuid() == 0:
        _clean_dead_labs()


@pytest.hookimpl(tryfirst=True)  # before xdist turns xdist_group markers into scheduling groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that share a module's lab run on one xdist worker (with --dist loadgroup), so the lab
    boots once per module rather than once per worker."""
    for item in items:
        if "lab" in getattr(item, "fixturenames", ()) and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(name=item.nodeid.split("::")[0]))


def _clean_dead_labs() -> None:
    """Labs whose owning process died (a crashed earlier run) are removed before a run starts."""
    try:
        from twin.cleanup import clean_lab
        from twin.state import LabState, all_prefixes, pid_alive

        for prefix in all_prefixes():
            try:
                st = LabState.load(prefix)
            except Exception:
                continue
            if not pid_alive(st.owner_pid):
                clean_lab(prefix, st)
    except Exception:  # never block a test run on this
        pass


def _stop_all() -> None:
    for lab in list(_ACTIVE.values()):
        try:
            lab.stop()
        except Exception:
            pass
    _ACTIVE.clear()


atexit.register(_stop_all)


def _lab_file(request: pytest.FixtureRequest) -> Path:
    marker = request.node.get_closest_marker("lab")
    if marker is None or not marker.args:
        raise pytest.UsageError(f"{request.node.nodeid}: the 'lab' fixture needs @pytest.mark.lab('labs/FILE.yaml')")
    path = Path(marker.args[0])
    if not path.is_absolute():
        path = Path(request.config.rootpath) / path
    return path


def boot_lab(path: Path, timeout: float):
    """Boot a lab for a test; used by the `lab` fixture and by tests that need a second lab."""
    from twin.boot import Lab

    lab = Lab.from_file(path)
    lab.start(timeout=timeout)
    _ACTIVE[lab.prefix] = lab
    return lab


def release_lab(lab, keep: bool = False) -> None:
    _ACTIVE.pop(lab.prefix, None)
    if keep:
        print(f"\n--lab-keep: lab {lab.name} ({lab.prefix}) left running; "
              f"reach it with 'twin exec --lab {lab.prefix} NODE -- CMD', remove it with 'twin clean --lab {lab.prefix} --force'")
        return
    lab.stop()


class Timings:
    """Measured figures (outage windows, recovery times) a test reports; the demo summarises them
    and the report shows them. Worker-safe: one file per xdist worker."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        self.path = Path(request.config.rootpath) / "reports" / "timings" / f"{worker}.jsonl"

    def record(self, name: str, value: float, unit: str = "ms", **extra) -> None:
        import json
        import time

        self.path.parent.mkdir(parents=True, exist_ok=True)
        rec = {"test": self._request.node.nodeid, "name": name, "value": round(float(value), 3), "unit": unit,
               "time": time.time(), **extra}
        with open(self.path, "a") as fh:
            fh.write(json.dumps(rec) + "\n")


@pytest.fixture
def timings(request: pytest.FixtureRequest) -> Timings:
    return Timings(request)


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest):
    """The running lab named by the module's `lab` marker, shared by the module's tests."""
    lab = boot_lab(_lab_file(request), request.config.getoption("--lab-timeout"))
    failed_before = request.session.testsfailed
    yield lab
    keep = request.config.getoption("--lab-keep") and request.session.testsfailed > failed_before
    release_lab(lab, keep)
