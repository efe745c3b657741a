"""Operator access to a running lab's flow routing (seed 003 [0052]): `twin flows ...` and the tests
both come through here. It asks the MNODE's API (a Unix socket in its state directory, so nothing
in the root namespace needs a lab address) and renders with the same tables as the devices' CLIs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from emulators.flows import render
from emulators.flows.api import SOCKET_NAME, ApiError, request
from twin.errors import LabError


class FlowsError(LabError):
    """The MNODE refused a request or is not answering; the message says which and why."""


def manager_node(rl: Any, name: str | None = None) -> str:
    try:
        return rl.node_of_kind("mnode", name, "MNODE")
    except LabError as exc:
        raise FlowsError(str(exc)) from None


def call(rl: Any, op: str, manager: str | None = None, **args: Any) -> Any:
    node = manager_node(rl, manager)
    path = Path(rl.device_dir(node)) / SOCKET_NAME
    try:
        return request(path, op, **args)
    except ApiError as exc:
        raise FlowsError(f"{node}: {exc}") from None


def show(rl: Any, what: str, manager: str | None = None) -> str:
    """The text of `twin flows [flows|routes|nodes|topology|events]`."""
    if what == "flows":
        lines = render.flows_table(call(rl, "flows", manager), with_node=True)
    elif what == "routes":
        lines = render.routes_table(call(rl, "routes", manager))
    elif what == "nodes":
        lines = render.nodes_table(call(rl, "nodes", manager))
    elif what == "topology":
        s = call(rl, "summary", manager)
        lines = render.topology_lines(s["topology"], s["selection"])
    elif what == "events":
        lines = render.events_lines(call(rl, "summary", manager)["events"])
    else:
        raise FlowsError(f"unknown view {what!r} (flows, routes, nodes, topology, events)")
    return "\n".join(lines)
