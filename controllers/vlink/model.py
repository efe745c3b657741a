"""The virtual link record, one schema for lab files, the API and the store.

A lab file's `vlinks:` section, a `POST /vlinks` body and a row of the data store are the same
pydantic model, so a link that a lab file accepts is exactly one the controller accepts at run time,
and every error names the field that is wrong (`vlinks.vn1.members[2]: ...`).
"""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

LINK_TYPES = ("cable", "switch", "hub", "p2mp", "resilient", "clustered", "replicated", "probe", "external")
LinkType = Literal["cable", "switch", "hub", "p2mp", "resilient", "clustered", "replicated", "probe", "external"]

# Roles each link type takes, the default role of a member that names none, and how many of a role
# a link must have (min, max); None is unbounded.
ROLES: dict[str, dict[str, tuple[int, int | None]]] = {
    "cable": {"a": (1, None), "b": (1, None)},
    "switch": {"member": (2, None)},
    "hub": {"member": (2, None)},
    "p2mp": {"root": (1, 1), "leaf": (1, None)},
    "resilient": {"root": (1, 1), "primary": (1, 1), "standby": (1, 1)},
    "clustered": {"root": (1, 1), "member": (1, None)},
    "replicated": {"tap": (1, None)},
    "probe": {"collector": (1, 1)},
    "external": {"member": (1, None)},
}
DEFAULT_ROLE = {"switch": "member", "hub": "member", "p2mp": "leaf", "clustered": "member",
                "replicated": "tap", "probe": "collector", "external": "member"}

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$")
ENDPOINT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*:[A-Za-z][A-Za-z0-9_.]*$")
VLAN_MIN, VLAN_MAX = 1, 4094


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _endpoint(value: str) -> str:
    if not isinstance(value, str) or not ENDPOINT_RE.match(value):
        raise ValueError(f"expected 'node:interface' like 'aa1:eth1', got {value!r}")
    return value


class Member(_Strict):
    """One node interface on a link; the node sees it as a plain Ethernet port."""

    endpoint: str
    role: str | None = None
    promiscuous: bool = Field(False, description="hub: receive unicast sent to the other members too")

    @field_validator("endpoint")
    @classmethod
    def _ep(cls, v: str) -> str:
        return _endpoint(v)

    @property
    def node(self) -> str:
        return self.endpoint.split(":", 1)[0]


class ProbePoint(_Strict):
    """Where a virtual probe copies from: a whole link, or one member interface of a link."""

    link: str | None = Field(None, description="link probe point: every frame sent on this link")
    interface: str | None = Field(None, description="interface probe point: frames sent and received by "
                                                    "this member interface ('node:intf')")

    @model_validator(mode="after")
    def _one(self) -> ProbePoint:
        if (self.link is None) == (self.interface is None):
            raise ValueError("give exactly one of 'link' or 'interface'")
        if self.interface is not None:
            _endpoint(self.interface)
        return self


class ExternalPort(_Strict):
    """The switch port an external link bridges to."""

    port: str = Field(..., description="'switch:port' of the grid port facing the external network")
    tagged: bool = Field(False, description="true: the port carries the link's VLAN tag (several external "
                                            "links may share it); false: untagged, one link only")

    @field_validator("port")
    @classmethod
    def _port(cls, v: str) -> str:
        return _endpoint(v)


class VLinkSpec(_Strict):
    """A virtual link as the operator declares it (link ID = name)."""

    name: str
    type: LinkType
    vlan: int | None = Field(None, description="user-assigned VLAN ID; default: the next free one of the "
                                               "grid's reserved block")
    members: list[Member] = Field(default_factory=list)
    description: str | None = None
    hub_mode: bool = Field(False, description="p2mp: replicate every frame from the root to every leaf")
    revertive: bool = Field(True, description="resilient: go back to the primary once it is up again")
    tap: str | None = Field(None, description="replicated: the link to tap")
    source: str | None = Field(None, description="replicated: the tapped link's member whose frames are "
                                                 "copied (default: its root, or its first member)")
    points: list[ProbePoint] = Field(default_factory=list, description="probe: the probe points")
    external: ExternalPort | None = Field(None, description="external: the external port")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"link name {v!r}: start with a letter; letters, digits, '_', '-', '.'; "
                             "at most 32 characters")
        return v

    @field_validator("vlan")
    @classmethod
    def _vlan(cls, v: int | None) -> int | None:
        if v is not None and not VLAN_MIN <= v <= VLAN_MAX:
            raise ValueError(f"VLAN {v} is outside {VLAN_MIN}-{VLAN_MAX}")
        return v

    @field_validator("members", mode="before")
    @classmethod
    def _members(cls, v: Any) -> Any:
        # "node:intf" strings are members with the default role; {"aa1:eth1": "root"} names the role
        if not isinstance(v, list):
            return v
        out = []
        for item in v:
            if isinstance(item, str):
                out.append({"endpoint": item})
            elif isinstance(item, dict) and len(item) == 1 and "endpoint" not in item:
                (ep, role), = item.items()
                out.append({"endpoint": ep, "role": role} if isinstance(role, str) else {"endpoint": ep, **(role or {})})
            else:
                out.append(item)
        return out

    # ----- derived ---------------------------------------------------------------------------

    def role_of(self, index: int) -> str:
        m = self.members[index]
        if m.role:
            return m.role
        if self.type == "cable":
            return "a" if index == 0 else "b"
        return DEFAULT_ROLE.get(self.type, "member")

    def with_role(self, role: str) -> list[Member]:
        return [m for i, m in enumerate(self.members) if self.role_of(i) == role]

    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def references(self) -> list[str]:
        """Links this one copies from (replicated, probe): they must exist first."""
        refs = [self.tap] if self.tap else []
        refs += [p.link for p in self.points if p.link]
        return refs


