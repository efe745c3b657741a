"""Operations on a running lab, working only from its state file.

The process that booted a lab and any other process (`twin exec`, a test, a fault injector) use the
same class, so a lab started with `twin up` is driven exactly like one started by a pytest fixture.
"""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from twin.errors import LabError, LabNotFound
from twin.nodeexec import NodeExec
from twin.state import LabState, LinkState, all_states, pid_alive


class RunningLab:
    def __init__(self, state: LabState) -> None:
        from twin.evidence import Produced

        self.state = state
        self.produced = Produced()  # device sessions and captures, for the report

    # ---- finding labs -------------------------------------------------------------------------
    @classmethod
    def attach(cls, ref: str | None = None) -> "RunningLab":
        """The lab named `ref` (lab name or prefix), or the only running lab when `ref` is None."""
        states = [s for s in all_states() if s.phase in ("ready", "booting")]
        if ref is not None:
            states = [s for s in states if ref in (s.name, s.prefix)]
        if len(states) == 1:
            return cls(states[0])
        if not states:
            raise LabNotFound(f"no running lab{' named ' + repr(ref) if ref else ''}; start one with 'twin up FILE'")
        listed = ", ".join(f"{s.name} ({s.prefix})" for s in states)
        raise LabNotFound(f"several labs are running: {listed}; name one with --lab NAME|PREFIX")

    def reload(self) -> None:
        self.state = LabState.load(self.state.prefix)

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def prefix(self) -> str:
        return self.state.prefix

    @property
    def dir(self) -> Path:
        return self.state.dir

    # ---- reaching nodes -----------------------------------------------------------------------
    @property
    def nodes(self) -> NodeExec:
        return NodeExec({n: s.pid for n, s in self.state.nodes.items() if s.pid},
                        {n: self.netns_path(n) for n, s in self.state.nodes.items() if s.pid})

    def netns_path(self, node: str) -> str:
        """The pinned handle of a node's namespace (`ip netns exec twin-<prefix>-<node> ...`)."""
        from twin.naming import netns_name

        return f"/run/netns/{netns_name(self.prefix, node)}"

    def node_alive(self, node: str) -> bool:
        import os

        st = self._node(node)
        return pid_alive(st.pid) or (bool(st.pid) and os.path.exists(self.netns_path(node)))

    def node_names(self, kind: str | None = None) -> list[str]:
        return [n for n, s in self.state.nodes.items() if kind is None or s.kind == kind]

    def node_of_kind(self, kind: str, name: str | None = None, what: str | None = None) -> str:
        """`name` if it is a node of `kind`, else the lab's first one: the manager an operator
        command talks to. LabError names the candidates when there is none or `name` is not one."""
        from twin.errors import LabError

        what = what or kind
        found = self.node_names(kind)
        if name is not None:
            if name not in found:
                raise LabError(f"{name} is not a {what} of lab {self.name} ({what}s: {', '.join(found) or 'none'})")
            return name
        if not found:
            raise LabError(f"lab {self.name} has no {what} (a node of kind {kind})")
        return found[0]

    def address(self, node: str, intf: str | None = None) -> str:
        """A node's data address (its first interface's unless `intf` is given), without the length."""
        st = self._node(node)
        if intf == "mgmt0":
            if not st.mgmt_ip:
                raise LabError(f"{node} has no management address")
            return st.mgmt_ip.split("/")[0]
        items = [(i, a) for i, a in st.interfaces.items() if a and (intf is None or i == intf)]
        if not items:
            raise LabError(f"{node}{':' + intf if intf else ''} has no IPv4 address "
                           f"(interfaces: {', '.join(st.interfaces) or 'none'})")
        return items[0][1].split("/")[0]

    def mgmt_address(self, node: str) -> str:
        return self.address(node, "mgmt0")

    def _node(self, node: str):
        try:
            return self.state.nodes[node]
        except KeyError:
            raise LabError(f"no node named {node!r} in lab {self.name} "
                           f"(nodes: {', '.join(self.state.nodes)})") from None

    # ---- controller and switches ----------------------------------------------------------------
    @property
    def controller(self):
        from twin.controller_client import ControllerClient

        return ControllerClient(self.state.api_socket)

    def switch_names(self) -> list[str]:
        return list(self.state.switches)

    def bridge(self, switch: str) -> str:
        try:
            return self.state.switches[switch]["bridge"]
        except KeyError:
            raise LabError(f"no switch named {switch!r} in lab {self.name} "
                           f"(switches: {', '.join(self.state.switches)})") from None

    def dump_flows(self, switch: str) -> str:
        """`ovs-ofctl dump-flows` of one switch, the evidence a network engineer reads first."""
        out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", self.bridge(switch)],
                             capture_output=True, text=True, timeout=15)
        return out.stdout if out.returncode == 0 else out.stderr

    def dump_ports(self, switch: str) -> str:
        out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-ports-desc", self.bridge(switch)],
                             capture_output=True, text=True, timeout=15)
        return out.stdout if out.returncode == 0 else out.stderr

    def controller_log(self) -> str:
        try:
            return Path(self.state.controller_log).read_text(errors="replace")
        except OSError:
            return ""

    # ---- links ----------------------------------------------------------------------------------
    def find_link(self, a: str, b: str | None = None) -> LinkState:
        """A link by one endpoint ("h1:eth1"), or by its two nodes ("h1", "s1")."""
        for link in self.state.links:
            ends = (link.a, link.b)
            if b is None:
                if a in ends:
                    return link
            else:
                nodes = {e.split(":")[0] for e in ends}
                if {a, b} == nodes or {a, b} == set(ends):
                    return link
        shown = ", ".join(f"{l.a}--{l.b}" for l in self.state.links)
        raise LabError(f"no link {a}{' -- ' + b if b else ''} in lab {self.name} (links: {shown})")

    def links_of(self, node: str) -> list[LinkState]:
        return [l for l in self.state.links if node in (l.a.split(":")[0], l.b.split(":")[0])]

    # ---- status and events ----------------------------------------------------------------------
    def status(self) -> list[dict[str, Any]]:
        rows = []
        for name, st in self.state.nodes.items():
            if st.kind == "switch":
                continue
            alive = self.node_alive(name)
            state = "running" if alive else "down"
            if alive and st.emulator_cmd and not pid_alive(st.emulator_pid):
                state = "cli-down"
            if alive and st.admin != "up":
                state = st.admin
            rows.append({"node": name, "kind": st.kind, "mgmt": st.mgmt_ip, "state": state,
                         "addresses": {i: a for i, a in st.interfaces.items() if a}})
        for name, sw in self.state.switches.items():
            rows.append({"node": name, "kind": "switch", "mgmt": None, "state": sw.get("state", "running"),
                         "addresses": {}, "bridge": sw["bridge"]})
        return rows

    def record_event(self, kind: str, **data: Any) -> dict[str, Any]:
        """Append to the lab's event timeline; faults record here so recovery is measured from them."""
        ev = {"time": time.time(), "kind": kind, **data}
        with open(self.dir / "events.jsonl", "a") as fh:
            fh.write(json.dumps(ev) + "\n")
        return ev

    def events(self) -> list[dict[str, Any]]:
        try:
            return [json.loads(line) for line in (self.dir / "events.jsonl").read_text().splitlines() if line]
        except OSError:
            return []

    # ---- emulated devices -------------------------------------------------------------------------
    def device(self, node: str):
        """A handle to open CLI sessions on a device: `.console()`, `.ssh()`, `.telnet()`."""
        from twin.driver import DeviceHandle

        st = self._node(node)
        if not st.emulator_cmd:
            raise LabError(f"{node} is a {st.kind}, not an emulated device (it has no CLI)")
        handle = DeviceHandle(self, node)
        handle.on_open = self.produced.sessions.append
        return handle

    def devices(self) -> list[str]:
        return [n for n, s in self.state.nodes.items() if s.emulator_cmd]

    def device_dir(self, node: str) -> Path:
        return self.dir / "devices" / node

    def device_events(self, node: str, type: str | None = None, since: float = 0.0) -> list[dict[str, Any]]:
        """A device's structured events (what it published: failovers, link changes, logins),
        optionally of one type and from a time on; the device writes them, any process reads them."""
        out = []
        try:
            lines = (self.device_dir(node) / "events.jsonl").read_text().splitlines()
        except OSError:
            return []
        for line in lines:
            try:
                ev = json.loads(line)
            except ValueError:
                continue            # a line being written right now
            if (type is None or ev.get("type") == type) and ev.get("time", 0) >= since:
                out.append(ev)
        return out

    def wait_device_event(self, node: str, type: str, since: float, timeout: float = 15.0) -> dict[str, Any]:
        """The first such event at or after `since`; AssertionError naming it if none comes in time."""
        from twin.polling import wait_for

        return wait_for(lambda: (self.device_events(node, type, since) or [None])[0], timeout,
                        f"a {type} event from {node}", interval=0.05)

    def start_device(self, node: str) -> int:
        """Start a node's emulator inside its namespace (it loads its startup-config if saved)."""
        st = self._node(node)
        ddir = self.device_dir(node)
        (ddir / "ready.json").unlink(missing_ok=True)
        if self.state.zygote_socket and pid_alive(self.state.zygote_pid):
            from emulators.zygote import spawn

            args = st.emulator_cmd[st.emulator_cmd.index("emulators.run") + 1:]
            st.emulator_pid = spawn(self.state.zygote_socket, args, self.netns_path(node), ddir / "emulator.err")
            self.state.save()
            return st.emulator_pid
        with open(ddir / "emulator.err", "ab") as err:
            proc = self.nodes.popen(node, st.emulator_cmd, stdout=subprocess.DEVNULL, stderr=err,
                                    start_new_session=True)
        st.emulator_pid = proc.pid
        self.state.save()
        return proc.pid

    def wait_devices(self, nodes: list[str], deadline_s: float) -> None:
        end = time.monotonic() + deadline_s
        pending = list(nodes)
        while pending:
            for n in list(pending):
                if (self.device_dir(n) / "ready.json").exists():
                    pending.remove(n)
                elif not pid_alive(self.state.nodes[n].emulator_pid):
                    raise LabError(f"device {n}'s emulator exited before its CLI was ready: "
                                   f"{self._device_log_tail(n)}")
            if pending and time.monotonic() > end:
                raise LabError(f"device CLI never came up on {', '.join(pending)} within {deadline_s:.0f} s: "
                               f"{self._device_log_tail(pending[0])}")
            if pending:
                time.sleep(0.02)

    def _device_log_tail(self, node: str) -> str:
        text = ""
        for f in ("emulator.err", "emulator.log"):
            try:
                text += (self.device_dir(node) / f).read_text(errors="replace")[-1500:]
            except OSError:
                pass
        return text.strip() or "(no output)"

    def stop_device(self, node: str, grace_s: float = 3.0) -> None:
        import os
        import signal

        from twin.cleanup import _cmdline

        pid = self._node(node).emulator_pid
        cmd = _cmdline(pid)
        if not pid_alive(pid) or ("emulators.run" not in cmd and "emulators.zygote" not in cmd):
            return
        os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + grace_s
        while pid_alive(pid) and time.monotonic() < end:
            time.sleep(0.02)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass

    def restart_device(self, node: str, timeout: float = 30.0) -> None:
        self.stop_device(node)
        self.start_device(node)
        self.wait_devices([node], timeout)
        self.record_event("device-restart", target=node)

    def capture(self, node: str, intf: str = "eth1", bpf: str = "", name: str | None = None):
        """A tcpdump capture inside a node (context manager); its pcap is attached to the report."""
        from twin.traffic.capture import Capture

        cap = Capture(self.nodes, node, intf, bpf, self.dir / "captures" / (name or f"{node}-{intf}-{time.time():.0f}.pcap"))
        self.produced.captures.append(cap.path)
        return cap

    @property
    def faults(self):
        from twin.faults import Faults

        return Faults(self)
