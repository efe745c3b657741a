"""The `inode`, `anode` and `mnode` device kinds: flow nodes on the shared device CLI engine.

An INODE or ANODE is a router (every router command, its interfaces and addresses) whose kernel does
not forward: its flow engine (engine.py) does, on real packets through PacketIO, and reports to the
MNODE over the management network. The MNODE runs the FlowManager and the operator API. The lab
engine writes `flows.json` (twin/lab/flows.py) into each one's state directory.
"""
from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from ..cli.context import Context
from ..cli.tree import command
from ..device import BaseDevice
from ..router import Router
from . import render
from .api import ApiServer
from .control import ControlChannel, start_thread
from .engine import FlowEngine
from .io import PacketIO
from .manager import FlowManager

log = logging.getLogger(__name__)

PLAN_FILE = "flows.json"
HELP = {"flows": "Flows this node carries", "flow-stats": "Flow routing statistics",
        "flow-topology": "The topology flows are routed by", "flow-routes": "Every flow route and its flows",
        "flow-nodes": "Flow nodes: IDs, liveness, load", "history": "Every topology change"}


def _load_plan(state_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((state_dir / PLAN_FILE).read_text())
    except FileNotFoundError:
        return None


def _start_service(dev: Any, what: str, start: Any) -> None:
    """Start a device's flow service after its CLI is up; a failure leaves the CLI running and says
    why (`problem`, syslog) instead of killing the device. Unit-test devices (apply off) skip it."""
    if not dev.apply_enabled:
        return
    try:
        start()
    except Exception as exc:
        dev.problem = f"{exc.__class__.__name__}: {exc}"
        log.exception("%s: %s did not start", dev.name, what)
        dev.syslog(f"%FLOW-2-START: {what} not running: {dev.problem}")


class FlowNode(Router):
    """See the module docstring; `kind` is set by the two subclasses."""

    tick_interval = 1.0

    def __init__(self, name: str, *, state_dir: Path, **kwargs: Any) -> None:
        self.engine: FlowEngine | None = None
        self.io: PacketIO | None = None
        self.channel: ControlChannel | None = None
        self.problem = ""
        self._halt = threading.Event()
        self._threads: list[threading.Thread] = []
        super().__init__(name, state_dir=state_dir, **kwargs)

    def reset_config(self) -> None:
        super().reset_config()
        self.ip_routing = False          # the flow engine forwards, never the kernel

    def start(self) -> None:
        super().start()
        _start_service(self, "flow engine", self._start_engine)

    def _start_engine(self) -> None:
        plan = _load_plan(self.state_dir)
        if plan is None:
            self.problem = f"no {PLAN_FILE}: this node is in no cluster of the lab's flows section"
            return
        io = PacketIO(plan["grid_intfs"], plan["ext_intfs"])
        missing = io.open()
        if missing:
            self.syslog(f"%FLOW-3-INTF: cannot bind {', '.join(missing)}")
        self.io = io
        self.engine = eng = FlowEngine(plan, io.send_grid, io.send_ext)
        self.channel = ch = ControlChannel(self.name, plan["mgmt_ip"], int(plan["control_port"]),
                                           str(plan["secret"]).encode())

        def on_message(msg: Any, ip: str) -> None:
            if msg.type != "topo" or msg.sender != plan["manager"] or ip != plan["manager_ip"]:
                ch.reject("stranger", f"{msg.type} from {msg.sender} at {ip} (only the MNODE sends topologies)")
                return
            before = eng.topology.id if eng.topology else None
            if eng.control(msg.body) and eng.topology is not None and eng.topology.id != before:
                self.syslog(f"%FLOW-5-TOPOLOGY: topology {eng.topology.id}: {eng.topology.reason}")

        self._threads = [start_thread(lambda: io.run(eng.from_grid, eng.from_ext, eng.tick), "flow-packets"),
                         start_thread(lambda: ch.serve(on_message), "flow-control"),
                         start_thread(self._agent, "flow-agent")]
        self.syslog(f"%FLOW-5-START: {plan['role']} of cluster {plan['cluster']}: grid {', '.join(plan['grid_intfs'])}"
                    f"{'; external ' + ', '.join(plan['ext_intfs']) if plan['ext_intfs'] else ''}")

    def _agent(self) -> None:
        """Heartbeats every interval and statistics every second ([0066] h, k)."""
        eng, ch = self.engine, self.channel
        assert eng is not None and ch is not None
        plan = eng.plan
        period = plan["heartbeat_ms"] / 1000.0
        every = max(1, round(1.0 / period))
        n = 0
        while not self._halt.wait(period):
            topo = eng.topology.id if eng.topology else None
            try:
                if n % every == 0:
                    ch.send(plan["manager_ip"], "stats", report=self.report(), flows=eng.flows(300))
                else:
                    ch.send(plan["manager_ip"], "hb", pps=round(eng.stats.pps, 1),
                            active=len(eng.transit) + len(eng.classifier.entries()), topology=topo)
            except Exception:       # a failed report must not silence the heartbeats (the MNODE would fail us)
                log.exception("%s: flow report failed; sending a plain heartbeat", self.name)
                ch.send(plan["manager_ip"], "hb", topology=topo)
            n += 1

    def report(self) -> dict[str, Any]:
        assert self.engine is not None
        r = self.engine.report()
        r["io_errors"] = dict(self.io.errors) if self.io else {}
        r["control_rejects"] = dict(self.channel.rejects) if self.channel else {}
        return r

    def shutdown_backend(self) -> None:
        self._halt.set()
        if self.io is not None:
            self.io.stop()
        if self.channel is not None:
            self.channel.close()
        for t in self._threads:
            t.join(timeout=2)
        if self.io is not None:
            self.io.close()
        super().shutdown_backend()

    # ------------------------------------------------------------------ CLI
    def _need(self, ctx: Context) -> FlowEngine | None:
        if self.engine is None:
            ctx.print(f"% Flow engine not running: {self.problem or 'starting'}")
        return self.engine

    @command("exec", "show flows", priv=1, help=HELP)
    def cmd_show_flows(self, ctx: Context) -> None:
        eng = self._need(ctx)
        if eng is not None:
            for line in render.flows_table(eng.flows()):
                ctx.print(line)

    @command("exec", "show flow-stats", priv=1, help=HELP)
    def cmd_show_flow_stats(self, ctx: Context) -> None:
        if self._need(ctx) is not None:
            for line in render.node_stats(self.report()):
                ctx.print(line)

    @command("exec", "show flow-topology", priv=1, help=HELP)
    def cmd_show_flow_topology(self, ctx: Context) -> None:
        eng = self._need(ctx)
        if eng is None:
            return
        if eng.topology is None:
            ctx.print("% No topology received from the MNODE yet")
            return
        for line in render.topology_lines(eng.topology.to_dict(), eng.selection):
            ctx.print(line)
        ctx.print(f"Topologies held: {', '.join(str(t.id) for t in eng.topologies)}")


class InodeDevice(FlowNode):
    kind = "inode"


class AnodeDevice(FlowNode):
    kind = "anode"


class MnodeDevice(BaseDevice):
    kind = "mnode"
    tick_interval = 1.0

    def __init__(self, name: str, *, state_dir: Path, **kwargs: Any) -> None:
        self.manager: FlowManager | None = None
        self.channel: ControlChannel | None = None
        self.api: ApiServer | None = None
        self.problem = ""
        self._halt = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.RLock()
        super().__init__(name, state_dir=state_dir, **kwargs)

    def start(self) -> None:
        super().start()
        _start_service(self, "flow manager", self._start_manager)

    def _start_manager(self) -> None:
        plan = _load_plan(self.state_dir)
        if plan is None:
            self.problem = f"no {PLAN_FILE}: this node is not the manager of the lab's flows section"
            return
        self.channel = ch = ControlChannel(self.name, plan["mgmt_ip"], int(plan["control_port"]),
                                           str(plan["secret"]).encode())

        def send(ip: str, type_: str, body: dict[str, Any]) -> None:
            ch.send(ip, type_, **body)

        self.manager = m = FlowManager(plan, send)

        def on_message(msg: Any, ip: str) -> None:
            with self._lock:
                before = m.topology.id
                why = m.on_message(msg.type, msg.sender, msg.boot, msg.body, ip)
                after = m.topology
            if why is not None:
                ch.reject("stranger", why)
            elif after.id != before:
                self.syslog(f"%FLOW-5-TOPOLOGY: topology {after.id}: {after.reason}")

        def monitor() -> None:
            period = max(0.02, plan["heartbeat_ms"] / 2000.0)
            while not self._halt.wait(period):
                with self._lock:
                    before = m.topology.id
                    try:
                        m.check()
                    except Exception:       # the monitor must outlive a bug in one check
                        log.exception("%s: flow manager check failed", self.name)
                    after = m.topology
                if after.id != before:
                    self.syslog(f"%FLOW-4-TOPOLOGY: topology {after.id}: {after.reason}")

        self.api = ApiServer(self.state_dir, self._api)
        self._threads = [start_thread(lambda: ch.serve(on_message), "flow-control"),
                         start_thread(monitor, "flow-monitor")]
        with self._lock:
            m.broadcast()
        self.syslog(f"%FLOW-5-START: managing {len(plan['nodes'])} flow nodes in {len(plan['clusters'])} clusters, "
                    f"{plan.get('selection')} next-hop selection")

    def _api(self, req: dict[str, Any]) -> Any:
        m = self.manager
        if m is None:
            raise ValueError(f"flow manager not running: {self.problem or 'starting'}")
        op = req["op"]
        with self._lock:
            if op == "summary":
                return {**m.summary(), "rejects": dict(self.channel.rejects) if self.channel else {}}
            if op == "nodes":
                return m.node_table()
            if op == "flows":
                return m.flows()
            if op == "routes":
                return m.routes()
            if op == "service":
                node, state = req.get("node"), req.get("in_service")
                if not isinstance(node, str) or not isinstance(state, bool):
                    raise ValueError('service needs {"node": NAME, "in_service": true|false}')
                return m.set_service(node, state).to_dict()
            if op == "selection":
                return m.set_selection(str(req.get("mode")))
        raise ValueError(f"unknown op {op!r} (summary, nodes, flows, routes, service, selection)")

    def shutdown_backend(self) -> None:
        self._halt.set()
        if self.channel is not None:
            self.channel.close()
        if self.api is not None:
            self.api.close()
        for t in self._threads:
            t.join(timeout=2)
        super().shutdown_backend()

    # ------------------------------------------------------------------ CLI
    def _need(self, ctx: Context) -> FlowManager | None:
        if self.manager is None:
            ctx.print(f"% Flow manager not running: {self.problem or 'starting'}")
        return self.manager

    @command("exec", "show flows", priv=1, help=HELP)
    def cmd_show_flows(self, ctx: Context) -> None:
        m = self._need(ctx)
        if m is not None:
            with self._lock:
                flows = m.flows()
            for line in render.flows_table(flows, with_node=True):
                ctx.print(line)

    @command("exec", "show flow-stats", priv=1, help=HELP)
    @command("exec", "show flow-nodes", priv=1, help=HELP)
    def cmd_show_flow_nodes(self, ctx: Context) -> None:
        m = self._need(ctx)
        if m is not None:
            with self._lock:
                rows = m.node_table()
            for line in render.nodes_table(rows):
                ctx.print(line)

    @command("exec", "show flow-topology", priv=1, help=HELP)
    def cmd_show_flow_topology(self, ctx: Context) -> None:
        m = self._need(ctx)
        if m is not None:
            with self._lock:
                lines = render.topology_lines(m.topology.to_dict(), m.plan.get("selection", ""))
            for line in lines:
                ctx.print(line)

    @command("exec", "show flow-topology history", priv=1, help=HELP)
    def cmd_show_flow_history(self, ctx: Context) -> None:
        m = self._need(ctx)
        if m is not None:
            with self._lock:
                events = list(m.events)
            for line in render.events_lines(events):
                ctx.print(line)

    @command("exec", "show flow-routes", priv=1, help=HELP)
    def cmd_show_flow_routes(self, ctx: Context) -> None:
        m = self._need(ctx)
        if m is not None:
            with self._lock:
                routes = m.routes()
            for line in render.routes_table(routes):
                ctx.print(line)

    @command("exec", "flow node <node:word> out-of-service", priv=15, op=False,
             help={"flow": "Flow routing", "node": "Flow node", "out-of-service": "New topology without it"})
    @command("exec", "flow node <node:word> in-service", priv=15, op=True,
             help={"in-service": "New topology with it"})
    def cmd_flow_node(self, ctx: Context, node: str, op: bool) -> None:
        m = self._need(ctx)
        if m is None:
            return
        try:
            with self._lock:
                t = m.set_service(node, op)
        except KeyError as exc:
            ctx.print(f"% {str(exc).strip(chr(39))}")
            return
        ctx.print(f"Topology {t.id}: {t.reason or 'unchanged'}")

    @command("exec", "flow selection centralized", priv=15, choice="centralized",
             help={"selection": "Next-hop selection for new flows", "centralized": "The INODE picks every node",
                   "distributed": "Each node hashes the flow ID"})
    @command("exec", "flow selection distributed", priv=15, choice="distributed")
    def cmd_flow_selection(self, ctx: Context, choice: str) -> None:
        m = self._need(ctx)
        if m is not None:
            with self._lock:
                ctx.print(f"Next-hop selection for new flows: {m.set_selection(choice)}")
