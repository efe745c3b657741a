"""The cluster manager (claims 1-11): detects a failed element, picks a substitute from the pool,
has it clone the failed element's configuration, rewrites both switches' cross-connects to it, and
reboots the failed element with the cluster's default config so it rejoins the pool.

Inputs, whichever comes first: missed heartbeats on the event bus, an element's own `failing` or
`link-down` event, and the controller's port-status events for an element's switch ports. Every
step of a failover is written to the store before the next one starts; `resume` picks up whatever a
previous run of the manager left open, with the substitute it had already chosen.

Threads: the bus receiver, the controller watcher and the monitor (deadlines, retries, reconcile)
feed `on_message`, `on_port` and `check`; each failover runs in a worker of its own, so several
elements failing at once are handled side by side (claim 10). `lock` guards every decision.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from .bus import Message, ReplayGuard
from .plan import ClusterPlan
from .store import Failover, Store
from .xconnect import Rule, desired_rules, diff

log = logging.getLogger(__name__)

CLONE_TIMEOUT_S = 10.0
TRIGGER_RETRY_S = 1.0
RECONCILE_S = 5.0
RESYNC_AFTER_S = 1.5
SELECTION_POLICIES = ("ordered", "least-failed")


class Switches(Protocol):
    """The controller's northbound API, as much as the manager uses (twin.controller_client)."""

    def add_flow(self, switch: str, match: dict[str, Any], actions: list[dict[str, Any]], priority: int = ...,
                 cookie: int = ...) -> Any: ...
    def delete_flows(self, switch: str, match: dict[str, Any] | None = ..., priority: int | None = ...,
                     cookie: int | None = ..., strict: bool = ...) -> Any: ...
    def flows(self, switch: str) -> list[dict[str, Any]]: ...
    def ports(self, switch: str) -> list[dict[str, Any]]: ...


def digest(config: str) -> str:
    return hashlib.sha256(config.encode()).hexdigest()[:16]


def select_substitute(policy: str, pool: list[str], failures: dict[str, int]) -> str | None:
    """`ordered`: the pool's order (the lab's, repaired elements rejoin at the end); `least-failed`:
    the spare that failed least often, the pool's order breaking ties."""
    if not pool:
        return None
    if policy == "least-failed":
        return min(pool, key=lambda p: (failures.get(p, 0), pool.index(p)))
    return pool[0]


def default_config(plan: ClusterPlan, element: str) -> str:
    """The cluster's default config (claim 7): the element's own name, data interfaces up with no
    address; what a spare runs while it waits in the pool."""
    e = plan.elements[element]
    lines = [f"hostname {element}", "!"]
    for intf in sorted({e.access_intf, e.network_intf}):
        lines += [f"interface {intf}", " no ip address", " no shutdown", "!"]
    return "\n".join(lines + ["end"]) + "\n"


