"""`twin up/status/exec/down`, crash cleanup, and two labs side by side."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from twin.cleanup import bridges_with_prefix, lab_processes, links_with_prefix, named_netns
from twin.datapath import quiet
from twin.pytest_plugin import boot_lab, release_lab
from twin.state import LabState, pid_alive
from twin.traffic.probe import ProbeStream

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "labs/mini.yaml"
TWIN = [sys.executable, "-m", "twin.cli"]


def twin(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    res = subprocess.run([*TWIN, *args], capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"twin {' '.join(args)} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
    return res


def lab_pids(st: LabState) -> set[int]:
    """Every PID the lab recorded (namespace holders, controller, emulators, helpers)."""
    return ({n.pid for n in st.nodes.values() if n.pid} | {n.emulator_pid for n in st.nodes.values() if n.emulator_pid}
            | {st.controller_pid, *st.root_pids, *st.extra_pids}) - {0}


def leftovers(prefix: str, pids: set[int]) -> dict[str, list]:
    # processes are checked by recorded PID and by Mininet's title, not by namespace inode: once a
    # lab's namespaces are gone their numbers may belong to another lab's namespaces
    return {"bridges": bridges_with_prefix(prefix), "links": links_with_prefix(prefix),
            "processes": sorted({p for p in pids if pid_alive(p)} | set(lab_processes(set(), prefix))),
            "namespaces": list(named_netns(prefix))}


def assert_gone(prefix: str, pids: set[int]) -> None:
    deadline = time.monotonic() + 10
    left = leftovers(prefix, pids)
    while any(left.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
        left = leftovers(prefix, pids)
    assert not any(left.values()), f"lab {prefix} left behind: {left}"


def test_cli_up_status_exec_down():
    res = twin("up", str(MINI), "--json")
    info = json.loads(res.stdout)
    prefix = info["prefix"]
    try:
        nodes = {n["node"]: n for n in info["nodes"]}
        assert set(nodes) == {"s1", "h1", "h2", "mgmt"} and nodes["h1"]["state"] == "running"
        st = json.loads(twin("status", "--lab", prefix, "--json").stdout)
        assert st["phase"] == "ready"
        h2 = nodes["h2"]["addresses"]["eth1"].split("/")[0]
        ping = twin("exec", "--lab", prefix, "h1", "--", "ping", "-c", "1", "-W", "2", h2)
        assert "1 received" in ping.stdout
        # exec really runs in the node: h1's namespace has eth1, the root namespace does not
        assert "eth1" in twin("exec", "--lab", prefix, "h1", "--", "ip", "-o", "link").stdout
        bad = twin("exec", "--lab", prefix, "h9", "--", "true", check=False)
        assert bad.returncode == 2 and "no node named 'h9'" in bad.stderr
        pids = lab_pids(LabState.load(prefix))
        owner = LabState.load(prefix).owner_pid
    finally:
        twin("down", "--lab", prefix)
    assert not pid_alive(owner)
    assert_gone(prefix, pids)
    gone = twin("status", "--lab", prefix, check=False)
    assert gone.returncode == 2 and "no running lab" in gone.stderr


BOOT_AND_HANG = """
import sys, time
from twin.boot import Lab
lab = Lab.from_file(sys.argv[1]).start()
print(lab.prefix, flush=True)
time.sleep(600)
"""


def test_kill9_owner_then_clean_leaves_nothing_and_a_new_lab_boots():
    proc = subprocess.Popen([sys.executable, "-c", BOOT_AND_HANG, str(MINI)], stdout=subprocess.PIPE, text=True)
    try:
        prefix = proc.stdout.readline().strip()
        assert prefix, "the owner process never reported its lab"
        st = LabState.load(prefix)
        pids = lab_pids(st)
        assert bridges_with_prefix(prefix), "lab did not create its bridges"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert any(leftovers(prefix, pids).values()), "a killed owner should leave something for clean to remove"
        out = twin("clean", "--lab", prefix).stdout
        assert prefix in out
        assert_gone(prefix, pids)
        assert not pid_alive(st.controller_pid)
        assert not st.dir.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
    lab = boot_lab(MINI, 60)
    try:
        assert lab.nodes.run("h1", ["ping", "-c", "1", "-W", "2", lab.address("h2")]).returncode == 0
    finally:
        release_lab(lab)


def test_clean_refuses_a_running_lab():
    lab = boot_lab(MINI, 60)
    try:
        out = twin("clean", "--lab", lab.prefix).stdout
        assert "is running" in out
        assert bridges_with_prefix(lab.prefix)
    finally:
        release_lab(lab)


def test_two_labs_of_one_file_side_by_side_do_not_interfere():
    a = boot_lab(MINI, 60)
    b = boot_lab(MINI, 60)
    try:
        assert a.prefix != b.prefix and a.state.of_port != b.state.of_port
        assert a.address("h2") == b.address("h2")  # same plan, separate namespaces
        # quiet: a third lab booting on another worker would stall b's switch too (twin.datapath)
        with quiet(), ProbeStream(b.nodes, "h1", "h2", b.address("h2"), interval_ms=5) as probe_b:
            probe_b.wait_until_flowing(10)
            a.faults.link_down("h2:eth1")
            assert a.nodes.run("h1", ["ping", "-c", "1", "-W", "1", a.address("h2")]).returncode != 0
            a.faults.link_up("h2:eth1")
        res = probe_b.result
        assert res.lost == 0 and res.received > 50, res.to_dict()
    finally:
        release_lab(a)
        release_lab(b)
    assert_gone(a.prefix, lab_pids(a.state))
    assert_gone(b.prefix, lab_pids(b.state))


def test_cli_faults_on_a_running_lab():
    prefix = json.loads(twin("up", str(MINI), "--json").stdout)["prefix"]
    try:
        assert "link-down h1:eth1--s1:eth1" in twin("fault", "link-down", "h1:eth1", "--lab", prefix).stdout
        st = LabState.load(prefix)
        assert [l.state for l in st.links if l.a == "h1:eth1"] == ["down"]
        twin("fault", "link-up", "h1:eth1", "--lab", prefix)
        out = twin("fault", "cpu-load", "h2", "--seconds", "20", "--lab", prefix).stdout
        assert "1 busy loops in h2" in out
        killed = twin("fault", "kill", "h2", "--lab", prefix).stdout
        assert "kill h2" in killed
        bad = twin("fault", "link-down", "h1:eth9", "--lab", prefix, check=False)
        assert bad.returncode == 2 and "no link h1:eth9" in bad.stderr
        png = LabState.load(prefix).dir / "g.png"
        twin("graph", "-o", str(png), "--lab", prefix)
        assert png.read_bytes()[:4] == b"\x89PNG"
    finally:
        twin("down", "--lab", prefix)
