"""The router as a RADIUS client (a network access server) that AAA servers can tell to fail over.

`RadiusNas` is a mixin for a `BaseDevice` kind (the router uses it). It holds:

* the RADIUS client config (`radius-server host/timeout/retransmit`) - the hosts in configuration
  order are the client's own preference list (claim 11), the first one is its home server;
* server selection, the benchmark baseline every NAS has: requests go to the current server, and
  after timeout x (retransmit+1) without a valid answer that server is marked dead and the client
  moves on to the next configured one and stays there (sticky);
* the failover receiver (claims 1, 11-15): failover/reconnect messages (failover_msg.py) over UDP
  and, as root, inside ICMP Echo Requests; each is authenticated with the claimed sender's RADIUS
  shared secret and both IP addresses, checked against replays, then acted on exactly once;
* claim 18: `aaa failover return-timeout` brings the client home after that long away;
* `test aaa user` and a load generator (`aaa load start`) that measure what users see.

Threads: the listener and the load generator run on their own threads and take `self.lock` for
device state; no thread ever holds the lock while it waits for the network. `test aaa user` and
logins (`aaa authentication login default group radius local`) wait for RADIUS as a `Wait` dialog
or on an SSH executor thread, so the daemon's event loop keeps serving other sessions meanwhile.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..cli.context import Context, Wait
from ..cli.tree import command
from ..eventlog import date_text
from . import failover_msg as fm
from . import radius_client
from .failover_listener import FailoverListener
from .load_generator import LATE_S, AuthOutcome, LoadGenerator
from .radius_client import AuthResult

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5
DEFAULT_RETRANSMIT = 3
DROP_REASONS = ("malformed", "bad-hmac", "spoofed", "misdirected", "replay", "unknown-server")
DUPLICATE_WINDOW_S = 5.0      # the same message over the other transport within this is not an attack
UNAVAILABLE = ("dead", "draining")
LOGIN_DEFAULT = ("local",)    # without `aaa authentication login default`: the local user table

HELP = {
    "radius-server": "Modify RADIUS query parameters", "host": "Specify a RADIUS server",
    "key": "per-server encryption key", "auth-port": "UDP port for RADIUS authentication server (default is 1812)",
    "timeout": "Time to wait for a RADIUS server to reply",
    "retransmit": "Specify the number of retries to active server",
    "aaa": "Authentication, Authorization and Accounting.",
    "failover": "Failover and reconnect messages from AAA servers",
    "listen": "Accept failover messages (UDP, and ICMP as root)",
    "return-timeout": "Return to the home server after this long on an alternate (0: only when invited)",
    "test": "Test subsystems, memory, and interfaces", "user": "User name", "password": "User password",
    "load": "RADIUS authentication load generator", "start": "Start generating authentications",
    "rate": "Requests per second", "stop": "Stop the load generator", "clear": "Reset functions",
    "counters": "Clear AAA counters", "ip": "IP address of RADIUS server", "secret": "The UNENCRYPTED server key",
    "seconds": "Wait time (default 5 seconds)", "n": "Number of retries for a transaction (default is 3)",
    "rps": "Requests per second",
    "authentication": "Authentication configurations parameters.",
    "login": "Set authentication lists for logins.", "default": "The default authentication list.",
    "group": "Use Server-group", "radius": "Use list of all Radius hosts.",
    "local": "Use local username authentication.",
}


# ---------------------------------------------------------------------------------------- model
@dataclass
class RadiusHost:
    """One `radius-server host` line."""

    ip: str
    key: str
    auth_port: int = radius_client.AUTH_PORT

    def render(self) -> str:
        port = f" auth-port {self.auth_port}" if self.auth_port != radius_client.AUTH_PORT else ""
        return f"radius-server host {self.ip} key {self.key}{port}"


@dataclass
class ServerState:
    """What the client has learnt about one server since boot."""

    state: str = "alive"          # alive | dead (did not answer) | draining (asked us to leave)
    since: float = field(default_factory=time.time)
    requests: int = 0
    accepts: int = 0
    rejects: int = 0
    failures: int = 0             # requests without a valid answer (timeout or bad reply)


@dataclass(frozen=True)
class Switch:
    time: float
    previous: str | None
    current: str
    why: str                      # failover | reconnect | server-dead | return-timeout
    detail: str


def _failed_outcome(exc: BaseException) -> AuthOutcome:
    log.error("RADIUS authentication failed with %r", exc)
    return AuthOutcome("failed", None, 0.0, (), ())


# ---------------------------------------------------------------------------------------- the mixin
class RadiusNas:
    """RADIUS client, failover receiver and load generator for a device kind (see module docstring).
    Mix in before `BaseDevice`: `class Router(RadiusNas, BaseDevice)`. The kind's `apply_all`,
    `shutdown_backend`, `tick` and `config_sections` must call `super()` (reset_config already does)."""

    # Where the failover listener binds and whether it opens a raw ICMP socket. None: the defaults -
    # 0.0.0.0 and ICMP as root for a device with real effects; 127.0.0.1 and no ICMP for one built
    # with apply=False (unit tests), which must never listen on real addresses.
    failover_bind_ip: str | None = None
    failover_icmp: bool | None = None

    # what BaseDevice provides
    lock: threading.RLock
    hostname: str
    apply_enabled: bool
    _closed: bool
    if TYPE_CHECKING:
        def syslog(self, message: str) -> None: ...
        def publish(self, type: str, **fields: Any) -> dict[str, Any]: ...
        def dispatch(self, fn: Callable[[], None]) -> None: ...

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._listener: FailoverListener | None = None
        self._load_gen: LoadGenerator | None = None
        self._nas_started = False
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------ config model
    def reset_config(self) -> None:
        super().reset_config()  # type: ignore[misc]
        self.radius_hosts: list[RadiusHost] = []
        self.radius_timeout = DEFAULT_TIMEOUT
        self.radius_retransmit = DEFAULT_RETRANSMIT
        self.failover_listen = True
        self.failover_port = fm.UDP_PORT
        self.failover_return_timeout = 0
        self.login_method_list: tuple[str, ...] = LOGIN_DEFAULT
        self._nas_reset_runtime()

    def _nas_reset_runtime(self) -> None:
        """Boot state: what a reload forgets (listener and load generator stop, counters restart)."""
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        if self._load_gen is not None:
            self._load_gen.stop()
            self._load_gen = None
        self._current: str | None = None
        self._left_home_at: float | None = None
        self._servers: dict[str, ServerState] = {}
        self._last_switch: Switch | None = None
        self._replay = fm.ReplayGuard()
        self._seen: OrderedDict[tuple[str, int], tuple[float, bytes, set[str]]] = OrderedDict()
        self._fo_counters: Counter[str] = Counter()
        self._listener_errors: list[str] = []

    def config_sections(self) -> list[list[str]]:
        block = [h.render() for h in self.radius_hosts]
        if self.radius_timeout != DEFAULT_TIMEOUT:
            block.append(f"radius-server timeout {self.radius_timeout}")
        if self.radius_retransmit != DEFAULT_RETRANSMIT:
            block.append(f"radius-server retransmit {self.radius_retransmit}")
        aaa = []
        if self.login_method_list != LOGIN_DEFAULT:
            aaa.append("aaa authentication login default "
                       + " ".join("group radius" if m == "radius" else m for m in self.login_method_list))
        if self.failover_port != fm.UDP_PORT:
            aaa.append(f"aaa failover listen port {self.failover_port}")
        if not self.failover_listen:
            aaa.append("no aaa failover listen")
        if self.failover_return_timeout:
            aaa.append(f"aaa failover return-timeout {self.failover_return_timeout}")
        return super().config_sections() + [block, aaa]  # type: ignore[misc]

    # ------------------------------------------------------------------ lifecycle hooks
    def apply_all(self) -> None:
        super().apply_all()  # type: ignore[misc]
        self._nas_started = True
        self._sync_listener(None)

    def shutdown_backend(self) -> None:
        with self.lock:
            self._nas_started = False
            if self._listener is not None:
                self._listener.stop()
                self._listener = None
            if self._load_gen is not None:
                self._load_gen.stop()
        super().shutdown_backend()  # type: ignore[misc]

    def tick(self) -> None:
        super().tick()  # type: ignore[misc]
        self._check_return_home()

    # ------------------------------------------------------------------ the failover listener
    def _listener_params(self) -> tuple[int, str, bool] | None:
        if not (self._nas_started and self.failover_listen and self.radius_hosts):
            return None
        bind = self.failover_bind_ip or ("0.0.0.0" if self.apply_enabled else "127.0.0.1")
        icmp = self.failover_icmp
        if icmp is None:
            icmp = self.apply_enabled and os.geteuid() == 0
        return (self.failover_port, bind, icmp)

    def _sync_listener(self, ctx: Context | None) -> None:
        """Make the listener match the config: open, reopen on a new port, or close."""
        want = self._listener_params()
        if self._listener is not None and self._listener.params == want:
            return
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        self._listener_errors = []
        if want is None:
            return
        self._listener = FailoverListener(*want, deliver=self._deliver)
        for err in self._listener.open():
            self._listener_errors.append(err)
            self.syslog(f"%AAA-3-FAILOVER_LISTEN: {err}")
            if ctx is not None:
                ctx.print(f"% Failover listener: {err}")

    def _deliver(self, data: bytes, src: str, dst: str, via: str, stopped: threading.Event) -> None:
        """From the listener thread: handle on the device's own thread (the daemon's loop) if it
        has one, else here under the lock - without ever blocking a listener that is stopping."""
        if getattr(self, "call_soon", None) is not None:
            self.dispatch(lambda: self.failover_receive(data, src_ip=src, dst_ip=dst, via=via))
            return
        while not stopped.is_set():
            if self.lock.acquire(timeout=0.1):
                try:
                    self.failover_receive(data, src_ip=src, dst_ip=dst, via=via)
                finally:
                    self.lock.release()
                return

    # ------------------------------------------------------------------ server selection
    def _host(self, ip: str | None) -> RadiusHost | None:
        return next((h for h in self.radius_hosts if h.ip == ip), None)

    def _server(self, ip: str) -> ServerState:
        return self._servers.setdefault(ip, ServerState())

    def _home(self) -> str | None:
        return self.radius_hosts[0].ip if self.radius_hosts else None

    def _available(self, ip: str) -> bool:
        return self._server(ip).state not in UNAVAILABLE

    def _cyclic_after(self, ip: str | None) -> list[RadiusHost]:
        """The configured hosts after `ip` in preference order, wrapping round (ip itself last)."""
        ips = [h.ip for h in self.radius_hosts]
        i = ips.index(ip) + 1 if ip in ips else 0
        return self.radius_hosts[i:] + self.radius_hosts[:i]

    def _switch(self, to: str, why: str, detail: str) -> bool:
        prev = self._current
        if prev == to:
            return False
        self._current = to
        self._last_switch = Switch(time.time(), prev, to, why, detail)
        home = self._home()
        if to == home:
            self._left_home_at = None
        elif self._left_home_at is None:
            self._left_home_at = time.monotonic()
        return True

    def _next_target(self, tried: list[str]) -> RadiusHost | None:
        cur = self._host(self._current)
        if cur is not None and cur.ip not in tried:
            return cur
        untried = [h for h in self._cyclic_after(self._current) if h.ip not in tried]
        if cur is None and untried:       # no current yet: start at the top of the list
            untried = [h for h in self.radius_hosts if h.ip not in tried]
        return next((h for h in untried if self._available(h.ip)), untried[0] if untried else None)

    def _server_answered(self, ip: str, res: AuthResult) -> None:
        st = self._server(ip)
        if res.code == "accept":
            st.accepts += 1
        else:
            st.rejects += 1
        if st.state == "dead":
            st.state, st.since = "alive", time.time()
            port = self._host(ip).auth_port if self._host(ip) else radius_client.AUTH_PORT
            self.syslog(f"%RADIUS-4-RADIUS_ALIVE: RADIUS server {ip}:{port} is being marked alive.")
            self.publish("aaa-server-alive", server=ip, port=port)

    def _server_failed(self, host: RadiusHost, res: AuthResult) -> None:
        """No valid answer after timeout x (retransmit+1): mark dead; if it was the current server,
        move to the next configured one that is not known bad (sticky)."""
        st = self._server(host.ip)
        st.failures += 1
        newly_dead = st.state != "dead"
        if newly_dead:
            st.state, st.since = "dead", time.time()
        nxt = None
        if self._current == host.ip:
            others = [h for h in self._cyclic_after(host.ip) if h.ip != host.ip]
            pick = next((h for h in others if self._available(h.ip)), others[0] if others else None)
            if pick is not None and self._switch(pick.ip, "server-dead", f"{host.ip} not responding"):
                nxt = pick.ip
        if newly_dead:
            self.syslog(f"%RADIUS-4-RADIUS_DEAD: RADIUS server {host.ip}:{host.auth_port} is not responding.")
            self.publish("aaa-server-dead", server=host.ip, port=host.auth_port, result=res.code,
                         next=nxt or self._current)

    def radius_authenticate(self, user: str, password: str) -> AuthOutcome:
        """Authenticate once as users of this NAS are: via the current server, falling back through
        the configured servers (each at most once) while they do not answer. Call WITHOUT the lock."""
        start = time.monotonic()
        tried: list[str] = []
        results: list[AuthResult] = []
        while True:
            with self.lock:
                host = None if self._closed else self._next_target(tried)
                if host is None:
                    break
                host = RadiusHost(host.ip, host.key, host.auth_port)
                self._server(host.ip).requests += 1
                timeout, retransmit, nas_id = self.radius_timeout, self.radius_retransmit, self.hostname
            res = radius_client.authenticate(host.ip, host.auth_port, host.key, user, password,
                                             timeout=timeout, retransmit=retransmit, nas_id=nas_id)
            tried.append(host.ip)
            results.append(res)
            with self.lock:
                configured = self._host(host.ip) is not None     # not removed meanwhile
                if res.answered:
                    if configured:
                        self._server_answered(host.ip, res)
                    return AuthOutcome(res.code, host.ip, time.monotonic() - start, tuple(tried), tuple(results))
                if configured:
                    self._server_failed(host, res)
        return AuthOutcome("failed", None, time.monotonic() - start, tuple(tried), tuple(results))

    # ------------------------------------------------------------------ user logins
    def login_methods(self) -> list[str]:
        return list(self.login_method_list)

    def login_method_verdict(self, method: str, user: str, password: str) -> bool | None:
        """`group radius`: accept or reject as the server says; no server answering (or none
        configured) leaves the decision to the next method, so `local` still lets admins in."""
        if method != "radius":
            return super().login_method_verdict(method, user, password)  # type: ignore[misc]
        with self.lock:
            if not self.radius_hosts:
                return None
        outcome = self.radius_authenticate(user, password)
        self.publish("aaa-login", user=user, result=outcome.code, server=outcome.server,
                     latency_ms=round(outcome.latency_s * 1000, 1))
        return {"accept": True, "reject": False}.get(outcome.code)

    def _check_return_home(self) -> None:
        """Claim 18: after `return-timeout` seconds away from the home server, go back to it."""
        home = self._home()
        if not (self.failover_return_timeout and home and self._current != home):
            return
        if self._left_home_at is None:       # the home server changed under us (config): count from now
            self._left_home_at = time.monotonic()
        away = time.monotonic() - self._left_home_at
        if away < self.failover_return_timeout:
            return
        prev = self._current
        st = self._server(home)
        st.state, st.since = "alive", time.time()     # give it another chance
        self._switch(home, "return-timeout", f"{away:.0f} s away from home")
        self.syslog(f"%AAA-5-RETURN_HOME: return-timeout {self.failover_return_timeout} s expired; "
                    f"returning from {prev} to home server {home}")
        self.publish("aaa-return-home", server=home, previous=prev, away_s=round(away, 3))

    # ------------------------------------------------------------------ failover messages
    def failover_receive(self, data: bytes, *, src_ip: str, dst_ip: str, via: str = "udp") -> str:
        """Authenticate and act on one failover/reconnect message that arrived from `src_ip` on the
        local address `dst_ip`. Returns what happened: "failover", "reconnect", "duplicate" or the
        drop reason. Takes the lock itself (the listener thread and tests call it directly)."""
        with self.lock:
            if self._closed:
                return "closed"
            try:
                claimed = fm.peek_server(data)
                host = self._host(claimed)
                if host is None:
                    raise fm.MessageError("unknown-server", f"{claimed} is not a configured radius-server host")
                msg = fm.decode(data, host.key.encode(), src_ip=src_ip, dst_ip=dst_ip)
                if self._is_duplicate(msg, data, via):
                    self._fo_counters["duplicate"] += 1
                    self.publish("aaa-failover-duplicate", server=msg.server, seq=msg.seq, via=via)
                    return "duplicate"
                self._replay.check(msg)
            except fm.MessageError as exc:
                self._drop(exc, src_ip, via)
                return exc.reason
            self._remember(msg, data, via)
            self._fo_counters["accepted"] += 1
            self._fo_counters[msg.type_name] += 1
            if msg.type == fm.FAILOVER:
                self._on_failover(msg, via)
            else:
                self._on_reconnect(msg, via)
            return msg.type_name

    def _is_duplicate(self, msg: fm.FailoverMessage, data: bytes, via: str) -> bool:
        """The same authenticated message already acted on, arriving over the other transport
        shortly after (servers send over UDP and ICMP at once): not an attack, just redundancy."""
        seen = self._seen.get((msg.server, msg.seq))
        if seen is None:
            return False
        first, digest, vias = seen
        if via in vias or digest != data[-fm.DIGEST_LEN:] or time.monotonic() - first > DUPLICATE_WINDOW_S:
            return False
        vias.add(via)
        return True

    def _remember(self, msg: fm.FailoverMessage, data: bytes, via: str) -> None:
        self._seen[(msg.server, msg.seq)] = (time.monotonic(), data[-fm.DIGEST_LEN:], {via})
        while len(self._seen) > 256:
            self._seen.popitem(last=False)

    def _drop(self, exc: fm.MessageError, src: str, via: str) -> None:
        self._fo_counters[f"dropped:{exc.reason}"] += 1
        self.syslog(f"%AAA-3-FAILOVER_DROPPED: message from {src} ({via}) dropped ({exc.reason}: {exc.detail})")
        self.publish("aaa-failover-dropped", reason=exc.reason, detail=exc.detail, src=src, via=via)

    def _choose_alternate(self, sender: str, alternates: tuple[str, ...]) -> str | None:
        """Claim 11/12: the first alternate the server named that this client has configured and
        does not know to be down; else the client's own list, in order."""
        configured = [h.ip for h in self.radius_hosts if h.ip != sender]
        for ip in alternates:
            if ip in configured and self._available(ip):
                return ip
        return next((ip for ip in configured if self._available(ip)), configured[0] if configured else None)

    def _on_failover(self, msg: fm.FailoverMessage, via: str) -> None:
        st = self._server(msg.server)
        if st.state != "dead":
            st.state, st.since = "draining", time.time()
        prev = self._current
        alternate = self._choose_alternate(msg.server, msg.alternates)
        switched = False
        if prev == msg.server and alternate is not None:
            switched = self._switch(alternate, "failover", f"requested by {msg.server} via {via}")
        if switched:
            self.syslog(f"%AAA-4-FAILOVER: server {msg.server} requested failover; now using {alternate} ({via})")
        elif prev == msg.server:
            self.syslog(f"%AAA-4-FAILOVER: server {msg.server} requested failover; no alternate configured, "
                        f"staying ({via})")
        else:
            self.syslog(f"%AAA-5-FAILOVER: server {msg.server} requested failover; not in use "
                        f"(current {prev}) ({via})")
        self.publish("aaa-failover", server=msg.server, alternate=alternate if switched else None, via=via,
                     alternates=list(msg.alternates), previous=prev, current=self._current, switched=switched,
                     seq=msg.seq)

    def _on_reconnect(self, msg: fm.FailoverMessage, via: str) -> None:
        """Claim 17: the server invites its clients back. Go to it if this client prefers it to the
        server in use (or the one in use is down); otherwise just note it is available again."""
        st = self._server(msg.server)
        st.state, st.since = "alive", time.time()
        prev = self._current
        ips = [h.ip for h in self.radius_hosts]
        prefer = (prev not in ips or ips.index(msg.server) < ips.index(prev) or not self._available(prev))
        switched = prefer and self._switch(msg.server, "reconnect", f"invited by {msg.server} via {via}")
        if switched:
            self.syslog(f"%AAA-5-RECONNECT: server {msg.server} invited reconnection; now using {msg.server} "
                        f"(was {prev}) ({via})")
        else:
            self.syslog(f"%AAA-5-RECONNECT: server {msg.server} available again; staying on {prev} ({via})")
        self.publish("aaa-reconnect", server=msg.server, previous=prev, via=via, switched=switched,
                     current=self._current, seq=msg.seq)

    # ------------------------------------------------------------------ state for shows and tests
    def aaa_status(self) -> dict[str, Any]:
        """Everything `show aaa` prints, as data (for tests and harness code in-process)."""
        with self.lock:
            lst = self._listener
            dropped = {r: self._fo_counters[f"dropped:{r}"] for r in DROP_REASONS}
            return {
                "current": self._current, "home": self._home(),
                "timeout": self.radius_timeout, "retransmit": self.radius_retransmit,
                "return_timeout": self.failover_return_timeout,
                "servers": [{"ip": h.ip, "auth_port": h.auth_port,
                             "state": "current" if h.ip == self._current else self._server(h.ip).state,
                             "health": self._server(h.ip).state,
                             **{k: getattr(self._server(h.ip), k) for k in ("requests", "accepts", "rejects", "failures")}}
                            for h in self.radius_hosts],
                "listener": {"enabled": self.failover_listen, "port": self.failover_port,
                             "transports": list(lst.transports) if lst else [],
                             "errors": list(self._listener_errors)},
                "counters": {"accepted": self._fo_counters["accepted"], "failover": self._fo_counters["failover"],
                             "reconnect": self._fo_counters["reconnect"],
                             "duplicate": self._fo_counters["duplicate"], "dropped": dropped},
                "last_switch": None if self._last_switch is None else {
                    "time": self._last_switch.time, "from": self._last_switch.previous,
                    "to": self._last_switch.current, "why": self._last_switch.why,
                    "detail": self._last_switch.detail},
            }

    def aaa_load_summary(self) -> dict[str, Any] | None:
        gen = self._load_gen
        return gen.summary() if gen is not None else None

    def aaa_load_records(self) -> list[tuple[float, str, float, str]]:
        """(time due, result, latency s, server) of the last load run's most recent requests."""
        gen = self._load_gen
        if gen is None:
            return []
        with gen.lock:
            return list(gen.records)

    # ------------------------------------------------------------------ config commands
    @command("config", "radius-server host <ip:ipv4> key <secret:word> [auth-port <port:int:1-65535>]",
             help={**HELP, "port": "Port number"})
    def cmd_radius_host(self, ctx: Context, ip: ipaddress.IPv4Address, secret: str,
                        port: int = radius_client.AUTH_PORT) -> None:
        if ip.is_unspecified or ip.is_multicast or str(ip) == "255.255.255.255":
            ctx.print(f"% Invalid RADIUS server address {ip}")
            return
        host = self._host(str(ip))
        if host is not None:                  # update in place: the preference order stays
            host.key, host.auth_port = secret, port
        else:
            self.radius_hosts.append(RadiusHost(str(ip), secret, port))
        if self._current is None:
            self._current = self.radius_hosts[0].ip
        self._config_changed(ctx)

    @command("config", "no radius-server host <ip:ipv4>", help=HELP)
    def cmd_no_radius_host(self, ctx: Context, ip: ipaddress.IPv4Address) -> None:
        if self._host(str(ip)) is None:
            ctx.print(f"% RADIUS server {ip} is not configured")
            return
        self.radius_hosts = [h for h in self.radius_hosts if h.ip != str(ip)]
        self._servers.pop(str(ip), None)
        if self._current == str(ip):
            home = self._home()
            self._current = None
            if home is not None:
                self._switch(home, "config", f"{ip} removed from the configuration")
        self._config_changed(ctx)

    @command("config", "radius-server timeout <seconds:int:1-1000>", help=HELP)
    @command("config", "no radius-server timeout", help=HELP, seconds=DEFAULT_TIMEOUT)
    def cmd_radius_timeout(self, ctx: Context, seconds: int) -> None:
        self.radius_timeout = seconds

    @command("config", "radius-server retransmit <n:int:0-100>", help=HELP)
    @command("config", "no radius-server retransmit", help=HELP, n=DEFAULT_RETRANSMIT)
    def cmd_radius_retransmit(self, ctx: Context, n: int) -> None:
        self.radius_retransmit = n

    @command("config", "aaa failover listen [port <port:int:1-65535>]",
             help={**HELP, "port": "UDP port for failover messages (default 1814)"})
    @command("config", "no aaa failover listen", help=HELP, no=True)
    def cmd_failover_listen(self, ctx: Context, port: int | None = None, no: bool = False) -> None:
        self.failover_listen = not no
        if not no:
            self.failover_port = port if port is not None else fm.UDP_PORT
        self._config_changed(ctx)

    @command("config", "aaa authentication login default group radius local", help=HELP,
             methods=("radius", "local"))
    @command("config", "aaa authentication login default group radius", help=HELP, methods=("radius",))
    @command("config", "aaa authentication login default local group radius", help=HELP,
             methods=("local", "radius"))
    @command("config", "aaa authentication login default local", help=HELP, methods=("local",))
    @command("config", "no aaa authentication login default", help=HELP, methods=LOGIN_DEFAULT)
    def cmd_login_methods(self, ctx: Context, methods: tuple[str, ...]) -> None:
        self.login_method_list = methods

    @command("config", "aaa failover return-timeout <seconds:int:0-86400>", help=HELP)
    @command("config", "no aaa failover return-timeout", help=HELP, seconds=0)
    def cmd_return_timeout(self, ctx: Context, seconds: int) -> None:
        self.failover_return_timeout = seconds

    def _config_changed(self, ctx: Context) -> None:
        """A person changed the config: the listener follows at once (stored configs are applied
        as a whole by apply_all afterwards)."""
        if ctx.source == "cli" and self._nas_started:
            self._sync_listener(ctx)

    # ------------------------------------------------------------------ exec commands
    @command("exec", "test aaa user <user:word> password <password:word>", priv=15, help=HELP)
    def cmd_test_aaa(self, ctx: Context, user: str, password: str) -> Generator[Any, Any, None]:
        if not self.radius_hosts:
            ctx.print("% No RADIUS servers configured")
            return
        outcome = yield Wait(lambda: self.radius_authenticate(user, password),
                             prompt="Type escape sequence to abort.", on_error=_failed_outcome)
        ctx.print(outcome.text())

    @command("exec", "aaa load start rate <rps:int:1-2000> user <user:word> password <password:word>",
             priv=15, help=HELP)
    def cmd_load_start(self, ctx: Context, rps: int, user: str, password: str) -> None:
        if not self.radius_hosts:
            ctx.print("% No RADIUS servers configured")
            return
        if self._load_gen is not None and self._load_gen.running:
            ctx.print("% Load generator already running; stop it first (aaa load stop)")
            return
        state_dir = getattr(self, "state_dir", None)
        gen = LoadGenerator(rps, user, lambda: self.radius_authenticate(user, password),
                            records_path=state_dir / "aaa-load.jsonl" if state_dir else None,
                            on_done=self._load_done)
        self._load_gen = gen
        gen.start()
        self.publish("aaa-load-started", rate=rps, user=user)
        ctx.print(f"Load generator started: {rps} authentications/s as {user}")

    @command("exec", "aaa load stop", priv=15, help=HELP)
    def cmd_load_stop(self, ctx: Context) -> None:
        if self._load_gen is None or not self._load_gen.running:
            ctx.print("% Load generator is not running")
            return
        self._load_gen.stop()
        ctx.print("Load generator stopped (requests in flight finish in the background)")

    def _load_done(self, gen: LoadGenerator) -> None:
        """From the generator's thread once every offered request has finished."""
        def publish() -> None:
            with self.lock:
                if not self._closed:
                    s = gen.summary()
                    s.pop("per_server")
                    self.publish("aaa-load-stopped", **s)
        self.dispatch(publish)

    @command("exec", "clear aaa counters", priv=15, help=HELP)
    def cmd_clear_aaa(self, ctx: Context) -> None:
        self._fo_counters.clear()
        for st in self._servers.values():
            st.requests = st.accepts = st.rejects = st.failures = 0

    @command("exec", "show aaa", priv=1, help={"aaa": "Show AAA values"})
    def cmd_show_aaa(self, ctx: Context) -> None:
        s = self.aaa_status()
        p = ctx.print
        rt = s["return_timeout"]
        p(f"RADIUS client: current server {s['current'] or 'none'} (home server {s['home'] or 'none'})")
        p(f"  timeout {s['timeout']} s, retransmit {s['retransmit']}, return-timeout "
          + (f"{rt} s" if rt else "0 (return only when invited)"))
        p("Login authentication: default " + " ".join("group radius" if m == "radius" else m
                                                        for m in self.login_method_list))
        p("")
        p("Server           Auth-port State            Requests  Accepts  Rejects Failures")
        for v in s["servers"]:
            state = v["state"] if v["state"] != "current" or v["health"] == "alive" else f"current ({v['health']})"
            p(f"{v['ip']:<16} {v['auth_port']:<9} {state:<16} {v['requests']:>8} {v['accepts']:>8} "
              f"{v['rejects']:>8} {v['failures']:>8}")
        p("")
        lst = s["listener"]
        if not lst["enabled"]:
            p("Failover listener: disabled")
        elif not lst["transports"]:
            p(f"Failover listener: not listening (port {lst['port']})")
        else:
            p(f"Failover listener: port {lst['port']}, transports {', '.join(lst['transports'])}")
        for err in lst["errors"]:
            p(f"  error: {err}")
        c = s["counters"]
        p(f"Failover messages: accepted {c['accepted']} (failover {c['failover']}, reconnect {c['reconnect']}), "
          f"duplicate {c['duplicate']}")
        p("  dropped: " + ", ".join(f"{r} {n}" for r, n in c["dropped"].items()))
        ls = s["last_switch"]
        if ls is None:
            p("Last switch: never")
        else:
            p(f"Last switch: {date_text(ls['time'])} from {ls['from'] or 'none'} to {ls['to']} "
              f"({ls['why']}: {ls['detail']})")

    @command("exec", "show aaa load", priv=1, help={"load": "Load generator results"})
    def cmd_show_aaa_load(self, ctx: Context) -> None:
        s = self.aaa_load_summary()
        p = ctx.print
        if s is None:
            p("Load generator: never started")
            return
        p(f"Load generator: {'running' if s['running'] else 'stopped'}, {s['rate']} req/s as {s['user']}, "
          f"{s['duration_s']:.1f} s")
        for k, label in (("offered", "Offered"), ("accepted", "Accepted"), ("rejected", "Rejected"),
                         ("failed", "Failed (no answer)"), ("pending", "Pending"),
                         ("late", f"Late (> {LATE_S:g} s)"), ("skipped", "Skipped (backlog)")):
            p(f"  {label + ':':<20}{s[k]:>9}")
        fmt = lambda v: "-" if v is None else f"{v:.1f} ms"   # noqa: E731
        p(f"  {'Latency p50:':<20}{fmt(s['p50_ms']):>12}")
        p(f"  {'Latency max:':<20}{fmt(s['max_ms']):>12}")
        p("")
        p("Server           Accepted Rejected   Failed")
        for server, n in sorted(s["per_server"].items()):
            p(f"{server:<16} {n.get('accept', 0):>8} {n.get('reject', 0):>8} {n.get('failed', 0):>8}")

