"""Operator access to a running lab's virtual links (docs/vlinks.md): `twin vlink ...` comes through
here. Everything goes to the controller's virtual link manager over its northbound API (`/vlinks`),
so the command line, a test and a script create the same links with the same checks.

The options of `twin vlink create` become a link spec in `spec_from_options`, a pure function that
checks the spec with the manager's own model (controllers/vlink/model.py): a spec it returns is one
the lab file's `vlinks:` section and `POST /vlinks` accept too, and what it refuses is refused with
the option or field named, before the lab is asked. What only the running lab can decide (is the
interface wired to the grid, is the VLAN free, does the tapped link exist) comes back from the API.
"""
from __future__ import annotations

import difflib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from controllers.vlink.model import ENDPOINT_RE, LINK_TYPES, ROLES, parse_link
from twin.errors import LabError

MEMBER_SYNTAX = "node:interface[=role], like h1:eth1 or h1:eth1=root"


class VLinkInputError(LabError):
    """A create request that is wrong before it reaches the controller; the message names the option
    or the field."""


class VLinkError(LabError):
    """The controller refused or could not answer; `status` is the HTTP status (None: unreachable)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# ----- building a spec ---------------------------------------------------------------------------


def link_type(text: str) -> str:
    low = text.strip().lower()
    if low in LINK_TYPES:
        return low
    close = difflib.get_close_matches(low, LINK_TYPES, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise VLinkInputError(f"--type {text!r}: unknown link type{hint}; expected one of {', '.join(LINK_TYPES)}")


def endpoint(text: str, option: str) -> str:
    if ":" not in text:
        raise VLinkInputError(f"{option} {text!r}: no ':' in it; expected node:interface, like h1:eth1")
    if not ENDPOINT_RE.match(text):
        raise VLinkInputError(f"{option} {text!r}: expected node:interface, like h1:eth1 (letters, digits and "
                              "'_', starting with a letter; '.' also in the interface)")
    return text


def parse_member(text: str, ltype: str) -> tuple[str, str | None]:
    """'h1:eth1=root' -> ('h1:eth1', 'root'); the role must be one the link type takes."""
    ep, sep, role = text.partition("=")
    if ":" not in ep:
        raise VLinkInputError(f"--member {text!r}: no ':' in it; expected {MEMBER_SYNTAX}")
    if not ENDPOINT_RE.match(ep):
        raise VLinkInputError(f"--member {text!r}: expected {MEMBER_SYNTAX}")
    if not sep:
        return ep, None
    roles = ROLES[ltype]
    if not role:
        raise VLinkInputError(f"--member {text!r}: empty role after '='; a {ltype} link takes roles "
                              f"{', '.join(roles)}")
    if role not in roles:
        raise VLinkInputError(f"--member {text!r}: a {ltype} link takes roles {', '.join(roles)}; got {role!r}")
    return ep, role


def spec_from_options(name: str, type: str, members: Sequence[str] = (), *, vlan: int | None = None,
                      promiscuous: Iterable[str] = (), hub_mode: bool = False, revertive: bool | None = None,
                      tap: str | None = None, source: str | None = None, probe_links: Iterable[str] = (),
                      probe_interfaces: Iterable[str] = (), external: str | None = None, tagged: bool = False,
                      description: str | None = None) -> dict[str, Any]:
    """The `POST /vlinks` body for `twin vlink create`'s options, checked with the manager's model.

    Members are 'node:interface' with an optional '=role'; a member without a role takes its link
    type's default (cable: the first is side a, the others side b). Raises VLinkInputError naming the
    option (`--member 'h1': ...`) or, for rules of the link as a whole, the field (`members: ...`).
    """
    ltype = link_type(type)
    out_members: list[Any] = []
    seen: list[str] = []
    for text in members:
        ep, role = parse_member(text, ltype)
        seen.append(ep)
        out_members.append({"endpoint": ep, "role": role} if role else ep)
    for ep in promiscuous:
        endpoint(ep, "--promiscuous")
        if ep not in seen:
            raise VLinkInputError(f"--promiscuous {ep}: not one of the --member interfaces "
                                  f"({', '.join(seen) or 'none given'})")
        i = seen.index(ep)
        m = out_members[i]
        out_members[i] = {**(m if isinstance(m, dict) else {"endpoint": m}), "promiscuous": True}
    if tagged and external is None:
        raise VLinkInputError("--tagged: needs --external switch:port (the tagged port)")
    spec: dict[str, Any] = {"name": name, "type": ltype, "members": out_members}
    if vlan is not None:
        spec["vlan"] = vlan
    if description:
        spec["description"] = description
    if hub_mode:
        spec["hub_mode"] = True
    if revertive is not None:
        spec["revertive"] = revertive
    if tap is not None:
        spec["tap"] = tap
    if source is not None:
        spec["source"] = endpoint(source, "--source")
    points = [{"link": link} for link in probe_links]
    points += [{"interface": endpoint(ep, "--probe-interface")} for ep in probe_interfaces]
    if points:
        spec["points"] = points
    if external is not None:
        spec["external"] = {"port": endpoint(external, "--external"), "tagged": tagged}
    return check_spec(spec)


def check_spec(spec: Mapping[str, Any], key: str | None = None, where: str = "") -> dict[str, Any]:
    """The spec, unchanged but for its name, if the manager's model accepts it; else VLinkInputError."""
    body = dict(spec)
    label = key or body.get("name") or "?"
    try:
        parse_link(body, key)
    except ValueError as exc:
        raise VLinkInputError(f"{where}link {label}: {exc}") from None
    if key is not None:
        body["name"] = key
    return body


