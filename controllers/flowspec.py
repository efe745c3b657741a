"""Validation and normalisation of flow requests, before anything reaches a switch.

os-ken's `ofctl_v1_3` converters are lenient: an unknown match field is logged and dropped (the rule
then matches more than the test meant), a bad value only fails while the message is serialised, and
a missing prerequisite (`ipv4_dst` without `eth_type`) is only noticed by the switch, which answers
with an OFPErrorMsg after the API call has already "succeeded". For a test harness each of those is
a silent lie, so every request is checked here first, field by field, with an error text that names
the field. Only a request that passes completely is turned into one OpenFlow message, which is
what guarantees that bad input never leaves a rule half-installed.

Port names cannot be checked without the switch's port table, so they are carried as `PortRef`
placeholders and resolved by the caller (see `resolve_ports`).
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from os_ken.lib import ofctl_v1_3
from os_ken.ofproto import ofproto_protocol
from os_ken.ofproto import ofproto_v1_3 as ofp

from controllers.errors import ApiError
from controllers.portnames import parse_port_number

# A datapath stand-in with the OF1.3 encoder: enough to build and serialise messages offline.
OFFLINE_DP = ofproto_protocol.ProtocolDesc(ofp.OFP_VERSION)

DEFAULT_PRIORITY = ofp.OFP_DEFAULT_PRIORITY  # 32768, as ovs-ofctl
UINT64_MAX = 0xFFFFFFFFFFFFFFFF

MATCH_FIELDS = (
    "in_port", "in_phy_port", "metadata", "eth_dst", "eth_src", "eth_type", "vlan_vid", "vlan_pcp",
    "ip_dscp", "ip_ecn", "ip_proto", "ipv4_src", "ipv4_dst", "tcp_src", "tcp_dst", "udp_src",
    "udp_dst", "sctp_src", "sctp_dst", "icmpv4_type", "icmpv4_code", "arp_op", "arp_spa", "arp_tpa",
    "arp_sha", "arp_tha", "ipv6_src", "ipv6_dst", "ipv6_flabel", "icmpv6_type", "icmpv6_code",
    "ipv6_nd_target", "ipv6_nd_sll", "ipv6_nd_tll", "mpls_label", "mpls_tc", "mpls_bos", "pbb_isid",
    "tunnel_id", "ipv6_exthdr",
)
# Old (OpenFlow 1.0 / ofctl) names, accepted because ofctl's own flow dumps use them.
MATCH_ALIASES = {
    "dl_dst": "eth_dst", "dl_src": "eth_src", "dl_type": "eth_type", "dl_vlan": "vlan_vid",
    "nw_src": "ipv4_src", "nw_dst": "ipv4_dst", "nw_proto": "ip_proto",
}

ETH_IPV4, ETH_IPV6, ETH_ARP, ETH_PBB = 0x0800, 0x86DD, 0x0806, 0x88E7
ETH_MPLS = (0x8847, 0x8848)
_ETH_LABEL = {ETH_IPV4: "IPv4", ETH_IPV6: "IPv6", ETH_ARP: "ARP", ETH_PBB: "PBB",
              0x8847: "MPLS", 0x8848: "MPLS multicast"}
_PROTO_LABEL = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 132: "SCTP"}

# OpenFlow 1.3 match prerequisites (spec table 12): field -> allowed eth_type values.
PREREQ_ETH_TYPE: dict[str, tuple[int, ...]] = {
    **{f: (ETH_IPV4,) for f in ("ipv4_src", "ipv4_dst", "icmpv4_type", "icmpv4_code")},
    **{f: (ETH_IPV6,) for f in ("ipv6_src", "ipv6_dst", "ipv6_flabel", "ipv6_exthdr", "icmpv6_type",
                                "icmpv6_code", "ipv6_nd_target", "ipv6_nd_sll", "ipv6_nd_tll")},
    **{f: (ETH_ARP,) for f in ("arp_op", "arp_spa", "arp_tpa", "arp_sha", "arp_tha")},
    **{f: (ETH_IPV4, ETH_IPV6) for f in ("ip_proto", "ip_dscp", "ip_ecn", "tcp_src", "tcp_dst",
                                         "udp_src", "udp_dst", "sctp_src", "sctp_dst")},
    **{f: ETH_MPLS for f in ("mpls_label", "mpls_tc", "mpls_bos")},
    "pbb_isid": (ETH_PBB,),
}
PREREQ_IP_PROTO: dict[str, int] = {
    "tcp_src": 6, "tcp_dst": 6, "udp_src": 17, "udp_dst": 17, "sctp_src": 132, "sctp_dst": 132,
    "icmpv4_type": 1, "icmpv4_code": 1, "icmpv6_type": 58, "icmpv6_code": 58,
    "ipv6_nd_target": 58, "ipv6_nd_sll": 58, "ipv6_nd_tll": 58,
}
PREREQ_ICMPV6_TYPE: dict[str, tuple[int, ...]] = {
    "ipv6_nd_target": (135, 136), "ipv6_nd_sll": (135,), "ipv6_nd_tll": (136,),
}

# Action type -> (required keys, optional keys, defaults). Instructions are listed too, as ofctl does.
_ETHERTYPE_DEFAULTS = {"PUSH_VLAN": 0x8100, "PUSH_MPLS": 0x8847, "PUSH_PBB": 0x88E7}
ACTION_KEYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "OUTPUT": (frozenset({"port"}), frozenset({"max_len"})),
    "COPY_TTL_OUT": (frozenset(), frozenset()),
    "COPY_TTL_IN": (frozenset(), frozenset()),
    "SET_MPLS_TTL": (frozenset({"mpls_ttl"}), frozenset()),
    "DEC_MPLS_TTL": (frozenset(), frozenset()),
    "PUSH_VLAN": (frozenset(), frozenset({"ethertype"})),
    "POP_VLAN": (frozenset(), frozenset()),
    "PUSH_MPLS": (frozenset(), frozenset({"ethertype"})),
    "POP_MPLS": (frozenset({"ethertype"}), frozenset()),
    "SET_QUEUE": (frozenset({"queue_id"}), frozenset()),
    "GROUP": (frozenset({"group_id"}), frozenset()),
    "SET_NW_TTL": (frozenset({"nw_ttl"}), frozenset()),
    "DEC_NW_TTL": (frozenset(), frozenset()),
    "SET_FIELD": (frozenset({"field", "value"}), frozenset()),
    "PUSH_PBB": (frozenset(), frozenset({"ethertype"})),
    "POP_PBB": (frozenset(), frozenset()),
    "EXPERIMENTER": (frozenset({"experimenter"}), frozenset({"data_type", "data"})),
    # instructions
    "WRITE_ACTIONS": (frozenset({"actions"}), frozenset()),
    "CLEAR_ACTIONS": (frozenset(), frozenset()),
    "GOTO_TABLE": (frozenset({"table_id"}), frozenset()),
    "WRITE_METADATA": (frozenset({"metadata"}), frozenset({"metadata_mask"})),
    "METER": (frozenset({"meter_id"}), frozenset()),
}
INSTRUCTION_TYPES = frozenset({"WRITE_ACTIONS", "CLEAR_ACTIONS", "GOTO_TABLE", "WRITE_METADATA", "METER"})

ADD_KEYS = frozenset({"switch", "dpid", "priority", "match", "actions", "cookie", "idle_timeout",
                      "hard_timeout", "table_id", "flags"})
DELETE_KEYS = frozenset({"switch", "dpid", "priority", "match", "cookie", "cookie_mask", "strict",
                         "table_id", "out_port", "out_group"})


@dataclass(frozen=True)
class PortRef:
    """A port given by name in a request; `where` is the field path used in error messages."""

    name: str
    where: str


@dataclass
class FlowAdd:
    """A validated POST /flows request (ports possibly still `PortRef`)."""

    switch: str | int
    match: dict[str, Any]
    actions: list[dict[str, Any]]
    priority: int = DEFAULT_PRIORITY
    cookie: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0
    table_id: int = 0
    flags: int = 0


@dataclass
class FlowDelete:
    """A validated DELETE /flows request. `cookie_mask` is all ones when only `cookie` was given."""

    switch: str | int
    match: dict[str, Any] = field(default_factory=dict)
    priority: int | None = None
    cookie: int = 0
    cookie_mask: int = 0
    strict: bool = False
    table_id: int = ofp.OFPTT_ALL
    out_port: int | PortRef = ofp.OFPP_ANY
    out_group: int = ofp.OFPG_ANY


# ---------------------------------------------------------------------------------------------
# small parsers


def parse_int(value: Any, where: str, lo: int, hi: int, names: Mapping[str, int] | None = None) -> int:
    """An integer field: JSON number or string (decimal/0x hex), optionally a symbolic name."""
    if isinstance(value, bool) or value is None:
        raise ApiError(400, f"{where}: expected an integer, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if names and text.upper() in names:
            return names[text.upper()]
        try:
            number = int(text, 0)
        except ValueError:
            hint = f" or one of {', '.join(names)}" if names else ""
            raise ApiError(400, f"{where}: expected an integer{hint}, got {value!r}") from None
    elif isinstance(value, int):
        number = value
    else:
        raise ApiError(400, f"{where}: expected an integer, got {type(value).__name__} {value!r}")
    if not lo <= number <= hi:
        raise ApiError(400, f"{where}: {number} out of range {lo}..{hi}")
    return number


def parse_switch_ref(body: Mapping[str, Any]) -> str | int:
    """The target switch of a request: `"switch": "s1"` or `"dpid": 1` (also "0x1")."""
    has_name, has_dpid = "switch" in body, "dpid" in body
    if not has_name and not has_dpid:
        raise ApiError(400, 'missing "switch" (switch name) or "dpid"')
    if has_name and has_dpid:
        raise ApiError(400, 'give either "switch" or "dpid", not both')
    if has_name:
        name = body["switch"]
        if not isinstance(name, str) or not name:
            raise ApiError(400, f"switch: expected a switch name, got {name!r}")
        return name
    return parse_int(body["dpid"], "dpid", 0, UINT64_MAX)


def _check_keys(body: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, f"{where}unknown field {unknown[0]!r} (known: {', '.join(sorted(allowed))})")


def _require_object(body: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, f"{what}: expected a JSON object, got {type(body).__name__}")
    return body


# ---------------------------------------------------------------------------------------------
# match


def _value_int(value: Any) -> int | None:
    """Best-effort integer view of a match value for prerequisite checks (None if not plain)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip(), 0)
        except ValueError:
            return None
    return None


