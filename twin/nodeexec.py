"""Run programs inside a lab node's network namespace.

Every way the harness touches a node (traffic tools, faults, `twin exec`, device drivers) goes through
`ns_argv`, so the network safety rule "lab traffic only inside lab namespaces" is enforced in one
place: a command is always wrapped in `nsenter --net=/run/netns/twin-<prefix>-<node>` (the handle
that pins the node's namespace, so it works even once Mininet's shell is gone, as with --lab-keep),
or in `mnexec -a PID` where PID is a process in the node's namespace (the Mininet shell).
"""
from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

MNEXEC = "/usr/bin/mnexec"
NSENTER = "/usr/bin/nsenter"


def ns_argv(argv: Sequence[str], pid: int | None = None, netns: str | None = None) -> list[str]:
    """The argv that runs `argv` inside a namespace, given its pinned handle or a process in it."""
    if netns and os.path.exists(netns):
        return [NSENTER, f"--net={netns}", "--", *map(str, argv)]
    if pid:
        return [MNEXEC, "-a", str(pid), *map(str, argv)]
    raise NodeNotFound(f"no namespace to run {' '.join(map(str, argv))!r} in (handle {netns!r}, pid {pid!r})")


class NodeNotFound(KeyError):
    """A node name that the lab does not have."""

    def __str__(self) -> str:  # KeyError quotes its message; say it plainly
        return str(self.args[0])


class NodeExec:
    """Spawns processes in lab nodes' namespaces, given each node's namespace-holder PID."""

    def __init__(self, pids: Mapping[str, int], netns: Mapping[str, str] | None = None) -> None:
        self._pids = dict(pids)
        self._netns = dict(netns or {})

    def pid(self, node: str) -> int:
        try:
            return self._pids[node]
        except KeyError:
            known = ", ".join(sorted(self._pids)) or "none"
            raise NodeNotFound(f"no node named {node!r} in this lab (nodes: {known})") from None

    def nodes(self) -> list[str]:
        return sorted(self._pids)

    def wrap(self, node: str, argv: Sequence[str]) -> list[str]:
        """The argv that runs `argv` inside `node`'s network namespace."""
        return ns_argv(argv, self.pid(node), self._netns.get(node))

    def popen(self, node: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("env", _clean_env())
        return subprocess.Popen(self.wrap(node, argv), **kwargs)

    def run(self, node: str, argv: Sequence[str], timeout: float = 30.0, check: bool = False,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.wrap(node, argv), capture_output=True, text=True,
                              timeout=timeout, check=check, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL,
                              env=_clean_env())

    def sh(self, node: str, script: str, timeout: float = 30.0, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run a shell snippet in the node (for humans' `twin exec` one-liners and simple probes)."""
        return self.run(node, ["/bin/sh", "-c", script], timeout=timeout, check=check)


def _clean_env() -> dict[str, str]:
    # Keep the environment small and predictable inside nodes (no proxies leaking lab traffic out).
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TERM", "PYTHONPATH", "VIRTUAL_ENV", "TWIN_STATE_DIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return env
