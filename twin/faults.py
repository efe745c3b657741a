"""Fault injection on a running lab. Every fault records its wall-clock time in the lab's event
timeline and returns it, so a test measures recovery from the exact moment of the fault."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twin.cleanup import _cmdline, netns_inode
from twin.errors import LabError
from twin.state import pid_alive

if TYPE_CHECKING:
    from twin.running import RunningLab
    from twin.state import LinkState


@dataclass
class Fault:
    kind: str
    target: str
    time: float                      # time.time() when the fault took effect
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class CpuLoad:
    """Busy loops inside a node's namespace; `stop()` ends them (also done by lab teardown)."""

    node: str
    pids: list[int]
    _lab: "RunningLab"

    def stop(self) -> None:
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        self._lab.reload()
        self._lab.state.extra_pids = [p for p in self._lab.state.extra_pids if p not in self.pids]
        self._lab.state.save()
        self._lab.record_event("fault", fault="cpu-load-end", target=self.node)


_STEPPED = {"link_down", "link_up", "power_off", "power_on", "kill", "stop", "cont", "cpu_load",
            "restart_controller"}


class Faults:
    def __init__(self, lab: "RunningLab") -> None:
        self.lab = lab

    def _record(self, kind: str, target: str, **detail: Any) -> Fault:
        ev = self.lab.record_event("fault", fault=kind, target=target, **detail)
        return Fault(kind, target, ev["time"], detail)

    # ---- links ----------------------------------------------------------------------------------
    def _set_links(self, links: list[LinkState], up: bool) -> float:
        """Set links down or up at both ends, all at once: one `ip -batch` per namespace involved
        (a power-off is one event, not one interface after another; on a loaded machine separate
        commands spread it over hundreds of milliseconds, during which the node still talks on the
        links not yet down). Returns the time stamped before the first command."""
        word = "up" if up else "down"
        per_node: dict[str, list[str]] = {}
        root: list[str] = []
        for link in links:
            for end in (link.a, link.b):
                node, intf = end.split(":", 1)
                st = self.lab.state.nodes.get(node)
                if intf not in link.root_ifnames and st is not None and st.pid:  # in a node's namespace
                    per_node.setdefault(node, []).append(intf)
            root += link.root_ifnames
        # Stamped before the first command: on a loaded machine `ip link` can return after the
        # controller and the devices have already reacted, and their events must not predate the fault.
        t = time.time()
        for node, intfs in per_node.items():
            r = self.lab.nodes.run(node, ["ip", "-batch", "-"], timeout=10,
                                   input="".join(f"link set dev {i} {word}\n" for i in intfs))
            if r.returncode != 0:
                raise LabError(f"could not set {', '.join(intfs)} {word} in {node}: {r.stderr.strip()}")
        if root:
            r = subprocess.run(["ip", "-batch", "-"], input="".join(f"link set dev {n} {word}\n" for n in root),
                               capture_output=True, text=True, timeout=10)
            if r.returncode != 0:
                raise LabError(f"could not set {', '.join(root)} {word}: {r.stderr.strip()}")
        self.lab.reload()
        keys = {(l.a, l.b) for l in links}
        for l in self.lab.state.links:
            if (l.a, l.b) in keys:
                l.state = word
        self.lab.state.save()
        return t

    def _set_link(self, a: str, b: str | None, up: bool) -> tuple[str, float]:
        link = self.lab.find_link(a, b)
        return f"{link.a}--{link.b}", self._set_links([link], up)

    def link_down(self, a: str, b: str | None = None) -> Fault:
        """Take a link down at both ends (carrier lost on both sides, as a pulled cable)."""
        target, t = self._set_link(a, b, up=False)
        ev = self.lab.record_event("fault", fault="link-down", target=target)
        return Fault("link-down", target, t, {"recorded": ev["time"]})

    def link_up(self, a: str, b: str | None = None) -> Fault:
        target, t = self._set_link(a, b, up=True)
        self.lab.record_event("fault", fault="link-up", target=target)
        return Fault("link-up", target, t)

    # ---- power ----------------------------------------------------------------------------------
    def power_off(self, node: str) -> Fault:
        """All of a node's links down, management included: it vanishes from every network."""
        links = self.lab.links_of(node)
        if not links:
            raise LabError(f"{node} has no links to power off")
        t = self._set_links(links, up=False)
        self.lab.reload()
        self.lab.state.nodes[node].admin = "powered-off"
        self.lab.state.save()
        f = self._record("power-off", node)
        f.time = t
        return f

    def power_on(self, node: str, boot_timeout_s: float = 30.0) -> Fault:
        """Links back up; a device whose emulator is not running (killed, crashed) boots again,
        as a real one does at power-on."""
        self._set_links(self.lab.links_of(node), up=True)
        self.lab.reload()
        self.lab.state.nodes[node].admin = "up"
        self.lab.state.save()
        st = self.lab.state.nodes[node]
        if st.emulator_cmd and not pid_alive(st.emulator_pid):
            self.lab.start_device(node)
            self.lab.wait_devices([node], boot_timeout_s)
        return self._record("power-on", node)

    # ---- processes ------------------------------------------------------------------------------
    def node_processes(self, node: str, match: str | None = None) -> list[int]:
        """Processes running in a node's namespace, except the shell that holds the namespace."""
        st = self.lab._node(node)
        if not st.pid:
            raise LabError(f"{node} is a switch and has no processes of its own")
        ino = st.netns
        out = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                pid = int(entry)
                if pid != st.pid and pid != os.getpid() and netns_inode(pid) == ino:
                    if match is None or match in _cmdline(pid):
                        out.append(pid)
        return sorted(out)

    def kill(self, node: str, sig: int | str = "KILL", match: str | None = None) -> Fault:
        """Send a signal to a node's processes (all, or those whose command line contains `match`)."""
        signum = sig if isinstance(sig, int) else getattr(signal, "SIG" + sig.upper().removeprefix("SIG"))
        pids = self.node_processes(node, match)
        if not pids:
            raise LabError(f"no process{' matching ' + repr(match) if match else ''} runs in {node}")
        t = time.time()
        for pid in pids:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        name = signal.Signals(signum).name
        self.lab.record_event("fault", fault="kill", target=node, signal=name, pids=pids, match=match)
        return Fault("kill", node, t, {"signal": name, "pids": pids, "match": match})

    def stop(self, node: str, match: str | None = None) -> Fault:
        """Freeze processes (SIGSTOP): a hung process, alive but silent."""
        return self.kill(node, signal.SIGSTOP, match)

    def cont(self, node: str, match: str | None = None) -> Fault:
        return self.kill(node, signal.SIGCONT, match)

    def cpu_load(self, node: str, workers: int = 1, seconds: float | None = None) -> CpuLoad:
        """Burn CPU inside a node's namespace with `workers` busy loops, bounded by `seconds`."""
        limit = f"import time; end=time.monotonic()+{seconds if seconds else 3600}\nwhile time.monotonic()<end: pass"
        procs = [self.lab.nodes.popen(node, [sys.executable, "-c", limit], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL) for _ in range(workers)]
        pids = [p.pid for p in procs]
        self.lab.reload()
        self.lab.state.extra_pids += pids
        self.lab.state.save()
        self._record("cpu-load", node, workers=workers, seconds=seconds)
        return CpuLoad(node, pids, self.lab)

    # ---- controller -----------------------------------------------------------------------------
    def restart_controller(self, timeout: float = 30.0) -> Fault:
        """Stop the controller and start a fresh one on the same port; switches reconnect."""
        from pathlib import Path

        from twin.controller_process import start_controller, stop_controller, wait_listening

        st = self.lab.state
        import json

        config = json.loads(Path(st.controller_config).read_text())
        stop_controller(st.controller_pid)
        t = time.time()
        proc = start_controller(st.of_port, Path(st.api_socket), config, Path(st.controller_log))
        self.lab.reload()
        self.lab.state.controller_pid = proc.pid
        self.lab.state.save()
        deadline = time.monotonic() + timeout
        wait_listening(st.of_port, timeout, api_socket=Path(st.api_socket), log=Path(st.controller_log))
        self.lab.controller.wait_connected(self.lab.switch_names(), max(1.0, deadline - time.monotonic()))
        ev = self.lab.record_event("fault", fault="controller-restart", target="controller", new_pid=proc.pid)
        return Fault("controller-restart", "controller", t, {"ready": ev["time"]})


def _stepped(name: str, fn):
    """Every fault is a report step of its own: "inject fault: link-down h2:eth1"."""
    import functools

    from twin.evidence import step

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        shown = " ".join(str(a) for a in args)
        with step(f"inject fault: {name.replace('_', '-')} {shown}".rstrip()):
            return fn(self, *args, **kwargs)
    return wrapper


for _name in _STEPPED:
    setattr(Faults, _name, _stepped(_name, getattr(Faults, _name)))
