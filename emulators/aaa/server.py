"""The `aaa` device kind: a RADIUS server that watches its own health and tells its clients to fail
over to alternates, then invites them back in staggered groups (spec 002, claims 1-32).

It is a router-like box (interfaces, addresses and routes work as on the `router` kind) with
`radius-service.py` serving RADIUS, `health.py` scoring it and `notifier.py` sending the messages.
Every tick samples the health; crossing below the failover threshold sends FAILOVER to the chosen
clients, climbing back above the connection threshold schedules RECONNECT group by group.
"""
from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cli.context import Context
from ..cli.tree import command
from ..eventlog import date_text
from ..router import Router
from . import failover_msg as fm
from .health import HealthPolicy, Hysteresis, NamespaceMeter, Sample, health_score
from .notifier import Notifier
from .radius_service import ClientEntry, RadiusService

log = logging.getLogger(__name__)

SERVICES = ("radius-auth", "radius-acct", "user-db", "logging")
ACTIVE_WINDOW_S = 120.0     # a client that sent a request this recently is "connected" (claim 26)
CPU_WINDOW_S = 0.5          # CPU % is averaged over this long


@dataclass
class Notify:
    """One `aaa failover notify ...` rule: which clients a failover message goes to (claims 8-10)."""
    kind: str           # all | group | client | subnet
    value: str = ""

    def matches(self, c: ClientEntry) -> bool:
        if self.kind == "all":
            return True
        if self.kind == "group":
            return c.group == self.value
        if self.kind == "client":
            return c.ip == self.value
        return ipaddress.IPv4Address(c.ip) in ipaddress.IPv4Network(self.value)

    def render(self) -> str:
        return f"aaa failover notify {self.kind}" + (f" {self.value}" if self.value else "")


