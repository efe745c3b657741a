"""VLAN IDs for virtual links: a reserved block, user-assigned IDs, and conflicts refused.

Every link has exactly one VLAN ID, unique in the grid. IDs the lab already uses on its own switch
ports (access VLANs, trunk lists) are reserved, so a virtual link can never merge with them.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

DEFAULT_BLOCK = (3000, 3999)


@dataclass
class VlanPool:
    block: tuple[int, int] = DEFAULT_BLOCK
    reserved: dict[int, str] = field(default_factory=dict)   # vlan -> what uses it

    def conflict(self, vlan: int, used: Mapping[int, str], name: str | None = None) -> str | None:
        """Why `vlan` cannot be given to link `name`, or None."""
        other = used.get(vlan)
        if other is not None and other != name:
            return f"VLAN {vlan} is already used by link {other}"
        if vlan in self.reserved:
            return f"VLAN {vlan} is reserved: {self.reserved[vlan]}"
        return None

    def allocate(self, used: Iterable[int]) -> int | None:
        """The lowest free ID of the block, or None when it is exhausted."""
        taken = set(used) | set(self.reserved)
        lo, hi = self.block
        return next((v for v in range(lo, hi + 1) if v not in taken), None)
