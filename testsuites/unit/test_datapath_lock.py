"""twin.datapath: boots and teardowns share the datapath; a quiet measurement holds it alone.
Other processes stand in for other xdist workers' labs (the lock is a flock, per open file)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from twin import datapath
from twin.errors import LabError
from twin.polling import wait_for

pytestmark = pytest.mark.unit

HOLDER = """
import sys, time
from twin import datapath
mode, flag = sys.argv[1], sys.argv[2]
print("trying", flush=True)
ctx = datapath.quiet() if mode == "quiet" else datapath.reconfiguring("test", timeout=float(sys.argv[3]))
with ctx:
    open(flag, "w").write("in")
    print("in", flush=True)
    sys.stdin.readline()          # hold until the test says so
print("out", flush=True)
"""


@pytest.fixture(autouse=True)
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TWIN_STATE_DIR", str(tmp_path))
    return tmp_path


class Holder:
    """Another process taking the lock (a worker booting a lab, or measuring)."""

    def __init__(self, tmp: Path, mode: str, timeout: float = 60.0) -> None:
        self.flag = tmp / f"flag-{mode}-{time.monotonic_ns()}"
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, mode, str(self.flag), str(timeout)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=Path(__file__).resolve().parents[2], env={**os.environ})
        assert self.proc.stdout.readline().strip() == "trying"

    def inside(self) -> bool:
        return self.flag.exists()

    def release(self) -> None:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        assert self.proc.wait(timeout=30) == 0

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)


def test_boots_and_teardowns_share_the_datapath(tmp_path: Path) -> None:
    a = Holder(tmp_path, "reconfigure")
    wait_for(a.inside, 10, "the first lab to reconfigure")
    b = Holder(tmp_path, "reconfigure")
    wait_for(b.inside, 10, "a second lab to reconfigure beside it")
    a.release()
    b.release()


def test_a_quiet_measurement_holds_off_boots_until_it_ends(tmp_path: Path) -> None:
    with datapath.quiet() as waited:
        assert waited < 5
        boot = Holder(tmp_path, "reconfigure")
        # the other lab is blocked for as long as the quiet section lasts
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            assert not boot.inside(), "a lab reconfigured the datapath during a quiet measurement"
            time.sleep(0.02)
    wait_for(boot.inside, 10, "the waiting lab to go on once the measurement ended")
    boot.release()


def test_quiet_waits_for_a_boot_in_progress_and_names_the_lock_if_it_never_ends(tmp_path: Path) -> None:
    boot = Holder(tmp_path, "reconfigure")
    wait_for(boot.inside, 10, "the lab to reconfigure")
    with pytest.raises(LabError, match=r"did not become quiet within 0 s.*datapath\.lock"):
        with datapath.quiet(timeout=0.2):
            pass
    boot.release()
    with datapath.quiet(timeout=10) as waited:
        assert waited < 10


def test_a_crashed_holder_releases_the_lock(tmp_path: Path) -> None:
    measuring = Holder(tmp_path, "quiet")
    wait_for(measuring.inside, 10, "the measurement to hold the datapath")
    measuring.kill()
    with datapath.reconfiguring("a lab", timeout=10):
        pass


def test_a_stuck_measurement_cannot_block_a_teardown_for_good(tmp_path: Path, caplog) -> None:
    measuring = Holder(tmp_path, "quiet")
    wait_for(measuring.inside, 10, "the measurement to hold the datapath")
    with caplog.at_level("WARNING", logger="twin.datapath"):
        with datapath.reconfiguring("lab xyz00 tearing down", timeout=0.2):
            pass
    assert "lab xyz00 tearing down reconfigures the datapath although a quiet measurement" in caplog.text
    measuring.release()


def test_the_holder_may_boot_and_tear_down_its_own_labs_inside_quiet() -> None:
    """A test that boots a second lab while measuring must not wait on its own lock."""
    with datapath.quiet(timeout=5):
        with datapath.reconfiguring("own lab", timeout=5):
            with datapath.reconfiguring("nested", timeout=5):
                pass
        with datapath.quiet(timeout=0.1):
            pass
