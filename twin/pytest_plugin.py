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


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest):
    """The running lab named by the module's `lab` marker, shared by the module's tests."""
    lab = boot_lab(_lab_file(request), request.config.getoption("--lab-timeout"))
    failed_before = request.session.testsfailed
    yield lab
    keep = request.config.getoption("--lab-keep") and request.session.testsfailed > failed_before
    release_lab(lab, keep)
