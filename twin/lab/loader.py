"""Reads a lab file and reports every problem with file, line and field path.

PyYAML silently keeps the last of two duplicate keys; a lab with two nodes named `r1` must be an
error instead, so the file is composed into YAML nodes first (which keep line numbers) and turned
into data by hand.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from twin.errors import LabFileError, Problem
from twin.lab.addressing import AddressPlan, plan_addresses
from twin.lab.checks import check_lab
from twin.lab.schema import LabSpec, NodeSpec


@dataclass
class LabModel:
    """A validated lab: the spec as written (plus the management station) and its address plan."""

    spec: LabSpec
    plan: AddressPlan
    source: Path | None = None

    @property
    def name(self) -> str:
        return self.spec.name


def _path_str(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


class _Composer:
    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[str, int] = {}
        self.problems: list[Problem] = []

    def build(self, node: yaml.Node | None, path: str = "") -> Any:
        if node is None:
            return None
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            first_line: dict[Any, int] = {}
            merged: dict[Any, Any] = {}
            for knode, vnode in node.value:
                if knode.tag == "tag:yaml.org,2002:merge":      # `<<: *anchor` (keys given here win)
                    sources = vnode.value if isinstance(vnode, yaml.SequenceNode) else [vnode]
                    for src in sources:
                        value = self.build(src, path)
                        if not isinstance(value, dict):
                            self.problems.append(Problem(path or "<top>", "`<<:` must merge a mapping (an anchored "
                                                         "`&name {...}` block)", self.source, knode.start_mark.line + 1))
                            continue
                        for k, v in value.items():
                            merged.setdefault(k, v)
                    continue
                key = yaml.SafeLoader(  # scalars only as keys
                    "").construct_object(knode) if not isinstance(knode, yaml.ScalarNode) else _scalar(knode)
                sub = f"{path}.{key}" if path else str(key)
                if key in out:
                    self.problems.append(Problem(sub, f"duplicate name {key!r} (first defined at line {first_line[key]})",
                                                 self.source, knode.start_mark.line + 1))
                    continue
                first_line[key] = knode.start_mark.line + 1
                self.lines[sub] = knode.start_mark.line + 1
                out[key] = self.build(vnode, sub)
            for k, v in merged.items():
                out.setdefault(k, v)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(v, f"{path}[{i}]") for i, v in enumerate(node.value)]
        return _scalar(node)

    def line_of(self, path: str) -> int | None:
        # the longest known prefix of the path: a missing field points at its parent
        while path:
            if path in self.lines:
                return self.lines[path]
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        return self.lines.get("")


def _scalar(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def parse_lab(text: str, source: str = "<lab>") -> LabModel:
    comp = _Composer(source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise LabFileError([Problem("", f"not valid YAML: {getattr(exc, 'problem', exc)}", source, line)]) from None
    data = comp.build(root)
    if comp.problems:
        raise LabFileError(comp.problems)
    if not isinstance(data, dict):
        raise LabFileError([Problem("", "a lab file is a mapping with at least 'name' and 'nodes'", source, 1)])

    try:
        spec = LabSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = _path_str(err["loc"])
            # endpoints are parsed into node/intf: point at the endpoint string itself
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                msg = "required field is missing"
            elif err["type"] == "extra_forbidden":
                msg = f"unknown field {str(err['loc'][-1])!r}"
            problems.append(Problem(path, msg, source, comp.line_of(path)))
        raise LabFileError(problems) from None

    problems = check_lab(spec)
    if not problems:
        station = spec.mgmt.station
        if spec.mgmt.enabled and station and station not in spec.nodes:
            spec.nodes[station] = NodeSpec(kind="host")
        plan, more = plan_addresses(spec)
        problems += more
    if problems:
        raise LabFileError([Problem(p.path, p.message, source, comp.line_of(p.path)) for p in problems])
    return LabModel(spec=spec, plan=plan, source=None)


def load_lab(path: str | Path) -> LabModel:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise LabFileError([Problem("", f"cannot read lab file: {exc.strerror}", str(p))]) from None
    model = parse_lab(text, str(p))
    model.source = p.resolve()
    return model
