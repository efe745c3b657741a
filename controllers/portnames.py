"""Translation between OVS port names and the short names the API shows.

Mininet (and the e2e tests) name a switch's OVS ports `<prefix><switch>-<intf>`, e.g. `def00s1-eth1`,
where the per-lab prefix keeps parallel labs apart in the shared root namespace. Tests should not
have to know the prefix, so the API shows and accepts `eth1`. Ports that do not follow the pattern
(the bridge's LOCAL port, management ports, anything else) keep their full name, so nothing is
ever hidden or made ambiguous.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp

from controllers.errors import ApiError

# Reserved OpenFlow 1.3 port names accepted wherever a port is (OFPP_<NAME>).
RESERVED_PORTS: dict[str, int] = {
    "IN_PORT": ofp.OFPP_IN_PORT,
    "TABLE": ofp.OFPP_TABLE,
    "NORMAL": ofp.OFPP_NORMAL,
    "FLOOD": ofp.OFPP_FLOOD,
    "ALL": ofp.OFPP_ALL,
    "CONTROLLER": ofp.OFPP_CONTROLLER,
    "LOCAL": ofp.OFPP_LOCAL,
    "ANY": ofp.OFPP_ANY,
}
RESERVED_BY_NUMBER: dict[int, str] = {v: k for k, v in RESERVED_PORTS.items()}
MAX_PORT = 0xFFFFFFFF


def ovs_prefix(prefix: str, switch: str) -> str:
    """The part of an OVS port name that the API strips, e.g. `def00s1-`."""
    return f"{prefix}{switch}-"


def short_port_name(ovs_name: str, prefix: str, switch: str) -> str:
    """`def00s1-eth1` -> `eth1`; names that do not follow the lab pattern are returned unchanged."""
    head = ovs_prefix(prefix, switch)
    if ovs_name.startswith(head) and len(ovs_name) > len(head):
        return ovs_name[len(head):]
    return ovs_name


def full_port_name(short: str, prefix: str, switch: str) -> str:
    """`eth1` -> `def00s1-eth1` (the name OVS and `ip link` use in the root namespace)."""
    return ovs_prefix(prefix, switch) + short


def parse_port_number(value: object) -> int | None:
    """A port given as a number (int or digit string) or a reserved name; None if it is a name.

    Raises ApiError for values that are neither (wrong type, out of range).
    """
    if isinstance(value, bool):
        raise ApiError(400, f"expected a port name or number, got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise ApiError(400, "empty port name")
        if text.upper() in RESERVED_PORTS:
            return RESERVED_PORTS[text.upper()]
        try:
            number = int(text, 0)
        except ValueError:
            return None
    else:
        raise ApiError(400, f"expected a port name or number, got {type(value).__name__} {value!r}")
    if not 0 <= number <= MAX_PORT:
        raise ApiError(400, f"port number {number} out of range 0..{MAX_PORT}")
    return number


def resolve_port(value: object, ports: Mapping[int, str], prefix: str, switch: str, where: str) -> int:
    """Turn a port reference from a request into an OpenFlow port number.

    `ports` maps port_no -> OVS name for the switch. Accepted: short name (`eth1`), full OVS name
    (`def00s1-eth1`), a number, or a reserved name (`NORMAL`, `CONTROLLER`, `LOCAL`, ...).
    Unknown names raise ApiError(400) naming the field and listing the ports the switch has, so a
    typo in a test is obvious from the message alone.
    """
    try:
        number = parse_port_number(value)
    except ApiError as exc:
        raise ApiError(400, f"{where}: {exc.message}") from None
    if number is not None:
        return number
    name = str(value).strip()
    by_short = {short_port_name(n, prefix, switch): no for no, n in ports.items()}
    if name in by_short:
        return by_short[name]
    for no, ovs_name in ports.items():
        if ovs_name == name:
            return no
    shown = sorted((short_port_name(n, prefix, switch) for no, n in ports.items() if no <= ofp.OFPP_MAX),
                   key=natural_key)
    known = ", ".join(shown) if shown else "none known"
    raise ApiError(400, f"{where}: no port named {name} on switch {switch} (ports: {known})")


def natural_key(name: str) -> list[Any]:
    """Sort key that puts eth2 before eth10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def port_label(port_no: int, ports: Mapping[int, str], prefix: str, switch: str) -> str | int:
    """The API's name for a port number: short name, reserved name, or the number if unknown."""
    if port_no in ports:
        return short_port_name(ports[port_no], prefix, switch)
    if port_no in RESERVED_BY_NUMBER:
        return RESERVED_BY_NUMBER[port_no]
    return port_no