def _eth_label(values: tuple[int, ...]) -> str:
    return " or ".join(f"{v} (0x{v:04x}, {_ETH_LABEL.get(v, '?')})" for v in values)


def normalize_match(raw: Any, where: str = "match") -> dict[str, Any]:
    """Check a match object and return it with OpenFlow 1.3 field names.

    Old names (dl_type, nw_dst, tp_dst, ...) are mapped as ofctl does; in_port names become
    PortRef. Unknown fields, duplicates, bad values and missing prerequisites raise ApiError(400).
    """
    if raw is None:
        return {}
    raw = _require_object(raw, where)
    for key, value in raw.items():
        if value is None or isinstance(value, (bool, list, dict, float)):
            raise ApiError(400, f"{where}.{key}: expected a number or string, got {value!r}")

    eth_key = next((k for k in ("eth_type", "dl_type") if k in raw), None)
    eth_type = _value_int(raw[eth_key]) if eth_key else None
    proto_key = next((k for k in ("ip_proto", "nw_proto") if k in raw), None)
    ip_proto = _value_int(raw[proto_key]) if proto_key else None

    out: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for key, value in raw.items():
        name = key
        if key in ("tp_src", "tp_dst"):
            proto = {6: "tcp", 17: "udp", 132: "sctp"}.get(ip_proto if ip_proto is not None else -1)
            if proto is None:
                raise ApiError(400, f"{where}.{key}: needs \"ip_proto\": 6 (TCP), 17 (UDP) or 132 (SCTP) "
                                    "in the same match (or use tcp_dst/udp_dst/... directly)")
            name = f"{proto}_{key[3:]}"
        elif key in ("nw_src", "nw_dst") and eth_type == ETH_ARP:
            name = "arp_spa" if key == "nw_src" else "arp_tpa"
        elif key in MATCH_ALIASES:
            name = MATCH_ALIASES[key]
        elif key not in MATCH_FIELDS:
            raise ApiError(400, f"{where}.{key}: unknown match field (known: {', '.join(MATCH_FIELDS)})")
        if name in out:
            raise ApiError(400, f"{where}.{key}: same field as {where}.{origin[name]}; give it once")
        out[name] = value
        origin[name] = key

    for name, value in out.items():
        label = f"{where}.{origin[name]}"
        if name == "in_port":
            try:
                number = parse_port_number(value)
            except ApiError as exc:
                raise ApiError(400, f"{label}: {exc.message}") from None
            if number is not None and number > ofp.OFPP_MAX and number not in (ofp.OFPP_LOCAL, ofp.OFPP_CONTROLLER):
                raise ApiError(400, f"{label}: {value!r} is not a port a packet can come in on")
            out[name] = number if number is not None else PortRef(str(value).strip(), label)
            continue
        _check_match_value(name, value, label)

    _check_prerequisites(out, origin, eth_type, ip_proto, where)
    return out


