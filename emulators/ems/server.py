"""The `ems` device kind: an element-management server (spec 001).

A router-like box (its interfaces and routes work as on the `router` kind) that runs, once its
config names its peers, a secret and the elements:

* the bully election (`election_service.py`) on UDP `port` of its own peer address, whose master
  assigns the elements to the live servers (claims 6-8);
* the federated service (`federation.py`): it polls the elements assigned to it over SSH, keeps
  their interfaces and nodal alarms in memory and exports them to the shared store (claims 2-5);
* the peered service (`peer_service.py`) on TCP `port + 1`: any server answers any request,
  forwarding to the owner where the answer lives in the owner's memory (claims 1, 9-18);
* circuit routing and provisioning (`circuits.py`, claims 11-13, 19-21).

Config (`show running-config` prints it back):
    ems peer 1 address 10.0.0.1 [port 7400]      one line per server, this one included
    ems secret S                                  authenticates election messages
    ems element r1 address 172.20.0.31            the elements the cluster manages
    ems element-login username admin password P   how servers log in to elements
    ems timers heartbeat 50 dead 150              milliseconds
    ems poll-interval 1000                        milliseconds
    ems server-id N                               only when no peer address is this box's own
    ems store PATH                                default: ems.db in the lab directory
"""
from __future__ import annotations

import ipaddress
import logging
import time
from pathlib import Path
from typing import Any

from ..cli.context import Context, Wait
from ..cli.tree import command
from ..router import Router
from . import peer_service
from .bully import Timing
from .circuits import CircuitError, CircuitService
from .element_client import ElementClient, ElementError
from .election_service import ElectionService
from .federation import Federation
from .peer_service import PeerError, PeerServer
from .routing import RouteError
from .store import EmsStore
from .topology import TopologyError

log = logging.getLogger(__name__)

ELECTION_PORT = 7400
HELP = {
    "ems": "Element-management server", "peer": "A server of the EMS cluster", "address": "IP address",
    "port": "UDP port of its election service (the peered service uses port + 1)",
    "secret": "Shared secret that authenticates election messages", "element": "A managed network element",
    "element-login": "Credentials the servers use on the elements", "username": "User name",
    "password": "Password", "timers": "Election timers (milliseconds)", "heartbeat": "Heartbeat interval",
    "dead": "A server not heard for this long is dead", "poll-interval": "Element polling interval (ms)",
    "server-id": "This server's ID when no peer address is its own", "store": "Path of the shared data store",
    "circuit": "Circuits between two edge LANs", "route": "Calculate a circuit route",
    "provision": "Calculate and provision a circuit", "remove": "Remove a provisioned circuit",
    "elements": "Elements this server manages", "alarms": "Nodal alarms of this server's elements",
    "circuits": "Circuits in the data store",
}


