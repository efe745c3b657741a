"""Topology pictures (graphviz): the first attachment a reader of a report looks at."""
from __future__ import annotations

import subprocess
from pathlib import Path

from twin.lab.loader import LabModel

SHAPES = {"switch": "box3d", "router": "oval", "host": "box"}
STATE_COLOURS = {"running": "#c8f7c5", "up": "#c8f7c5", "down": "#f7c5c5", "powered-off": "#d0d0d0",
                 "failed": "#f7c5c5"}


def _q(s: str) -> str:
    return '"' + s.replace('"', r'\"') + '"'


def dot_source(model: LabModel, node_states: dict[str, str] | None = None,
               link_states: dict[tuple[str, str], str] | None = None) -> str:
    """Graphviz source of a lab; states (from a running lab) colour nodes and dash broken links."""
    spec, plan = model.spec, model.plan
    node_states = node_states or {}
    link_states = link_states or {}
    lines = [f"graph {_q(spec.name)} {{", '  graph [rankdir=LR, fontname="Helvetica", label=' + _q(f"lab {spec.name}") + "];",
             '  node [fontname="Helvetica", fontsize=10, style=filled, fillcolor="#eef3fb"];',
             '  edge [fontname="Helvetica", fontsize=8];']
    for name in spec.nodes:
        kind = spec.kind_of(name)
        label = f"{name}\\n{kind}"
        if name in plan.mgmt:
            label += f"\\nmgmt {plan.mgmt[name].ip}"
        colour = STATE_COLOURS.get(node_states.get(name, ""), "#eef3fb")
        lines.append(f"  {_q(name)} [shape={SHAPES.get(kind, 'component')}, label={_q(label)}, fillcolor={_q(colour)}];")
    for link in spec.links:
        a, b = link.endpoints
        la = f"{a.intf}" + (f"\\n{plan.addresses[(a.node, a.intf)].ip}" if (a.node, a.intf) in plan.addresses else "")
        lb = f"{b.intf}" + (f"\\n{plan.addresses[(b.node, b.intf)].ip}" if (b.node, b.intf) in plan.addresses else "")
        extra = []
        if link.vlan:
            extra.append(f"label={_q('vlan ' + str(link.vlan))}")
        if link.trunk:
            extra.append(f"label={_q('trunk ' + ','.join(map(str, link.trunk)))}")
        if link_states.get((str(a), str(b))) == "down":
            extra += ["style=dashed", 'color="#cc0000"']
        lines.append(f"  {_q(a.node)} -- {_q(b.node)} [taillabel={_q(la)}, headlabel={_q(lb)}{', ' if extra else ''}{', '.join(extra)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(dot: str, out: Path, fmt: str | None = None) -> Path:
    fmt = fmt or out.suffix.lstrip(".") or "svg"
    if fmt == "dot":
        out.write_text(dot)
        return out
    res = subprocess.run(["dot", f"-T{fmt}", "-o", str(out)], input=dot, text=True, capture_output=True, timeout=60)
    if res.returncode != 0:
        raise RuntimeError(f"graphviz failed to draw {out}: {res.stderr.strip()}")
    return out


def running_dot(lab) -> str:
    """The picture of a running lab: its file's topology coloured by what is up now."""
    from twin.lab import load_lab

    if not lab.state.source:
        raise RuntimeError(f"lab {lab.name} has no source file recorded")
    model = load_lab(lab.state.source)
    states = {r["node"]: r["state"] for r in lab.status()}
    links = {(l.a, l.b): l.state for l in lab.state.links}
    return dot_source(model, states, links)