def _check_match_value(name: str, value: Any, label: str) -> None:
    """Encode one field on its own, so a bad value is reported against that field."""
    try:
        m = ofctl_v1_3.to_match(OFFLINE_DP, {name: value})
        m.serialize(bytearray(), 0)
    except Exception as exc:  # the converters raise anything from ValueError to struct.error
        raise ApiError(400, f"{label}: invalid value {value!r} ({_exc_text(exc)})") from None
    if name in ("eth_type", "ip_proto") and _value_int(value) is None:
        raise ApiError(400, f"{label}: expected a plain integer, got {value!r}")


def _check_prerequisites(out: Mapping[str, Any], origin: Mapping[str, str], eth_type: int | None,
                         ip_proto: int | None, where: str) -> None:
    for name in out:
        label = f"{where}.{origin[name]}"
        need_eth = PREREQ_ETH_TYPE.get(name)
        if need_eth and eth_type not in need_eth:
            have = "no eth_type" if eth_type is None else f"eth_type {eth_type} (0x{eth_type:04x})"
            raise ApiError(400, f"{label}: needs \"eth_type\": {_eth_label(need_eth)} in the same match "
                                f"(OpenFlow prerequisite; the match has {have})")
        need_proto = PREREQ_IP_PROTO.get(name)
        if need_proto is not None and ip_proto != need_proto:
            have = "no ip_proto" if ip_proto is None else f"ip_proto {ip_proto}"
            raise ApiError(400, f"{label}: needs \"ip_proto\": {need_proto} ({_PROTO_LABEL[need_proto]}) in the "
                                f"same match (OpenFlow prerequisite; the match has {have})")
        need_icmp = PREREQ_ICMPV6_TYPE.get(name)
        if need_icmp:
            icmp_type = _value_int(out.get("icmpv6_type"))
            if icmp_type not in need_icmp:
                raise ApiError(400, f"{label}: needs \"icmpv6_type\": {' or '.join(map(str, need_icmp))} "
                                    "(neighbour discovery) in the same match")
        if name == "vlan_pcp":
            vid = out.get("vlan_vid")
            if vid is None or _value_int(vid) == ofp.OFPVID_NONE:
                raise ApiError(400, f"{label}: needs a \"vlan_vid\" (tagged frames) in the same match")


