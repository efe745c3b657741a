"""Operator access to a running lab's cluster manager (claims 8, 13): `twin cluster ...` and the
tests both come through here. Commands go to the manager's own CLI over its console (the one
pexpect driver), so what the operator types by hand and what a script does are the same thing;
`status` reads the JSON the manager keeps next to its archive."""
from __future__ import annotations

import json
from typing import Any

from twin.errors import LabError

STATUS_FILE = "cluster-status.json"


class ClusterCommandError(LabError):
    """The manager refused a command; the message is its `% ...` answer."""


def manager_node(rl: Any, name: str | None = None) -> str:
    return rl.node_of_kind("cluster-manager", name, "cluster manager")


def run(rl: Any, command: str, manager: str | None = None) -> str:
    """Run one privileged command on the manager; ClusterCommandError if it answers with `%`."""
    node = manager_node(rl, manager)
    session = rl.device(node).console()
    try:
        session.enable()
        out = session.run(command)
    finally:
        session.close()
    refused = [ln.strip() for ln in out.splitlines() if ln.strip().startswith("%")]
    if refused:
        raise ClusterCommandError(f"{node}: {command!r} refused: {' '.join(refused)}")
    return out


def status(rl: Any, manager: str | None = None) -> dict[str, Any]:
    node = manager_node(rl, manager)
    path = rl.device_dir(node) / STATUS_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise LabError(f"{node} has not written its status yet ({path}); is the cluster manager running?") from None


def holder(rl: Any, role: str, manager: str | None = None) -> str | None:
    return status(rl, manager)["roles"][role]["holder"]
