"""Device kinds by name, so the daemon and the lab can build an emulator from a lab file's `kind`.

Later issues register their kinds (`register("ems", EmsServer)`) from their own modules; the
built-in ones are registered lazily so importing this module stays cheap.
"""
from __future__ import annotations

import importlib

from .device import BaseDevice

_KINDS: dict[str, type[BaseDevice]] = {}
_BUILTIN = {"router": "emulators.router:Router", "aaa": "emulators.aaa.server:AaaServer",
            "ems": "emulators.ems.server:EmsServer", "rp": "emulators.rp.unit:RpUnit",
            "cluster-manager": "emulators.cluster.manager_device:ClusterManagerDevice",
            "inode": "emulators.flows.devices:InodeDevice", "anode": "emulators.flows.devices:AnodeDevice",
            "mnode": "emulators.flows.devices:MnodeDevice"}


def register(kind: str, cls: type[BaseDevice]) -> None:
    """Make `kind` build `cls` (re-registering replaces, which tests use for stand-ins)."""
    if not (isinstance(cls, type) and issubclass(cls, BaseDevice)):
        raise TypeError(f"{cls!r} is not a BaseDevice subclass")
    _KINDS[kind] = cls


def device_class(kind: str) -> type[BaseDevice]:
    """The device class for a kind name; KeyError names the known kinds."""
    if kind not in _KINDS and kind in _BUILTIN:
        mod, _, attr = _BUILTIN[kind].partition(":")
        register(kind, getattr(importlib.import_module(mod), attr))
    try:
        return _KINDS[kind]
    except KeyError:
        raise KeyError(f"unknown device kind {kind!r} (known: {', '.join(sorted(set(_KINDS) | set(_BUILTIN)))})") from None


def kinds() -> list[str]:
    return sorted(set(_KINDS) | set(_BUILTIN))