# ---------------------------------------------------------------------------------------------
# actions


def normalize_actions(raw: Any, table_id: int, where: str = "actions", nested: bool = False) -> list[dict[str, Any]]:
    """Check an ofctl-style action list; OUTPUT ports given by name become PortRef.

    Each action is encoded on its own so that a bad value is reported as `actions[i]`.
    """
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ApiError(400, f"{where}: expected a list of actions, got {type(raw).__name__}")
    result: list[dict[str, Any]] = []
    seen_instructions: dict[str, int] = {}
    for i, act in enumerate(raw):
        label = f"{where}[{i}]"
        if not isinstance(act, dict):
            raise ApiError(400, f"{label}: expected an object like {{\"type\": \"OUTPUT\", \"port\": \"eth2\"}}, got {act!r}")
        atype = act.get("type")
        if not isinstance(atype, str) or not atype:
            raise ApiError(400, f"{label}: missing \"type\"")
        atype = atype.strip().upper()
        if atype not in ACTION_KEYS:
            raise ApiError(400, f"{label}.type: unknown action {act['type']!r} (known: {', '.join(ACTION_KEYS)})")
        if nested and atype in INSTRUCTION_TYPES:
            raise ApiError(400, f"{label}.type: {atype} is an instruction, not allowed inside WRITE_ACTIONS")
        if atype in INSTRUCTION_TYPES:
            if atype in seen_instructions:
                raise ApiError(400, f"{label}: {atype} given twice (also {where}[{seen_instructions[atype]}])")
            seen_instructions[atype] = i
        required, optional = ACTION_KEYS[atype]
        keys = set(act) - {"type"}
        missing = sorted(required - keys)
        if missing:
            raise ApiError(400, f"{label}: {atype} needs \"{missing[0]}\"")
        extra = sorted(keys - required - optional)
        if extra:
            allowed = ", ".join(sorted(required | optional)) or "nothing"
            raise ApiError(400, f"{label}: unknown field {extra[0]!r} for {atype} (allowed: {allowed})")
        norm = {k: v for k, v in act.items() if k != "type"}
        norm["type"] = atype
        if atype in _ETHERTYPE_DEFAULTS:
            norm.setdefault("ethertype", _ETHERTYPE_DEFAULTS[atype])
        if atype == "OUTPUT":
            try:
                number = parse_port_number(act["port"])
            except ApiError as exc:
                raise ApiError(400, f"{label}.port: {exc.message}") from None
            norm["port"] = number if number is not None else PortRef(str(act["port"]).strip(), f"{label}.port")
        elif atype == "GOTO_TABLE":
            goto = parse_int(act["table_id"], f"{label}.table_id", 0, ofp.OFPTT_MAX)
            if goto <= table_id:
                raise ApiError(400, f"{label}.table_id: GOTO_TABLE {goto} must go to a later table than "
                                    f"the flow's table {table_id}")
            norm["table_id"] = goto
        elif atype == "EXPERIMENTER" and norm.get("data_type", "ascii") not in ("ascii", "base64"):
            raise ApiError(400, f"{label}.data_type: expected \"ascii\" or \"base64\", got {norm['data_type']!r}")
        elif atype == "WRITE_ACTIONS":
            norm["actions"] = normalize_actions(act["actions"], table_id, f"{label}.actions", nested=True)
        if atype != "WRITE_ACTIONS":
            _check_action_encodes(norm, label)
        result.append(norm)
    return result