class AaaServer(Router):
    kind = "aaa"
    tick_interval = 0.1

    def __init__(self, name: str, *, state_dir: Path, **kwargs: Any) -> None:
        self.meter = NamespaceMeter(only_self=not kwargs.get("apply", True))
        self.hysteresis = Hysteresis()
        self.notifier = Notifier()
        self.radius: RadiusService | None = None
        self.stopped_services: set[str] = set()
        self.failed_over: dict[str, float] = {}        # client ip -> when told to leave
        self.reconnect_plan: list[tuple[float, list[str]]] = []
        self.last_health: tuple[int, str] = (100, "")
        self.last_sample: Sample | None = None
        self.msg_counters: dict[str, int] = {"failover-sent": 0, "reconnect-sent": 0, "send-errors": 0}
        self.history: list[dict[str, Any]] = []
        self._cpu_samples: list[tuple[float, float]] = []
        super().__init__(name, state_dir=state_dir, **kwargs)

    # ------------------------------------------------------------------ config model
    def reset_config(self) -> None:
        super().reset_config()
        self.ip_routing = False
        self.clients: dict[str, ClientEntry] = {}
        self.radius_users: dict[str, str] = {}
        self.policy = HealthPolicy()
        self.max_threads = 16
        self.alternates: list[str] = []
        self.notify: list[Notify] = []
        self.transport = "udp"
        self.reconnect_group_size = 2
        self.reconnect_interval_ms = 1000

    def config_sections(self) -> list[list[str]]:
        blocks = super().config_sections()
        p, d = self.policy, HealthPolicy()
        radius = [f"radius-server client {c.ip} key {c.key}" + (f" group {c.group}" if c.group else "")
                  for c in sorted(self.clients.values(), key=lambda c: ipaddress.IPv4Address(c.ip))]
        radius += [f"radius-server user {u} password 0 {pw}" for u, pw in sorted(self.radius_users.items())]
        health = []
        if p.failover_threshold != d.failover_threshold:
            health.append(f"aaa health failover-threshold {p.failover_threshold}")
        if p.connection_threshold != d.connection_threshold:
            health.append(f"aaa health connection-threshold {p.connection_threshold}")
        if self.max_threads != 16:
            health.append(f"aaa health max-threads {self.max_threads}")
        if p.max_processes != d.max_processes:
            health.append(f"aaa health max-processes {p.max_processes}")
        if p.memory_mb != d.memory_mb:
            health.append(f"aaa health memory {p.memory_mb}")
        failover = [f"aaa failover alternate {a}" for a in self.alternates]
        failover += [n.render() for n in self.notify]
        if self.transport != "udp":
            failover.append(f"aaa failover transport {self.transport}")
        if self.reconnect_group_size != 2:
            failover.append(f"aaa reconnect group-size {self.reconnect_group_size}")
        if self.reconnect_interval_ms != 1000:
            failover.append(f"aaa reconnect interval {self.reconnect_interval_ms}")
        return blocks + [radius, health, failover]

    # ------------------------------------------------------------------ lifecycle
    def apply_all(self) -> None:
        super().apply_all()
        if self.radius is None:
            # Without real effects (unit tests, in the root namespace) only loopback, ephemeral ports.
            where = {} if self.apply_enabled else {"host": "127.0.0.1", "auth_port": 0, "acct_port": 0}
            self.radius = RadiusService(self.state_dir, lambda: self.clients, self._radius_problem,
                                        workers=self.max_threads, name=self.name, **where)
        self.radius.resize(self.max_threads)
        self._start_services()

    def _start_services(self) -> None:
        r = self.radius
        if r is None:
            return
        try:
            if "user-db" not in self.stopped_services and not r.db.running:
                r.db.start()
            if r.db.running:
                r.db.set_users(self.radius_users)
            if "radius-auth" not in self.stopped_services:
                r.auth.start()
            if "radius-acct" not in self.stopped_services:
                r.acct.start()
        except OSError as exc:
            self.syslog(f"%AAA-3-SERVICE: cannot start RADIUS service: {exc}")

    def restart(self) -> None:
        self.stopped_services.clear()
        self.hysteresis = Hysteresis()
        self.failed_over.clear()
        self.reconnect_plan.clear()
        super().restart()

    def shutdown_backend(self) -> None:
        if self.radius is not None:
            self.radius.close()
        super().shutdown_backend()

    def _radius_problem(self, kind: str, detail: str) -> None:
        if "logging" in self.stopped_services:
            return
        self.dispatch(lambda: self.syslog(f"%RADIUS-4-DROPPED: {detail}"))
        self.publish("radius-dropped", reason=kind, detail=detail)

    # ------------------------------------------------------------------ health
    def services(self) -> dict[str, bool]:
        out = dict(self.radius.services()) if self.radius else {s: False for s in SERVICES}
        out["logging"] = "logging" not in self.stopped_services
        return out

    def sample(self) -> Sample:
        cpu, rss, procs = self.meter.measure()
        now = time.monotonic()
        self._cpu_samples = [(t, c) for t, c in self._cpu_samples if now - t < CPU_WINDOW_S] + [(now, cpu)]
        avg = sum(c for _, c in self._cpu_samples) / len(self._cpu_samples)
        pool = self.radius.pool if self.radius else None
        return Sample(threads_available=pool.available if pool else 0, threads_max=pool.size if pool else 0,
                      cpu_pct=avg, mem_pct=min(100.0, 100.0 * rss / (self.policy.memory_mb * 1024 * 1024)),
                      processes=procs, services=self.services())

    def tick(self) -> None:
        super().tick()
        s = self.sample()
        score, why = health_score(s, self.policy)
        self.last_sample, self.last_health = s, (score, why)
        change = self.hysteresis.update(score, self.policy)
        if change == "failover":
            self._failover(score, why, self.chosen_clients())
        elif self.hysteresis.failed_over:
            late = [c for c in self.chosen_clients() if c.ip not in self.failed_over]
            if late:                      # clients that arrived (or came back) while we are unhealthy
                self._failover(score, why, late)
        elif change == "reconnect":
            self._plan_reconnect(score, why)
        now = time.time()
        while self.reconnect_plan and self.reconnect_plan[0][0] <= now:
            _, group = self.reconnect_plan.pop(0)
            self._send_reconnect(group, len(self.reconnect_plan))

    def connected_clients(self) -> list[ClientEntry]:
        now = time.time()
        seen = self.radius.seen if self.radius else {}
        return [c for ip, c in sorted(self.clients.items(), key=lambda kv: ipaddress.IPv4Address(kv[0]))
                if ip in seen and now - seen[ip].last_seen < ACTIVE_WINDOW_S]

    def chosen_clients(self) -> list[ClientEntry]:
        rules = self.notify or [Notify("all")]
        return [c for c in self.connected_clients() if any(r.matches(c) for r in rules)]

    def _server_ip_for(self, client: str) -> str | None:
        seen = self.radius.seen.get(client) if self.radius else None
        return seen.server_ip if seen else None

    def _failover(self, score: int, why: str, targets: list[ClientEntry]) -> None:
        t = time.time()
        self.syslog(f"%AAA-2-HEALTH: health {score} below failover threshold {self.policy.failover_threshold} "
                    f"({why}); asking {len(targets)} client(s) to fail over")
        sent = []
        for c in targets:
            server_ip = self._server_ip_for(c.ip)
            if not server_ip:
                continue
            try:
                self.notifier.send(fm.FAILOVER, server_ip=server_ip, client_ip=c.ip, secret=c.key,
                                   alternates=tuple(self.alternates), transport=self.transport)
            except OSError as exc:
                self.msg_counters["send-errors"] += 1
                self.syslog(f"%AAA-3-NOTIFY: {exc}")
                continue
            self.failed_over[c.ip] = t
            sent.append(c.ip)
        self.msg_counters["failover-sent"] += len(sent)
        self._record("aaa-failover-sent", score=score, reason=why, clients=sent,
                     alternates=list(self.alternates), transport=self.transport, threshold=self.policy.failover_threshold)

    def _plan_reconnect(self, score: int, why: str) -> None:
        """Claims 25, 31: the clients come back in groups, one group per interval."""
        clients = sorted(self.failed_over, key=ipaddress.IPv4Address)
        size = max(1, self.reconnect_group_size)
        groups = [clients[i:i + size] for i in range(0, len(clients), size)]
        now = time.time()
        self.reconnect_plan = [(now + i * self.reconnect_interval_ms / 1000, g) for i, g in enumerate(groups)]
        self.syslog(f"%AAA-5-HEALTH: health {score} above connection threshold {self.policy.connection_threshold}; "
                    f"inviting {len(clients)} client(s) back in {len(groups)} group(s)")
        self._record("aaa-recovered", score=score, reason=why, groups=groups, start=now,
                     interval_ms=self.reconnect_interval_ms, threshold=self.policy.connection_threshold)

    def _send_reconnect(self, group: list[str], remaining: int) -> None:
        sent = []
        for ip in group:
            c = self.clients.get(ip)
            server_ip = self._server_ip_for(ip)
            if c is None or not server_ip:
                continue
            try:
                self.notifier.send(fm.RECONNECT, server_ip=server_ip, client_ip=ip, secret=c.key,
                                   transport=self.transport)
            except OSError as exc:
                self.msg_counters["send-errors"] += 1
                self.syslog(f"%AAA-3-NOTIFY: {exc}")
                continue
            self.failed_over.pop(ip, None)
            sent.append(ip)
        self.msg_counters["reconnect-sent"] += len(sent)
        self._record("aaa-reconnect-sent", clients=sent, groups_left=remaining)

    def _record(self, type: str, **fields: Any) -> None:
        ev = self.publish(type, **fields)
        self.history = (self.history + [ev])[-20:]

    # ------------------------------------------------------------------ config commands
    @command("config", "radius-server client <ip:ipv4> key <key:word> [group <group:word>]",
             help={"radius-server": "Modify RADIUS query parameters", "client": "A RADIUS client (NAS) allowed to use this server",
                   "ip": "The client's IP address", "key": "Shared secret with this client", "group": "Network device group of the client"})
    def cmd_radius_client(self, ctx: Context, ip: ipaddress.IPv4Address, key: str, group: str | None = None) -> None:
        self.clients[str(ip)] = ClientEntry(str(ip), key, group)

    @command("config", "no radius-server client <ip:ipv4>")
    def cmd_no_radius_client(self, ctx: Context, ip: ipaddress.IPv4Address) -> None:
        if self.clients.pop(str(ip), None) is None:
            ctx.print(f"% RADIUS client {ip} is not configured")

    @command("config", "radius-server user <name:word> password [0] <password:word>",
             help={"user": "A user this server authenticates", "password": "The user's password",
                   "0": "Specifies an UNENCRYPTED password will follow"})
    def cmd_radius_user(self, ctx: Context, name: str, password: str) -> None:
        self.radius_users[name] = password
        self._sync_users(ctx)

    @command("config", "no radius-server user <name:word>")
    def cmd_no_radius_user(self, ctx: Context, name: str) -> None:
        if self.radius_users.pop(name, None) is None:
            ctx.print(f"% RADIUS user {name} is not configured")
        self._sync_users(ctx)

    def _sync_users(self, ctx: Context) -> None:
        if ctx.source != "cli" or self.radius is None or not self.radius.db.running:
            return          # loading a config: apply_all writes the table once
        self.radius.db.set_users(self.radius_users)

    @command("config", "aaa health failover-threshold <value:int:0-100>",
             help={"aaa": "Authentication, Authorization and Accounting", "health": "Server health monitoring",
                   "failover-threshold": "Below this health score, ask clients to fail over"})
    def cmd_failover_threshold(self, ctx: Context, value: int) -> None:
        if value >= self.policy.connection_threshold:
            ctx.print(f"% Failover threshold must be below the connection threshold ({self.policy.connection_threshold})")
            return
        self.policy.failover_threshold = value

    @command("config", "aaa health connection-threshold <value:int:0-100>",
             help={"connection-threshold": "Above this health score, invite clients back"})
    def cmd_connection_threshold(self, ctx: Context, value: int) -> None:
        if value <= self.policy.failover_threshold:
            ctx.print(f"% Connection threshold must be above the failover threshold ({self.policy.failover_threshold})")
            return
        self.policy.connection_threshold = value

    @command("config", "aaa health max-threads <value:int:1-512>", help={"max-threads": "RADIUS worker threads"})
    def cmd_max_threads(self, ctx: Context, value: int) -> None:
        self.max_threads = value
        if ctx.source == "cli" and self.radius is not None:
            self.radius.resize(value)

    @command("config", "aaa health max-processes <value:int:1-100000>", help={"max-processes": "Process count at which health is 0"})
    def cmd_max_processes(self, ctx: Context, value: int) -> None:
        self.policy.max_processes = value

    @command("config", "aaa health memory <mb:int:16-1048576>", help={"memory": "Memory of this box in MB"})
    def cmd_memory(self, ctx: Context, mb: int) -> None:
        self.policy.memory_mb = mb

    @command("config", "aaa failover alternate <ip:ipv4>", help={"failover": "Client failover", "alternate": "An alternate server named in failover messages"})
    def cmd_alternate(self, ctx: Context, ip: ipaddress.IPv4Address) -> None:
        if str(ip) not in self.alternates:
            self.alternates.append(str(ip))

    @command("config", "no aaa failover alternate <ip:ipv4>")
    def cmd_no_alternate(self, ctx: Context, ip: ipaddress.IPv4Address) -> None:
        if str(ip) in self.alternates:
            self.alternates.remove(str(ip))

    @command("config", "aaa failover notify all", kind="all",
             help={"notify": "Which clients a failover message goes to", "all": "Every connected client"})
    @command("config", "aaa failover notify group <value:word>", kind="group", help={"group": "Clients of a device group"})
    @command("config", "aaa failover notify client <value:ipv4>", kind="client", help={"client": "One client (a predefined list: repeat)"})
    @command("config", "aaa failover notify subnet <value:prefix>", kind="subnet", help={"subnet": "Clients in a part of the topology"})
    def cmd_notify(self, ctx: Context, kind: str, value: Any = "") -> None:
        rule = Notify(kind, str(value))
        if rule not in self.notify:
            self.notify.append(rule)

    @command("config", "no aaa failover notify")
    def cmd_no_notify(self, ctx: Context) -> None:
        self.notify.clear()

    @command("config", "aaa failover transport udp", transport="udp", help={"transport": "How failover messages are sent"})
    @command("config", "aaa failover transport icmp", transport="icmp", help={"icmp": "As the payload of an ICMP Echo"})
    @command("config", "aaa failover transport both", transport="both", help={"both": "UDP and ICMP Echo"})
    def cmd_transport(self, ctx: Context, transport: str) -> None:
        self.transport = transport

    @command("config", "aaa reconnect group-size <n:int:1-1000>",
             help={"reconnect": "Inviting clients back", "group-size": "Clients invited back at a time"})
    def cmd_group_size(self, ctx: Context, n: int) -> None:
        self.reconnect_group_size = n

    @command("config", "aaa reconnect interval <ms:int:0-600000>", help={"interval": "Milliseconds between groups"})
    def cmd_interval(self, ctx: Context, ms: int) -> None:
        self.reconnect_interval_ms = ms

    # ------------------------------------------------------------------ exec commands
    @command("exec", "aaa service stop <name:word>", help={"aaa": "AAA server operations", "service": "Server services",
                                                          "stop": "Stop a service"}, stop=True)
    @command("exec", "aaa service start <name:word>", help={"start": "Start a service"}, stop=False)
    def cmd_service(self, ctx: Context, name: str, stop: bool) -> None:
        if name not in SERVICES:
            ctx.print(f"% Unknown service {name} (services: {', '.join(SERVICES)})")
            return
        r = self.radius
        if stop:
            self.stopped_services.add(name)
            if r is not None:
                {"radius-auth": r.auth.stop, "radius-acct": r.acct.stop, "user-db": r.db.stop}.get(name, lambda: None)()
        else:
            self.stopped_services.discard(name)
            self._start_services()
        self.syslog(f"%AAA-5-SERVICE: service {name} {'stopped' if stop else 'started'}")
        self.publish("aaa-service", service=name, running=not stop)

    @command("exec", "test aaa workers hold <n:int:1-512>", help={"test": "Test subsystems", "workers": "RADIUS worker threads",
                                                                  "hold": "Keep workers busy (thread exhaustion)"})
    def cmd_hold(self, ctx: Context, n: int) -> None:
        held = self.radius.hold_workers(n) if self.radius else 0
        ctx.print(f"{held} worker thread(s) held")

    @command("exec", "test aaa workers release", help={"release": "Free held workers"})
    def cmd_release(self, ctx: Context) -> None:
        ctx.print(f"{self.radius.release_workers() if self.radius else 0} worker thread(s) released")

    @command("exec", "show aaa", priv=1, help={"aaa": "Show AAA values"})
    def cmd_show_aaa(self, ctx: Context) -> None:
        score, why = self.last_health
        s = self.last_sample
        p = self.policy
        c = self.radius.counters if self.radius else {}
        ctx.print(f"AAA server {self.hostname}: {'FAILED-OVER' if self.hysteresis.failed_over else 'SERVING'}")
        ctx.print(f"  Health {score}/100 ({why or 'nominal'})")
        ctx.print(f"  Failover threshold {p.failover_threshold}, connection threshold {p.connection_threshold}")
        if s is not None:
            ctx.print(f"  Worker threads {s.threads_available}/{s.threads_max} free, CPU {s.cpu_pct:.0f}%, "
                      f"memory {s.mem_pct:.0f}% of {p.memory_mb} MB, processes {s.processes}/{p.max_processes}")
        svc = self.services()
        mand = ", ".join(f"{n} {'up' if svc.get(n) else 'DOWN'}" for n in p.mandatory)
        dep = ", ".join(f"{n} {'up' if svc.get(n) else 'DOWN'}" for n in p.dependent)
        ctx.print(f"  Mandatory services: {mand}")
        ctx.print(f"  Dependent services: {dep}")
        ctx.print(f"  Alternates: {' '.join(self.alternates) or 'none'}; transport {self.transport}; "
                  f"notify {', '.join(n.render()[len('aaa failover notify '):] for n in self.notify) or 'all'}")
        ctx.print(f"  Reconnect: groups of {self.reconnect_group_size} every {self.reconnect_interval_ms} ms; "
                  f"{sum(len(g) for _, g in self.reconnect_plan)} client(s) waiting")
        dropped = ", ".join(f"{v} {k}" for k, v in sorted(c.items()) if k.startswith("dropped-")) or "0 dropped"
        ctx.print(f"  RADIUS: {c.get('requests', 0)} requests, {c.get('accepts', 0)} accepts, "
                  f"{c.get('rejects', 0)} rejects, {dropped}; {c.get('acct-responses', 0)} accounting records")
        ctx.print(f"  Messages: {self.msg_counters['failover-sent']} failover, {self.msg_counters['reconnect-sent']} reconnect, "
                  f"{self.msg_counters['send-errors']} send errors")
        for ev in self.history[-5:]:
            ctx.print(f"  {date_text(ev['time'])} {ev['type']}: " + ", ".join(
                f"{k}={v}" for k, v in ev.items() if k not in ("time", "type", "device")))

    @command("exec", "show aaa clients", priv=1, help={"clients": "RADIUS clients of this server"})
    def cmd_show_clients(self, ctx: Context) -> None:
        seen = self.radius.seen if self.radius else {}
        now = time.time()
        ctx.print(f"{'Client':<16} {'Group':<12} {'Requests':>8} {'Last seen':>10}  State")
        for ip, c in sorted(self.clients.items(), key=lambda kv: ipaddress.IPv4Address(kv[0])):
            sc = seen.get(ip)
            last = f"{now - sc.last_seen:.1f}s" if sc else "never"
            state = "failed-over" if ip in self.failed_over else ("connected" if sc and now - sc.last_seen < ACTIVE_WINDOW_S else "idle")
            ctx.print(f"{ip:<16} {(c.group or '-'):<12} {(sc.requests if sc else 0):>8} {last:>10}  {state}")
