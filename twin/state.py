"""The small state file of a lab: what `twin status/exec/down/clean` need once the booting process
has gone, and what cleanup needs after a crash (every PID, bridge and root-namespace link it made).

It is rewritten atomically (write to a temp file, rename) so a reader never sees half a file.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from twin.registry import lab_dir, labs_dir

STATE_FILE = "state.json"


@dataclass
class NodeState:
    kind: str
    pid: int = 0                 # the Mininet shell that holds the node's network namespace
    netns: int = 0               # inode of that namespace, to find every process inside it
    mgmt_ip: str | None = None
    interfaces: dict[str, str | None] = field(default_factory=dict)  # intf -> "10.0.0.1/24" or None
    gateway: str | None = None
    admin: str = "up"            # "up", or "powered-off" after a power-off fault
    # emulated devices: how to reach and restart their CLI
    username: str | None = None
    password: str | None = None
    enable_secret: str | None = None
    console: str | None = None    # console Unix socket
    emulator_cmd: list[str] = field(default_factory=list)
    emulator_pid: int = 0


@dataclass
class LinkState:
    a: str                        # "node:intf"
    b: str
    root_ifnames: list[str] = field(default_factory=list)  # ends that live in the root namespace
    vlan: int | None = None
    state: str = "up"


@dataclass
class LabState:
    name: str
    prefix: str
    source: str | None = None
    phase: str = "booting"        # booting, ready, stopping, failed
    error: str | None = None
    created: float = field(default_factory=time.time)
    owner_pid: int = 0            # the process that booted the lab and tears it down
    controller_pid: int = 0
    of_port: int = 0
    api_socket: str = ""
    controller_log: str = ""
    controller_config: str = ""
    nodes: dict[str, NodeState] = field(default_factory=dict)
    switches: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {bridge, dpid}
    mgmt_bridge: str | None = None
    station: str | None = None    # the management-station host that clients run from
    zygote_socket: str = ""       # preloaded parent that forks device emulators (emulators/zygote.py)
    zygote_pid: int = 0
    links: list[LinkState] = field(default_factory=list)
    root_pids: list[int] = field(default_factory=list)  # switch shells etc. in the root namespace
    extra_pids: list[int] = field(default_factory=list)  # helpers started later (load generators)
    message: str | None = None

    @property
    def dir(self) -> Path:
        return lab_dir(self.prefix)

    def save(self) -> None:
        d = self.dir
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{STATE_FILE}.{os.getpid()}"
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, d / STATE_FILE)

    @classmethod
    def load(cls, prefix: str) -> "LabState":
        raw = json.loads((lab_dir(prefix) / STATE_FILE).read_text())
        raw["nodes"] = {k: NodeState(**v) for k, v in raw.get("nodes", {}).items()}
        raw["links"] = [LinkState(**v) for v in raw.get("links", [])]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in known})

    def owner_alive(self) -> bool:
        return pid_alive(self.owner_pid)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def all_states() -> list[LabState]:
    out = []
    for d in sorted(labs_dir().iterdir()):
        if (d / STATE_FILE).exists():
            try:
                out.append(LabState.load(d.name))
            except (OSError, ValueError, TypeError):
                continue
    return out


def all_prefixes() -> list[str]:
    return sorted(d.name for d in labs_dir().iterdir() if d.is_dir() and not d.name.startswith("."))
