"""TwinBase: the os-ken app every lab's controller runs.

It keeps the lab's switches usable and observable for tests:

* On connect it installs a priority-0 table-miss rule (OUTPUT:NORMAL by default), so a
  fail-mode=secure bridge forwards like a learning switch until a test adds higher-priority rules.
  It never deletes flows on (re)connect: rules installed before a controller restart survive, which
  is what a restart test checks.
* It tracks connected switches, their ports and port-status changes, and publishes them as events.
* It offers a thread-safe service layer (add/delete/list flows, list ports) used by the northbound
  API and by other os-ken apps of later issues. Those apps get the instance either through
  `_CONTEXTS = {"twin": TwinBase}` (then `kwargs["twin"]` in __init__) or with
  `app_manager.lookup_service_brick("TwinBase")` / `get_twin_base()` (controllers.run instantiates
  TwinBase before the other apps, so this works in __init__ too). They can add events to the
  /events stream (`publish_event`) and routes to the API (`add_api_route`). Blocking calls
  (add_flow, get_flows, ...) must not be made from TwinBase's own event handlers.

Everything sent for an API request is validated first (controllers.flowspec) and confirmed with a
barrier, so when a call returns the switch has the rule, and a switch-side OFPErrorMsg for it turns
into an error for that call instead of a silent success.
"""
from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from os_ken.base import app_manager
from os_ken.controller import controller, ofp_event
from os_ken.controller.handler import (CONFIG_DISPATCHER, DEAD_DISPATCHER, HANDSHAKE_DISPATCHER,
                                       MAIN_DISPATCHER, set_ev_cls)
from os_ken.lib import ofctl_utils, ofctl_v1_3
from os_ken.ofproto import ofproto_parser, ofproto_v1_3

from controllers import flowspec
from controllers.errors import ApiError
from controllers.events import EventLog
from controllers.flowspec import FlowAdd, FlowDelete, PortRef
from controllers.portnames import port_label, resolve_port, short_port_name

LOG = logging.getLogger("controllers.twin_base")

# Seconds to wait for a switch's multipart (stats) or barrier reply; config key "reply_timeout_s".
REPLY_TIMEOUT_S = 5.0
TABLE_MISS_COOKIE = 0
TABLE_MISS_MODES = ("NORMAL", "CONTROLLER", "DROP", "NONE")
DEFAULT_APPS = ["controllers.twin_base"]

# One lock for every xid the process assigns: os-ken's Datapath.set_xid is a plain `+= 1` that is
# not safe when API threads and the app's event thread send to the same switch at once.
XID_LOCK = threading.Lock()


# ---------------------------------------------------------------------------------------------
# configuration


