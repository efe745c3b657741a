"""The `cluster-manager` device kind: the cluster manager process in its lab namespace, with an
IOS-like CLI for the operator (`show cluster ...`, `cluster pool add|remove`, `cluster failover`).

It binds the event bus on its management address, serves configurations over HTTP, talks to the
lab controller's northbound API over its Unix socket, and keeps its archive in `cluster.db` in its
state directory. The lab engine writes `cluster.json` (plan.py) next to it.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import zmq

from ..cli.context import Context
from ..cli.tree import command
from ..device import BaseDevice
from .bus import EVENTS_PORT, TRIGGER_PORT, TRIGGER_TYPES, BusError, Sequencer, decode, encode
from .config_server import ConfigServer, token_for
from .manager import ClusterManager, default_config
from .plan import PLAN_FILE, ClusterPlan
from .store import Store

log = logging.getLogger(__name__)

SEVERITY = {"alarm": 1, "failure": 3, "rejected": 4, "error": 3}
STATUS_FILE = "cluster-status.json"
HELP = {"cluster": "Cluster re-provisioning", "pool": "The pool of spare elements", "elements": "Every element",
        "failovers": "Failovers, newest last", "timeline": "Every decision, timestamped", "xconnect":
        "Cross-connect rules on both switches", "bus": "Event bus counters", "config": "Archived configuration"}


class ClusterManagerDevice(BaseDevice):
    kind = "cluster-manager"
    tick_interval = 1.0

    def __init__(self, name: str, *, state_dir: Path, **kwargs: Any) -> None:
        self.manager: ClusterManager | None = None
        self.problem = ""
        self._threads: list[threading.Thread] = []
        self._zctx: zmq.Context | None = None
        self._pub: zmq.Socket | None = None
        self._pub_lock = threading.Lock()
        self._config_server: ConfigServer | None = None
        self._store: Store | None = None
        self._halt = threading.Event()
        super().__init__(name, state_dir=state_dir, **kwargs)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        super().start()
        try:
            self._start_manager()
        except Exception as exc:
            self.problem = f"{exc.__class__.__name__}: {exc}"
            log.exception("%s: cluster manager did not start", self.name)
            self.syslog(f"%CLUSTER-2-START: cluster manager not running: {self.problem}")

    def _start_manager(self) -> None:
        from twin.controller_client import ControllerClient

        path = self.state_dir / PLAN_FILE
        if not path.exists():
            self.problem = f"no {PLAN_FILE}: this node is not the manager of any cluster in the lab file"
            return
        plan = ClusterPlan.load(path)
        secret = plan.secret.encode()
        self._store = Store(self.state_dir / "cluster.db")
        self._zctx = zmq.Context()
        sub = self._zctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.setsockopt(zmq.LINGER, 0)
        sub.bind(f"tcp://{plan.manager_ip}:{EVENTS_PORT}")
        self._pub = self._zctx.socket(zmq.PUB)
        self._pub.setsockopt(zmq.LINGER, 0)
        self._pub.bind(f"tcp://{plan.manager_ip}:{TRIGGER_PORT}")
        seqr = Sequencer(self.name)

        def send(target: str, type_: str, body: dict[str, Any]) -> None:
            frame = encode(seqr.make(type_, **body), secret)
            with self._pub_lock:
                if self._pub is not None:
                    self._pub.send_multipart([f"{target} ".encode(), frame])

        url = f"http://{plan.manager_ip}:{plan.config_port}"
        self.manager = m = ClusterManager(plan, self._store, ControllerClient(plan.api_socket, timeout=10),
                                          send=send, report=self._report, config_url=url,
                                          token=token_for(plan.secret))
        self._config_server = ConfigServer(
            plan.manager_ip, plan.config_port, plan.secret,
            initial=lambda role: (self._store.roles().get(role) or {}).get("initial") if self._store else None,
            accumulated=lambda role: self._store.accumulated(role) if self._store and role in plan.members else None,
            default=lambda el: default_config(plan, el) if el in plan.elements else None,
            on_fetch=lambda name, doc: self.publish("cluster-config-fetch", name=name, document=doc))
        self._config_server.start()
        for target, nm in ((lambda: self._receive(sub, secret), "bus"), (self._watch_controller, "controller"),
                           (self._monitor, "monitor")):
            t = threading.Thread(target=target, name=f"cluster-{nm}", daemon=True)
            t.start()
            self._threads.append(t)
        m.resume()
        self._write_status()    # before the device reports ready: readers find a status at once
        self.syslog(f"%CLUSTER-5-START: cluster {plan.name} managed: {len(plan.members)} role(s), pool "
                    f"{', '.join(self._store.pool()) or '(empty)'}")

    def shutdown_backend(self) -> None:
        self._halt.set()
        if self.manager is not None:
            self.manager.stopped.set()
        if self._config_server is not None:
            self._config_server.close()
        for t in self._threads:
            t.join(timeout=3)
        with self._pub_lock:
            if self._zctx is not None:
                self._zctx.destroy(linger=0)
            self._pub = None
        if self._store is not None:
            self._store.close()
        super().shutdown_backend()

    # ------------------------------------------------------------------ threads
    def _receive(self, sub: zmq.Socket, secret: bytes) -> None:
        while not self._halt.is_set():
            try:
                if not sub.poll(200):
                    continue
                frame = sub.recv(copy=False)
            except zmq.ZMQError:
                return
            peer = ""
            try:
                peer = frame.get("Peer-Address") or ""
            except (zmq.ZMQError, AttributeError):
                pass
            m = self.manager
            if m is None:
                continue
            try:
                msg = decode(frame.bytes, secret)
            except BusError as exc:
                m.reject(exc.reason, peer, exc.detail)
                continue
            try:
                m.on_message(msg, peer)
            except Exception:
                log.exception("%s: bus message %s from %s", self.name, msg.type, msg.sender)

    def _watch_controller(self) -> None:
        m = self.manager
        assert m is not None
        api = m.switches
        since, boot, synced = 0, None, False
        while not self._halt.is_set():
            try:
                if not synced:
                    # Start from the controller's newest event: older ones (a port that went down
                    # before this manager started) are history, and the port table below is now.
                    since = api.events(0, 0).get("next", since)  # type: ignore[attr-defined]
                    for sw in (m.plan.access_switch, m.plan.network_switch):
                        for p in api.ports(sw):  # type: ignore[attr-defined]
                            m.port_up[(sw, p["name"])] = bool(p["link_up"])
                    m.sync_xconnect()
                    m.reconcile()           # a switch that lost rules while nobody watched
                    synced = True
                    m.note("xconnect", "cross-connects in place on "
                                       f"{m.plan.access_switch} and {m.plan.network_switch}")
                r = api.events(since, timeout=2.0)  # type: ignore[attr-defined]
            except Exception as exc:
                log.debug("controller not reachable: %s", exc)
                synced = False
                self._halt.wait(0.3)
                continue
            if boot is not None and r.get("boot") != boot:
                m.note("controller", "the controller restarted; checking the cross-connects")
                synced = False
            boot = r.get("boot")
            since = r.get("next", since)
            for ev in r.get("events", []):
                if ev.get("type") == "port_status" and ev.get("switch") in (m.plan.access_switch, m.plan.network_switch):
                    m.on_port(ev["switch"], ev["port"], bool(ev.get("link_up")) and ev.get("reason") != "delete")
                elif ev.get("type") == "switch_enter" and ev.get("switch") in (m.plan.access_switch, m.plan.network_switch):
                    threading.Thread(target=m.reconcile, daemon=True).start()

    def _monitor(self) -> None:
        m = self.manager
        assert m is not None
        period = max(0.02, m.plan.hb_ms / 2000)
        while not self._halt.wait(period):
            try:
                m.check()
            except Exception:
                log.exception("%s: cluster check", self.name)

    def _report(self, kind: str, text: str, fields: dict[str, Any]) -> None:
        sev = SEVERITY.get(kind, 5)
        self.syslog(f"%CLUSTER-{sev}-{kind.upper()}: {text}")
        self.publish(f"cluster-{kind}", text=text, **{k: v for k, v in fields.items() if v is not None})
        self._write_status()

    def _write_status(self) -> None:
        m = self.manager
        if m is None:
            return
        try:
            tmp = self.state_dir / f".{STATUS_FILE}.{threading.get_ident()}"
            tmp.write_text(json.dumps(m.status(), indent=1, default=str))
            os.replace(tmp, self.state_dir / STATUS_FILE)
        except (OSError, RuntimeError):
            log.debug("status file not written", exc_info=True)

    def tick(self) -> None:
        self._write_status()

    # ------------------------------------------------------------------ CLI
    def _need(self, ctx: Context) -> ClusterManager | None:
        if self.manager is None:
            ctx.print(f"% Cluster manager not running: {self.problem or 'starting'}")
        return self.manager

    @command("exec", "show cluster", priv=1, help=HELP)
    def cmd_show_cluster(self, ctx: Context) -> None:
        m = self._need(ctx)
        if m is None:
            return
        st = m.status()
        p = ctx.print
        p(f"Cluster {st['cluster']}: access switch {st['access_switch']}, network switch {st['network_switch']}, "
          f"selection {st['selection']}")
        p("")
        p("Role        Holder      Circuits")
        for role, r in st["roles"].items():
            p(f"{role:<11} {r['holder'] or '-- NONE --':<11} {', '.join(r['circuits']) or '-'}")
        p("")
        p(f"Pool: {', '.join(st['pool']) or '(empty)'}")
        for role, why in st["alarms"].items():
            p(f"ALARM: role {role} unprotected: {why}")
        open_f = [f for f in st["failovers"] if f["finished"] is None]
        p(f"Failovers: {len(st['failovers'])} recorded, {len(open_f)} in progress")

    @command("exec", "show cluster elements", priv=1, help=HELP)
    def cmd_show_elements(self, ctx: Context) -> None:
        m = self._need(ctx)
        if m is None:
            return
        p = ctx.print
        p("Element     State      Role        Heard     Failures  Detail")
        for name, e in sorted(m.status()["elements"].items()):
            heard = "never" if e["last_heard_ms"] is None else f"{e['last_heard_ms']} ms"
            p(f"{name:<11} {e['state']:<10} {e['role'] or '-':<11} {heard:<9} {e['failures']:<9} {e['detail']}")

    @command("exec", "show cluster pool", priv=1, help=HELP)
    def cmd_show_pool(self, ctx: Context) -> None:
        m = self._need(ctx)
        if m is None:
            return
        pool = m.store.pool()
        ok = set(m.selectable())
        ctx.print(f"Pool of cluster {m.plan.name}: {len(pool)} spare(s), selection {m.plan.selection}")
        for i, p in enumerate(pool, 1):
            ctx.print(f"  {i}. {p}{'' if p in ok else '  (not selectable: not heard from or a port is down)'}")

    @command("exec", "show cluster failovers", priv=1, help=HELP)
    def cmd_show_failovers(self, ctx: Context) -> None:
        m = self._need(ctx)
        if m is None:
            return
        p = ctx.print
        p("ID   Role        Failed      Substitute  State     Done(ms)  Reason")
        for f in m.store.failovers(limit=100):
            done = f"{(f.finished - f.started) * 1000:.0f}" if f.finished else "-"
            p(f"{f.id:<4} {f.role:<11} {f.failed:<11} {f.substitute or '-':<11} {f.state:<9} {done:<9} {f.reason}")

    @command("exec", "show cluster timeline", priv=1, help=HELP)
    def cmd_show_timeline(self, ctx: Context) -> None:
        m = self._need(ctx)
        if m is None:
            return
        for t in m.store.timeline(200):
            stamp = time.strftime("%H:%M:%S", time.localtime(t["time"])) + f".{int(t['time'] * 1000) % 1000:03d}"
            ctx.print(f"{stamp} {t['kind']:<9} {t['text']}")

    @command("exec", "show cluster xconnect", priv=1, help=HELP)
    def cmd_show_xconnect(self, ctx: Context) -> None:
        m = self._need(ctx)
        if m is None:
            return
        for r in sorted(m.desired(), key=lambda r: (r.switch, -r.priority, r.key)):
            ctx.print(r.describe())

    @command("exec", "show cluster bus", priv=1, help=HELP)
    def cmd_show_bus(self, ctx: Context) -> None:
        m = self._need(ctx)
        if m is None:
            return
        c = m.status()["bus"]
        ctx.print(f"Event bus of cluster {m.plan.name}: events tcp/{EVENTS_PORT}, triggers tcp/{TRIGGER_PORT}")
        ctx.print("  " + ", ".join(f"{k} {v}" for k, v in c.items()))

    @command("exec", "show cluster config <role:word>", priv=15, help=HELP)
    def cmd_show_config(self, ctx: Context, role: str) -> None:
        m = self._need(ctx)
        if m is None:
            return
        r = m.store.roles().get(role)
        if r is None:
            ctx.print(f"% Unknown role {role} (roles: {', '.join(m.plan.members)})")
            return
        ctx.print(f"! role {role}, held by {r['holder'] or 'nobody'}: initial configuration")
        ctx.print((r["initial"] or "! (not archived yet)").rstrip("\n"))
        acc = m.store.accumulated(role)
        ctx.print(f"! partial accumulated configuration: {len(acc)} change(s)")
        for a in acc:
            ctx.print(f"{a['seq']:>4}: {' / '.join(a['context'] + [a['line']])}")

    @command("exec", "cluster pool add <element:word>", priv=15,
             help={**HELP, "add": "Reserve an element as a spare", "element": "Element (lab node) name"}, op="add")
    @command("exec", "cluster pool remove <element:word>", priv=15,
             help={"remove": "Take a spare out of the pool"}, op="remove")
    def cmd_pool(self, ctx: Context, element: str, op: str) -> None:
        m = self._need(ctx)
        if m is None:
            return
        try:
            ctx.print((m.pool_add if op == "add" else m.pool_remove)(element))
        except ValueError as exc:
            ctx.print(f"% {exc}")

    @command("exec", "cluster failover <element:word> [<reason:line>]", priv=15,
             help={**HELP, "failover": "Replace an active element now", "element": "Active element",
                   "reason": "Why (logged)"})
    def cmd_failover(self, ctx: Context, element: str, reason: str = "operator request") -> None:
        m = self._need(ctx)
        if m is None:
            return
        el = m.store.element(element)
        if el is None or el["state"] != "active":
            ctx.print(f"% {element} is not an active element" + (f" (it is {el['state']})" if el else ""))
            return
        f = m.fail(element, f"operator: {reason}")
        ctx.print(f"Failover {f.id} started for role {f.role}" if f else "% A failover for it is already running")

    @command("exec", "debug cluster hold", priv=15,
             help={"debug": "Debugging functions", "cluster": "Cluster manager", "hold":
                   "Stop failovers once the substitute is chosen (to test a manager restart mid-failover)"}, on=True)
    @command("exec", "no debug cluster hold", priv=15, on=False)
    def cmd_debug_hold(self, ctx: Context, on: bool) -> None:
        m = self._need(ctx)
        if m is None:
            return
        m.hold_after_select = on
        ctx.print(f"Cluster failovers {'held after substitute selection' if on else 'run to completion'}")
        if not on:
            m.resume()


__all__ = ["ClusterManagerDevice", "TRIGGER_TYPES"]
