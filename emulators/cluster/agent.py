"""An element's side of the cluster (mixed into the router kind): it publishes heartbeats, link
changes, "failing" and every config change on the event bus, and obeys the manager's triggers:

* `clone` (claims 4-5, 7): fetch the role's initial config and then the partial accumulated config
  from the manager's config server, apply both, take over the role's MACs, save, and answer
  `clone-done` with the resulting config. Idempotent per failover: a repeated trigger is answered
  again, not applied twice.
* `reload-default` (claims 6-7): fetch the cluster's default config, make it the startup-config
  and reload, so the element comes back clean and rejoins the pool.
* `resync`: publish the whole running config and the data MACs (the manager's archive missed a
  change, or never got the hello).

Active only on an element the lab put in a cluster (`cluster-agent.json` in its state directory).
Sockets are ZeroMQ: one thread owns the PUB socket (queue + heartbeat timer), one the SUB socket.
"""
from __future__ import annotations

import hashlib
import json
import logging
import queue
import re
import threading
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cli.context import Context
from ..cli.tree import command
from .bus import EVENTS_PORT, TRIGGER_PORT, TRIGGER_TYPES, BusError, ReplayGuard, Sequencer, decode, encode
from .config_server import TOKEN_HEADER
from .plan import AGENT_FILE, AgentPlan

log = logging.getLogger(__name__)

_CLEAR_SECRET = re.compile(r"\b(secret|password|key)\s+(0\s+)?(?![57]\s)\S+", re.IGNORECASE)
_NAVIGATION = re.compile(r"^\s*(exit|end|do\s|\^Z)", re.IGNORECASE)
FETCH_TIMEOUT_S = 5.0


def _quick_reconnect(sock: Any) -> None:
    """An agent often starts before the lab's management switch forwards: its first TCP SYNs to
    the manager are lost, and the kernel's SYN backoff (1 s, 2 s, ...) would leave it off the bus
    for seconds. A connect that has not completed in 0.5 s is abandoned and retried instead."""
    import zmq

    sock.setsockopt(zmq.CONNECT_TIMEOUT, 500)
    sock.setsockopt(zmq.RECONNECT_IVL, 100)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 500)


def config_digest(config: str) -> str:
    return hashlib.sha256(config.encode()).hexdigest()[:16]


