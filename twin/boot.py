"""Boots a lab on Mininet + userspace Open vSwitch + an os-ken controller, and tears it down.

This is the one way a lab starts: `twin up` runs it in a small supervisor process, tests run it
in-process (`with Lab.from_file(...) as lab:`). Order matters for speed and for OVS's reconnect
back-off: the controller starts first (os-ken takes a second to import) while Mininet builds the
namespaces and veths, then switches are created pointing at a controller that already listens.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any
from pathlib import Path

from twin.cleanup import clean_lab, netns_inode
from twin.datapath import reconfiguring
from twin.errors import LabError
from twin.lab import load_lab
from twin.lab.loader import LabModel
from twin.lab.schema import KINDS
from twin.naming import (allocate_prefix, bridge_name, mgmt_bridge_name, mgmt_port_name, mininet_name,
                         netns_name, switch_port_name)
from twin.ovs import ensure_ovs
from twin.ports import allocate_port
from twin.running import RunningLab
from twin.state import LabState, LinkState, NodeState

log = logging.getLogger("twin.boot")

Progress = Callable[[str], None]


class _RemoteController:
    """What Mininet's OVSSwitch.start needs to know of a controller, without a Mininet process for it."""

    name = "c0"
    protocol = "tcp"

    def __init__(self, port: int) -> None:
        self.port = port

    def IP(self) -> str:  # noqa: N802 (Mininet's API)
        return "127.0.0.1"