class ClusterManager:
    def __init__(self, plan: ClusterPlan, store: Store, switches: Switches, *,
                 send: Callable[[str, str, dict[str, Any]], None],
                 report: Callable[[str, str, dict[str, Any]], None] | None = None,
                 config_url: str = "", token: str = "", clock: Callable[[], float] = time.time) -> None:
        self.plan = plan
        self.store = store
        self.switches = switches
        self.send = send                      # (element or "all", type, body) on the trigger channel
        self.report = report or (lambda kind, text, fields: None)
        self.config_url = config_url
        self.token = token
        self.clock = clock
        self.lock = threading.RLock()
        self.xc_lock = threading.Lock()
        self.started = clock()
        self.last_seen: dict[str, float] = {}
        self.last_rx = 0.0                     # when the bus last delivered anything at all
        self.boots: dict[str, float] = {}
        self.port_up: dict[tuple[str, str], bool] = {}
        self.guard = ReplayGuard()
        self.counters: dict[str, int] = {"received": 0, "accepted": 0, "non-member": 0, "wrong-address": 0,
                                         "replay": 0, "malformed": 0, "bad-signature": 0, "unknown-type": 0}
        self.hold_after_select = False        # debug: stop a failover once its substitute is chosen
        self._clone_waits: dict[int, tuple[threading.Event, dict[str, Any]]] = {}
        self._workers: dict[int, threading.Thread] = {}
        self._last_order: dict[tuple[str, str], float] = {}
        self._resync_asked: dict[str, float] = {}
        self._mismatch: dict[str, float] = {}
        self._last_reconcile = clock()
        self.alarms: dict[str, str] = {}       # role -> why it is unprotected
        self.stopped = threading.Event()
        if store.is_empty():
            store.seed(plan.members, plan.pool)
            for e in plan.elements:
                if e not in plan.members and e not in plan.pool:
                    store.add_element(e)
            self.note("boot", f"cluster {plan.name}: {len(plan.members)} active element(s), pool "
                              f"{', '.join(plan.pool) or '(empty)'}")
        else:
            self.note("boot", "cluster manager restarted; state loaded from the archive")

    # ------------------------------------------------------------------ reporting
    def note(self, kind: str, text: str, element: str | None = None, **fields: Any) -> None:
        self.store.note(kind, text, element)
        self.report(kind, text, {"element": element, **fields})

    # ------------------------------------------------------------------ the bus
    def reject(self, reason: str, peer: str, detail: str) -> None:
        with self.lock:
            self.counters[reason] = self.counters.get(reason, 0) + 1
        self.note("rejected", f"{reason} from {peer or 'unknown peer'}: {detail}", reason=reason, peer=peer)

    def on_message(self, msg: Message, peer: str) -> None:
        """An authentic (signed) message from the bus; `peer` is the address it came from."""
        with self.lock:
            self.counters["received"] += 1
            e = self.plan.elements.get(msg.sender)
            if e is None:
                self.reject("non-member", peer, f"{msg.type} from {msg.sender!r}, which is not in cluster "
                                                f"{self.plan.name}; ignored")
                return
            if peer and peer != e.mgmt:
                self.reject("wrong-address", peer, f"{msg.type} claims to be {msg.sender} ({e.mgmt}); ignored")
                return
            why = self.guard.check(msg)
            if why is not None:
                self.reject("replay", peer, why)
                return
            self.counters["accepted"] += 1
            now = self.clock()
            self.last_seen[msg.sender] = now
            self.last_rx = now
            self.boots[msg.sender] = msg.boot
            handler = getattr(self, "_on_" + msg.type.replace("-", "_"), None)
            if handler is not None:
                handler(msg)

    def _on_hello(self, msg: Message) -> None:
        name, b = msg.sender, msg.body
        el = self.store.element(name)
        if el is None:
            return
        if el["state"] == "active" and el["role"]:
            role = el["role"]
            r = self.store.roles()[role]
            self._learn_macs(name, role, b.get("macs"))
            if isinstance(b.get("config"), str) and b.get("digest") != r["digest"]:
                self.store.snapshot(role, b["config"], str(b.get("digest")))
                self.note("archive", f"role {role}: configuration archived from {name} ({len(b['config'])} bytes)", name)
        self._liveness(name, el, msg)

    def _learn_macs(self, name: str, role: str, macs: Any) -> None:
        """The role's data MACs, from the first element that reports them (the clones keep them)."""
        if self.store.roles()[role]["macs"] or not isinstance(macs, dict):
            return
        e = self.plan.elements[name]
        mine = {k: v for k, v in macs.items() if k in (e.access_intf, e.network_intf) and isinstance(v, str)}
        if mine:
            self.store.set_macs(role, mine)
            self._wake_sync()

    def _on_heartbeat(self, msg: Message) -> None:
        name = msg.sender
        el = self.store.element(name)
        if el is None:
            return
        if el["state"] == "active" and el["role"]:
            r = self.store.roles()[el["role"]]
            d = msg.body.get("digest")
            now = self.clock()
            if not r["digest"] or not r["macs"]:
                # Its hello never arrived (sent before the bus connection settled): without an
                # archive a failover could not clone this role, so ask for the config now.
                if now - self._resync_asked.get(name, 0) > TRIGGER_RETRY_S:
                    self._resync_asked[name] = now
                    self.send(name, "resync", {"reason": "no configuration archived for role " + el["role"]})
            elif d and r["digest"] and d != r["digest"]:
                # A heartbeat can overtake the change it reflects (or trail it): only a mismatch
                # that lasts means the archive missed something.
                since = self._mismatch.setdefault(name, now)
                if now - since > RESYNC_AFTER_S and now - self._resync_asked.get(name, 0) > RESYNC_AFTER_S:
                    self._resync_asked[name] = now
                    self.send(name, "resync", {"reason": "config digest differs from the archive"})
            else:
                self._mismatch.pop(name, None)
        self._liveness(name, el, msg)

    def _liveness(self, name: str, el: dict[str, Any], msg: Message) -> None:
        """What hearing from an element means for the states that wait for it."""
        st = el["state"]
        if st == "offline":
            self.store.set_state(name, "spare", "heard from again")
            self.note("pool", f"{name} is back in the pool (heard from again)", name)
            self._resume_waiting()
        elif st == "failed":
            self._order_reload(name, "failed earlier; reachable again")
        elif st == "rebooting":
            if el["reload_at"] and msg.boot > el["reload_at"]:
                self.store.set_state(name, "spare", "rebooted with the cluster's default config", to_pool=True)
                self.note("pool", f"{name} rebooted with the default config and returned to the pool", name)
                self._resume_waiting()
            else:
                self._order_reload(name, "reload order not carried out yet")

    def _order_reload(self, name: str, why: str) -> None:
        now = self.clock()
        if now - self._last_order.get((name, "reload"), 0) < TRIGGER_RETRY_S:
            return
        self._last_order[(name, "reload")] = now
        el = self.store.element(name) or {}
        if el.get("state") != "rebooting":
            self.store.set_state(name, "rebooting", why, reload_at=now)
            self.note("reboot", f"{name}: reload with the cluster's default config ({why})", name)
        self.send(name, "reload-default", {"url": f"{self.config_url}/elements/{name}/default", "token": self.token})

    def _on_failing(self, msg: Message) -> None:
        if "events" not in self.plan.detection:
            return
        reason = str(msg.body.get("reason") or "no reason given")
        self.fail(msg.sender, f"announced failing: {reason}")

    def _on_link_down(self, msg: Message) -> None:
        if "events" not in self.plan.detection:
            return
        e = self.plan.elements[msg.sender]
        intf = msg.body.get("interface")
        if intf in (e.access_intf, e.network_intf):
            self.fail(msg.sender, f"reported {intf} down")

    def _on_config_changed(self, msg: Message) -> None:
        el = self.store.element(msg.sender) or {}
        if el.get("state") != "active" or not el.get("role"):
            return
        ctx, line = msg.body.get("context"), msg.body.get("line")
        if isinstance(line, str) and isinstance(ctx, list) and all(isinstance(c, str) for c in ctx):
            seq = self.store.accumulate(el["role"], ctx, line, str(msg.body.get("digest")))
            self.note("archive", f"role {el['role']}: change {seq} from {msg.sender}: "
                                 f"{' / '.join(ctx + [line])}", msg.sender)

    def _on_config_snapshot(self, msg: Message) -> None:
        el = self.store.element(msg.sender) or {}
        cfg = msg.body.get("config")
        if el.get("state") == "active" and el.get("role") and isinstance(cfg, str):
            role = el["role"]
            first = not self.store.roles()[role]["digest"]
            self.store.snapshot(role, cfg, str(msg.body.get("digest")))
            self.note("archive", f"role {role}: configuration {'archived' if first else 're-archived'} from "
                                 f"{msg.sender}", msg.sender)
            self._learn_macs(msg.sender, role, msg.body.get("macs"))

    def _on_clone_done(self, msg: Message) -> None:
        self._clone_answer(msg, True)

    def _on_clone_failed(self, msg: Message) -> None:
        self._clone_answer(msg, False)

    def _clone_answer(self, msg: Message, ok: bool) -> None:
        fid = msg.body.get("failover")
        wait = self._clone_waits.get(fid) if isinstance(fid, int) else None
        if wait is None:
            return
        f = self.store.failover(fid)
        if f.substitute != msg.sender:
            return
        wait[1].update(msg.body, ok=ok)
        wait[0].set()

    # ------------------------------------------------------------------ the controller
    def on_port(self, switch: str, port: str, up: bool) -> None:
        with self.lock:
            if "ports" not in self.plan.detection:
                self.port_up[(switch, port)] = up
                return
            was = self.port_up.get((switch, port))
            self.port_up[(switch, port)] = up
            name = self.plan.element_of_port(switch, port)
            if name is None or was is False and not up:
                return
            el = self.store.element(name) or {}
            if not up and el.get("state") == "active":
                self.fail(name, f"switch port {switch}:{port} went down")

    # ------------------------------------------------------------------ failure handling
    def fail(self, name: str, reason: str) -> Failover | None:
        """Start a failover for the role `name` holds; a second report of the same failure is ignored."""
        with self.lock:
            el = self.store.element(name)
            if el is None or el["state"] != "active" or not el["role"]:
                return None
            role = el["role"]
            if self.store.open_failover_for(role) is not None:
                return None
            self.store.set_state(name, "failed", reason, role=None, failed=True)
            self.store.set_holder(role, None)
            f = self.store.open_failover(role, name, reason)
            self.note("failure", f"{name} (role {role}) failed: {reason}; failover {f.id} started", name,
                      failover=f.id, role=role, reason=reason)
            self._start_worker(f.id)
            return f

    def _start_worker(self, fid: int) -> None:
        w = self._workers.get(fid)
        if w is not None and w.is_alive():
            return
        w = threading.Thread(target=self._run_failover, args=(fid,), name=f"failover-{fid}", daemon=True)
        self._workers[fid] = w
        w.start()

    def resume(self) -> None:
        """Finish what a previous run of the manager left open, with the substitutes it chose."""
        for f in self.store.failovers(open_only=True):
            self.note("resume", f"failover {f.id} (role {f.role}) resumed at step {f.state}"
                                + (f" with substitute {f.substitute}" if f.substitute else ""), f.failed)
            self._start_worker(f.id)

    def _resume_waiting(self) -> None:
        for f in self.store.failovers(open_only=True):
            if f.state == "waiting":
                self._start_worker(f.id)

    def selectable(self) -> list[str]:
        now = self.clock()
        out = []
        for p in self.store.pool():
            e = self.plan.elements.get(p)
            if e is None:
                continue
            seen = self.last_seen.get(p)
            if seen is None or now - seen > self.plan.dead_s:
                continue
            if self.port_up.get((self.plan.access_switch, e.access_port)) is False or \
                    self.port_up.get((self.plan.network_switch, e.network_port)) is False:
                continue
            out.append(p)
        return out

    def _run_failover(self, fid: int) -> None:
        try:
            self._failover_steps(fid)
        except Exception as exc:  # a bug must not kill the manager; the monitor retries
            log.exception("failover %s", fid)
            self.note("error", f"failover {fid}: {exc.__class__.__name__}: {exc}")

    def _failover_steps(self, fid: int) -> None:
        while not self.stopped.is_set():
            f = self.store.failover(fid)
            if f.state in ("detected", "waiting"):
                with self.lock:
                    elements = self.store.elements()
                    sub = select_substitute(self.plan.selection, self.selectable(),
                                            {n: e["failures"] for n, e in elements.items()})
                    if sub is None:
                        if f.state != "waiting":
                            self.store.advance(fid, "waiting")
                            self.alarms[f.role] = "pool exhausted"
                            self.note("alarm", f"POOL EXHAUSTED: no spare for role {f.role} (failed {f.failed}); "
                                               f"its circuits {', '.join(self.plan.circuits.get(f.role, [])) or '-'} "
                                               "are down until a spare joins the pool", f.failed,
                                      role=f.role, circuits=self.plan.circuits.get(f.role, []))
                        # forget this worker under the lock, so a spare arriving right now starts a new one
                        self._workers.pop(fid, None)
                        return
                    self.store.set_state(sub, "cloning", f"substitute for {f.failed} (failover {fid})", role=f.role)
                    self.alarms.pop(f.role, None)
                    f = self.store.advance(fid, "selected", substitute=sub)
                    self.note("select", f"failover {fid}: {sub} selected from the pool to replace {f.failed} "
                                        f"(policy {self.plan.selection})", sub, failover=fid, substitute=sub)
                if self.hold_after_select:
                    self.note("debug", f"failover {fid} held after selection (debug cluster hold)")
                    return
            elif f.state == "selected":
                if self.hold_after_select:
                    return
                why = self._clone(f)
                if why is not None:
                    with self.lock:
                        self.store.set_state(f.substitute or "", "failed", f"clone failed: {why}", failed=True)
                        self.store.advance(fid, "detected")
                        self.note("clone", f"failover {fid}: {f.substitute} did not become a clone ({why}); "
                                           "choosing another", f.substitute)
                    continue
                f = self.store.advance(fid, "cloned")
            elif f.state == "cloned":
                assert f.substitute
                with self.lock:
                    self.store.set_holder(f.role, f.substitute)
                    self.store.set_state(f.substitute, "active", f"holds role {f.role}", role=f.role)
                while not self.stopped.is_set():
                    try:
                        changed = self.sync_xconnect()
                        break
                    except Exception as exc:
                        self.note("xconnect", f"failover {fid}: cannot rewrite the cross-connects yet ({exc}); "
                                              "retrying", f.substitute)
                        self.stopped.wait(0.5)
                else:
                    return
                f = self.store.advance(fid, "done", finished=True)
                ms = {k: round((v - f.started) * 1000, 1) for k, v in f.steps.items()}
                self.note("done", f"failover {fid}: role {f.role} moved from {f.failed} to {f.substitute}; "
                                  f"{len(changed)} cross-connect rule(s) rewritten; done {ms['done']:.0f} ms "
                                  "after detection", f.substitute, failover=fid, steps_ms=ms, role=f.role,
                          failed=f.failed, substitute=f.substitute, rules=changed)
                with self.lock:
                    # only an element heard since it failed can obey; a dead one gets the order
                    # when it is heard from again (_liveness)
                    seen = self.last_seen.get(f.failed)
                    if seen is not None and seen > f.started:
                        self._order_reload(f.failed, f"failed over to {f.substitute}")
                return
            else:
                return

    def _clone(self, f: Failover) -> str | None:
        """Trigger event to the substitute (claim 4): it fetches the role's initial and accumulated
        config from the config server and becomes a logical clone. Retried until it answers.
        None once it is a clone, else why not."""
        role = self.store.roles()[f.role]
        ev = threading.Event()
        answer: dict[str, Any] = {}
        self._clone_waits[f.id] = (ev, answer)
        body = {"failover": f.id, "role": f.role, "failed": f.failed, "macs": role["macs"], "token": self.token,
                "initial": f"{self.config_url}/roles/{f.role}/initial",
                "accumulated": f"{self.config_url}/roles/{f.role}/accumulated"}
        deadline = time.monotonic() + CLONE_TIMEOUT_S
        try:
            while time.monotonic() < deadline and not self.stopped.is_set():
                self.send(f.substitute or "", "clone", body)
                if ev.wait(TRIGGER_RETRY_S):
                    break
            if not answer:
                return f"no answer in {CLONE_TIMEOUT_S:.0f} s"
            if not answer.get("ok"):
                return str(answer.get("error") or "it reported a failure")
            if isinstance(answer.get("config"), str):
                self.store.snapshot(f.role, answer["config"], str(answer.get("digest")))
            self.note("clone", f"failover {f.id}: {f.substitute} is a clone of {f.failed} "
                               f"({answer.get('lines', '?')} config lines applied)", f.substitute)
            return None
        finally:
            self._clone_waits.pop(f.id, None)

    # ------------------------------------------------------------------ cross-connects
    def holders(self) -> dict[str, str | None]:
        return {r: v["holder"] for r, v in self.store.roles().items()}

    def role_macs(self) -> dict[str, str | None]:
        out = {}
        for r, v in self.store.roles().items():
            e = self.plan.elements.get(r)
            out[r] = v["macs"].get(e.network_intf) if e else None
        return out

    def desired(self) -> list[Rule]:
        return desired_rules(self.plan, self.holders(), self.role_macs())

    def _installed(self) -> dict[str, Rule]:
        return {k: Rule(v["switch"], v["priority"], tuple(tuple(x) for x in v["match"]), tuple(v["outputs"]))
                for k, v in self.store.installed_rules().items()}

    def sync_xconnect(self, force: bool = False) -> list[str]:
        """Make the switches carry the desired cross-connects: new rules first, stale ones after
        (`force`: every desired rule is sent again, for a switch that lost them). Returns the rules
        changed. Raises when the controller cannot be reached (callers retry)."""
        with self.xc_lock:
            want = self.desired()
            installed = self._installed()
            d = diff(installed, want)
            add = want if force else d.add
            for r in add:
                self.switches.add_flow(r.switch, dict(r.match), r.actions, priority=r.priority, cookie=self.plan.cookie)
            for r in d.delete:
                self.switches.delete_flows(r.switch, dict(r.match), priority=r.priority, strict=True)
            self.store.set_rules({r.key: {"switch": r.switch, "priority": r.priority, "match": [list(x) for x in r.match],
                                          "outputs": list(r.outputs)} for r in want})
            return [("+ " + r.describe()) for r in (d.add if not force else add)] + [("- " + r.describe()) for r in d.delete]

    def _wake_sync(self) -> None:
        threading.Thread(target=self._try_sync, name="xconnect-sync", daemon=True).start()

    def _try_sync(self, force: bool = False) -> None:
        try:
            changed = self.sync_xconnect(force)
            if changed:
                self.note("xconnect", f"{len(changed)} cross-connect rule(s) installed" + (" (reconciled)" if force else ""))
        except Exception as exc:
            log.info("cross-connect sync deferred: %s", exc)

    def reconcile(self) -> None:
        """Switches that lost rules (a switch restart, a hand-made `ovs-ofctl del-flows`) get them
        back. Compared with what the manager installed, not with what it wants now: a role whose
        holder just failed is the failover's business, not a reason to rewrite everything."""
        if not self.xc_lock.acquire(blocking=False):
            return                  # a sync is installing rules right now: counting them would race it
        try:
            expected: dict[str, int] = {}
            for r in self._installed().values():
                expected[r.switch] = expected.get(r.switch, 0) + 1
            missing = []
            for sw in (self.plan.access_switch, self.plan.network_switch):
                have = sum(1 for fl in self.switches.flows(sw) if int(fl.get("cookie", 0)) == self.plan.cookie)
                if have < expected.get(sw, 0):
                    missing.append(f"{sw} carries {have} cluster rule(s), {expected[sw]} installed")
        except Exception as exc:
            log.info("reconcile deferred: %s", exc)
            return
        finally:
            self.xc_lock.release()
        if missing:
            self.note("xconnect", "; ".join(missing) + ": reinstalling")
            self._try_sync(force=True)

    # ------------------------------------------------------------------ periodic checks
    def check(self) -> None:
        """Heartbeat deadlines and pool liveness; called every half heartbeat."""
        now = self.clock()
        with self.lock:
            for name, el in self.store.elements().items():
                seen = self.last_seen.get(name)
                if el["state"] == "active" and "heartbeats" in self.plan.detection:
                    if seen is None:
                        if now - self.started > self.plan.boot_grace_s:
                            self.fail(name, f"never heard from in {self.plan.boot_grace_s:.0f} s")
                    elif now - seen > self.plan.dead_s and (now - self.last_rx <= max(2 * self.plan.hb_ms / 1000, 0.25)
                                                            or now - seen > 3 * self.plan.dead_s):
                        # Silent while the bus is flowing: dead. If nothing was heard lately, the
                        # manager itself may have stalled (a loaded machine): wait for more evidence.
                        missed = int((now - seen) * 1000 / self.plan.hb_ms)
                        self.fail(name, f"missed {missed} heartbeats ({(now - seen) * 1000:.0f} ms silent)")
                elif el["state"] == "spare" and seen is not None and now - seen > max(self.plan.dead_s * 3, 1.0):
                    self.store.set_state(name, "offline", "spare not heard from")
                    self.note("pool", f"{name} left the pool: not heard from", name)
            waiting = any(f.state == "waiting" for f in self.store.failovers(open_only=True))
            if waiting and self.selectable():
                self._resume_waiting()
        if now - self._last_reconcile > RECONCILE_S:
            self._last_reconcile = now
            self.reconcile()

    # ------------------------------------------------------------------ operator commands (claims 8, 13)
    def pool_add(self, name: str) -> str:
        with self.lock:
            el = self.store.element(name)
            if name not in self.plan.elements or el is None:
                raise ValueError(f"{name} is not wired to both cluster switches ({self.plan.access_switch}, "
                                 f"{self.plan.network_switch}); known elements: {', '.join(sorted(self.plan.elements))}")
            if el["state"] in ("active", "cloning"):
                raise ValueError(f"{name} is {el['state']}" + (f" (role {el['role']})" if el["role"] else ""))
            if el["state"] == "spare":
                return f"{name} is already in the pool"
            self.store.set_state(name, "spare", "added by the operator", to_pool=True)
            self.note("pool", f"{name} added to the pool by the operator", name)
            self._resume_waiting()
            return f"{name} added to the pool"

    def pool_remove(self, name: str) -> str:
        with self.lock:
            el = self.store.element(name)
            if el is None:
                raise ValueError(f"{name} is not an element of cluster {self.plan.name}")
            if el["state"] not in ("spare", "offline"):
                raise ValueError(f"{name} is not in the pool (it is {el['state']})")
            self.store.set_state(name, "removed", "removed by the operator")
            self.note("pool", f"{name} removed from the pool by the operator", name)
            return f"{name} removed from the pool"

    def status(self) -> dict[str, Any]:
        with self.lock:
            now = self.clock()
            elements = self.store.elements()
            for name, el in elements.items():
                seen = self.last_seen.get(name)
                el["last_heard_ms"] = None if seen is None else round((now - seen) * 1000)
            return {"cluster": self.plan.name, "access_switch": self.plan.access_switch,
                    "network_switch": self.plan.network_switch, "selection": self.plan.selection,
                    "roles": {r: {"holder": v["holder"], "circuits": self.plan.circuits.get(r, []),
                                  "macs": v["macs"], "changes": len(self.store.accumulated(r))}
                              for r, v in sorted(self.store.roles().items())},
                    "elements": elements, "pool": self.store.pool(), "alarms": dict(self.alarms),
                    "failovers": [f.to_dict() for f in self.store.failovers(limit=50)],
                    "bus": dict(self.counters), "hold_after_select": self.hold_after_select}
