"""Removes what one lab created, found through its prefix and state file, and nothing else.

The same routine ends a lab normally (`twin down`, the context manager) and after a crash
(`twin clean`), so teardown has one code path that is exercised on every run.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field

from twin.datapath import reconfiguring
from twin.ports import release_ports
from twin.registry import lab_dir
from twin.state import LabState, pid_alive


@dataclass
class CleanReport:
    prefix: str
    killed: list[int] = field(default_factory=list)
    bridges: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.prefix}: {len(self.killed)} processes, {len(self.bridges)} bridges, "
                f"{len(self.links)} links removed")


def netns_inode(pid: int) -> int:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return 0


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def lab_processes(inodes: set[int], prefix: str) -> list[int]:
    """Every process inside one of the lab's namespaces, plus the lab's own Mininet shells."""
    mine = []
    tag = f"mininet:{prefix}"
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid == me:
            continue
        ino = netns_inode(pid)
        if (ino and ino in inodes) or tag in _cmdline(pid):
            mine.append(pid)
    return mine


def _kill_all(pids: list[int], grace_s: float = 2.0) -> list[int]:
    killed = []
    for pid in pids:
        # Mininet's shells are interactive bash, which ignores SIGTERM: no point waiting for them
        sig = signal.SIGKILL if "mininet:" in _cmdline(pid) else signal.SIGTERM
        try:
            os.kill(pid, sig)
            killed.append(pid)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(pid_alive(p) for p in killed):
        time.sleep(0.02)
    for pid in killed:
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for pid in killed:  # reap our own children so they do not linger as zombies
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    return killed


NETNS_DIR = "/run/netns"


def named_netns(prefix: str) -> dict[str, int]:
    """The lab's pinned namespaces: handle name -> inode of the namespace it holds."""
    out: dict[str, int] = {}
    tag = f"twin-{prefix}-"
    try:
        names = os.listdir(NETNS_DIR)
    except OSError:
        return out
    for name in names:
        if name.startswith(tag):
            try:
                out[name] = os.stat(os.path.join(NETNS_DIR, name)).st_ino
            except OSError:
                out[name] = 0
    return out


def _delete_netns(names: list[str]) -> None:
    if names:
        subprocess.run(["ip", "-batch", "-"], input="".join(f"netns delete {n}\n" for n in names),
                       text=True, capture_output=True, timeout=30)


def bridges_with_prefix(prefix: str) -> list[str]:
    out = subprocess.run(["ovs-vsctl", "--timeout=10", "list-br"], capture_output=True, text=True, timeout=15)
    return [b for b in out.stdout.split() if b.startswith(prefix)]


def links_with_prefix(prefix: str) -> list[str]:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        return [l.get_attr("IFLA_IFNAME") for l in ipr.get_links()
                if (l.get_attr("IFLA_IFNAME") or "").startswith(prefix)]


def clean_lab(prefix: str, state: LabState | None = None, keep_dir: bool = False) -> CleanReport:
    from twin.controller_process import stop_controller

    report = CleanReport(prefix)
    if state is None:
        try:
            state = LabState.load(prefix)
        except (OSError, ValueError, TypeError):
            state = None
    if state is not None and state.controller_pid:
        stop_controller(state.controller_pid)
        report.killed.append(state.controller_pid)
    # Only namespaces pinned by this lab's handles are known to be its own: recorded inode numbers
    # alone are not, because a freed namespace's number is handed to the next one created.
    pinned = named_netns(prefix)
    inodes = {ino for ino in pinned.values() if ino}
    root_pids: list[int] = []
    if state is not None:
        root_pids = [p for p in state.root_pids + state.extra_pids if f"mininet:{prefix}" in _cmdline(p)
                     or p in state.extra_pids]
    pids = sorted(set(lab_processes(inodes, prefix)) | {p for p in root_pids if pid_alive(p)})
    report.killed += _kill_all(pids)
    # Namespaces going away take their veths, and so their switch ports, with them.
    with reconfiguring(f"lab {prefix} tearing down"):
        _delete_netns(list(pinned))

        bridges = bridges_with_prefix(prefix)
        if bridges:
            cmd = ["ovs-vsctl", "--timeout=20"]
            for br in bridges:
                cmd += ["--", "--if-exists", "del-br", br]
            subprocess.run(cmd, capture_output=True, timeout=30)
            report.bridges = bridges
        from pyroute2 import IPRoute

        leftover = links_with_prefix(prefix)
        if leftover:
            with IPRoute() as ipr:
                for name in leftover:
                    try:
                        ipr.link("del", ifname=name)
                        report.links.append(name)
                    except Exception:  # already gone with its peer
                        pass
    release_ports(prefix)
    if not keep_dir:
        from twin.naming import mark_released

        if lab_dir(prefix).exists():
            mark_released(prefix)
        shutil.rmtree(lab_dir(prefix), ignore_errors=True)
    return report