@dataclass
class TwinConfig:
    """The controller's lab configuration (the JSON file given to controllers.run)."""

    lab: str = "default"
    prefix: str = ""
    switches: dict[str, int] = field(default_factory=dict)
    apps: list[str] = field(default_factory=lambda: list(DEFAULT_APPS))
    table_miss: str = "NORMAL"
    reply_timeout_s: float = REPLY_TIMEOUT_S
    raw: dict[str, Any] = field(default_factory=dict)  # the whole file, for other apps' own sections

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TwinConfig:
        """Parse and check a config dict; ValueError says what is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError("config: expected a JSON object")
        lab = data.get("lab", "default")
        prefix = data.get("prefix", "")
        if not isinstance(lab, str) or not isinstance(prefix, str):
            raise ValueError("config: lab and prefix must be strings")
        switches_raw = data.get("switches", {})
        if not isinstance(switches_raw, Mapping):
            raise ValueError("config.switches: expected an object {name: {\"dpid\": N}}")
        switches: dict[str, int] = {}
        for name, spec in switches_raw.items():
            value = spec.get("dpid") if isinstance(spec, Mapping) else spec
            try:
                dpid = _parse_dpid(value)
            except ValueError as exc:
                raise ValueError(f"config.switches.{name}.dpid: {exc}") from None
            if dpid in switches.values():
                other = next(n for n, d in switches.items() if d == dpid)
                raise ValueError(f"config.switches.{name}.dpid: {dpid} already used by {other}")
            switches[str(name)] = dpid
        apps = data.get("apps", list(DEFAULT_APPS))
        if not isinstance(apps, list) or not all(isinstance(a, str) and a for a in apps):
            raise ValueError("config.apps: expected a list of module names")
        table_miss = str(data.get("table_miss", "NORMAL")).upper()
        if table_miss not in TABLE_MISS_MODES:
            raise ValueError(f"config.table_miss: expected one of {', '.join(TABLE_MISS_MODES)}")
        timeout = data.get("reply_timeout_s", REPLY_TIMEOUT_S)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 300:
            raise ValueError("config.reply_timeout_s: expected seconds between 0 and 300")
        return cls(lab=lab, prefix=prefix, switches=switches, apps=list(apps), table_miss=table_miss,
                   reply_timeout_s=float(timeout), raw=dict(data))


def _parse_dpid(value: Any) -> int:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected an integer datapath id, got {value!r}")
    if isinstance(value, str):
        text = value.strip().replace(":", "")
        number = int(text, 16) if len(text) == 16 and not text.startswith("0x") else int(text, 0)
    elif isinstance(value, int):
        number = value
    else:
        raise ValueError(f"expected an integer datapath id, got {value!r}")
    if not 0 < number <= flowspec.UINT64_MAX:
        raise ValueError(f"{number} out of range 1..2^64-1")
    return number


_RUNTIME_CONFIG: TwinConfig | None = None


def set_config(config: TwinConfig) -> None:
    """Set the configuration the TwinBase instance will use; call before apps are instantiated.

    A module-level setting, because app_manager instantiates apps (and contexts) itself without
    passing anything of ours.
    """
    global _RUNTIME_CONFIG, REPLY_TIMEOUT_S
    _RUNTIME_CONFIG = config
    REPLY_TIMEOUT_S = config.reply_timeout_s


def get_twin_base() -> TwinBase | None:
    """The running TwinBase instance (for apps that do not use _CONTEXTS)."""
    return app_manager.lookup_service_brick("TwinBase")


# ---------------------------------------------------------------------------------------------
# waiting for replies


class _Waiter:
    """Completion flag for one request; speaks ofctl's waiter protocol (`set`, `is_set`).

    os-ken 4.2.2's native hub.Event ignores wait(timeout) (it blocks until set), so ofctl's own
    waiters would hang forever on a switch that never answers. This uses threading.Event, and
    `fail()` lets a disconnect wake the waiting API thread with a reason.
    """

    __slots__ = ("event", "dp", "failure")

    def __init__(self, dp: Any) -> None:
        self.event = threading.Event()
        self.dp = dp
        self.failure: str | None = None

    def set(self) -> None:
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()

    def fail(self, why: str) -> None:
        self.failure = why
        self.event.set()

    def wait(self, timeout: float) -> bool:
        return self.event.wait(timeout)


def _send_stats_request(dp: Any, stats: Any, waiters: dict, msgs: list, logger: Any = None) -> None:
    """Replacement for ofctl_utils.send_stats_request with a working timeout.

    Same waiters layout as ofctl ({dpid: {xid: (lock, msgs)}}) so ofctl's get_* functions and
    ofctl_rest-style reply handlers keep working, but a missing or incomplete reply raises
    ApiError(504) instead of silently returning an empty or partial list.
    """
    waiter = _Waiter(dp)
    with XID_LOCK:
        dp.set_xid(stats)
        waiters.setdefault(dp.id, {})[stats.xid] = (waiter, msgs)
    try:
        if not dp.send_msg(stats):
            raise ApiError(503, f"switch {_label(dp.id)} disconnected before the request could be sent")
        if not waiter.wait(REPLY_TIMEOUT_S):
            raise ApiError(504, f"switch {_label(dp.id)} did not answer a {type(stats).__name__} "
                                f"within {REPLY_TIMEOUT_S:g} s")
        if waiter.failure:
            raise ApiError(503, waiter.failure)
    finally:
        waiters.get(dp.id, {}).pop(stats.xid, None)


def _label(dpid: int | None) -> str:
    twin = get_twin_base()
    return twin.label_of(dpid) if twin is not None else f"dpid:{dpid:#x}" if dpid is not None else "dpid:unknown"


# Process-wide: every app in this controller process that uses ofctl gets the working timeout.
ofctl_utils.send_stats_request = _send_stats_request


def _patch_datapath_disconnect() -> None:
    """Make a disconnected switch reach DEAD_DISPATCHER under os-ken 4.2.2's native hub.

    Datapath.serve() ends by `hub.kill(send_thr)` and joining it; with native threads kill is a
    no-op and the send thread blocks in send_q.get() forever, so the Datapath never reaches DEAD:
    no EventOFPStateChange(DEAD), the switch looks connected after it left, and two threads leak per
    connection. Queueing one empty "close" item after the receive loop ends lets the send thread
    finish (its sendall on the closed socket fails and it exits), and serve() completes normally.
    """
    original = controller.Datapath._recv_loop
    if getattr(original, "_twin_patched", False):
        return

    def _recv_loop(self: Any) -> None:
        try:
            original(self)
        finally:
            if self.send_q is not None:
                self.send(b"", close_socket=True)

    _recv_loop._twin_patched = True  # type: ignore[attr-defined]
    controller.Datapath._recv_loop = _recv_loop


_patch_datapath_disconnect()

_STATS_REPLY_EVENTS = [getattr(ofp_event, name) for name in (
    "EventOFPStatsReply", "EventOFPDescStatsReply", "EventOFPFlowStatsReply",
    "EventOFPAggregateStatsReply", "EventOFPTableStatsReply", "EventOFPTableFeaturesStatsReply",
    "EventOFPPortStatsReply", "EventOFPQueueStatsReply", "EventOFPMeterStatsReply",
    "EventOFPMeterFeaturesStatsReply", "EventOFPMeterConfigStatsReply", "EventOFPGroupStatsReply",
    "EventOFPGroupFeaturesStatsReply", "EventOFPGroupDescStatsReply", "EventOFPPortDescStatsReply",
    "EventOFPRoleReply",
) if hasattr(ofp_event, name)]

_REASONS = {ofproto_v1_3.OFPPR_ADD: "add", ofproto_v1_3.OFPPR_DELETE: "delete",
            ofproto_v1_3.OFPPR_MODIFY: "modify"}

RouteHandler = Callable[[re.Match, dict[str, list[str]], Any], Any]


@dataclass
class PortInfo:
    """What the controller last learned about one port."""

    port_no: int
    ovs_name: str
    hw_addr: str
    config: int
    state: int

    @property
    def link_up(self) -> bool:
        return not self.state & ofproto_v1_3.OFPPS_LINK_DOWN

    @property
    def admin_up(self) -> bool:
        return not self.config & ofproto_v1_3.OFPPC_PORT_DOWN

    @classmethod
    def from_ofp(cls, port: Any) -> PortInfo:
        name = port.name.decode("utf-8", "replace") if isinstance(port.name, bytes) else str(port.name)
        return cls(port.port_no, name, str(port.hw_addr), port.config, port.state)


# ---------------------------------------------------------------------------------------------
# the app


class TwinBase(app_manager.OSKenApp):
    """Base controller app of every lab (OpenFlow 1.3 only)."""

    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config: TwinConfig = _RUNTIME_CONFIG or TwinConfig()
        self.event_log = EventLog()
        self.waiters: dict[int, dict[int, tuple[Any, list]]] = {}  # ofctl waiters
        self.api_routes: list[tuple[str, re.Pattern[str], RouteHandler]] = []
        self._lock = threading.RLock()
        self._name_by_dpid = {dpid: name for name, dpid in self.config.switches.items()}
        self._main: dict[int, Any] = {}        # dpid -> Datapath that reached MAIN
        self._connected: dict[int, Any] = {}   # dpid -> Datapath that is MAIN and has the table-miss
        self._ready_xid: dict[Any, int] = {}   # Datapath -> xid of the barrier after the table-miss
        self._ready: set[Any] = set()          # Datapaths whose table-miss barrier was answered
        self._ports: dict[int, dict[int, PortInfo]] = {}
        self._barriers: dict[tuple[Any, int], _Waiter] = {}
        self._errors: dict[tuple[Any, int], list[str]] = {}
        self._switch_locks: dict[int, threading.RLock] = {}
        self._event_thread: threading.Thread | None = None
        self._subscribers: list[Callable[[dict[str, Any]], None]] = []

    def start(self) -> Any:
        result = super().start()
        self._event_thread = self.threads[-1] if self.threads else None
        LOG.info("lab %s: %d switch(es) configured (%s), prefix %r, table-miss %s", self.config.lab,
                 len(self.config.switches), ", ".join(f"{n}=dpid {d:#x}" for n, d in self.config.switches.items()),
                 self.config.prefix, self.config.table_miss)
        return result

    # ----- names ---------------------------------------------------------------------------

    def switch_names(self) -> list[str]:
        """Configured switch names, in config order."""
        return list(self.config.switches)

    def name_of(self, dpid: int | None) -> str | None:
        """Configured name of a datapath id, or None."""
        return self._name_by_dpid.get(dpid) if dpid is not None else None

    def label_of(self, dpid: int | None) -> str:
        """Name for logs and events, also for switches the config does not know."""
        name = self.name_of(dpid)
        if name:
            return name
        return f"dpid:{dpid:#x}" if dpid is not None else "dpid:unknown"

    def dpid_of(self, switch: str) -> int:
        return self.config.switches[self.resolve_switch(switch)]

    def resolve_switch(self, ref: str | int) -> str:
        """A switch name from a name, a datapath id, or a dpid string; ApiError(404) if unknown."""
        if isinstance(ref, str) and ref in self.config.switches:
            return ref
        dpid: int | None = ref if isinstance(ref, int) and not isinstance(ref, bool) else None
        if isinstance(ref, str):
            try:
                dpid = int(ref, 0)
            except ValueError:
                dpid = None
        if dpid is not None and dpid in self._name_by_dpid:
            return self._name_by_dpid[dpid]
        known = ", ".join(f"{n} (dpid {d:#x})" for n, d in self.config.switches.items()) or "none"
        raise ApiError(404, f"unknown switch {ref!r} (configured: {known})")

    # ----- state ----------------------------------------------------------------------------

    def datapath(self, switch: str) -> Any | None:
        """The connected Datapath of a switch, or None."""
        with self._lock:
            return self._connected.get(self.dpid_of(switch))

    def is_connected(self, switch: str) -> bool:
        return self.datapath(switch) is not None

    def require_datapath(self, switch: str) -> Any:
        """The connected Datapath, or ApiError(503) saying the switch is not connected."""
        dp = self.datapath(switch)
        if dp is None:
            raise ApiError(503, f"switch {switch} (dpid {self.dpid_of(switch):#x}) is not connected to the controller")
        return dp

    def connected_count(self) -> int:
        with self._lock:
            return sum(1 for dpid in self._connected if dpid in self._name_by_dpid)

    def switches_info(self) -> list[dict[str, Any]]:
        """Every configured switch with its connection state."""
        with self._lock:
            return [{"name": name, "dpid": dpid, "connected": dpid in self._connected}
                    for name, dpid in self.config.switches.items()]

    def port_table(self, switch: str) -> dict[int, str]:
        """Last known port_no -> OVS port name (kept after a disconnect)."""
        with self._lock:
            return {no: p.ovs_name for no, p in self._ports.get(self.dpid_of(switch), {}).items()}

    def cached_ports(self, switch: str) -> dict[str, PortInfo]:
        """Short port name -> last known state (from port-status messages; nothing is asked now)."""
        switch = self.resolve_switch(switch)
        with self._lock:
            infos = list(self._ports.get(self.dpid_of(switch), {}).values())
        return {short_port_name(i.ovs_name, self.config.prefix, switch): i for i in infos}

    def port_no(self, switch: str, port: str | int, where: str = "port") -> int:
        """Port number for a short name, OVS name, number or reserved name (ApiError 400 if unknown)."""
        return resolve_port(port, self.port_table(switch), self.config.prefix, switch, where)

    def port_name(self, switch: str, port_no: int) -> str | int:
        """The API's name for a port number (short name, reserved name, or the number)."""
        return port_label(port_no, self.port_table(switch), self.config.prefix, switch)

    # ----- extension points -------------------------------------------------------------------

    def publish_event(self, type_: str, **fields: Any) -> dict[str, Any]:
        """Add an event to the /events stream (for other apps too), and tell the subscribers."""
        event = self.event_log.publish(type_, **fields)
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:  # a subscriber's bug must not stop the switch handling
                LOG.exception("event subscriber %r failed on %s", callback, type_)
        return event

    def subscribe(self, callback: Callable[[dict[str, Any]], None]) -> None:
        """Call `callback(event)` for every published event, on the publishing thread.

        For other apps that react to port_status / switch_enter once TwinBase has updated its port
        tables; the callback must only queue work (it runs on TwinBase's event thread).
        """
        self._subscribers.append(callback)

    def add_api_route(self, method: str, pattern: str, handler: RouteHandler) -> None:
        """Serve `method` on paths fully matching regex `pattern` from the northbound API.

        `handler(match, query, body)` returns a JSON-able object (HTTP 200) or (status, object),
        and raises ApiError for bad requests.
        """
        self.api_routes.append((method.upper(), re.compile(pattern), handler))

    # ----- OpenFlow event handlers ---------------------------------------------------------------

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _on_features(self, ev: Any) -> None:
        msg = ev.msg
        dp = msg.datapath
        dpid = msg.datapath_id  # dp.id is set by ofp_handler in another thread; do not race it
        if self.name_of(dpid) is None:
            LOG.warning("datapath %#x from %s is not in the lab config (configured: %s)", dpid,
                        dp.address, ", ".join(f"{n}={d}" for n, d in self.config.switches.items()))
        parser, ofp = dp.ofproto_parser, dp.ofproto
        msgs = []
        if self.config.table_miss != "NONE":
            actions = {"NORMAL": [parser.OFPActionOutput(ofp.OFPP_NORMAL)],
                       "CONTROLLER": [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)],
                       "DROP": []}[self.config.table_miss]
            inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)] if actions else []
            msgs.append(parser.OFPFlowMod(dp, cookie=TABLE_MISS_COOKIE, table_id=0, command=ofp.OFPFC_ADD,
                                          priority=0, match=parser.OFPMatch(), instructions=inst))
        barrier = parser.OFPBarrierRequest(dp)
        msgs.append(barrier)
        with XID_LOCK:
            for m in msgs:
                dp.set_xid(m)
        with self._lock:
            self._ready_xid[dp] = barrier.xid
        for m in msgs:
            dp.send_msg(m)
        LOG.info("switch %s (dpid %#x) connected from %s:%s; table-miss %s sent", self.label_of(dpid), dpid,
                 *dp.address[:2], self.config.table_miss)

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def _on_state_change(self, ev: Any) -> None:
        dp = ev.datapath
        if ev.state == MAIN_DISPATCHER:
            ports = {no: PortInfo.from_ofp(p) for no, p in dict(dp.ports or {}).items()}
            with self._lock:
                self._main[dp.id] = dp
                self._ports[dp.id] = ports
            self._maybe_enter(dp)
            return
        # DEAD
        self._fail_waiters(dp, f"switch {self.label_of(dp.id)} disconnected")
        left = False
        with self._lock:
            self._ready_xid.pop(dp, None)
            self._ready.discard(dp)
            if dp.id is not None and self._main.get(dp.id) is dp:
                del self._main[dp.id]
            if dp.id is not None and self._connected.get(dp.id) is dp:
                del self._connected[dp.id]
                left = True
        if left:
            LOG.info("switch %s (dpid %#x) disconnected", self.label_of(dp.id), dp.id)
            self.publish_event("switch_leave", switch=self.label_of(dp.id), dpid=dp.id)

    def _maybe_enter(self, dp: Any) -> None:
        with self._lock:
            if dp not in self._ready or self._main.get(dp.id) is not dp or self._connected.get(dp.id) is dp:
                return
            self._connected[dp.id] = dp
            nports = len(self._ports.get(dp.id, {}))
        LOG.info("switch %s (dpid %#x) ready: %d ports, table-miss in place", self.label_of(dp.id), dp.id, nports)
        self.publish_event("switch_enter", switch=self.label_of(dp.id), dpid=dp.id)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _on_barrier_reply(self, ev: Any) -> None:
        msg = ev.msg
        dp = msg.datapath
        with self._lock:
            ready = self._ready_xid.get(dp) == msg.xid
            if ready:
                del self._ready_xid[dp]
                self._ready.add(dp)
            waiter = self._barriers.pop((dp, msg.xid), None)
        if ready:
            self._maybe_enter(dp)
        if waiter is not None:
            waiter.set()

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def _on_port_status(self, ev: Any) -> None:
        msg = ev.msg
        dp = msg.datapath
        info = PortInfo.from_ofp(msg.desc)
        reason = _REASONS.get(msg.reason, str(msg.reason))
        with self._lock:
            table = self._ports.setdefault(dp.id, {})
            if reason == "delete":
                table.pop(info.port_no, None)
            else:
                table[info.port_no] = info
        switch = self.label_of(dp.id)
        short = short_port_name(info.ovs_name, self.config.prefix, switch)
        LOG.info("switch %s port %s (%d) %s: link %s, admin %s", switch, short, info.port_no, reason,
                 "up" if info.link_up else "down", "up" if info.admin_up else "down")
        self.publish_event("port_status", switch=switch, dpid=dp.id, port=short, ovs_name=info.ovs_name,
                           port_no=info.port_no, reason=reason, link_up=info.link_up, admin_up=info.admin_up)

    @set_ev_cls(_STATS_REPLY_EVENTS, MAIN_DISPATCHER)
    def _on_stats_reply(self, ev: Any) -> None:
        """Fill ofctl waiters, as ofctl_rest's stats_reply_handler does."""
        msg = ev.msg
        dp = msg.datapath
        per_dp = self.waiters.get(dp.id)
        if not per_dp or msg.xid not in per_dp:
            return
        lock, msgs = per_dp[msg.xid]
        msgs.append(msg)
        if msg.flags & dp.ofproto.OFPMPF_REPLY_MORE:
            return
        per_dp.pop(msg.xid, None)
        lock.set()

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [HANDSHAKE_DISPATCHER, CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _on_error(self, ev: Any) -> None:
        msg = ev.msg
        dp = msg.datapath
        text = describe_error(msg)
        LOG.error("OFPErrorMsg from switch %s: %s", self.label_of(dp.id), text)
        with self._lock:
            bucket = self._errors.get((dp, msg.xid))
        if bucket is not None:
            bucket.append(text)

    def _fail_waiters(self, dp: Any, why: str) -> None:
        with self._lock:
            barriers = [w for (d, _), w in self._barriers.items() if d is dp]
        stats = [entry[0] for entry in list(self.waiters.get(dp.id, {}).values())
                 if isinstance(entry[0], _Waiter) and entry[0].dp is dp]
        for waiter in barriers + stats:
            waiter.fail(why)

    # ----- blocking service calls (API threads, other apps' threads) --------------------------------

    def _check_thread(self) -> None:
        if self._event_thread is not None and threading.current_thread() is self._event_thread:
            raise RuntimeError("TwinBase blocking call made from TwinBase's own event thread: it would wait "
                               "for a reply that only this thread can deliver")

    def _switch_lock(self, dpid: int) -> threading.RLock:
        with self._lock:
            return self._switch_locks.setdefault(dpid, threading.RLock())

    def _resolver(self, switch: str) -> Callable[[PortRef], int]:
        ports = self.port_table(switch)
        return lambda ref: resolve_port(ref.name, ports, self.config.prefix, switch, ref.where)

    def send_confirmed(self, switch: str, dp: Any, msgs: list[Any], what: str) -> None:
        """Send messages, then a barrier; return once the switch has processed all of them.

        All messages are encoded before the first is sent (an encoding error sends nothing). An
        OFPErrorMsg the switch answers to any of them raises ApiError(400) naming the error.
        """
        self._check_thread()
        parser = dp.ofproto_parser
        barrier = parser.OFPBarrierRequest(dp)
        waiter = _Waiter(dp)
        errors: list[str] = []
        with XID_LOCK:
            for m in msgs:
                dp.set_xid(m)
            dp.set_xid(barrier)
        for m in msgs:
            m.serialize()
        keys = [(dp, m.xid) for m in msgs]
        with self._lock:
            for key in keys:
                self._errors[key] = errors
            self._barriers[(dp, barrier.xid)] = waiter
        try:
            for m in [*msgs, barrier]:
                if not dp.send_msg(m):
                    raise ApiError(503, f"switch {switch} disconnected while the {what} was being sent")
            if not waiter.wait(REPLY_TIMEOUT_S):
                raise ApiError(504, f"switch {switch} did not confirm the {what} (no barrier reply within "
                                    f"{REPLY_TIMEOUT_S:g} s)")
            if waiter.failure:
                raise ApiError(503, f"{waiter.failure} before confirming the {what}")
            if errors:
                raise ApiError(400, f"switch {switch} rejected the {what}: {'; '.join(errors)}")
        finally:
            with self._lock:
                for key in keys:
                    self._errors.pop(key, None)
                self._barriers.pop((dp, barrier.xid), None)

    def apply_add(self, spec: FlowAdd) -> None:
        """Install a validated flow; returns when the switch has it."""
        switch = self.resolve_switch(spec.switch)
        dp = self.require_datapath(switch)
        resolved = flowspec.resolve_ports(spec, self._resolver(switch))
        fm = flowspec.build_flow_mod(
            dp, dp.ofproto.OFPFC_ADD, resolved.match, resolved.actions, priority=resolved.priority,
            cookie=resolved.cookie, table_id=resolved.table_id, idle_timeout=resolved.idle_timeout,
            hard_timeout=resolved.hard_timeout, flags=resolved.flags)
        with self._switch_lock(dp.id):
            self.send_confirmed(switch, dp, [fm], "flow")
        LOG.info("switch %s: flow added: priority %d table %d match %s actions %s", switch, resolved.priority,
                 resolved.table_id, resolved.match, resolved.actions)

    def apply_batch(self, switch: str, adds: list[Mapping[str, Any]], deletes: list[Mapping[str, Any]]) -> None:
        """Install and strictly delete many flows with one barrier (for apps that program whole links).

        `adds` are POST /flows bodies, `deletes` DELETE /flows bodies (matched strictly on table,
        priority and match). Every body is validated and encoded before the first message is sent, so
        a bad one sends nothing; adds go before deletes (make before break).
        """
        switch = self.resolve_switch(switch)
        dp = self.require_datapath(switch)
        resolver = self._resolver(switch)
        ofp = dp.ofproto
        msgs = []
        for body in adds:
            spec = flowspec.resolve_ports(flowspec.parse_add({**body, "switch": switch}), resolver)
            msgs.append(flowspec.build_flow_mod(
                dp, ofp.OFPFC_ADD, spec.match, spec.actions, priority=spec.priority, cookie=spec.cookie,
                table_id=spec.table_id, idle_timeout=spec.idle_timeout, hard_timeout=spec.hard_timeout,
                flags=spec.flags))
        for body in deletes:
            spec_d = flowspec.resolve_ports(flowspec.parse_delete({**body, "switch": switch, "strict": True}), resolver)
            msgs.append(flowspec.build_flow_mod(dp, ofp.OFPFC_DELETE_STRICT, spec_d.match, priority=spec_d.priority,
                                                table_id=spec_d.table_id))
        if not msgs:
            return
        with self._switch_lock(dp.id):
            self.send_confirmed(switch, dp, msgs, f"batch of {len(adds)} add(s) and {len(deletes)} delete(s)")
        LOG.info("switch %s: batch applied: %d flow(s) added, %d deleted", switch, len(adds), len(deletes))

    def raw_flows(self, switch: str, cookie: int = 0, cookie_mask: int = 0) -> list[dict[str, Any]]:
        """Flow stats with os-ken objects (OFPMatch), for apps that compare what a switch holds."""
        self._check_thread()
        switch = self.resolve_switch(switch)
        dp = self.require_datapath(switch)
        query = {"cookie": cookie, "cookie_mask": cookie_mask, "table_id": dp.ofproto.OFPTT_ALL}
        with self._switch_lock(dp.id):
            return ofctl_v1_3.get_flow_stats(dp, self.waiters, query, to_user=False).get(dp.id, [])

    def build_match(self, switch: str, match: Mapping[str, Any]) -> Any:
        """The OFPMatch a flow body's match becomes on this switch (port names resolved)."""
        switch = self.resolve_switch(switch)
        spec = flowspec.resolve_ports(flowspec.parse_add({"switch": switch, "match": dict(match)}),
                                      self._resolver(switch))
        return ofctl_v1_3.to_match(flowspec.OFFLINE_DP, spec.match)

    def apply_delete(self, spec: FlowDelete) -> int | None:
        """Delete flows; never the table-miss unless asked by strict priority 0 with its empty match.

        Returns the number of flows deleted when it is known (per-flow delete), else None.
        """
        switch = self.resolve_switch(spec.switch)
        dp = self.require_datapath(switch)
        spec = flowspec.resolve_ports(spec, self._resolver(switch))
        ofp = dp.ofproto
        common = dict(cookie=spec.cookie, cookie_mask=spec.cookie_mask, table_id=spec.table_id,
                      out_port=spec.out_port, out_group=spec.out_group)
        exposes_table_miss = (not spec.match and spec.table_id in (0, ofp.OFPTT_ALL)
                              and (TABLE_MISS_COOKIE & spec.cookie_mask) == (spec.cookie & spec.cookie_mask))
        with self._switch_lock(dp.id):
            if spec.strict:
                fm = flowspec.build_flow_mod(dp, ofp.OFPFC_DELETE_STRICT, spec.match, priority=spec.priority, **common)
                self.send_confirmed(switch, dp, [fm], "strict flow delete")
                count = None
            elif spec.priority is None and not exposes_table_miss:
                fm = flowspec.build_flow_mod(dp, ofp.OFPFC_DELETE, spec.match, **common)
                self.send_confirmed(switch, dp, [fm], "flow delete")
                count = None
            else:
                # OpenFlow cannot say "all but the table-miss" or "only priority P" in a non-strict
                # delete: list the matching flows and delete each one strictly.
                query = {"table_id": spec.table_id, "cookie": spec.cookie, "cookie_mask": spec.cookie_mask,
                         "match": dict(spec.match), "out_port": spec.out_port, "out_group": spec.out_group}
                if spec.priority is not None:
                    query["priority"] = spec.priority
                flows = ofctl_v1_3.get_flow_stats(dp, self.waiters, query, to_user=False).get(dp.id, [])
                targets = [f for f in flows if not _is_table_miss(f)]
                parser = dp.ofproto_parser
                msgs = [parser.OFPFlowMod(dp, f["cookie"], flowspec.UINT64_MAX, f["table_id"], ofp.OFPFC_DELETE_STRICT,
                                          0, 0, f["priority"], ofp.OFP_NO_BUFFER, ofp.OFPP_ANY, ofp.OFPG_ANY, 0,
                                          f["match"], []) for f in targets]
                if msgs:
                    self.send_confirmed(switch, dp, msgs, "flow delete")
                count = len(msgs)
        LOG.info("switch %s: flows deleted (%s): match %s priority %s strict %s", switch,
                 "count unknown" if count is None else count, spec.match, spec.priority, spec.strict)
        return count

    def add_flow(self, switch: str, match: Mapping[str, Any] | None, actions: list[Mapping[str, Any]] | None,
                 priority: int = flowspec.DEFAULT_PRIORITY, cookie: int = 0, idle_timeout: int = 0,
                 hard_timeout: int = 0, table_id: int = 0, flags: int = 0) -> None:
        """Python form of POST /flows (for other apps); same validation, same errors."""
        body = {"switch": switch, "match": dict(match or {}), "actions": [dict(a) for a in actions or []],
                "priority": priority, "cookie": cookie, "idle_timeout": idle_timeout,
                "hard_timeout": hard_timeout, "table_id": table_id, "flags": flags}
        self.apply_add(flowspec.parse_add(body))

    def delete_flows(self, switch: str, match: Mapping[str, Any] | None = None, priority: int | None = None,
                     cookie: int | None = None, strict: bool = False, **extra: Any) -> int | None:
        """Python form of DELETE /flows (for other apps)."""
        body: dict[str, Any] = {"switch": switch, "match": dict(match or {}), "strict": strict, **extra}
        if priority is not None:
            body["priority"] = priority
        if cookie is not None:
            body["cookie"] = cookie
        return self.apply_delete(flowspec.parse_delete(body))

    def get_flows(self, switch: str) -> list[dict[str, Any]]:
        """The switch's flows in ofctl_v1_3 format, plus `in_port_name` and `actions_named`."""
        self._check_thread()
        switch = self.resolve_switch(switch)
        dp = self.require_datapath(switch)
        with self._switch_lock(dp.id):
            flows = ofctl_v1_3.get_flow_stats(dp, self.waiters, {}, to_user=True).get(str(dp.id), [])
        ports = self.port_table(switch)

        def label(value: Any) -> Any:
            if isinstance(value, int):
                return port_label(value, ports, self.config.prefix, switch)
            return value

        def named(actions: list[Any]) -> list[Any]:
            out: list[Any] = []
            for act in actions:
                if isinstance(act, str) and act.startswith("OUTPUT:") and act[7:].isdigit():
                    out.append(f"OUTPUT:{label(int(act[7:]))}")
                elif isinstance(act, dict):
                    out.append({k: named(v) if isinstance(v, list) else v for k, v in act.items()})
                else:
                    out.append(act)
            return out

        for flow in flows:
            if "in_port" in flow["match"]:
                flow["in_port_name"] = label(flow["match"]["in_port"])
            flow["actions_named"] = named(flow["actions"])
        flows.sort(key=lambda f: (f["table_id"] if isinstance(f["table_id"], int) else 255, -f["priority"]))
        return flows

    def get_ports(self, switch: str) -> list[dict[str, Any]]:
        """The switch's ports, asked from the switch now (also refreshes the cached port table)."""
        self._check_thread()
        switch = self.resolve_switch(switch)
        dp = self.require_datapath(switch)
        with self._switch_lock(dp.id):
            descs = ofctl_v1_3.get_port_desc(dp, self.waiters, to_user=False).get(dp.id, [])
        infos = {d["port_no"]: PortInfo(d["port_no"], d["name"], str(d["hw_addr"]), d["config"], d["state"])
                 for d in descs}
        with self._lock:
            if self._connected.get(dp.id) is dp:
                self._ports[dp.id] = dict(infos)
        return [{"port_no": p.port_no, "name": short_port_name(p.ovs_name, self.config.prefix, switch),
                 "ovs_name": p.ovs_name, "link_up": p.link_up, "admin_up": p.admin_up, "hw_addr": p.hw_addr}
                for p in sorted(infos.values(), key=lambda p: p.port_no)]


def _is_table_miss(flow: Mapping[str, Any]) -> bool:
    match = flow["match"]
    fields = match.to_jsondict()["OFPMatch"]["oxm_fields"] if hasattr(match, "to_jsondict") else match
    return flow["priority"] == 0 and flow["table_id"] == 0 and not fields


def describe_error(msg: Any) -> str:
    """One-line text of an OFPErrorMsg: type, code, and which request failed (type and xid)."""
    ofp = msg.datapath.ofproto
    if msg.type == ofp.OFPET_EXPERIMENTER:
        return f"experimenter error exp_type={msg.exp_type} experimenter={msg.experimenter:#x} xid={msg.xid:#x}"
    try:
        kind = f"{ofp.ofp_error_type_to_str(msg.type)}/{ofp.ofp_error_code_to_str(msg.type, msg.code)}"
    except Exception:
        kind = f"type={msg.type} code={msg.code}"
    data = bytes(msg.data or b"")
    failed = ""
    if msg.type == ofp.OFPET_HELLO_FAILED:
        failed = f", {data.decode('ascii', 'replace')}"
    elif len(data) >= ofp.OFP_HEADER_SIZE:
        _version, msg_type, _length, xid = ofproto_parser.header(data)
        failed = f", failed request {ofp.ofp_msg_type_to_str(msg_type)} xid={xid:#x}"
    return f"{kind} (xid={msg.xid:#x}{failed})"