def role_problems(spec: VLinkSpec) -> list[tuple[str, str]]:
    """(field path, message) for every role rule a link breaks."""
    out: list[tuple[str, str]] = []
    roles = ROLES[spec.type]
    counts: dict[str, int] = {r: 0 for r in roles}
    seen: dict[str, int] = {}
    for i, m in enumerate(spec.members):
        role = spec.role_of(i)
        if role not in roles:
            out.append((f"members[{i}].role", f"a {spec.type} link takes roles {', '.join(roles)}; got {role!r}"))
            continue
        counts[role] += 1
        lo, hi = roles[role]
        if hi is not None and counts[role] > hi:
            first = next(j for j in range(i) if spec.role_of(j) == role)
            what = "one" if hi == 1 else f"at most {hi}"
            out.append((f"members[{i}]", f"a {spec.type} link has {what} {role}; {m.endpoint} would be a second "
                                         f"{role} (the {role} is already {spec.members[first].endpoint})"))
        if m.endpoint in seen:
            out.append((f"members[{i}]", f"{m.endpoint} is listed twice (also members[{seen[m.endpoint]}])"))
        seen.setdefault(m.endpoint, i)
        if m.promiscuous and spec.type != "hub":
            out.append((f"members[{i}].promiscuous", "only hub members can be promiscuous"))
    for role, (lo, _hi) in roles.items():
        if counts[role] < lo:
            out.append(("members", f"a {spec.type} link needs at least {lo} {role}"
                                   f"{'s' if lo > 1 else ''}; it has {counts[role]}"))
    if spec.hub_mode and spec.type != "p2mp":
        out.append(("hub_mode", "only point-to-multipoint links have a hub mode"))
    if spec.type == "replicated" and not spec.tap:
        out.append(("tap", "a replicated link names the link it taps"))
    if spec.type != "replicated" and (spec.tap or spec.source):
        out.append(("tap", "only replicated links tap another link"))
    if spec.type == "probe" and not spec.points:
        out.append(("points", "a probe needs at least one probe point"))
    if spec.type != "probe" and spec.points:
        out.append(("points", "only probes have probe points"))
    if spec.type == "external":
        if spec.external is None:
            out.append(("external", "an external link names its external port: {port: 'sw:port', tagged: false}"))
        elif spec.external.tagged and spec.vlan is None:
            out.append(("vlan", "a tagged external link needs a user-assigned VLAN (the external network's tag)"))
    elif spec.external is not None:
        out.append(("external", "only external links have an external port"))
    return out


class LinkSpecError(ValueError):
    """A link spec that is wrong; `problems` holds (field path, message) pairs, one per problem."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{path}: {msg}" if path else msg for path, msg in problems))


def parse_link(data: Any, name: str | None = None) -> VLinkSpec:
    """A VLinkSpec from a dict (lab file entry or API body); LinkSpecError names the fields."""
    if not isinstance(data, dict):
        raise LinkSpecError([("", f"expected an object with type and members, got {type(data).__name__}")])
    body = dict(data)
    if name is not None:
        if "name" in body and body["name"] != name:
            raise LinkSpecError([("name", f"{body['name']!r} differs from the key {name!r}")])
        body["name"] = name
    try:
        spec = VLinkSpec.model_validate(body)
    except ValidationError as exc:
        raise LinkSpecError(error_list(exc)) from None
    problems = role_problems(spec)
    if problems:
        raise LinkSpecError(problems)
    return spec


def error_list(exc: ValidationError) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        loc = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in err["loc"]).replace(".[", "[")
        out.append((loc, err["msg"].removeprefix("Value error, ")))
    return out