def _check_action_encodes(action: Mapping[str, Any], label: str) -> None:
    probe = placeholder_ports(dict(action))
    try:
        inst = ofctl_v1_3.to_actions(OFFLINE_DP, [probe])
        if not inst:
            raise ValueError("not supported by OpenFlow 1.3")
        _offline_flow_mod({}, inst).serialize()
    except ApiError:
        raise
    except Exception as exc:
        raise ApiError(400, f"{label}: invalid {action['type']} ({_exc_text(exc)})") from None


# ---------------------------------------------------------------------------------------------
# whole requests


def parse_add(body: Any) -> FlowAdd:
    """Validate a POST /flows body completely (except port names, see resolve_ports)."""
    body = _require_object(body, "request body")
    _check_keys(body, ADD_KEYS, "")
    switch = parse_switch_ref(body)
    table_id = parse_int(body.get("table_id", 0), "table_id", 0, ofp.OFPTT_MAX)
    spec = FlowAdd(
        switch=switch,
        priority=parse_int(body.get("priority", DEFAULT_PRIORITY), "priority", 0, 0xFFFF),
        cookie=parse_int(body.get("cookie", 0), "cookie", 0, UINT64_MAX - 1),
        idle_timeout=parse_int(body.get("idle_timeout", 0), "idle_timeout", 0, 0xFFFF),
        hard_timeout=parse_int(body.get("hard_timeout", 0), "hard_timeout", 0, 0xFFFF),
        table_id=table_id,
        flags=parse_int(body.get("flags", 0), "flags", 0, 0x1F),
        match=normalize_match(body.get("match")),
        actions=normalize_actions(body.get("actions"), table_id),
    )
    try:
        msg = _offline_flow_mod(placeholder_ports(spec.match),
                                ofctl_v1_3.to_actions(OFFLINE_DP, placeholder_ports(spec.actions)),
                                priority=spec.priority, table_id=spec.table_id)
        msg.serialize()
    except Exception as exc:
        raise ApiError(400, f"flow cannot be encoded: {_exc_text(exc)}") from None
    return spec