class EmsServer(Router):
    kind = "ems"
    tick_interval = 0.1

    def __init__(self, name: str, *, state_dir: Path, **kwargs: Any) -> None:
        self.election: ElectionService | None = None
        self.federation: Federation | None = None
        self.peer_server: PeerServer | None = None
        self.store: EmsStore | None = None
        self.circuits: CircuitService | None = None
        self._running_params: tuple[Any, ...] | None = None
        self._applied_assignment: dict[str, int] = {}
        self._last_store_write = 0.0
        self._problem = ""
        self._ems_started = False
        super().__init__(name, state_dir=state_dir, **kwargs)

    # ------------------------------------------------------------------ config model
    def reset_config(self) -> None:
        super().reset_config()
        self.ip_routing = False
        self.ems_peers: dict[int, tuple[str, int]] = {}
        self.ems_secret: str | None = None
        self.ems_elements: dict[str, str] = {}
        self.ems_login: tuple[str, str] = ("admin", "admin")
        self.ems_timing = (50, 150)
        self.ems_poll_ms = 1000
        self.ems_server_id: int | None = None
        self.ems_store_path: str | None = None

    def config_sections(self) -> list[list[str]]:
        block = []
        if self.ems_server_id is not None:
            block.append(f"ems server-id {self.ems_server_id}")
        for i, (ip, port) in sorted(self.ems_peers.items()):
            block.append(f"ems peer {i} address {ip}" + (f" port {port}" if port != ELECTION_PORT else ""))
        if self.ems_secret is not None:
            block.append(f"ems secret {self.ems_secret}")
        block += [f"ems element {n} address {a}" for n, a in sorted(self.ems_elements.items())]
        if self.ems_login != ("admin", "admin"):
            block.append(f"ems element-login username {self.ems_login[0]} password {self.ems_login[1]}")
        if self.ems_timing != (50, 150):
            block.append(f"ems timers heartbeat {self.ems_timing[0]} dead {self.ems_timing[1]}")
        if self.ems_poll_ms != 1000:
            block.append(f"ems poll-interval {self.ems_poll_ms}")
        if self.ems_store_path is not None:
            block.append(f"ems store {self.ems_store_path}")
        return super().config_sections() + [block]

    # ------------------------------------------------------------------ identity
    def my_id(self) -> int | None:
        if self.ems_server_id is not None:
            return self.ems_server_id
        mine = {c.address[0] for c in self.interfaces.values() if c.address}
        ids = [i for i, (ip, _) in self.ems_peers.items() if ip in mine]
        return ids[0] if len(ids) == 1 else None

    def store_path(self) -> Path:
        if self.ems_store_path:
            return Path(self.ems_store_path)
        return self.state_dir.parent.parent / "ems.db"      # the lab directory: every server sees it

    def _params(self) -> tuple[Any, ...] | None:
        me = self.my_id()
        if me is None:
            self._problem = "no `ems peer` address is this server's own (or set `ems server-id`)"
        elif me not in self.ems_peers:
            self._problem = f"server {me} has no `ems peer {me} address ...` line"
        elif not self.ems_secret:
            self._problem = "no `ems secret`"
        else:
            self._problem = ""
            return (me, tuple(sorted(self.ems_peers.items())), self.ems_secret, tuple(sorted(self.ems_elements.items())),
                    self.ems_login, self.ems_timing, self.ems_poll_ms, str(self.store_path()))
        return None

    # ------------------------------------------------------------------ lifecycle
    def apply_all(self) -> None:
        super().apply_all()
        self._ems_started = True
        self._sync_services()

    def shutdown_backend(self) -> None:
        self._stop_services()
        super().shutdown_backend()

    def _sync_services(self) -> None:
        params = self._params()
        if params == self._running_params:
            return
        self._stop_services()
        if params is None:
            return
        me, peers, secret, elements, login, timing, poll_ms, store_path = params
        peers_d = dict(peers)
        ip, port = peers_d[me]
        try:
            self.store = EmsStore(Path(store_path))
            self.federation = Federation(me, self.store, self._element_client, self._federation_event,
                                         interval=poll_ms / 1000)
            self.election = ElectionService(me, ip, port, {i: a for i, a in peers_d.items() if i != me},
                                            secret.encode(), sorted(dict(elements)), Timing(
                                                heartbeat=timing[0] / 1000, dead_after=timing[1] / 1000,
                                                answer_timeout=timing[0] / 1000, coordinator_timeout=timing[1] / 1000),
                                            on_event=self._election_event)
            self.peer_server = PeerServer(ip, port + 1, self._handle)
            self.circuits = CircuitService(me, self.store, self.assignment, self.ask)
            self.federation.start()
            self.election.start()
        except Exception as exc:
            self._problem = f"cannot start: {exc}"
            self.syslog(f"%EMS-3-START: {self._problem}")
            self._stop_services()
            return
        self._running_params = params
        self._applied_assignment = {}
        self.syslog(f"%EMS-5-START: server {me} on {ip} (election udp {port}, service tcp {port + 1})")

    def _stop_services(self) -> None:
        for part in (self.election, self.peer_server, self.federation):
            if part is not None:
                try:
                    part.stop() if not isinstance(part, PeerServer) else part.close()
                except Exception:
                    log.exception("stopping %r", part)
        if self.store is not None:
            self.store.close()
        self.election = self.peer_server = self.federation = self.circuits = self.store = None
        self._running_params = None

    def _element_client(self, name: str, address: str) -> ElementClient:
        return ElementClient(name, address, self.ems_login[0], self.ems_login[1])

    # ------------------------------------------------------------------ events
    def _election_event(self, ev: dict[str, Any]) -> None:
        ev = dict(ev)
        kind = ev.pop("type")
        ev.pop("time", None)
        self.publish(f"ems-{kind}", **ev)
        if kind == "became-master":
            self.dispatch(lambda: self.syslog(f"%EMS-5-MASTER: this server is master (term {ev.get('term')})"))
        elif kind == "master-changed":
            self.dispatch(lambda: self.syslog(f"%EMS-5-MASTER: server {ev.get('master')} is master "
                                              f"(term {ev.get('term')})"))
        elif kind == "message-dropped":
            self.dispatch(lambda: self.syslog(f"%EMS-4-DROPPED: election message from {ev.get('src')} "
                                              f"dropped ({ev.get('reason')})"))
        store, me = self.store, self.my_id()
        if store is not None and kind != "assignment-changed":
            try:
                store.log_event(me or 0, kind, ev)
            except Exception:
                log.exception("store event")

    def _federation_event(self, kind: str, fields: dict[str, Any]) -> None:
        self.publish(f"ems-{kind}", **fields)
        if self.store is not None and kind != "element-alarm":
            try:
                self.store.log_event(self.my_id() or 0, kind, fields)
            except Exception:
                log.exception("store event")

    # ------------------------------------------------------------------ running state
    def status(self) -> dict[str, Any]:
        el = self.election
        me = self.my_id()
        base = {"id": me, "address": self.ems_peers.get(me, ("", 0))[0] if me else "",
                "running": el is not None, "problem": self._problem}
        if el is None:
            return base | {"role": "down", "master": None, "term": 0, "live": [], "assignment": {},
                           "assignment_version": 0, "counters": {}, "dropped": {}}
        st = el.status()
        return base | st | {"id": me, "live": sorted(st.get("live_peers", []))}

    def assignment(self) -> dict[str, int]:
        return dict(self.status().get("assignment") or {})

    def tick(self) -> None:
        super().tick()
        if self.election is None or self.federation is None:
            return
        st = self.status()
        assignment = st.get("assignment") or {}
        if assignment != self._applied_assignment:
            me = st["id"]
            mine = {e: self.ems_elements[e] for e, s in assignment.items() if s == me and e in self.ems_elements}
            before = {e for e, s in self._applied_assignment.items() if s == me}
            self._applied_assignment = dict(assignment)
            self.federation.set_elements(mine)
            if set(mine) != before:
                self.publish("ems-managing", server=me, elements=sorted(mine),
                             version=st.get("assignment_version"))
        now = time.time()
        if self.store is not None and now - self._last_store_write >= 1.0:
            self._last_store_write = now
            try:
                self.store.record_server(st["id"], st["address"], st["role"], st["master"], st["term"],
                                         len(self.federation.names()), now)
            except Exception:
                log.exception("store server row")

    # ------------------------------------------------------------------ the peered service
    def ask(self, server: int, request: dict[str, Any]) -> dict[str, Any]:
        """One request to a server of the cluster (this one answers itself without the network)."""
        if server == self.my_id():
            rep = self._handle(request, "local")
            if not rep.get("ok"):
                raise PeerError(rep.get("error", "failed"))
            return rep
        if server not in self.ems_peers:
            raise PeerError(f"server {server} is not a configured peer")
        ip, port = self.ems_peers[server]
        return peer_service.call(ip, port + 1, request, timeout=30.0)

    def _live_servers(self) -> list[int]:
        st = self.status()
        return sorted({st["id"], *st.get("live", [])} - {None})

    def _handle(self, req: dict[str, Any], peer: str) -> dict[str, Any]:
        op = req["op"]
        fed, circ = self.federation, self.circuits
        if fed is None or circ is None:
            return {"ok": False, "error": f"server not running: {self._problem or 'stopping'}"}
        try:
            if op == "status":
                return {"ok": True, "server": self._public_status()}
            if op == "local":
                return {"ok": True, "server": self._public_status(), "elements": fed.snapshot()}
            if op == "view":
                return {"ok": True, **self._view()}
            if op == "element":
                return {"ok": True, **self._element(str(req.get("name", "")), bool(req.get("forwarded")))}
            if op == "events":
                assert self.store is not None
                return {"ok": True, "events": self.store.events(since=float(req.get("since", 0)),
                                                                limit=int(req.get("limit", 200)))}
            if op == "summary":
                return {"ok": True, "summary": circ.summary([str(t) for t in req.get("targets", [])])}
            if op == "subroute":
                return {"ok": True, "path": circ.subroute(str(req["entry"]), str(req["exit"]))}
            if op == "route":
                return {"ok": True, **circ.route(str(req["src"]), str(req["dst"]))}
            if op in ("provision", "unprovision"):
                return {"ok": True, **circ.provision(str(req["src"]), str(req["dst"]), remove=op == "unprovision")}
            if op == "configure":
                lines = req.get("lines")
                if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
                    return {"ok": False, "error": "configure needs \"lines\": a list of strings"}
                return {"ok": True, "output": fed.configure(str(req.get("element")), lines)}
        except (CircuitError, ElementError, PeerError, RouteError, TopologyError) as exc:
            return {"ok": False, "error": str(exc)}
        except KeyError as exc:
            return {"ok": False, "error": f"{op}: missing field {exc}"}
        return {"ok": False, "error": f"unknown op {op!r} (status, local, view, element, events, summary, "
                                      "subroute, route, provision, unprovision, configure)"}

    def _public_status(self) -> dict[str, Any]:
        st = self.status()
        fed = self.federation
        return {k: st.get(k) for k in ("id", "address", "role", "master", "term", "live", "assignment_version",
                                       "assignment")} | {"elements": fed.names() if fed else []}

    def _view(self) -> dict[str, Any]:
        """Claim 18: the view from the servers' memories, gathered from every live server."""
        servers, elements, unreachable = [], [], []
        for s in self._live_servers():
            try:
                rep = self.ask(s, {"op": "local"})
            except PeerError as exc:
                unreachable.append({"server": s, "error": str(exc)})
                continue
            servers.append(rep["server"])
            for e in rep["elements"]:
                elements.append(e | {"server": s})
        return {"servers": servers, "elements": sorted(elements, key=lambda e: e["name"]), "unreachable": unreachable}

    def _element(self, name: str, forwarded: bool) -> dict[str, Any]:
        if name not in self.ems_elements:
            raise PeerError(f"unknown element {name!r} (known: {', '.join(sorted(self.ems_elements))})")
        owner = self.assignment().get(name)
        me = self.my_id()
        fed = self.federation
        if owner == me and fed is not None:
            detail = fed.element(name)
            if detail is not None:
                return {"element": detail, "server": me, "source": "memory"}
        if owner is not None and owner != me and not forwarded:
            try:
                rep = self.ask(owner, {"op": "element", "name": name, "forwarded": True})
                return {"element": rep["element"], "server": rep["server"], "source": rep["source"],
                        "forwarded_to": owner}
            except PeerError as exc:
                log.info("owner %s of %s did not answer: %s", owner, name, exc)
        assert self.store is not None                     # the owner is gone: the data store still knows
        rows = [r for r in self.store.elements() if r["name"] == name]
        ifs = self.store.interfaces(name)
        return {"element": (rows[0] if rows else {"name": name}) | {"interfaces": ifs}, "server": owner,
                "source": "store"}

    # ------------------------------------------------------------------ config commands
    @command("config", "ems peer <id:int:1-255> address <ip:ipv4> [port <port:int:1-65534>]", help=HELP)
    def cmd_peer(self, ctx: Context, id: int, ip: ipaddress.IPv4Address, port: int = ELECTION_PORT) -> None:
        if any(a == str(ip) and i != id for i, (a, _) in self.ems_peers.items()):
            ctx.print(f"% Address {ip} already belongs to another peer")
            return
        self.ems_peers[id] = (str(ip), port)
        self._changed(ctx)

    @command("config", "no ems peer <id:int:1-255>", help=HELP)
    def cmd_no_peer(self, ctx: Context, id: int) -> None:
        if self.ems_peers.pop(id, None) is None:
            ctx.print(f"% Peer {id} is not configured")
        self._changed(ctx)

    @command("config", "ems secret <secret:word>", help=HELP)
    def cmd_secret(self, ctx: Context, secret: str) -> None:
        self.ems_secret = secret
        self._changed(ctx)

    @command("config", "ems element <name:word> address <ip:ipv4>", help=HELP)
    def cmd_element(self, ctx: Context, name: str, ip: ipaddress.IPv4Address) -> None:
        self.ems_elements[name] = str(ip)
        self._changed(ctx)

    @command("config", "no ems element <name:word>", help=HELP)
    def cmd_no_element(self, ctx: Context, name: str) -> None:
        if self.ems_elements.pop(name, None) is None:
            ctx.print(f"% Element {name} is not configured")
        self._changed(ctx)

    @command("config", "ems element-login username <user:word> password <password:word>", help=HELP)
    def cmd_login(self, ctx: Context, user: str, password: str) -> None:
        self.ems_login = (user, password)
        self._changed(ctx)

    @command("config", "ems timers heartbeat <hb:int:10-10000> dead <dead:int:20-60000>", help=HELP)
    def cmd_timers(self, ctx: Context, hb: int, dead: int) -> None:
        if dead < 2 * hb:
            ctx.print(f"% dead ({dead} ms) must be at least twice the heartbeat ({hb} ms)")
            return
        self.ems_timing = (hb, dead)
        self._changed(ctx)

    @command("config", "ems poll-interval <ms:int:100-60000>", help=HELP)
    def cmd_poll(self, ctx: Context, ms: int) -> None:
        self.ems_poll_ms = ms
        self._changed(ctx)

    @command("config", "ems server-id <id:int:1-255>", help=HELP)
    @command("config", "no ems server-id", help=HELP, id=None)
    def cmd_server_id(self, ctx: Context, id: int | None) -> None:
        self.ems_server_id = id
        self._changed(ctx)

    @command("config", "ems store <path:word>", help=HELP)
    @command("config", "no ems store", help=HELP, path=None)
    def cmd_store(self, ctx: Context, path: str | None) -> None:
        self.ems_store_path = path
        self._changed(ctx)

    def _changed(self, ctx: Context) -> None:
        """Typed at the CLI: the services follow at once (a stored config is applied as a whole)."""
        if ctx.source == "cli" and self._ems_started:
            self._sync_services()

    # ------------------------------------------------------------------ exec commands
    @command("exec", "show ems", priv=1, help=HELP)
    def cmd_show_ems(self, ctx: Context) -> None:
        st = self.status()
        p = ctx.print
        if not st["running"]:
            p(f"EMS server {st['id'] or '?'}: not running ({st['problem'] or 'stopped'})")
            return
        master = st["master"]
        p(f"EMS server {st['id']} ({st['address']}), role {st['role'].upper()}, term {st['term']}")
        p(f"Master: {master if master is not None else 'none (election in progress)'}"
          + (" (this server)" if master == st["id"] else ""))
        p("")
        p("ID  Address          State    Elements")
        counts: dict[int, int] = {}
        for s in st["assignment"].values():
            counts[s] = counts.get(s, 0) + 1
        live = set(st["live"])
        for i, (ip, _) in sorted(self.ems_peers.items()):
            state = "self" if i == st["id"] else ("live" if i in live else "dead")
            p(f"{i:<3} {ip:<16} {state:<8} {counts.get(i, 0)}")
        p("")
        p(f"Assignment version {st['assignment_version']}: "
          + (", ".join(f"{e}->{s}" for e, s in sorted(st["assignment"].items())) or "none"))
        c = st.get("counters") or {}
        p("Messages: " + (", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "none"))
        d = st.get("dropped") or {}
        p("Dropped: " + (", ".join(f"{k} {v}" for k, v in sorted(d.items())) or "none"))

    @command("exec", "show ems elements", priv=1, help=HELP)
    def cmd_show_elements(self, ctx: Context) -> None:
        fed = self.federation
        ctx.print("Element  Address          Reachable  Interfaces  Alarms  Polled")
        for e in fed.snapshot() if fed else []:
            reach = {None: "pending", True: "yes", False: "no"}[e["reachable"]]
            polled = time.strftime("%H:%M:%S", time.localtime(e["polled"])) if e["polled"] else "-"
            ctx.print(f"{e['name']:<8} {e['address']:<16} {reach:<10} {len(e['interfaces']):<11} "
                      f"{len(e['alarms']):<7} {polled}")

    @command("exec", "show ems alarms", priv=1, help=HELP)
    def cmd_show_alarms(self, ctx: Context) -> None:
        fed = self.federation
        for e in fed.snapshot() if fed else []:
            for a in e["alarms"]:
                ctx.print(f"{e['name']:<8} sev {a['severity']} {a['mnemonic']}: {a['text']}")

    @command("exec", "show ems circuits", priv=1, help=HELP)
    def cmd_show_circuits(self, ctx: Context) -> None:
        rows = self.store.circuits() if self.store else []
        ctx.print("Circuit                                   State        Path")
        for c in rows:
            ctx.print(f"{c['id']:<41} {c['state']:<12} {' '.join(c['path'])}")

    @command("exec", "ems circuit route <src:word> <dst:word>", priv=15, help=HELP)
    @command("exec", "ems circuit provision <src:word> <dst:word>", priv=15, help=HELP, op="provision")
    @command("exec", "ems circuit remove <src:word> <dst:word>", priv=15, help=HELP, op="unprovision")
    def cmd_circuit(self, ctx: Context, src: str, dst: str, op: str = "route") -> Any:
        me = self.my_id()
        if self.circuits is None or me is None:
            ctx.print(f"% EMS not running: {self._problem or 'stopped'}")
            return
        rep = yield Wait(lambda: self._handle({"op": op, "src": src, "dst": dst}, "cli"),
                         prompt="", on_error=lambda exc: {"ok": False, "error": str(exc)})
        if not rep.get("ok"):
            ctx.print(f"% {rep.get('error')}")
            return
        ctx.print(f"Route {rep['src']} -> {rep['dst']}: {' '.join(rep['path'])} ({len(rep['path']) - 1} hops)")
        for s in rep["segments"]:
            ctx.print(f"  server {s['server']}: {s['entry']} .. {s['exit']}")
        ctx.print(f"Servers asked: {', '.join(map(str, rep['servers_asked']))}; {rep['total_ms']} ms")
        if op != "route":
            ctx.print(f"Circuit {rep['circuit']} {rep['state']} on {len(rep['config'])} element(s)")
