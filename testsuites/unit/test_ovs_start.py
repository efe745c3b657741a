"""`ensure_ovs` starts Open vSwitch once when it is down, and says what is wrong when it cannot."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from twin import ovs
from twin.errors import LabError

pytestmark = pytest.mark.unit


def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, starts: bool) -> Path:
    """A fake `ovs-vsctl` that succeeds once the fake `ovs-ctl start` has run (if `starts`)."""
    flag, calls = tmp_path / "running", tmp_path / "calls"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "ovs-vsctl").write_text(f"#!/bin/sh\n[ -e {flag} ]\n")
    ctl = tmp_path / "ovs-ctl"
    touch = f"touch {flag}" if starts else "echo 'ovsdb-server: cannot open database' >&2; exit 1"
    ctl.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n{touch}\n")
    for f in (bindir / "ovs-vsctl", ctl):
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("TWIN_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(ovs, "OVS_CTL", ctl)
    return calls


@pytest.mark.skipif(os.geteuid() != 0, reason="starting Open vSwitch needs root")
def test_starts_ovs_once_when_down(tmp_path, monkeypatch):
    calls = fake_tools(tmp_path, monkeypatch, starts=True)
    ovs.ensure_ovs()
    ovs.ensure_ovs()
    assert calls.read_text().splitlines() == ["start --system-id=random"]


@pytest.mark.skipif(os.geteuid() != 0, reason="starting Open vSwitch needs root")
def test_failure_to_start_is_explained(tmp_path, monkeypatch):
    fake_tools(tmp_path, monkeypatch, starts=False)
    with pytest.raises(LabError, match="did not start .*cannot open database"):
        ovs.ensure_ovs()


def test_missing_ovs_names_the_install_step(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LabError, match="scripts/install.sh"):
        ovs.ensure_ovs()