def specs_from_data(data: Any, name: str | None = None, where: str = "") -> list[dict[str, Any]]:
    """Link specs from a file's content: one spec (with `type`), or a mapping of link name to spec
    (as a lab file's `vlinks:` section, created in that order). `name` names the single spec, or
    picks one link of a mapping."""
    if not isinstance(data, dict):
        raise VLinkInputError(f"{where}expected one link spec (type, members, ...) or a mapping of link name "
                              f"to spec, got {type(data).__name__ if data is not None else 'nothing'}")
    if isinstance(data.get("type"), str):
        own = data.get("name")
        if own is not None and name is not None and own != name:
            raise VLinkInputError(f"{where}the file's link is named {own!r}, not {name!r}")
        key = name or own
        if not key:
            raise VLinkInputError(f"{where}the link has no name: give NAME on the command line or a 'name:' field")
        return [check_spec(data, str(key), where)]
    if not data:
        raise VLinkInputError(f"{where}no links in it")
    bad = [str(k) for k, v in data.items() if not isinstance(v, dict)]
    if bad:
        raise VLinkInputError(f"{where}{bad[0]}: expected a link spec (a mapping with type and members), "
                              f"got {type(data[bad[0]]).__name__}; a single spec needs a 'type' field")
    items = list(data.items())
    if name is not None:
        if name not in data:
            raise VLinkInputError(f"{where}no link named {name!r} in it (links: {', '.join(map(str, data))})")
        items = [(name, data[name])]
    return [check_spec(body, str(key), where) for key, body in items]