class ClusterAgent:
    """Mix in before `BaseDevice` (`class Router(ClusterAgent, RadiusNas, BaseDevice)`)."""

    if TYPE_CHECKING:
        name: str
        state_dir: Path
        lock: threading.RLock
        hostname: str
        sessions: list[Any]
        def render_body(self) -> str: ...
        def syslog(self, message: str) -> None: ...
        def publish(self, type: str, **fields: Any) -> dict[str, Any]: ...
        def subscribe(self, callback: Any) -> None: ...
        def command_set(self) -> Any: ...
        def load_config(self, text: str, *, source: str = "startup") -> list[str]: ...
        def reset_config(self) -> None: ...
        def apply_all(self) -> None: ...
        def save_startup(self) -> None: ...
        def perform_reload(self) -> None: ...
        def dispatch(self, fn: Any) -> None: ...
        def _initial_text(self) -> str: ...
        def _links(self) -> dict[str, Any]: ...

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.cluster_plan: AgentPlan | None = None
        self._agent_q: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._agent_threads: list[threading.Thread] = []
        self._agent_halt = threading.Event()
        self._agent_zctx: Any = None
        self._clones: dict[int, dict[str, Any]] = {}
        self.agent_counters = {"sent": 0, "triggers": 0, "rejected": 0}
        self.agent_last = ""
        self._agent_dirty = False     # the config changed since the heartbeat digest was computed
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        super().start()  # type: ignore[misc]
        path = self.state_dir / AGENT_FILE
        if path.exists() and getattr(self, "apply_enabled", True):
            try:
                self._agent_start(AgentPlan.load(path))
            except Exception:
                log.exception("%s: cluster agent did not start", self.name)

    def _agent_start(self, plan: AgentPlan) -> None:
        import zmq

        self.cluster_plan = plan
        self._agent_seq = Sequencer(self.name)
        self._agent_zctx = zmq.Context()
        self.subscribe(self._agent_device_event)
        for target, nm in ((self._agent_sender, "pub"), (self._agent_receiver, "sub")):
            t = threading.Thread(target=target, name=f"{self.name}-cluster-{nm}", daemon=True)
            t.start()
            self._agent_threads.append(t)
        self._agent_hello()

    def shutdown_backend(self) -> None:
        self._agent_halt.set()
        self._agent_q.put(None)
        for t in self._agent_threads:
            t.join(timeout=3)
        if self._agent_zctx is not None:
            self._agent_zctx.destroy(linger=0)
            self._agent_zctx = None
        super().shutdown_backend()  # type: ignore[misc]

    # ------------------------------------------------------------------ publishing
    def agent_send(self, type_: str, **body: Any) -> None:
        if self.cluster_plan is not None:
            self._agent_q.put((type_, body))

    def _data_macs(self) -> dict[str, str]:
        return {n: l.mac.lower() for n, l in self._links().items() if n not in ("lo", "mgmt0")}

    def _agent_hello(self) -> None:
        with self.lock:
            cfg = self.render_body()
        self.agent_send("hello", config=cfg, digest=config_digest(cfg), macs=self._data_macs(),
                        hostname=self.hostname)

    def _agent_sender(self) -> None:
        import zmq

        plan = self.cluster_plan
        assert plan is not None
        pub = self._agent_zctx.socket(zmq.PUB)
        pub.setsockopt(zmq.LINGER, 0)
        pub.setsockopt(zmq.SNDHWM, 10000)
        _quick_reconnect(pub)
        pub.connect(f"tcp://{plan.manager_ip}:{EVENTS_PORT}")
        secret = plan.secret.encode()
        hb = plan.hb_ms / 1000
        next_hb = time.monotonic()
        next_digest = 0.0
        digest = ""
        # A PUB socket drops what it sends before the manager's subscription reaches it (ZeroMQ's
        # "slow joiner"), so the hello is repeated while the connection settles.
        started = time.monotonic()
        hellos = [0.3, 1.0, 3.0]
        try:
            while not self._agent_halt.is_set():
                now = time.monotonic()
                if hellos and now - started >= hellos[0]:
                    hellos.pop(0)
                    self._agent_hello()
                if now >= next_hb:
                    if (now >= next_digest or self._agent_dirty) and self.lock.acquire(timeout=0.02):
                        # never wait on a long config load: a late heartbeat looks like a death
                        try:
                            self._agent_dirty = False
                            digest = config_digest(self.render_body())
                        finally:
                            self.lock.release()
                        next_digest = now + 1.0
                    pub.send(encode(self._agent_seq.make("heartbeat", digest=digest), secret))
                    next_hb = now + hb
                try:
                    item = self._agent_q.get(timeout=max(0.0, next_hb - time.monotonic()))
                except queue.Empty:
                    continue
                if item is None:
                    return
                type_, body = item
                pub.send(encode(self._agent_seq.make(type_, **body), secret))
                self.agent_counters["sent"] += 1
        finally:
            pub.close(linger=0)

    def _agent_device_event(self, ev: dict[str, Any]) -> None:
        """Link changes the router itself noticed go to the bus too."""
        if ev.get("type") in ("link-down", "link-up") and ev.get("interface") not in ("mgmt0", None):
            self.agent_send(ev["type"], interface=ev["interface"], status=ev.get("status"))

    def command_done(self, session: Any, mode: str, line: str, output: list[str]) -> None:
        super().command_done(session, mode, line, output)  # type: ignore[misc]
        if self.cluster_plan is None or not self.command_set().modes[mode].config:
            return
        stack = session.modes.stack
        entered = session.modes.mode != mode
        if entered:
            stack[-1][1]["_line"] = line.strip()
        if entered or _NAVIGATION.match(line) or any(o.startswith("%") or o.startswith("Bad mask") for o in output):
            return
        cfg = self.render_body()
        self._agent_dirty = True
        if _CLEAR_SECRET.search(line):      # never a secret in clear on the bus: the hashed config instead
            self.agent_send("config-snapshot", config=cfg, digest=config_digest(cfg))
            return
        names = [e[0] for e in stack]
        depth = names.index(mode) if mode in names else 1
        context = [e[1].get("_line", "") for e in stack[2:depth + 1]]
        self.agent_send("config-changed", context=context, line=line.strip(), digest=config_digest(cfg))

    # ------------------------------------------------------------------ triggers
    def _agent_receiver(self) -> None:
        import zmq

        plan = self.cluster_plan
        assert plan is not None
        sub = self._agent_zctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        _quick_reconnect(sub)
        for topic in (self.name, "all"):
            sub.setsockopt(zmq.SUBSCRIBE, f"{topic} ".encode())
        sub.connect(f"tcp://{plan.manager_ip}:{TRIGGER_PORT}")
        guard = ReplayGuard()
        secret = plan.secret.encode()
        try:
            while not self._agent_halt.is_set():
                if not sub.poll(200):
                    continue
                parts = sub.recv_multipart()
                if len(parts) != 2 or parts[0].decode(errors="replace").strip() not in (self.name, "all"):
                    continue
                try:
                    msg = decode(parts[1], secret, TRIGGER_TYPES)
                    why = guard.check(msg)
                    if why:
                        raise BusError("replay", why)
                except BusError as exc:
                    self.agent_counters["rejected"] += 1
                    self.syslog(f"%CLUSTER-4-REJECTED: trigger refused: {exc}")
                    continue
                self.agent_counters["triggers"] += 1
                self.agent_last = f"{msg.type} from {msg.sender} at {time.strftime('%H:%M:%S')}"
                threading.Thread(target=self._agent_trigger, args=(msg.type, msg.body), daemon=True).start()
        finally:
            sub.close(linger=0)

    def _fetch(self, url: str, token: str) -> bytes:
        req = urllib.request.Request(url, headers={TOKEN_HEADER: token})
        with urllib.request.urlopen(req, timeout=FETCH_TIMEOUT_S) as r:  # noqa: S310 - the lab's own server
            return r.read()

    def _agent_trigger(self, type_: str, body: dict[str, Any]) -> None:
        try:
            if type_ == "clone":
                self._agent_clone(body)
            elif type_ == "reload-default":
                self._agent_reload_default(body)
            elif type_ == "resync":
                with self.lock:
                    cfg = self.render_body()
                self.agent_send("config-snapshot", config=cfg, digest=config_digest(cfg), macs=self._data_macs())
        except Exception as exc:
            log.exception("%s: trigger %s", self.name, type_)
            if type_ == "clone":
                fid = body.get("failover")
                if isinstance(fid, int) and not self._clones.get(fid):
                    self._clones.pop(fid, None)     # not a clone: a repeated trigger tries again
                self.agent_send("clone-failed", failover=fid, error=f"{exc.__class__.__name__}: {exc}")

    def _agent_clone(self, body: dict[str, Any]) -> None:
        fid = int(body["failover"])
        done = self._clones.get(fid)
        if done is not None:
            if done.get("answer"):
                self.agent_send("clone-done", **done["answer"])
            return
        self._clones[fid] = {}
        token = str(body["token"])
        initial = self._fetch(str(body["initial"]), token).decode()
        accumulated = json.loads(self._fetch(str(body["accumulated"]), token))
        lines = 0
        with self.lock:
            for s in list(self.sessions):
                s.notify(f"%CLUSTER-5-CLONE: becoming a clone of {body.get('failed')} (role {body.get('role')})")
            self.reset_config()
            errors = self.load_config(self._credentials_text() + initial, source="sync")
            lines += initial.count("\n")
            for a in accumulated:
                text = "\n".join(list(a["context"]) + [a["line"]]) + "\nend\n"
                errors += self.load_config(text, source="sync")
                lines += 1
            macs = body.get("macs") or {}
            if macs:
                text = "".join(f"interface {i}\n mac-address {m}\n" for i, m in sorted(macs.items())) + "end\n"
                errors += self.load_config(text, source="sync")
            self.apply_all()
            self.save_startup()
            cfg = self.render_body()
            self._agent_dirty = True
        self._garp()
        self.syslog(f"%CLUSTER-5-CLONE: now a logical clone of {body.get('failed')}: role {body.get('role')}, "
                    f"{lines} line(s) applied, {len(errors)} rejected")
        self.publish("cluster-clone", failover=fid, role=body.get("role"), failed=body.get("failed"),
                     lines=lines, errors=errors)
        answer = {"failover": fid, "role": body.get("role"), "config": cfg, "digest": config_digest(cfg),
                  "lines": lines, "errors": errors}
        self._clones[fid] = {"answer": answer}
        self.agent_send("clone-done", **answer)

    def _credentials_text(self) -> str:
        """The lab's users and enable secret, which the factory config always carries."""
        keep = self.initial_config  # type: ignore[has-type]
        self.initial_config = None
        try:
            return self._initial_text()
        finally:
            self.initial_config = keep

    def _garp(self) -> None:
        from ..arp import send_garp

        for name, cfg in list(getattr(self, "interfaces", {}).items()):
            if cfg.address and not cfg.shutdown:
                links = self._links()
                if name in links:
                    try:
                        send_garp(name, cfg.address[0], links[name].mac, count=2)
                    except OSError as exc:
                        log.debug("%s: GARP on %s: %s", self.name, name, exc)

    def _agent_reload_default(self, body: dict[str, Any]) -> None:
        text = self._fetch(str(body["url"]), str(body["token"])).decode()
        full = self._credentials_text() + text
        with self.lock:
            self.syslog("%CLUSTER-5-RELOAD: reloading with the cluster's default configuration")
            path = self.state_dir / "startup-config"
            tmp = path.with_name(".startup-config.cluster.tmp")
            tmp.write_text(full)
            tmp.replace(path)
            self.last_reload_reason = "Cluster manager: default configuration"
        self.publish("cluster-reload", reason="default configuration")
        self.dispatch(self.perform_reload)

    # ------------------------------------------------------------------ CLI
    @command("exec", "cluster failing [<reason:line>]", priv=15,
             help={"cluster": "Cluster membership", "failing": "Announce to the cluster manager that this "
                   "element is failing", "reason": "Why (sent with the announcement)"})
    def cmd_cluster_failing(self, ctx: Context, reason: str = "operator announcement") -> None:
        if self.cluster_plan is None:
            ctx.print("% This element is not a member of a cluster")
            return
        self.agent_send("failing", reason=reason)
        ctx.print(f"Failing announced to cluster {self.cluster_plan.cluster} ({self.cluster_plan.manager_ip})")

    @command("exec", "show cluster member", priv=1,
             help={"cluster": "Cluster membership", "member": "This element's cluster agent"})
    def cmd_show_cluster_member(self, ctx: Context) -> None:
        plan = self.cluster_plan
        if plan is None:
            ctx.print("This element is not a member of a cluster")
            return
        c = self.agent_counters
        ctx.print(f"Cluster {plan.cluster}, manager {plan.manager_ip} (events tcp/{EVENTS_PORT}, triggers tcp/{TRIGGER_PORT})")
        ctx.print(f"  heartbeat every {plan.hb_ms} ms; sent {c['sent']} event(s); {c['triggers']} trigger(s) obeyed, "
                  f"{c['rejected']} refused")
        ctx.print(f"  last trigger: {self.agent_last or 'none'}")