def parse_delete(body: Any) -> FlowDelete:
    """Validate a DELETE /flows body.

    strict=true needs an explicit priority: OpenFlow would otherwise use priority 0 and a strict
    delete with an empty match would remove the table-miss rule.
    """
    body = _require_object(body, "request body")
    _check_keys(body, DELETE_KEYS, "")
    switch = parse_switch_ref(body)
    strict = body.get("strict", False)
    if not isinstance(strict, bool):
        raise ApiError(400, f"strict: expected true or false, got {strict!r}")
    priority = body.get("priority")
    if priority is not None:
        priority = parse_int(priority, "priority", 0, 0xFFFF)
    elif strict:
        raise ApiError(400, "priority: required when strict is true (a strict delete matches one priority)")
    table_id = parse_int(body.get("table_id", "ALL"), "table_id", 0, ofp.OFPTT_ALL, {"ALL": ofp.OFPTT_ALL})
    cookie = body.get("cookie")
    mask = body.get("cookie_mask")
    cookie_v = parse_int(cookie, "cookie", 0, UINT64_MAX) if cookie is not None else 0
    if mask is not None:
        mask_v = parse_int(mask, "cookie_mask", 0, UINT64_MAX)
    else:
        mask_v = UINT64_MAX if cookie is not None else 0
    out_port: int | PortRef = ofp.OFPP_ANY
    if body.get("out_port") is not None:
        try:
            number = parse_port_number(body["out_port"])
        except ApiError as exc:
            raise ApiError(400, f"out_port: {exc.message}") from None
        out_port = number if number is not None else PortRef(str(body["out_port"]).strip(), "out_port")
    out_group = parse_int(body.get("out_group", "ANY"), "out_group", 0, ofp.OFPG_ANY,
                          {"ANY": ofp.OFPG_ANY, "ALL": ofp.OFPG_ALL})
    return FlowDelete(switch=switch, match=normalize_match(body.get("match")), priority=priority,
                      cookie=cookie_v, cookie_mask=mask_v, strict=strict, table_id=table_id,
                      out_port=out_port, out_group=out_group)


# ---------------------------------------------------------------------------------------------
# port references


def _map_ports(obj: Any, fn: Callable[[PortRef], int]) -> Any:
    if isinstance(obj, PortRef):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_ports(v, fn) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_map_ports(v, fn) for v in obj]
    return obj


def placeholder_ports(obj: Any) -> Any:
    """A copy with every PortRef replaced by port 1 (for encoding checks without a switch)."""
    return _map_ports(copy.deepcopy(obj), lambda ref: 1)


def port_refs(obj: Any) -> list[PortRef]:
    """Every PortRef in a spec, in request order."""
    found: list[PortRef] = []

    def collect(ref: PortRef) -> int:
        found.append(ref)
        return 0

    if isinstance(obj, (FlowAdd, FlowDelete)):
        for part in (obj.match, getattr(obj, "actions", []), getattr(obj, "out_port", None)):
            _map_ports(part, collect)
    else:
        _map_ports(obj, collect)
    return found


def resolve_ports(spec: FlowAdd | FlowDelete, fn: Callable[[PortRef], int]) -> FlowAdd | FlowDelete:
    """A copy of `spec` with every PortRef turned into a port number by `fn` (which may raise ApiError)."""
    if isinstance(spec, FlowAdd):
        return replace(spec, match=_map_ports(spec.match, fn), actions=_map_ports(spec.actions, fn))
    return replace(spec, match=_map_ports(spec.match, fn), out_port=_map_ports(spec.out_port, fn))


# ---------------------------------------------------------------------------------------------
# message building (the only place OFPFlowMod is built for API requests)


def build_flow_mod(dp: Any, command: int, match: Mapping[str, Any], actions: list[dict[str, Any]] | None = None,
                   *, priority: int = 0, cookie: int = 0, cookie_mask: int = 0, table_id: int = 0,
                   idle_timeout: int = 0, hard_timeout: int = 0, flags: int = 0,
                   out_port: int = ofp.OFPP_ANY, out_group: int = ofp.OFPG_ANY) -> Any:
    """An OFPFlowMod from a resolved match/action spec, using ofctl's converters.

    This mirrors ofctl_v1_3.mod_flow_entry but returns the message instead of sending it, so the
    caller controls the xid (needed to tie a switch's OFPErrorMsg to the request that caused it).
    """
    ofmatch = ofctl_v1_3.to_match(dp, dict(match))
    inst = ofctl_v1_3.to_actions(dp, list(actions or []))
    return dp.ofproto_parser.OFPFlowMod(
        dp, cookie, cookie_mask, table_id, command, idle_timeout, hard_timeout, priority,
        dp.ofproto.OFP_NO_BUFFER, out_port, out_group, flags, ofmatch, inst)


def _offline_flow_mod(match: Mapping[str, Any], inst: list[Any], priority: int = 0, table_id: int = 0) -> Any:
    parser = OFFLINE_DP.ofproto_parser
    msg = parser.OFPFlowMod(OFFLINE_DP, 0, 0, table_id, ofp.OFPFC_ADD, 0, 0, priority, ofp.OFP_NO_BUFFER,
                            ofp.OFPP_ANY, ofp.OFPG_ANY, 0, ofctl_v1_3.to_match(OFFLINE_DP, dict(match)), inst)
    msg.xid = 0
    return msg


def _exc_text(exc: BaseException) -> str:
    text = str(exc).strip().strip("'\"")
    return text or type(exc).__name__