def specs_from_file(path: Path, name: str | None = None) -> list[dict[str, Any]]:
    """Link specs from a YAML or JSON file (see specs_from_data)."""
    import yaml

    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise VLinkInputError(f"--file {path}: no such file") from None
    except OSError as exc:
        raise VLinkInputError(f"--file {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if Path(path).suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise VLinkInputError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise VLinkInputError(f"{path}{line}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    return specs_from_data(data, name, f"{path}: ")


# ----- talking to the manager --------------------------------------------------------------------


def _call(fn: Any, *args: Any) -> Any:
    from twin.controller_client import ControllerError

    try:
        return fn(*args)
    except ControllerError as exc:
        if exc.status == 404 and exc.message.startswith("no such API path"):
            raise VLinkError("the lab's controller has no virtual link manager (the lab file has no grid: or "
                             "vlinks: section)", 404) from None
        raise VLinkError(exc.message, exc.status) from None


def list_links(client: Any) -> dict[str, Any]:
    return _call(client.vlinks)


def show(client: Any, name: str) -> dict[str, Any]:
    return _call(client.vlink, name)


def create(client: Any, specs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Create the links in order; the summaries of those created. On a refusal the message says which
    links were created before it (they stay)."""
    done: list[dict[str, Any]] = []
    for spec in specs:
        try:
            done.append(_call(client.create_vlink, spec))
        except VLinkError as exc:
            if done:
                exc = VLinkError(f"{exc} (created before it: {', '.join(d['name'] for d in done)})", exc.status)
            raise exc from None
    return done


def delete(client: Any, name: str) -> dict[str, Any]:
    return _call(client.delete_vlink, name)


# ----- presenting --------------------------------------------------------------------------------


def members_text(link: Mapping[str, Any]) -> str:
    """'h1:eth1(a) h2:eth1(b)'; a resilient link's active member is marked with '*'."""
    active = link.get("active")
    return " ".join(f"{m['endpoint']}({m['role']}){'*' if active and m['endpoint'] == active else ''}"
                    for m in link.get("members", []))


def list_table(data: Mapping[str, Any]):
    from rich.table import Table

    grid = data.get("grid") or {}
    block = grid.get("vlan_block")
    title = f"virtual links on grid {', '.join(grid.get('switches') or []) or '(no switches)'}"
    if block:
        title += f" (VLAN block {block[0]}-{block[1]})"
    t = Table(title=title, title_justify="left")
    for col in ("name", "type", "VLAN", "members (role)", "switches", "programmed"):
        t.add_column(col)
    for link in data.get("links", []):
        t.add_row(link["name"], link["type"], str(link["vlan"]), members_text(link),
                  " ".join(link.get("switches") or []) or "-", "yes" if link.get("programmed") else "no")
    return t


def _ts(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) + f".{int(round(t * 1000)) % 1000:03d}"


def show_lines(d: Mapping[str, Any]) -> list[str]:
    """The `twin vlink show` text, line by line (the members table is separate: member_table)."""
    spec = d.get("spec") or {}
    lines = [f"link {d['name']}: {d['type']}, VLAN {d['vlan']}, id {d.get('id')}, cookie {d.get('cookie')}, "
             f"from {d.get('origin') or '?'}",
             f"switches: {' '.join(d.get('switches') or []) or '-'}; "
             f"{'programmed' if d.get('programmed') else 'NOT programmed on every switch yet'}"]
    if spec.get("description"):
        lines.append(f"description: {spec['description']}")
    extras = []
    if spec.get("hub_mode"):
        extras.append("hub mode (every frame from the root reaches every leaf)")
    if d["type"] == "resilient":
        extras.append("revertive" if spec.get("revertive", True) else "non-revertive")
        extras.append(f"active member: {d.get('active') or 'none chosen yet'}")
    if spec.get("tap"):
        extras.append(f"taps {spec['tap']} (frames sent by {spec.get('source') or 'its root or first member'})")
    for p in spec.get("points") or []:
        extras.append(f"probe point: link {p['link']}" if p.get("link") else f"probe point: interface {p['interface']}")
    ext = spec.get("external")
    if ext:
        how = f"tagged, VLAN {d['vlan']}" if ext.get("tagged") else "untagged"
        extras.append(f"external port {ext['port']} ({how})")
    lines += extras
    learned = d.get("learned") or {}
    lines.append(f"learned MACs: {len(learned)}" if learned else "learned MACs: none")
    lines += [f"  {mac} on {ep}" for mac, ep in sorted(learned.items(), key=lambda kv: (kv[1], kv[0]))]
    rules = d.get("rules") or {}
    per_switch = ", ".join(f"{sw} {len(r)}" for sw, r in rules.items())
    lines.append(f"rules per switch: {per_switch or 'none installed'}")
    cut = d.get("cutovers") or []
    if cut:
        lines.append("cutovers:")
        lines += [f"  {_ts(c['time'])} {c['from']} -> {c['to']} ({c.get('program_ms', '?')} ms to reprogram)"
                  for c in cut]
    hist = d.get("history") or []
    lines.append("history:" if hist else "history: none")
    lines += [f"  {_ts(h['time'])} {h['event']}{' ' + h['detail'] if h.get('detail') else ''}" for h in hist]
    return lines


def member_table(d: Mapping[str, Any]):
    from rich.table import Table

    t = Table(title_justify="left")
    for col in ("member", "role", "switch:port", "state", ""):
        t.add_column(col)
    active = d.get("active")
    for m in d.get("members", []):
        where = f"{m['switch']}:{m['port']}" if m.get("switch") else "(not on the grid)"
        notes = []
        if active and m["endpoint"] == active:
            notes.append("active")
        if m.get("promiscuous"):
            notes.append("promiscuous")
        t.add_row(m["endpoint"], m["role"], where, "up" if m.get("up") else "down", ", ".join(notes))
    return t
