"""The `rp` device kind: one unit (route processor) of a redundant pair. Two lab nodes of kind `rp`
name each other as peers; they elect an Active, and the other climbs the Standby ladder (COLD,
COLD-CONFIG, COLD-FILESYS, COLD-BULK, HOT) while the Active's config is bulk-synced to it in its own
image's syntax. Every later config command on the Active is synced line by line. On a switchover
(the Active dies, or `redundancy force-switchover`) the Standby opens its data plane with the synced
config: both units are cabled to the same LANs and share the interface MACs, so traffic through the
pair recovers without hosts noticing more than a short gap.

The unit is a router (every router command, real forwarding) whose grammar depends on the software
image it runs (`images.py`); the decisions about diff lists, transformations and policies are in
`configsync.py`, the wire in `rf_channel.py`, ISSU in `issu.py`. The unit's hardware identity
(which unit it is, its peer's address, the pair's secret) is not configuration: the lab writes it to
`redundancy.json` in the device's state directory, as a chassis keeps it in its backplane EEPROM.
"""
from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from emulators.arp import send_garp
from emulators.cli.context import Confirm, Context
from emulators.cli.runner import apply_config_lines
from emulators.cli.tree import CommandSet, Mode, command
from emulators.netlink import FakeNetlink, NetBackend, Netlink
from emulators.router import UNMANAGED, Router

from . import images
from .clidump import NAVIGATION, _MatchCtx, cli_dump, walk_line
from .configsync import LineSync, Negotiation, Outcome, negotiate, upgrade, verify
from .dataplane import GatedNet, disable_ipv6, pair_mac
from .issu import IssuMixin
from .rf_channel import PORT, RfChannel

log = logging.getLogger(__name__)

# Redundancy-facility states, numbered as IOS prints them.
RF_STATES = {"DISABLED": 1, "INITIALIZATION": 2, "NEGOTIATION": 3, "STANDBY COLD": 4,
             "STANDBY COLD-CONFIG": 5, "STANDBY COLD-FILESYS": 6, "STANDBY COLD-BULK": 7,
             "STANDBY HOT": 8, "ACTIVE": 13}
GARP_SCHEDULE_S = (0.0, 0.01, 0.03, 0.07, 0.15, 0.3)
BOOT_WAIT_S = 1.5          # how long a booting unit looks for its peer before going active alone
# A peer silent this long is down (a crashed one is seen at once: its connection closes). The pair
# talks over the lab's management switch, and the machine's one userspace datapath stalls up to
# about 0.9 s while other labs boot or tear down: a tighter deadline made Standbys take over from
# healthy Actives. `dead_ms` in the unit's hardware settings overrides it.
DEAD_MS = 1500
HARDWARE_FILE = "redundancy.json"
BOOT_IMAGE_FILE = "boot-image"

_GRAMMARS: dict[tuple[type, int], CommandSet] = {}


def grammar(cls: type, level: int) -> CommandSet:
    """The command trees of `cls` as an image of `level` has them: the common commands plus the
    versioned features of that image."""
    key = (cls, level)
    cs = _GRAMMARS.get(key)
    if cs is None:
        cs = CommandSet.from_class(cls)
        for idx, f in enumerate(images.FEATURES):
            if f.at(level):
                cs.add(f.mode, f.syntax, "cmd_feature", help=f.help, feature=idx)
                cs.add(f.mode, f.no_syntax, "cmd_feature", help=f.help, feature=idx, no=True)
        _GRAMMARS[key] = cs
    return cs


_CLEAR_SECRET = re.compile(r"\b(secret|password|key)\s+(0\s+)?(?![57]\s)\S+", re.IGNORECASE)


def _failed(output: list[str]) -> bool:
    return any(o.startswith("%") or o.startswith("Bad mask") for o in output)


