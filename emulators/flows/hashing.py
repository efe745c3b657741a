"""Reference hashing schemes the flow design is compared against (bench/flow_hashing.py only).

Plain modulo over the current members, and Maglev consistent hashing (Eisenbud et al., "Maglev: A
Fast and Reliable Software Network Load Balancer", NSDI 2016, section 3.4). Both take an already
mixed key (e.g. `selection.stable_hash(flow_id)`) so the comparison isolates the mapping step.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

MAGLEV_SIZE = 65537   # prime, as the paper recommends (much larger than the backend count)


def modulo_pick(key: int, members: Sequence[str]) -> str:
    """members[key % n]: what a node would do if it hashed over the *current* n ([0079] naively)."""
    if not members:
        raise ValueError("no members")
    return members[key % len(members)]


def _h(name: str, salt: bytes) -> int:
    # Deterministic across processes and hosts (unlike the salted built-in hash()).
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8, key=salt).digest(), "big")


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True


def maglev_table(offsets: Sequence[int], skips: Sequence[int], size: int) -> list[int]:
    """The paper's Pseudocode 1: backend i walks its permutation (offsets[i] + j * skips[i]) mod
    size, taking its next free entry, one entry per backend per round, until the table is full.
    Returns the backend index of every entry."""
    if not offsets or len(offsets) != len(skips) or len(offsets) > size:
        raise ValueError("need one offset and one skip per backend, at most size backends")
    nxt = [0] * len(offsets)
    entry = [-1] * size
    filled = 0
    while True:
        for i in range(len(offsets)):
            c = (offsets[i] + nxt[i] * skips[i]) % size
            while entry[c] >= 0:
                nxt[i] += 1
                c = (offsets[i] + nxt[i] * skips[i]) % size
            entry[c] = i
            nxt[i] += 1
            filled += 1
            if filled == size:
                return entry


class Maglev:
    """A Maglev lookup table: each backend owns ~size/n entries, and few move when one leaves.

    offset and skip come from two keyed blake2b hashes of the member name, so every node builds the
    same table.
    """

    def __init__(self, members: Sequence[str], size: int = MAGLEV_SIZE) -> None:
        if not members:
            raise ValueError("no members")
        if len(set(members)) != len(members):
            raise ValueError("duplicate members")
        if not _is_prime(size) or size < len(members):
            raise ValueError(f"size {size} must be a prime >= the member count")
        self.members = tuple(members)
        self.size = size
        self.table = self._populate()

    def _populate(self) -> list[int]:
        m = self.size
        offsets = [_h(b, b"maglev-offset") % m for b in self.members]
        skips = [_h(b, b"maglev-skip") % (m - 1) + 1 for b in self.members]
        return maglev_table(offsets, skips, m)

    def lookup(self, key: int) -> str:
        return self.members[self.table[key % self.size]]

    def shares(self) -> dict[str, float]:
        """Fraction of table entries each member owns (the paper's balance measure)."""
        counts = [0] * len(self.members)
        for i in self.table:
            counts[i] += 1
        return {b: c / self.size for b, c in zip(self.members, counts)}