class Lab(RunningLab):
    """A lab this process owns: `start()` boots it, `stop()` removes everything it created."""

    def __init__(self, model: LabModel, prefix: str | None = None) -> None:
        self.model = model
        self._prefix = prefix
        self._net = None
        self._controller_proc: subprocess.Popen | None = None
        self.timings: dict[str, float] = {}
        super().__init__(LabState(name=model.name, prefix=prefix or ""))

    @classmethod
    def from_file(cls, path: str | Path, prefix: str | None = None) -> "Lab":
        return cls(load_lab(path), prefix=prefix)

    # ---- context manager ------------------------------------------------------------------------
    def __enter__(self) -> "Lab":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- boot -----------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0, progress: Progress | None = None) -> "Lab":
        say = progress or (lambda msg: log.info(msg))
        t0 = time.monotonic()
        spec, plan = self.model.spec, self.model.plan
        prefix = self._prefix or allocate_prefix(spec.name)
        self._prefix = prefix
        st = LabState(name=spec.name, prefix=prefix, source=str(self.model.source) if self.model.source else None,
                      owner_pid=os.getpid(), message=spec.message)
        self.state = st
        st.dir.mkdir(parents=True, exist_ok=True)
        st.save()
        try:
            self._boot(st, timeout, say)
        except BaseException as exc:
            st.phase, st.error = "failed", str(exc)
            try:
                st.save()
            finally:
                self._teardown()
            if isinstance(exc, (LabError, KeyboardInterrupt)):
                raise
            raise LabError(f"lab {spec.name} ({prefix}) failed to boot: {exc}") from exc
        self.timings["boot_s"] = time.monotonic() - t0
        say(f"lab {spec.name} ready in {self.timings['boot_s']:.1f} s (prefix {prefix})")
        return self

    def _boot(self, st: LabState, timeout: float, say: Progress) -> None:
        from mininet.link import TCULink
        from mininet.net import Mininet
        from mininet.node import OVSSwitch

        from twin.controller_process import config_path_for, start_controller, wait_listening

        spec, plan = self.model.spec, self.model.plan
        deadline = time.monotonic() + timeout
        prefix = st.prefix

        ensure_ovs()

        # 1. controller, in the background while the network is built
        switches = spec.switches()
        st.of_port = allocate_port(prefix)
        st.api_socket = str(st.dir / "api.sock")
        st.controller_log = str(st.dir / "controller.log")
        config = {"lab": spec.name, "prefix": prefix, "apps": spec.controller.apps,
                  "switches": {sw: {"dpid": i + 1, "bridge": bridge_name(prefix, sw)} for i, sw in enumerate(switches)}}
        grid = None
        if spec.has_grid():
            from twin.lab.grid import VLINK_APP, controller_section, grid_of

            grid = grid_of(spec)
            config["apps"] = [*spec.controller.apps, *([] if VLINK_APP in spec.controller.apps else [VLINK_APP])]
            config["vlinks"] = controller_section(spec, str(st.dir / "vlinks.db"))
        say("starting controller")
        self._controller_proc = start_controller(st.of_port, Path(st.api_socket), config, Path(st.controller_log))
        st.controller_pid = self._controller_proc.pid
        st.controller_config = str(config_path_for(Path(st.controller_log)))
        st.save()

        # 1b. the emulator zygote imports the device stack once, also while the network is built
        zygote = None
        if any(KINDS[spec.kind_of(n)].emulated for n in spec.hosts()):
            st.zygote_socket = str(st.dir / "zygote.sock")
            with open(st.dir / "zygote.log", "ab") as zlog:
                zygote = subprocess.Popen([sys.executable, "-m", "emulators.zygote", "--socket", st.zygote_socket],
                                          stdout=subprocess.PIPE, stderr=zlog, stdin=subprocess.DEVNULL,
                                          start_new_session=True)
            st.zygote_pid = zygote.pid
            st.extra_pids.append(zygote.pid)
            st.save()

        # 2. namespaces (Mininet hosts) and switch objects
        say(f"creating {len(spec.hosts())} nodes and {len(switches)} switches")
        net = Mininet(build=False, controller=None, autoSetMacs=False, autoStaticArp=False,
                      waitConnected=False, link=TCULink)
        self._net = net
        mn: dict[str, object] = {}
        for name in spec.hosts():
            h = net.addHost(mininet_name(prefix, name), ip=None)
            mn[name] = h
            kind = spec.kind_of(name)
            st.nodes[name] = NodeState(kind=kind, pid=h.pid, netns=netns_inode(h.pid),
                                       mgmt_ip=str(plan.mgmt[name]) if name in plan.mgmt else None,
                                       gateway=str(plan.gateways[name]) if name in plan.gateways else None)
        # pin every namespace under a name (ip netns exec twin-<prefix>-<node> works too)
        res = subprocess.run(["ip", "-batch", "-"], text=True, capture_output=True, timeout=60,
                             input="".join(f"netns attach {netns_name(prefix, n)} {mn[n].pid}\n" for n in spec.hosts()))
        if res.returncode != 0:
            raise LabError(f"could not pin the lab's namespaces: {res.stderr.strip()}")
        for i, sw in enumerate(switches):
            s = net.addSwitch(bridge_name(prefix, sw), cls=OVSSwitch, datapath="user", failMode="secure",
                              protocols="OpenFlow13", dpid=f"{i + 1:016x}", reconnectms=1000)
            mn[sw] = s
            st.switches[sw] = {"bridge": s.name, "dpid": i + 1}
            st.root_pids.append(s.pid)
            st.nodes[sw] = NodeState(kind="switch", pid=0)
        mgmt_sw = None
        if spec.mgmt.enabled:
            mgmt_sw = net.addSwitch(mgmt_bridge_name(prefix), cls=OVSSwitch, datapath="user",
                                    failMode="standalone", dpid=f"{0xffff:016x}")
            st.mgmt_bridge = mgmt_sw.name
            st.station = spec.mgmt.station
            st.root_pids.append(mgmt_sw.pid)
        st.save()

        # 3. links (veth pairs, TX checksum offload off on both ends: TCULink)
        say(f"wiring {len(spec.links)} links")
        # grid links carry jumbo frames when asked (flow descriptors ride behind full-size packets)
        jumbo = spec.grid.mtu if grid is not None and spec.grid is not None and spec.grid.mtu != 1500 else 0
        for link in spec.links:
            a, b = link.endpoints
            names, root = [], []
            for ep in (a, b):
                if spec.is_switch(ep.node):
                    nm = switch_port_name(prefix, ep.node, ep.intf)
                    root.append(nm)
                else:
                    nm = ep.intf
                names.append(nm)
            st.links.append(LinkState(a=str(a), b=str(b), root_ifnames=root, vlan=link.vlan))
            st.save()  # record root-namespace names before they exist, for crash cleanup
            params: dict[str, object] = {"bw": link.bw} if link.bw else {}
            if grid is not None:  # grid members get stable MACs: the manager rewrites to them
                for key, ep in (("addr1", a), ("addr2", b)):
                    att = grid.attachment(str(ep))
                    if att is not None and att.mac:
                        params[key] = att.mac
            mn_link = net.addLink(mn[a.node], mn[b.node], intfName1=names[0], intfName2=names[1], **params)
            if jumbo and any(ep.node in grid.switches for ep in (a, b)):
                for intf in (mn_link.intf1, mn_link.intf2):
                    out = intf.cmd(f"ip link set {intf.name} mtu {jumbo} || echo FAILED")
                    if "FAILED" in out:
                        raise LabError(f"could not set MTU {jumbo} on {intf.name} ({a} - {b}): {out.strip()}")
        if mgmt_sw is not None:
            for i, name in enumerate(spec.hosts()):
                pname = mgmt_port_name(prefix, i)
                st.links.append(LinkState(a=f"{name}:mgmt0", b=f"{mgmt_sw.name}:{pname}", root_ifnames=[pname]))
                net.addLink(mn[name], mgmt_sw, intfName1="mgmt0", intfName2=pname)
        st.save()

        # 4. addresses, routes, forwarding inside each namespace (one shell round trip per node).
        # Emulated devices own their data interfaces: they get an initial config instead (step 7).
        say("configuring addresses and routes")
        for name in spec.hosts():
            node = spec.nodes[name]
            kind = KINDS[spec.kind_of(name)]
            cmds = ["ip link set lo up", "sysctl -qw net.ipv6.conf.all.disable_ipv6=1",
                    "sysctl -qw net.ipv6.conf.default.disable_ipv6=1"]
            ifaces: dict[str, str | None] = {}
            for link in spec.links:
                for ep in link.endpoints:
                    if ep.node == name:
                        addr = plan.addresses.get((name, ep.intf))
                        ifaces[ep.intf] = str(addr) if addr else None
                        if not kind.emulated:
                            if addr:
                                cmds.append(f"ip addr add {addr} dev {ep.intf}")
                            cmds.append(f"ip link set {ep.intf} up")
            if name in plan.mgmt:
                cmds += [f"ip addr add {plan.mgmt[name]} dev mgmt0", "ip link set mgmt0 up"]
            if not kind.emulated:
                cmds.append(f"sysctl -qw net.ipv4.ip_forward={1 if kind.forwards else 0}")
                if name in plan.gateways:
                    cmds.append(f"ip route add default via {plan.gateways[name]}")
                for r in node.routes:
                    cmds.append(f"ip route add {r.to} via {r.via}")
            st.nodes[name].interfaces = ifaces
            out = mn[name].cmd("; ".join(f"{c} || echo 'FAILED: {c}'" for c in cmds))
            if "FAILED:" in out:
                raise LabError(f"configuring node {name} failed: {out.strip()}")
        st.save()
        devices = [n for n in spec.hosts() if KINDS[spec.kind_of(n)].emulated]
        if devices:
            say(f"starting {len(devices)} device emulators")
            line = zygote.stdout.readline().decode().strip() if zygote is not None else ""
            if line != "READY":
                raise LabError(f"the emulator zygote did not start: {(st.dir / 'zygote.log').read_text()[-1500:]}")
            for name in devices:
                self._prepare_device(st, name)
                self.start_device(name)
            st.save()

        # 5. switches, once the controller listens (else OVS backs off for seconds)
        say("waiting for the controller to listen")
        wait_listening(st.of_port, max(1.0, deadline - time.monotonic()), api_socket=Path(st.api_socket),
                       log=Path(st.controller_log))
        say("starting switches")
        with reconfiguring(f"lab {spec.name} ({prefix}) booting"):
            self._start_switches(st, switches, mn, mgmt_sw, grid, jumbo)

        # 6. every switch seen by the controller
        say(f"waiting for {len(switches)} switches to connect")
        if switches:
            self.controller.wait_connected(switches, max(1.0, deadline - time.monotonic()))
        if grid is not None:
            say(f"waiting for {len(spec.vlinks)} virtual link(s) to be programmed")
            self.wait_vlinks(max(1.0, deadline - time.monotonic()))
        if devices:
            say(f"waiting for {len(devices)} device CLIs")
            self.wait_devices(devices, max(1.0, deadline - time.monotonic()))
        st.phase = "ready"
        st.save()

    def _start_switches(self, st: LabState, switches: list[str], mn: dict[str, Any], mgmt_sw: Any, grid: Any,
                        jumbo: int) -> None:
        """Bridges get their ports, port options and carrier: the part of a boot that stalls the
        shared datapath (twin.datapath)."""
        from mininet.node import OVSSwitch

        spec, prefix = self.model.spec, st.prefix
        ctl = _RemoteController(st.of_port)
        for sw in switches:
            mn[sw].batch = True
            mn[sw].start([ctl])
        if mgmt_sw is not None:
            mgmt_sw.batch = True
            mgmt_sw.start([])
        OVSSwitch.batchStartup([mn[sw] for sw in switches] + ([mgmt_sw] if mgmt_sw else []))
        port_opts = []
        for link in spec.links:
            for ep, other in (link.endpoints, link.endpoints[::-1]):
                if not spec.is_switch(ep.node):
                    continue
                pname = switch_port_name(prefix, ep.node, ep.intf)
                if link.vlan is not None:
                    port_opts += ["--", "set", "port", pname, f"tag={link.vlan}"]
                if link.trunk:
                    port_opts += ["--", "set", "port", pname, "trunks=" + ",".join(map(str, link.trunk))]
                if jumbo and ep.node in grid.switches:
                    port_opts += ["--", "set", "interface", pname, f"mtu_request={jumbo}"]
        for br in [bridge_name(prefix, sw) for sw in switches] + ([mgmt_sw.name] if mgmt_sw else []):
            port_opts += ["--", "set", "bridge", br, f"external-ids:twin-lab={prefix}"]
        subprocess.run(["ovs-vsctl", "--timeout=20", *port_opts], check=True, capture_output=True, timeout=30)
        root_ifs = [n for l in st.links for n in l.root_ifnames]
        if root_ifs:
            subprocess.run(["ip", "-batch", "-"], input="".join(f"link set {n} up\n" for n in root_ifs),
                           text=True, check=True, capture_output=True, timeout=30)

    def wait_vlinks(self, deadline_s: float) -> dict:
        """Wait until the virtual link manager has programmed every grid switch and every link."""
        from twin.polling import wait_for

        last: dict = {}

        def done() -> bool:
            nonlocal last
            last = self.controller.request("GET", "/vlinks")
            return set(last["grid"]["switches"]) <= set(last["grid"]["synced"]) and \
                all(link["programmed"] for link in last["links"])

        try:
            wait_for(done, deadline_s, what="virtual links programmed on every grid switch", interval=0.05)
        except AssertionError:
            grid = last.get("grid", {})
            missing = sorted(set(grid.get("switches", [])) - set(grid.get("synced", [])))
            links = [link["name"] for link in last.get("links", []) if not link["programmed"]]
            raise LabError(f"virtual links not programmed within {deadline_s:g} s: switches not synced: "
                           f"{', '.join(missing) or 'none'}; links not programmed: {', '.join(links) or 'none'} "
                           f"(see controller.log)") from None
        refused = [n for n in self.model.spec.vlinks if n not in {link["name"] for link in last["links"]}]
        if refused:
            raise LabError(f"the controller refused virtual link(s) {', '.join(refused)} of the lab file; "
                           f"controller.log says why")
        return last

    def _cluster_files(self, st: LabState) -> dict[str, tuple[str, str]]:
        """What each cluster's manager and elements know from the lab file (twin/lab/clusters.py)."""
        from twin.lab.clusters import cluster_files

        if getattr(self, "_cluster_cache", None) is None:
            mgmt = {n: str(a.ip) for n, a in self.model.plan.mgmt.items()}
            self._cluster_cache = cluster_files(self.model.spec, mgmt, st.prefix, st.api_socket or "")
        return self._cluster_cache

    def _flow_files(self, st: LabState) -> dict[str, tuple[str, str]]:
        """What each flow node and the MNODE know from the lab file (twin/lab/flows.py)."""
        from twin.lab.flows import flow_files

        if getattr(self, "_flow_cache", None) is None:
            mgmt = {n: str(a.ip) for n, a in self.model.plan.mgmt.items()}
            self._flow_cache = flow_files(self.model.spec, mgmt, st.prefix)
        return self._flow_cache

    def _prepare_device(self, st: LabState, name: str) -> None:
        """Record how to run a node's emulator, so any process can restart it from the state file."""
        from twin.devconfig import initial_config, redundancy_hardware

        spec = self.model.spec
        node = spec.nodes[name]
        ddir = st.dir / "devices" / name
        ddir.mkdir(parents=True, exist_ok=True)
        (ddir / "initial-config").write_text(initial_config(self.model, name))
        hw = redundancy_hardware(self.model, name, st.prefix)
        if hw is not None:
            (ddir / "redundancy.json").write_text(json.dumps(hw, indent=1))
        for files in (self._cluster_files(st), self._flow_files(st)):
            found = files.get(name)
            if found is not None:
                (ddir / found[0]).write_text(found[1])
        ns = st.nodes[name]
        ns.username = node.username or spec.defaults.username
        ns.password = node.password or spec.defaults.password
        ns.enable_secret = node.enable_secret or spec.defaults.enable_secret
        ns.console = str(ddir / "console.sock")
        ns.emulator_cmd = [sys.executable, "-m", "emulators.run", "--kind", spec.kind_of(name), "--name", name,
                           "--state-dir", str(ddir), "--users", f"{ns.username}:{ns.password}",
                           "--enable-secret", ns.enable_secret, "--initial-config", str(ddir / "initial-config"),
                           "--console-socket", ns.console, "--ready-file", str(ddir / "ready.json"),
                           "--log", str(ddir / "emulator.log")]
        version = node.version or spec.defaults.version
        if version:
            ns.emulator_cmd += ["--version", version]
        if ns.mgmt_ip:
            # Inside the node's namespace: the vty lines answer on every address the node has.
            ns.emulator_cmd += ["--mgmt-ip", ns.mgmt_ip.split("/")[0], "--listen", "0.0.0.0"]

    # ---- teardown -------------------------------------------------------------------------------
    def stop(self) -> None:
        """Remove everything the lab created. Safe to call twice and after a failed start."""
        if not self.state.prefix:
            return
        self.state.phase = "stopping"
        try:
            self.state.save()
        except OSError:
            pass
        self._teardown()

    def _teardown(self) -> None:
        t0 = time.monotonic()
        clean_lab(self.state.prefix, self.state)
        if self._controller_proc is not None:
            try:
                self._controller_proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self._controller_proc = None
        self._net = None
        self.timings["teardown_s"] = time.monotonic() - t0