class RpUnit(IssuMixin, Router):
    kind = "rp"
    modes = Router.modes + (Mode("config-red", "(config-red)#", "config"),)
    hardware = "S2T"
    tick_interval = 0.25

    def __init__(self, name: str, *, state_dir: Path, users: dict[str, str], enable_secret: str,
                 version: str | None = None, initial_config: str | None = None, apply: bool = True,
                 netlink: NetBackend | None = None, hw: dict[str, Any] | None = None) -> None:
        state_dir = Path(state_dir)
        if hw is None:
            try:
                hw = json.loads((state_dir / HARDWARE_FILE).read_text())
            except FileNotFoundError:
                hw = {}
        self.hw = hw
        try:
            boot = (state_dir / BOOT_IMAGE_FILE).read_text().strip()
        except FileNotFoundError:
            boot = ""
        self.image = images.image(boot or version or images.DEFAULT_IMAGE)
        inner = netlink if netlink is not None else (Netlink() if apply else FakeNetlink())
        self.gate = GatedNet(inner)
        self.unit = str(hw.get("unit", "primary"))
        self.pair = str(hw.get("pair", name))
        self.role = "init"
        self.rf_state = "INITIALIZATION"
        self.state_since = time.time()
        self.peer: dict[str, Any] = {}
        self.peer_state = "DISABLED"
        self.operating_mode = "sso"
        self.mode_reason = ""
        self.neg: Negotiation | None = None
        self.line_sync: LineSync | None = None
        self.out_of_sync = False
        self.counters = {"bulk_syncs": 0, "bulk_lines": 0, "lines_synced": 0, "lines_transformed": 0,
                         "dont_care": 0, "policy": 0, "prc_failures": 0, "lines_applied": 0}
        self.failures: deque[dict[str, Any]] = deque(maxlen=200)
        self.switchovers = 0
        self.standby_failures = 0
        self.last_switchover_reason = "none"
        self.last_bulk_ms: float | None = None
        self._line_seq = 0
        self._boot_timer: threading.Timer | None = None
        self._rx: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self.channel: RfChannel | None = None
        self.rf_rejects: deque[dict[str, Any]] = deque(maxlen=50)
        super().__init__(name, state_dir=state_dir, users=users, enable_secret=enable_secret,
                         version=self.image.version, initial_config=initial_config, apply=apply, netlink=self.gate)
        self.init_issu()

    # ------------------------------------------------------------------ grammar and config model
    def command_set(self) -> CommandSet:  # type: ignore[override]
        return grammar(type(self), self.image.level)

    def image_name(self) -> str:
        return self.image.name

    def reset_config(self) -> None:
        super().reset_config()
        self.features: dict[str, dict[str, str]] = {}
        self.redundancy_mode = "sso"
        self.sync_policy = "drop"

    def prompt_hostname(self) -> str:
        return self.hostname + ("-stby" if self.role == "standby" else "")

    def _feature_lines(self, scope: str) -> list[str]:
        order = {f.syntax: i for i, f in enumerate(images.FEATURES)}
        slots = self.features.get(scope, {})
        return [line for _, line in sorted(slots.items(), key=lambda kv: (order.get(kv[0].split("\0")[0], 0), kv[1]))]

    def config_sections(self) -> list[list[str]]:
        blocks = super().config_sections()
        blocks.append(self._feature_lines(""))
        red = ["redundancy", f" mode {self.redundancy_mode}"]
        if self.sync_policy != "drop":
            red.append(f" config-sync policy {self.sync_policy}")
        blocks.append(red)
        return blocks

    def _interface_block(self, name: str) -> list[str]:
        return super()._interface_block(name) + [" " + l for l in self._feature_lines(name)]

    def cmd_feature(self, ctx: Context, feature: int, no: bool = False, **args: Any) -> None:
        """Every versioned feature: kept as its canonical line, per scope (global or interface)."""
        f = images.FEATURES[feature]
        scope = ctx.vars.get("interface", "") if f.mode == "config-if" else ""
        slots = self.features.setdefault(scope, {})
        if f.multi:
            key = f.syntax + "\0" + f.render(args) if not no or args else None
            if no:
                if key is None or key not in slots:
                    ctx.print(f"% {f.keywords} entry not found")
                    return
                del slots[key]
                return
            assert key is not None
            slots[key] = f.render(args)
            return
        if no:
            slots.pop(f.syntax, None)
        else:
            slots[f.syntax] = f.render(args)

    # ------------------------------------------------------------------ redundancy config
    @command("config", "redundancy", help={"redundancy": "Enter redundancy mode"})
    def cmd_redundancy(self, ctx: Context) -> None:
        ctx.enter("config-red")

    @command("config-red", "mode sso", value="sso",
             help={"mode": "redundancy mode for this chassis", "sso": "Stateful Switchover Redundancy"})
    @command("config-red", "mode rpr", value="rpr", help={"rpr": "Route Processor Redundancy"})
    def cmd_red_mode(self, ctx: Context, value: str) -> None:
        self.redundancy_mode = value
        if self.role == "active" and ctx.source == "cli":
            self._peer_mode_changed()

    @command("config-red", "config-sync policy drop", value="drop",
             help={"config-sync": "Configuration sync between the units",
                   "policy": "What to do with a command the standby cannot take",
                   "drop": "Drop the command with a warning (default)"})
    @command("config-red", "config-sync policy out-of-sync", value="out-of-sync",
             help={"out-of-sync": "Drop the command and declare the standby out of sync"})
    @command("config-red", "config-sync policy downgrade", value="downgrade",
             help={"downgrade": "Downgrade to RPR and reset the standby"})
    def cmd_sync_policy(self, ctx: Context, value: str) -> None:
        self.sync_policy = value

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._quiesce()
        self._set_pair_macs()
        super().start()
        self._start_rf()

    def _start_rf(self) -> None:
        self._set_state("INITIALIZATION")
        if self._worker is None:
            self._worker = threading.Thread(target=self._work_loop, name=f"{self.name}-rf-worker", daemon=True)
            self._worker.start()
        peer_addr = self.hw.get("peer_address")
        if not peer_addr:
            self._become_active("no peer unit (simplex)", stateful=False, boot=True)
            return
        if self.channel is None:
            port = int(self.hw.get("port", PORT))
            primary = self.unit == "primary"
            self.channel = RfChannel(
                secret=str(self.hw.get("secret", "twin-rp")).encode(),
                listen=(str(self.hw.get("listen", "0.0.0.0")), port) if primary else None,
                dial=None if primary else (str(peer_addr), port),
                on_message=lambda m: self._post(lambda: self._on_message(m)),
                on_up=lambda: self._post(self._on_channel_up),
                on_down=lambda why: self._post(lambda: self._on_channel_down(why)),
                on_reject=lambda peer, reason, detail: self._post(lambda: self._on_reject(peer, reason, detail)),
                hb_s=float(self.hw.get("hb_ms", 100)) / 1000, dead_s=float(self.hw.get("dead_ms", DEAD_MS)) / 1000,
                name=f"{self.name}-rf")
            self.channel.start()
        self._boot_timer = threading.Timer(float(self.hw.get("boot_wait_s", BOOT_WAIT_S)),
                                           lambda: self._post(self._boot_wait_over))
        self._boot_timer.daemon = True
        self._boot_timer.start()

    def restart(self) -> None:
        """A reload without the daemon: back to INITIALIZATION with the (possibly new) boot image,
        the data plane closed, then the peer decides the role again."""
        try:
            boot = (self.state_dir / BOOT_IMAGE_FILE).read_text().strip()
            self.image = images.image(boot)
            self.version = self.image.version
        except (FileNotFoundError, images.UnknownImage):
            pass
        with self.lock:
            self.role = "init"
            self.gate.open = False
            self._quiesce()
            self.neg, self.line_sync, self.peer_state = None, None, "DISABLED"
            super().restart()
            self._set_state("INITIALIZATION")
            self._send_hello()

    def shutdown_backend(self) -> None:
        if self._boot_timer is not None:
            self._boot_timer.cancel()
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        self._rx.put(None)
        super().shutdown_backend()

    def _post(self, fn: Callable[[], None]) -> None:
        self._rx.put(fn)

    def _work_loop(self) -> None:
        """RF events in arrival order, each run where device work belongs (the daemon's loop), so a
        long bulk sync never stalls the channel's reader and heartbeats."""
        while True:
            fn = self._rx.get()
            if fn is None:
                return
            done = threading.Event()

            def run(fn: Callable[[], None] = fn) -> None:
                try:
                    if not self._closed:
                        with self.lock:
                            fn()
                except Exception:
                    log.exception("%s: RF event failed", self.name)
                finally:
                    done.set()
            self.dispatch(run)
            done.wait(30)

    def _set_state(self, state: str) -> None:
        if state != self.rf_state:
            self.rf_state = state
            self.state_since = time.time()
            self.publish("rf-state", state=state, role=self.role, image=self.image.version)

    def _send(self, body: dict[str, Any]) -> bool:
        return self.channel is not None and self.channel.send(body)

    def _send_hello(self) -> None:
        self._send({"type": "hello", "unit": self.unit, "role": self.role, "image": self.image.version,
                    "level": self.image.level, "state": self.rf_state, "boot": self.boot_time})

    # ------------------------------------------------------------------ the data plane
    def _data_links(self) -> list[str]:
        return [n for n in self.interface_names("config") if n not in UNMANAGED]

    def _set_pair_macs(self) -> None:
        for n in self._data_links():
            if self.apply_enabled:
                disable_ipv6(n)
            try:
                self.gate.set_mac(n, pair_mac(self.pair, n))
            except OSError as exc:
                log.warning("%s: cannot set the pair MAC on %s: %s", self.name, n, exc)

    def _quiesce(self) -> None:
        """The Standby's posture: data interfaces down with no address, no static routes."""
        inner = self.gate.inner
        for n in self._data_links():
            try:
                inner.set_address(n, None)
                inner.set_up(n, False)
            except OSError:
                pass
        try:
            for r in inner.routes():
                if r.gateway and r.table == 254 and r.proto == 4:
                    inner.del_route(r.dst, r.plen, r.gateway)
        except OSError:
            pass

    def _announce(self) -> None:
        """Gratuitous ARPs for every address the Active now owns, repeated over the first 300 ms
        (as keepalived does): the first ones can go out before the switch's port has noticed the
        link coming up."""
        if not self.apply_enabled:
            return
        todo = [(name, cfg.address[0]) for name, cfg in self.interfaces.items()
                if cfg.address and not cfg.shutdown and name in self._data_links()]
        if not todo:
            return

        def burst() -> None:
            last = 0.0
            for at in GARP_SCHEDULE_S:
                time.sleep(max(0.0, at - last))
                last = at
                if self._closed or self.role != "active":
                    return
                for name, ip in todo:
                    try:
                        send_garp(name, ip, pair_mac(self.pair, name))
                    except OSError as exc:
                        log.debug("%s: gratuitous ARP on %s failed: %s", self.name, name, exc)
        threading.Thread(target=burst, name=f"{self.name}-garp", daemon=True).start()

    # ------------------------------------------------------------------ roles
    def _boot_wait_over(self) -> None:
        if self.role == "init":
            self._become_active("peer unit not found at boot", stateful=False, boot=True)

    def _become_active(self, reason: str, *, stateful: bool, boot: bool = False) -> None:
        t0 = time.monotonic()
        was_standby = self.role == "standby"
        if not boot and not stateful:
            # non-stateful takeover (RPR, or a Standby that never reached HOT): boot the config
            # this unit has in its own NVRAM
            self._load()
        if was_standby:     # counted before the role shows: whoever sees ACTIVE sees the count too
            self.switchovers += 1
            self.last_switchover_reason = reason
        self.role = "active"
        self.gate.open = True
        self.apply_all()
        self._set_state("ACTIVE")
        self.peer_state = "DISABLED" if not (self.channel and self.channel.up) else self.peer_state
        self.neg, self.line_sync = None, None
        self.operating_mode = "sso" if self.redundancy_mode == "sso" else "rpr"
        if was_standby:
            self.syslog(f"%RF-5-RF_RELOAD: {'Stateful' if stateful else 'Non-stateful'} switchover: {reason}")
        self._announce()
        ms = (time.monotonic() - t0) * 1000
        self.publish("rf-active", reason=reason, stateful=stateful, switchover=was_standby, apply_ms=round(ms, 1))
        self._send_hello()

    def _become_standby(self) -> None:
        self.role = "standby"
        self.gate.open = False
        self._quiesce()
        self.neg, self.line_sync = None, None
        self.operating_mode = "sso"
        self.mode_reason = ""
        self._set_state("STANDBY COLD")
        self._send_hello()

    # ------------------------------------------------------------------ channel events
    def _on_channel_up(self) -> None:
        self._send_hello()

    def _on_channel_down(self, why: str) -> None:
        self.publish("rf-peer-down", reason=why, role=self.role, state=self.rf_state)
        was = self.peer_state
        self.peer_state = "DISABLED"
        self.peer = {}
        if self.role == "standby":
            hot = self.rf_state == "STANDBY HOT" and self.operating_mode == "sso"
            self._become_active(f"active unit lost ({why})", stateful=hot)
        elif self.role == "active":
            if was != "DISABLED":
                self.standby_failures += 1
                self.syslog(f"%RF-3-PEER_DOWN: Standby unit lost ({why})")
            self.neg, self.line_sync = None, None
        elif self.role == "init":
            pass

    def _on_reject(self, peer: str, reason: str, detail: str) -> None:
        self.rf_rejects.append({"time": time.time(), "peer": peer, "reason": reason, "detail": detail})
        self.syslog(f"%RF-4-MSG_REJECTED: Message from {peer} rejected: {reason} ({detail})")
        self.publish("rf-rejected", peer=peer, reason=reason, detail=detail)

    def _on_message(self, m: dict[str, Any]) -> None:
        handler = getattr(self, "_rx_" + m["type"].replace("-", "_"), None)
        if handler is None:
            self._on_reject(self.peer.get("address", "peer"), "unknown-type", f"no such message {m['type']!r}")
            return
        try:
            handler(m)
        except (KeyError, TypeError, ValueError) as exc:
            self._on_reject("peer", "malformed", f"{m['type']}: {type(exc).__name__}: {exc}")

    def _rx_hello(self, m: dict[str, Any]) -> None:
        self.peer = {k: m[k] for k in ("unit", "role", "image", "level", "state")}
        self.peer_state = str(m["state"])
        self.check_image_order(m)
        prole = m["role"]
        if self.role == "active":
            if prole == "active":
                if self.unit == "secondary":
                    self.syslog("%RF-3-DUAL_ACTIVE: Both units are active; this (secondary) unit yields")
                    self.role = "init"
                    self._become_standby()
            elif prole == "standby" and m["state"] == "STANDBY COLD":
                self._start_negotiation()
            elif prole == "init":
                self._send_hello()        # a peer that rebooted learns there is an Active
        elif self.role == "init":
            if prole == "active":
                self._become_standby()
            elif prole == "init" and self.unit == "primary":
                self._become_active("elected at boot (primary unit)", stateful=False, boot=True)
        elif self.role == "standby" and prole == "init" and self.peer.get("unit") == "primary":
            pass  # the peer rebooted; it will see us... as standby with no active: it becomes active

    # ---- negotiation and bulk sync (Active side)
    def _start_negotiation(self) -> None:
        self.peer_state = "STANDBY COLD"
        self._send({"type": "cli-dump", "dump": cli_dump(self.command_set()), "level": self.image.level,
                    "image": self.image.version, "mode": self.redundancy_mode})

    def _rx_adl(self, m: dict[str, Any]) -> None:
        neg = Negotiation.from_dict(m["neg"])
        self.neg = neg
        if not neg.compatible or self.redundancy_mode == "rpr":
            reason = neg.reason() or "redundancy mode rpr configured"
            self._go_rpr(reason, reset=False)
            return
        self.line_sync = LineSync(neg, cli_dump(self.command_set()), list(m["dump"]))
        self._bulk_sync()

    def _bulk_sync(self) -> None:
        assert self.line_sync is not None
        t0 = time.monotonic()
        out: list[str] = []
        transformed = 0
        for line in self.render_body().splitlines():
            oc = self.line_sync.outcome(line)
            if oc.action == "sync":
                out.append(oc.line)
                transformed += 1 if oc.steps else 0
            elif oc.action == "dont-care":
                self.counters["dont_care"] += 1
                self._record(oc, "not synced (don't-care)", "bulk")
            elif self._policy(oc, "bulk") == "downgrade":
                return
        self.counters["lines_transformed"] += transformed
        self.peer_state = "STANDBY COLD-BULK"
        self._bulk_t0 = t0
        self._bulk_gen = getattr(self, "_bulk_gen", 0) + 1
        self._send({"type": "rcsf", "gen": self._bulk_gen, "lines": out, "level": self.image.level,
                    "size": sum(len(l) + 1 for l in out), "transformed": transformed,
                    "t_active_ms": round((time.monotonic() - t0) * 1000, 3)})

    def _rx_bulk_done(self, m: dict[str, Any]) -> None:
        if m.get("gen") != getattr(self, "_bulk_gen", None):
            return                    # the answer to a bulk sync that a newer one replaced
        self.counters["bulk_syncs"] += 1
        self.counters["bulk_lines"] += int(m.get("lines", 0))
        self.last_bulk_ms = (time.monotonic() - getattr(self, "_bulk_t0", time.monotonic())) * 1000
        if m["ok"]:
            self.peer_state = "STANDBY HOT"
            self.operating_mode = "sso"
            self.syslog("%RF-5-RF_TERMINAL_STATE: Terminal state reached for (SSO)")
            self._announce()      # whatever a booting Standby's ports sent, the LANs learn the Active again
            self.publish("rf-peer-hot", bulk_ms=round(self.last_bulk_ms, 2), lines=m.get("lines"))
        else:
            self.operating_mode = "rpr"
            self.mode_reason = str(m.get("reason", "bulk sync failed"))
            self.peer_state = "STANDBY COLD"
            self.failures.append({"time": time.time(), "line": m.get("line", ""), "reason": self.mode_reason,
                                  "decision": "standby reset, RPR", "phase": "bulk"})
            self.syslog(f"%RF-3-BULK_SYNC_FAILURE: Bulk sync failed: {self.mode_reason}; operating in RPR mode")

    def _go_rpr(self, reason: str, *, reset: bool) -> None:
        self.operating_mode = "rpr"
        self.mode_reason = reason
        self.peer_state = "STANDBY COLD"
        self.line_sync = None
        self.syslog(f"%RF-3-NON_STATEFUL: Redundancy mode RPR (non-stateful): {reason}")
        self.publish("rf-rpr", reason=reason)
        self._send({"type": "rpr", "reason": reason, "reset": reset})

    def _peer_mode_changed(self) -> None:
        if self.channel is None or not self.channel.up:
            return
        if self.redundancy_mode == "rpr":
            self._go_rpr("redundancy mode rpr configured", reset=True)
        elif self.operating_mode == "rpr":
            self._send({"type": "renegotiate"})

    # ---- the policy handler
    def _record(self, oc: Outcome, decision: str, phase: str) -> None:
        self.failures.append({"time": time.time(), "line": oc.original.strip(), "reason": oc.reason,
                              "decision": decision, "phase": phase})

    def _policy(self, oc: Outcome, phase: str) -> str:
        """Steps 328/440: a command the Standby cannot take that the don't-care list does not cover."""
        self.counters["policy"] += 1
        policy = self.sync_policy
        text = oc.original.strip()
        if policy == "drop":
            self._record(oc, "dropped with a warning", phase)
            self.syslog(f"%RF-4-CONFIG_SYNC_DROP: Command '{text}' not synced to the standby: {oc.reason}")
        elif policy == "out-of-sync":
            self._record(oc, "not synced; standby declared out of sync", phase)
            self.out_of_sync = True
            self.syslog(f"%RF-3-CONFIG_SYNC_OUT_OF_SYNC: Command '{text}' not synced: {oc.reason}; "
                        "standby is out of sync")
        else:
            self._record(oc, "redundancy mode downgraded to RPR, standby reset", phase)
            self._go_rpr(f"command '{text}' cannot be synced: {oc.reason}", reset=True)
        self.publish("config-sync-policy", line=text, reason=oc.reason, policy=policy, phase=phase)
        return policy

    # ---- line-by-line sync (Active side)
    def command_done(self, session: Any, mode: str, line: str, output: list[str]) -> None:
        cs = self.command_set()
        if not cs.modes[mode].config or self.role != "active":
            return
        m = walk_line(cs, mode, line, _MatchCtx(self.interface_names))
        if m is None or m.handler in NAVIGATION:
            return
        stack = session.modes.stack
        names = [e[0] for e in stack]
        if session.modes.mode != mode and "_line" not in stack[-1][1]:
            stack[-1][1]["_line"] = m.canonical       # the command that entered this sub-mode
        if _failed(output) or self.line_sync is None or self.peer_state != "STANDBY HOT":
            return
        depth = names.index(mode) if mode in names else 1
        context = [e[1].get("_line", "") for e in stack[2:depth + 1]]
        self.sync_line(context, self._stored_form(m.canonical))

    def _stored_form(self, line: str) -> str:
        """A command typed with a secret in clear is synced as the running config holds it (hashed),
        never in clear."""
        if not _CLEAR_SECRET.search(line):
            return line
        head = " ".join(line.split()[:2])
        for rendered in self.render_body().splitlines():
            if rendered.strip().startswith(head + " "):
                return rendered.strip()
        return line

    def sync_line(self, context: list[str], line: str) -> Outcome | None:
        """Fig. 4 for one command executed on the Active (in the sub-modes `context` entered)."""
        if self.line_sync is None:
            return None
        ctx_out = []
        for c in context:
            oc = self.line_sync.outcome(c)
            if oc.action != "sync":
                return oc
            ctx_out.append(oc.line)
        oc = self.line_sync.outcome(line)
        if oc.action == "sync":
            self._line_seq += 1
            self.counters["lines_synced"] += 1
            self.counters["lines_transformed"] += 1 if oc.steps else 0
            self._send({"type": "line", "n": self._line_seq, "context": ctx_out, "line": oc.line,
                        "t": time.time()})
        elif oc.action == "dont-care":
            self.counters["dont_care"] += 1
            self._record(oc, "not synced (don't-care)", "line")
        else:
            self._policy(oc, "line")
        return oc

    def _rx_line_ack(self, m: dict[str, Any]) -> None:
        if m["ok"]:
            return
        self.counters["prc_failures"] += 1
        oc = Outcome("policy", m["line"], m["line"], reason=f"PRC failure on the standby: {'; '.join(m['messages'])}")
        self._policy(oc, "line")

    def save_startup(self) -> None:
        super().save_startup()
        if self.role == "active" and self.peer_state == "STANDBY HOT":
            self._send({"type": "save"})

    # ---- Standby side
    def _rx_cli_dump(self, m: dict[str, Any]) -> None:
        if self.role != "standby":
            return
        self._set_state("STANDBY COLD-CONFIG")
        mine = cli_dump(self.command_set())
        neg = negotiate(list(m["dump"]), mine, int(m["level"]), self.image.level)
        self.neg = neg
        self.peer["level"] = int(m["level"])
        if not neg.compatible:
            self.operating_mode = "rpr"
            self.mode_reason = neg.reason()
            self.syslog(f"%ISSU-3-INCOMPATIBLE: Peer image {m['image']} is incompatible: {self.mode_reason}")
            self._set_state("STANDBY COLD")
        self._send({"type": "adl", "neg": neg.to_dict(), "dump": mine})

    def _rx_rcsf(self, m: dict[str, Any]) -> None:
        if self.role != "standby":
            return
        t0 = time.monotonic()
        self._set_state("STANDBY COLD-FILESYS")
        level = int(m["level"])
        lines = [str(l) for l in m["lines"]]
        if self.image.level > level:
            lines = [upgrade(l, level, self.image.level)[0] for l in lines]
        self._set_state("STANDBY COLD-BULK")
        self.reset_config()
        results = apply_config_lines(self, lines, source="sync")
        bad = [r for r in results if not r.ok]
        reason, line = "", ""
        if bad:
            r = bad[0]
            line = r.line
            reason = f"PRC failure at line {r.lineno} {r.line!r}: {'; '.join(r.messages)}"
            if len(bad) > 1:
                reason += f" (and {len(bad) - 1} more)"
        else:
            v = verify("\n".join(lines), self.render_body())
            if not v.ok:
                reason = f"verification failed: {v.describe()}"
        ms = (time.monotonic() - t0) * 1000
        if reason:
            self.reset_config()               # nothing half-applied stays
            self.counters["prc_failures"] += len(bad)
            self.operating_mode = "rpr"
            self.mode_reason = f"bulk sync failed: {reason}"
            self.failures.append({"time": time.time(), "line": line, "reason": reason,
                                  "decision": "standby config reset, RPR", "phase": "bulk"})
            self.syslog(f"%RF-3-BULK_SYNC_FAILURE: {self.mode_reason}")
            self._set_state("STANDBY COLD")
            self._send({"type": "bulk-done", "gen": m.get("gen"), "ok": False, "reason": reason, "line": line,
                        "lines": len(lines)})
            return
        self.counters["bulk_syncs"] += 1
        self.counters["bulk_lines"] += len(lines)
        self.last_bulk_ms = ms
        self.operating_mode = "sso"
        self.mode_reason = ""
        self.out_of_sync = False
        self._set_state("STANDBY HOT")
        self.publish("rf-standby-hot", bulk_ms=round(ms, 2), lines=len(lines))
        self._send({"type": "bulk-done", "gen": m.get("gen"), "ok": True, "lines": len(lines), "apply_ms": round(ms, 2)})

    def _rx_line(self, m: dict[str, Any]) -> None:
        if self.role != "standby" or self.rf_state != "STANDBY HOT":
            return
        level = int(self.peer.get("level", self.image.level))
        lines = [str(c) for c in m["context"]] + [str(m["line"])]
        if self.image.level > level:
            lines = [upgrade(l, level, self.image.level)[0] for l in lines]
        results = apply_config_lines(self, lines, source="sync")
        ok = all(r.ok for r in results)
        messages = [msg for r in results for msg in r.messages]
        self.counters["lines_applied"] += 1
        if not ok:
            self.counters["prc_failures"] += 1
            self.failures.append({"time": time.time(), "line": lines[-1], "reason": "; ".join(messages),
                                  "decision": "reported to the active", "phase": "line"})
        self.publish("sync-applied", n=m["n"], line=lines[-1], ok=ok, sent=m.get("t"))
        self._send({"type": "line-ack", "n": m["n"], "ok": ok, "messages": messages, "line": m["line"]})

    def _rx_save(self, m: dict[str, Any]) -> None:
        if self.role == "standby" and self.rf_state == "STANDBY HOT":
            super().save_startup()

    def _rx_rpr(self, m: dict[str, Any]) -> None:
        if self.role != "standby":
            return
        self.operating_mode = "rpr"
        self.mode_reason = str(m["reason"])
        if m.get("reset"):
            self.reset_config()
            self.syslog(f"%RF-3-STANDBY_RESET: Standby reset by the active: {self.mode_reason}")
        self._set_state("STANDBY COLD")

    def _rx_renegotiate(self, m: dict[str, Any]) -> None:
        if self.role == "standby":
            self._become_standby()

    def _rx_takeover(self, m: dict[str, Any]) -> None:
        if self.role != "standby":
            return
        hot = self.rf_state == "STANDBY HOT" and self.operating_mode == "sso"
        self.adopt_issu(m.get("issu"))
        self._become_active(str(m.get("reason", "switchover requested by the active")), stateful=hot)

    # ------------------------------------------------------------------ commands
    @command("exec", "configure terminal", priv=15,
             help={"configure": "Enter configuration mode", "terminal": "Configure from the terminal"})
    def cmd_configure_terminal(self, ctx: Context) -> None:
        if self.role == "standby":
            ctx.print("% Standby RP: configuration is not allowed; configure the active unit")
            return
        super().cmd_configure_terminal(ctx)

    @command("exec", "redundancy force-switchover", priv=15,
             help={"redundancy": "Redundancy facility commands",
                   "force-switchover": "Force a switchover to the standby unit"})
    def cmd_force_switchover(self, ctx: Context) -> Generator[Any, Any, None]:
        problem = self.switchover_problem()
        if problem:
            ctx.print(problem)
            return
        ok = yield Confirm("Proceed with switchover to standby RP? [confirm]")
        if not ok:
            return
        self.switch_over("user forced switchover", ctx.session)

    @command("exec", "redundancy reload peer", priv=15,
             help={"reload": "Reload a unit", "peer": "Reload the peer (standby) unit"})
    def cmd_reload_peer(self, ctx: Context) -> Generator[Any, Any, None]:
        if self.role != "active" or self.channel is None or not self.channel.up:
            ctx.print("% Standby RP is not present")
            return
        ok = yield Confirm("Reload peer [confirm]")
        if not ok:
            return
        self.syslog("%RF-5-RELOAD_PEER: Reloading the standby unit")
        self._send({"type": "reload", "reason": "redundancy reload peer"})

    def _rx_reload(self, m: dict[str, Any]) -> None:
        if self.role == "standby":
            self.last_reload_reason = str(m.get("reason", "reload requested by the active"))
            self.perform_reload()

    def switchover_problem(self) -> str:
        if self.role != "active":
            return "% This command can only be run on the active unit"
        if self.channel is None or not self.channel.up:
            return "% Standby RP is not present; switchover is not possible"
        if self.operating_mode == "sso" and self.peer_state != "STANDBY HOT":
            return f"% Standby RP is not ready for switchover (peer state {self.peer_state})"
        return ""

    def switch_over(self, reason: str, session: Any = None, issu: dict[str, Any] | None = None) -> None:
        """Hand over to the Standby, then reload (this unit comes back as the Standby)."""
        self.syslog(f"%RF-5-SWITCHOVER: {reason}; switching over to the standby unit")
        self.publish("rf-switchover-requested", reason=reason)
        self._send({"type": "takeover", "reason": reason, "issu": issu if issu is not None else self.issu_for_peer()})
        self.role = "init"
        self.gate.open = False
        self._quiesce()
        self._set_state("INITIALIZATION")
        self.last_reload_reason = reason
        self.request_reload(session)
        if session is None:
            self.perform_reload()

    # ------------------------------------------------------------------ show
    def _uptime(self, since: float) -> str:
        s = int(time.time() - since)
        d, s = divmod(s, 86400)
        h, s = divmod(s, 3600)
        m = s // 60
        parts = ([f"{d} day{'s' if d != 1 else ''}"] if d else []) + ([f"{h} hour{'s' if h != 1 else ''}"] if h else [])
        parts.append(f"{m} minute{'s' if m != 1 else ''}")
        return ", ".join(parts)

    def _my_state(self) -> str:
        return self.rf_state if self.role != "init" else "INITIALIZATION"

    @command("exec", "show redundancy", priv=1, help={"redundancy": "Redundancy Facility (RF) information"})
    def cmd_show_redundancy(self, ctx: Context) -> None:
        p = ctx.print
        peer_up = self.channel is not None and self.channel.up
        p("Redundant System Information :")
        p("------------------------------")
        p(f"       Available system uptime = {self._uptime(self.boot_time)}")
        p(f"Switchovers system experienced = {self.switchovers}")
        p(f"              Standby failures = {self.standby_failures}")
        p(f"        Last switchover reason = {self.last_switchover_reason}")
        p("")
        p(f"                 Hardware Mode = {'Duplex' if peer_up else 'Simplex'}")
        p(f"    Configured Redundancy Mode = {self.redundancy_mode}")
        p(f"     Operating Redundancy Mode = {self.operating_mode}")
        if self.mode_reason:
            p(f"         Operating Mode Reason = {self.mode_reason}")
        p("              Maintenance Mode = Disabled")
        p(f"                Communications = {'Up' if peer_up else 'Down'}")
        p(f"             Config Sync State = {'Out of sync' if self.out_of_sync else 'In sync' if peer_up else 'n/a'}")
        p("")
        p("Current Processor Information :")
        p("-------------------------------")
        loc = "slot 1" if self.unit == "primary" else "slot 2"
        p(f"{('Active' if self.role == 'active' else 'Standby') + ' Location':>30} = {loc}")
        p(f"        Current Software state = {self._my_state()}")
        p(f"       Uptime in current state = {self._uptime(self.state_since)}")
        p(f"                 Image Version = Cisco IOS Software, s2t54 Software (s2t54-ADVENTERPRISEK9-M), "
          f"Version {self.image.version}, RELEASE SOFTWARE (fc1)")
        p(f"                          BOOT = bootflash:{self.image.name},12;")
        p("        Configuration register = 0x2102")
        p("")
        p("Peer Processor Information :")
        p("----------------------------")
        if not peer_up or not self.peer:
            p(f"{('Standby' if self.role == 'active' else 'Active') + ' Location':>30} = Not present")
        else:
            ploc = "slot 2" if self.unit == "primary" else "slot 1"
            label = "Standby" if self.role == "active" else "Active"
            p(f"{label + ' Location':>30} = {ploc}")
            p(f"        Current Software state = {self.peer_state if self.role == 'active' else 'ACTIVE'}")
            p(f"                 Image Version = Cisco IOS Software, s2t54 Software (s2t54-ADVENTERPRISEK9-M), "
              f"Version {self.peer.get('image', '?')}, RELEASE SOFTWARE (fc1)")
        p("")
        p("Configuration Sync :")
        p("--------------------")
        c = self.counters
        p(f"                    Bulk syncs = {c['bulk_syncs']} ({c['bulk_lines']} lines"
          + (f", last {self.last_bulk_ms:.1f} ms)" if self.last_bulk_ms is not None else ")"))
        p(f"           Lines synced (line) = {c['lines_synced']}")
        p(f"          Lines applied (line) = {c['lines_applied']}")
        p(f"             Lines transformed = {c['lines_transformed']}")
        p(f"     Not synced (don't-care)   = {c['dont_care']}")
        p(f"        Policy decisions       = {c['policy']} (policy {self.sync_policy})")
        p(f"        PRC failures           = {c['prc_failures']}")
        last = [f for f in self.failures if f["decision"] != "not synced (don't-care)"][-3:]
        for f in last:
            p(f"   last: '{f['line']}' -> {f['decision']}")

    @command("exec", "show redundancy states", priv=1, help={"states": "redundancy facility states"})
    def cmd_show_redundancy_states(self, ctx: Context) -> None:
        p = ctx.print
        peer_up = self.channel is not None and self.channel.up
        mine = self._my_state()
        if self.role == "active":
            peer = self.peer_state if peer_up else "DISABLED"
        else:
            peer = "ACTIVE" if peer_up else "DISABLED"
        p(f"       my state = {RF_STATES.get(mine, 0):<2} -{mine} ")
        p(f"     peer state = {RF_STATES.get(peer, 1):<2} -{peer} ")
        p(f"           Mode = {'Duplex' if peer_up else 'Simplex'}")
        p(f"           Unit = {self.unit.capitalize()}")
        p(f"        Unit ID = {1 if self.unit == 'primary' else 2}")
        p("")
        p(f"Redundancy Mode (Operational) = {self.operating_mode}")
        p(f"Redundancy Mode (Configured)  = {self.redundancy_mode}")
        p(f"Redundancy State              = {self.operating_mode if peer_up else 'Non Redundant'}")
        p("     Maintenance Mode = Disabled")
        p("    Manual Swact = " + ("enabled" if not self.switchover_problem() else "disabled"))
        p(f" Communications = {'Up' if peer_up else 'Down'}")
        p("")
        p(f"   client count = {len(images.FEATURES) + 100}")
        p(" client_notification_TMR = 30000 milliseconds")
        p("           RF debug mask = 0x0")

    @command("exec", "show redundancy config-sync failures", priv=1,
             help={"config-sync": "Configuration sync information",
                   "failures": "Commands that were not synced, and why"})
    def cmd_show_sync_failures(self, ctx: Context) -> None:
        p = ctx.print
        items = list(self.failures)
        p("Config Sync: Failures")
        p("---------------------")
        if not items:
            p("The list is Empty")
            return
        for f in items:
            when = time.strftime("%H:%M:%S", time.localtime(f["time"]))
            p(f"{when} {f['phase']:<4} '{f['line']}'")
            p(f"         reason:   {f['reason']}")
            p(f"         decision: {f['decision']}")

    @command("exec", "show redundancy config-sync lists", priv=1,
             help={"lists": "The diff lists of the last negotiation"})
    def cmd_show_sync_lists(self, ctx: Context) -> None:
        p = ctx.print
        neg = self.neg or (self.line_sync.neg if self.line_sync else None)
        if neg is None:
            p("% No negotiation with a peer unit yet")
            return
        p(f"Active image level {neg.active_level}, Standby image level {neg.standby_level}: "
          f"{'compatible' if neg.compatible else 'INCOMPATIBLE'}")
        p(f"Active diff list (ADL), {len(neg.adl)} commands:")
        for t in neg.adl:
            p(f"  {neg.adl_verdicts.get(t, '?'):<10} {t}")
        p(f"Standby diff list (SDL), {len(neg.sdl)} commands:")
        for t in neg.sdl:
            p(f"  {'UNREGISTERED' if t in neg.sdl_unregistered else 'ok':<10} {t}")

    @command("exec", "show redundancy config-sync cli-dump", priv=1,
             help={"cli-dump": "Every configuration command this image accepts"})
    def cmd_show_cli_dump(self, ctx: Context) -> None:
        dump = cli_dump(self.command_set())
        ctx.print(f"CLI dump of image {self.image.version} ({len(dump)} commands)")
        for t in dump:
            ctx.print(t)


__all__ = ["RpUnit", "grammar"]
