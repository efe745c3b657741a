"""Per-lab name prefixes and the names a lab creates in the root namespace.

The prefix is the root of every name a lab creates (bridges, veths, process titles): the first three
letters of the lab name plus a two-character serial, always five characters, so no prefix is the
start of another and cleanup by prefix can never touch a different lab.
"""
from __future__ import annotations

import json
import re
import subprocess
import time

from twin.lab.schema import PREFIX_LEN
from twin.registry import lab_dir, labs_dir, locked

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def prefix_stem(lab_name: str) -> str:
    stem = re.sub(r"[^a-z0-9]", "", lab_name.lower())[:PREFIX_LEN - 2]
    return stem.ljust(PREFIX_LEN - 2, "x")


def _serial(n: int) -> str:
    return _B36[n // 36] + _B36[n % 36]


def root_names_in_use() -> set[str]:
    """Bridges and links that exist now, so a prefix with leftovers of a crashed lab is skipped."""
    names: set[str] = set()
    try:
        out = subprocess.run(["ovs-vsctl", "--timeout=5", "list-br"], capture_output=True, text=True, timeout=10)
        names.update(out.stdout.split())
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, timeout=10)
        for line in out.stdout.splitlines():
            parts = line.split(":", 2)
            if len(parts) > 1:
                names.add(parts[1].strip().split("@")[0])
    except (OSError, subprocess.TimeoutExpired):
        pass
    return names


RELEASE_COOL_OFF_S = 120.0


def _released(d) -> dict[str, float]:
    try:
        return json.loads((d / "released.json").read_text())
    except (OSError, ValueError):
        return {}


def mark_released(prefix: str) -> None:
    """A removed lab's prefix is not handed out again for a while, so a late cleanup (or a test
    checking that a lab is gone) can never mistake a new lab for the old one."""
    now = time.time()
    with locked() as d:
        rel = {p: t for p, t in _released(d).items() if now - t < RELEASE_COOL_OFF_S}
        rel[prefix] = now
        (d / "released.json").write_text(json.dumps(rel))


def allocate_prefix(lab_name: str) -> str:
    """Reserve a fresh prefix for a lab by creating its directory in the registry."""
    stem = prefix_stem(lab_name)
    now = time.time()
    with locked() as d:
        existing = {p.name for p in labs_dir().iterdir()}
        cooling = {p for p, t in _released(d).items() if now - t < RELEASE_COOL_OFF_S}
        in_use = root_names_in_use()
        for n in range(36 * 36):
            prefix = stem + _serial(n)
            if prefix in existing or prefix in cooling or any(name.startswith(prefix) for name in in_use):
                continue
            lab_dir(prefix).mkdir(parents=True)
            return prefix
    raise RuntimeError(f"no free lab prefix for {lab_name!r}: 1296 labs named like it are recorded; run 'twin clean'")


def bridge_name(prefix: str, switch: str) -> str:
    return f"{prefix}{switch}"


def switch_port_name(prefix: str, switch: str, intf: str) -> str:
    return f"{prefix}{switch}-{intf}"


def mgmt_bridge_name(prefix: str) -> str:
    return f"{prefix}-mgmt"


def mgmt_port_name(prefix: str, index: int) -> str:
    return f"{prefix}-m{index}"


def mininet_name(prefix: str, node: str) -> str:
    """The Mininet node name: shows in process titles as `mininet:<prefix>-<node>`."""
    return f"{prefix}-{node}"


def netns_name(prefix: str, node: str) -> str:
    """The named handle (/run/netns/NAME) that pins a node's namespace: `ip netns exec` works on it,
    and cleanup identifies the lab's namespaces by it (a bare inode number can be reused by a newer
    lab once the old namespace is gone; a mounted handle keeps its namespace, and its number, alive)."""
    return f"twin-{prefix}-{node}"
