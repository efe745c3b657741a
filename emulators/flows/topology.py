"""The topology every flow node routes by (seed 003 [0081], [0085]).

The management node numbers each topology (a one-byte ID carried in every packet's flow descriptor)
and sends it to every node as JSON; nodes keep recent topologies so a flow keeps being routed by the
topology it started in. Everything here is immutable and JSON round-trippable for that reason.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Iterable, Mapping

STRATEGIES = ("discard", "redirect", "backup")            # [0085] a, b, c
BALANCES = ("rr", "wrr", "least-flows", "load", "hash")   # [0079], [0083]
MAX_TOPOLOGY_ID = 255                                     # one byte in the flow descriptor (Table 2)


@dataclass(frozen=True)
class Member:
    """One configured node of a cluster; node_id is the one-byte "cluster element ID" of Table 2."""

    name: str
    node_id: int
    weight: int = 1

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("member name must not be empty")
        if not 1 <= self.node_id <= 255:
            raise ValueError(f"member {self.name}: node_id {self.node_id} not in 1..255")
        if self.weight < 1:
            raise ValueError(f"member {self.name}: weight {self.weight} must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "node_id": self.node_id, "weight": self.weight}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Member:
        return cls(name=d["name"], node_id=int(d["node_id"]), weight=int(d.get("weight", 1)))


def ring_backups(members: Iterable[Member], live: Iterable[str]) -> dict[str, str]:
    """Each live member's backup is the next live member in node_id order, wrapping ([0085] c).

    A ring (rather than one standby per cluster) spreads the shadow copies evenly over the
    cluster; with one live member there is nobody to back it up, so no entry.
    """
    alive = set(live)
    ring = [m.name for m in sorted(members, key=lambda m: m.node_id) if m.name in alive]
    if len(ring) < 2:
        return {}
    return {name: ring[(i + 1) % len(ring)] for i, name in enumerate(ring)}


@dataclass(frozen=True)
class ClusterView:
    """One cluster as a given topology sees it: every configured member, which are live, and policy.

    `members` keeps failed members too, so a node ID carried in an old packet still resolves to a
    name. `backups` is only filled for strategy "backup" (build it with `ClusterView.build` or
    `with_live`, which compute it); it is a plain dict for JSON, do not mutate it.
    """

    name: str
    cluster_id: int
    members: tuple[Member, ...]
    live: frozenset[str]
    strategy: str = "redirect"
    balance: str = "rr"
    backups: dict[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not 1 <= self.cluster_id <= 63:
            raise ValueError(f"cluster {self.name}: cluster_id {self.cluster_id} not in 1..63")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"cluster {self.name}: strategy {self.strategy!r} not one of {STRATEGIES}")
        if self.balance not in BALANCES:
            raise ValueError(f"cluster {self.name}: balance {self.balance!r} not one of {BALANCES}")
        members = tuple(sorted(self.members, key=lambda m: m.node_id))
        names = [m.name for m in members]
        ids = [m.node_id for m in members]
        if len(set(names)) != len(names) or len(set(ids)) != len(ids):
            raise ValueError(f"cluster {self.name}: duplicate member name or node_id")
        unknown = (set(self.live) | set(self.backups) | set(self.backups.values())) - set(names)
        if unknown:
            raise ValueError(f"cluster {self.name}: unknown members {sorted(unknown)}")
        object.__setattr__(self, "members", members)
        object.__setattr__(self, "live", frozenset(self.live))
        object.__setattr__(self, "backups", dict(self.backups))

    @classmethod
    def build(cls, name: str, cluster_id: int, members: Iterable[Member], live: Iterable[str] | None = None,
              strategy: str = "redirect", balance: str = "rr") -> ClusterView:
        """A view with backups computed (all members live unless `live` says otherwise)."""
        members = tuple(members)
        alive = frozenset(m.name for m in members) if live is None else frozenset(live)
        backups = ring_backups(members, alive) if strategy == "backup" else {}
        return cls(name, cluster_id, members, alive, strategy, balance, backups)

    def with_live(self, live: Iterable[str]) -> ClusterView:
        """The same cluster with another live set, backups recomputed for it."""
        alive = frozenset(live)
        backups = ring_backups(self.members, alive) if self.strategy == "backup" else {}
        return replace(self, live=alive, backups=backups)

    @cached_property
    def _live(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.name in self.live)

    def live_members(self) -> tuple[Member, ...]:
        """Live members in node_id order: the order every node hashes over, so they all agree."""
        return self._live

    @cached_property
    def _slots(self) -> tuple[Member, ...]:
        live = self._live
        if len({m.weight for m in live}) <= 1:
            return live
        return tuple(m for m in live for _ in range(m.weight))

    def hash_slots(self) -> tuple[Member, ...]:
        """Live members with `weight` consecutive slots each (plain live_members() when weights
        are equal): what hash_pick indexes, cached because it runs for every packet."""
        return self._slots

    def member(self, name: str) -> Member:
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(f"cluster {self.name} has no member {name!r}")

    def by_id(self, node_id: int) -> Member:
        for m in self.members:
            if m.node_id == node_id:
                return m
        raise KeyError(f"cluster {self.name} has no member with node_id {node_id}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "cluster_id": self.cluster_id,
                "members": [m.to_dict() for m in self.members], "live": sorted(self.live),
                "strategy": self.strategy, "balance": self.balance, "backups": dict(sorted(self.backups.items()))}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClusterView:
        return cls(name=d["name"], cluster_id=int(d["cluster_id"]),
                   members=tuple(Member.from_dict(m) for m in d["members"]), live=frozenset(d["live"]),
                   strategy=d.get("strategy", "redirect"), balance=d.get("balance", "rr"),
                   backups=dict(d.get("backups", {})))


@dataclass(frozen=True)
class Topology:
    """One numbered state of the whole system; member names are unique across clusters."""

    id: int
    clusters: dict[str, ClusterView] = field(hash=False)
    reason: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.id <= MAX_TOPOLOGY_ID:
            raise ValueError(f"topology id {self.id} not in 1..{MAX_TOPOLOGY_ID}")
        seen: dict[str, str] = {}
        cluster_ids: set[int] = set()
        for key, view in self.clusters.items():
            if key != view.name:
                raise ValueError(f"cluster key {key!r} differs from its name {view.name!r}")
            if view.cluster_id in cluster_ids:
                raise ValueError(f"duplicate cluster_id {view.cluster_id}")
            cluster_ids.add(view.cluster_id)
            for m in view.members:
                if m.name in seen:
                    raise ValueError(f"member {m.name!r} in both {seen[m.name]} and {key}")
                seen[m.name] = key
        object.__setattr__(self, "clusters", dict(self.clusters))

    def cluster_of(self, member: str) -> str:
        for view in self.clusters.values():
            if any(m.name == member for m in view.members):
                return view.name
        raise KeyError(f"no cluster has member {member!r}")

    def next(self, failed: Iterable[str] = (), restored: Iterable[str] = (), reason: str = "") -> Topology:
        """The topology after `failed` went down and `restored` came back: id + 1 (255 wraps to 1).

        Backups are recomputed in every affected cluster, which is why a flow must remember the
        topology it started in to find its backup ([0085] c).
        """
        failed, restored = set(failed), set(restored)
        if failed & restored:
            raise ValueError(f"members both failed and restored: {sorted(failed & restored)}")
        touched: dict[str, set[str]] = {}
        for name in failed | restored:
            touched.setdefault(self.cluster_of(name), set()).add(name)
        clusters = dict(self.clusters)
        for cname in touched:
            view = clusters[cname]
            clusters[cname] = view.with_live((view.live - failed) | (restored & {m.name for m in view.members}))
        return Topology(self.id % MAX_TOPOLOGY_ID + 1, clusters, reason)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "reason": self.reason,
                "clusters": {name: view.to_dict() for name, view in self.clusters.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Topology:
        return cls(id=int(d["id"]), reason=d.get("reason", ""),
                   clusters={name: ClusterView.from_dict(v) for name, v in d["clusters"].items()})


class TopologyHistory:
    """The newest topologies by id ([0081]: a node keeps the current and previous topologies).

    IDs wrap at 255, so at most 255 can be told apart; a re-used id replaces the older entry.
    """

    def __init__(self, max_len: int = 128) -> None:
        if not 1 <= max_len <= MAX_TOPOLOGY_ID:
            raise ValueError(f"max_len {max_len} not in 1..{MAX_TOPOLOGY_ID}")
        self.max_len = max_len
        self._by_id: OrderedDict[int, Topology] = OrderedDict()

    def add(self, topo: Topology) -> None:
        self._by_id.pop(topo.id, None)
        self._by_id[topo.id] = topo
        while len(self._by_id) > self.max_len:
            self._by_id.popitem(last=False)

    @property
    def current(self) -> Topology:
        """The newest topology added; LookupError before the first one."""
        if not self._by_id:
            raise LookupError("no topology received yet")
        return next(reversed(self._by_id.values()))

    def get(self, topo_id: int) -> Topology | None:
        """The topology with that id, or None when unknown or already evicted."""
        return self._by_id.get(topo_id)

    def ids(self) -> list[int]:
        """Ids held, oldest first."""
        return list(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)
