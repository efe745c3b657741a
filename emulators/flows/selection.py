"""Next-hop selection for multi-stage flow routing (seed 003 [0063]-[0085]).

* distributed ([0079]-[0081]): every node hashes the flow ID over the live members of the next
  cluster *as the flow's own topology saw them*, so all packets of a flow, in both directions, reach
  the same node without any per-flow table, and a failure elsewhere moves no flow;
* centralized ([0082]-[0083]): the ingress node picks one node per cluster with a `Balancer` and
  records the flow route;
* failures ([0085]): `resolve` applies the cluster's discard / redirect / backup strategy.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, Sequence

from .hashing import MAGLEV_SIZE, Maglev, modulo_pick
from .topology import BALANCES, ClusterView, Member, Topology

_M64 = (1 << 64) - 1
_EMPTY: Mapping = MappingProxyType({})
Live = tuple[Member, ...]


def stable_hash(flow_id: int) -> int:
    """splitmix64 of the flow ID: sequential IDs (as ingress nodes hand them out) spread evenly,
    and the value is the same on every node and every run (unlike built-in hash())."""
    z = (flow_id + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def hash_pick(flow_id: int, cluster: ClusterView) -> Member | None:
    """Static selection ([0079]): the flow's slot among the live members, None if none is live.

    Pass the view of the topology the flow *started* in ([0081]): its n, hence its answer, never
    changes. Unequal weights give a member `weight` consecutive slots.
    """
    slots = cluster.hash_slots()
    if not slots:
        return None
    return slots[stable_hash(flow_id) % len(slots)]


# ---------------------------------------------------------------------------------------------
# centralized balancers


def _next_after(cands: Sequence[Member], last_id: int) -> Member:
    """First candidate past the previous pick in node_id order, wrapping: round robin that keeps
    its place when members come and go."""
    for m in cands:
        if m.node_id > last_id:
            return m
    return cands[0]


class Balancer:
    """Picks a live member of one cluster for a new flow; keeps its own state, so one per cluster."""

    kind = ""

    def __init__(self) -> None:
        self._cluster: str | None = None
        self._last_id = 0

    def pick(self, cluster: ClusterView, active: Mapping[str, int] = _EMPTY, load: Mapping[str, float] = _EMPTY,
             flow_id: int | None = None) -> Member | None:
        """The member for a new flow; None when the cluster has no live member.

        active: flows currently assigned per member name; load: last load reported per member.
        """
        if self._cluster is None:
            self._cluster = cluster.name
        elif self._cluster != cluster.name:
            raise ValueError(f"{self.kind} balancer of cluster {self._cluster} asked about {cluster.name}")
        live = cluster.live_members()
        if not live:
            return None
        chosen = self._choose(live, cluster, active, load, flow_id)
        self._last_id = chosen.node_id
        return chosen

    def _choose(self, live: Live, cluster: ClusterView, active: Mapping[str, int],
                load: Mapping[str, float], flow_id: int | None) -> Member:
        raise NotImplementedError


class RoundRobin(Balancer):
    kind = "rr"

    def _choose(self, live: Live, cluster: ClusterView, active: Mapping[str, int],
                load: Mapping[str, float], flow_id: int | None) -> Member:
        return _next_after(live, self._last_id)


class SmoothWeightedRoundRobin(Balancer):
    """nginx's smooth WRR: exact proportions every sum(weights) picks, interleaved, deterministic."""

    kind = "wrr"

    def __init__(self) -> None:
        super().__init__()
        self._key: tuple[tuple[str, int], ...] = ()
        self._current: dict[str, int] = {}

    def _choose(self, live: Live, cluster: ClusterView, active: Mapping[str, int],
                load: Mapping[str, float], flow_id: int | None) -> Member:
        key = tuple((m.name, m.weight) for m in live)
        if key != self._key:   # membership changed: restart the cycle so proportions stay exact
            self._key, self._current = key, {m.name: 0 for m in live}
        total = 0
        best: Member | None = None
        for m in live:
            self._current[m.name] += m.weight
            total += m.weight
            if best is None or self._current[m.name] > self._current[best.name]:
                best = m
        assert best is not None
        self._current[best.name] -= total
        return best


class _LeastBalancer(Balancer):
    """Lowest metric wins; ties go round robin (in node_id order) so a burst of new flows between
    two metric updates does not all land on the same node."""

    def _metric(self, m: Member, active: Mapping[str, int], load: Mapping[str, float]) -> float:
        raise NotImplementedError

    def _choose(self, live: Live, cluster: ClusterView, active: Mapping[str, int],
                load: Mapping[str, float], flow_id: int | None) -> Member:
        values = [self._metric(m, active, load) for m in live]
        low = min(values)
        return _next_after([m for m, v in zip(live, values) if v == low], self._last_id)


class LeastFlows(_LeastBalancer):
    kind = "least-flows"

    def _metric(self, m: Member, active: Mapping[str, int], load: Mapping[str, float]) -> float:
        return active.get(m.name, 0)


class LeastLoad(_LeastBalancer):
    """Lowest reported load; a member that has not reported yet counts as idle (0)."""

    kind = "load"

    def _metric(self, m: Member, active: Mapping[str, int], load: Mapping[str, float]) -> float:
        return load.get(m.name, 0.0)


class HashBalancer(Balancer):
    kind = "hash"

    def _choose(self, live: Live, cluster: ClusterView, active: Mapping[str, int],
                load: Mapping[str, float], flow_id: int | None) -> Member:
        if flow_id is None:
            raise ValueError("hash balancing needs pick(..., flow_id=...)")
        member = hash_pick(flow_id, cluster)
        assert member is not None
        return member


_KINDS: dict[str, type[Balancer]] = {c.kind: c for c in
                                     (RoundRobin, SmoothWeightedRoundRobin, LeastFlows, LeastLoad, HashBalancer)}
assert set(_KINDS) == set(BALANCES)


def make_balancer(kind: str) -> Balancer:
    """A fresh balancer of that kind (a ClusterView's `balance`)."""
    try:
        return _KINDS[kind]()
    except KeyError:
        raise ValueError(f"unknown balancer {kind!r}; one of {sorted(_KINDS)}") from None


# ---------------------------------------------------------------------------------------------
# failures


ACTIONS = ("primary", "redirect", "backup", "discard", "select")


@dataclass(frozen=True)
class Hop:
    """Where a flow's packet goes at one cluster: node None means drop it.

    action: "primary" (the assigned node), "select" (the hash-picked node), "redirect", "backup"
    or "discard". shadow: a node that must also receive a copy (the primary's backup, [0085] c).
    """

    node: str | None
    action: str
    shadow: str | None = None


def resolve(flow_id: int, assigned: str | None, flow_topo: Topology, current: Topology, cluster: str,
            taken_over: bool = False) -> Hop:
    """The next hop at `cluster` for a flow that started in `flow_topo`, given the `current` one.

    assigned: the node the flow route names (centralized), or None to hash-pick (distributed).
    A flow whose node is still live keeps it whatever else failed. If it is gone, the cluster's
    strategy in `current` decides: discard; redirect to hash_pick over the current view (no shared
    state, so both directions agree); or the node's backup in the flow's own topology (it has been
    shadowing the flow), redirecting only if that backup is gone too.
    taken_over: `assigned` is a backup that already took the flow over. The caller records it as
    the flow's node from then on (the old primary lost the flow's state, so the flow stays even
    if it returns); it gets no shadow, and if it fails its own backup has no state either, so the
    flow is redirected.
    Only two topologies are compared: a node that failed and came back in between looks untouched
    here although it lost the flow's state; a caller that must catch that walks the history.
    """
    flow_view, now = flow_topo.clusters[cluster], current.clusters[cluster]
    if assigned is None:
        picked = hash_pick(flow_id, flow_view)
        chosen, action = (picked.name if picked else None), "select"
    else:
        flow_view.member(assigned)   # KeyError for a node the cluster never had
        chosen, action = assigned, "primary"
    if chosen is not None and chosen in now.live:
        shadow = None
        if now.strategy == "backup" and not taken_over:
            backup = flow_view.backups.get(chosen)
            shadow = backup if backup in now.live else None
        return Hop(chosen, action, shadow)
    if now.strategy == "discard":
        return Hop(None, "discard")
    if now.strategy == "backup" and chosen is not None and not taken_over:
        backup = flow_view.backups.get(chosen)
        if backup is not None and backup in now.live:
            return Hop(backup, "backup")
    other = hash_pick(flow_id, now)
    return Hop(other.name, "redirect") if other else Hop(None, "discard")


# ---------------------------------------------------------------------------------------------
# routes


def enumerate_routes(paths: Mapping[str, Sequence[str]], topo: Topology,
                     ingress: str | None = None) -> list[tuple[str, tuple[str, ...]]]:
    """Every flow route ([0064]): per path (in mapping order), the cartesian product of the
    configured members of its clusters in node_id order; `ingress` (a node name) is prepended."""
    head = (ingress,) if ingress else ()
    out: list[tuple[str, tuple[str, ...]]] = []
    for name, clusters in paths.items():
        pools = [[m.name for m in topo.clusters[c].members] for c in clusters]
        out.extend((name, head + combo) for combo in itertools.product(*pools))
    return out


def count_routes(paths: Mapping[str, Sequence[str]], topo: Topology) -> int:
    """len(enumerate_routes(...)) without building them."""
    return sum(math.prod(len(topo.clusters[c].members) for c in clusters) for clusters in paths.values())


# ---------------------------------------------------------------------------------------------
# comparison with other hashing schemes (bench/flow_hashing.py)


MOVE_METHODS = ("design", "modulo", "maglev")


def moved_fraction(method: str, flow_ids: Sequence[int], members: Sequence[str], failed: str,
                   size: int = MAGLEV_SIZE) -> float:
    """Of the flows that were not on `failed`, the fraction whose node changes when it fails.

    design: flows keep the topology they started in (through `resolve`); modulo: hash over the
    current n; maglev: a Maglev table rebuilt without the failed member. Ideal is 0.
    """
    if failed not in members:
        raise ValueError(f"{failed!r} is not a member")
    survivors = [m for m in members if m != failed]
    if method == "design":
        view = ClusterView.build("c", 1, [Member(m, i + 1) for i, m in enumerate(members)])
        before_t = Topology(1, {"c": view})
        after_t = before_t.next(failed={failed})
        before = [resolve(f, None, before_t, before_t, "c").node for f in flow_ids]
        after = [resolve(f, None, before_t, after_t, "c").node for f in flow_ids]
    elif method == "modulo":
        keys = [stable_hash(f) for f in flow_ids]
        before = [modulo_pick(k, members) for k in keys]
        after = [modulo_pick(k, survivors) for k in keys]
    elif method == "maglev":
        keys = [stable_hash(f) for f in flow_ids]
        old, new = Maglev(members, size), Maglev(survivors, size)
        before = [old.lookup(k) for k in keys]
        after = [new.lookup(k) for k in keys]
    else:
        raise ValueError(f"unknown method {method!r}; one of {MOVE_METHODS}")
    kept = [(b, a) for b, a in zip(before, after) if b != failed]
    return sum(b != a for b, a in kept) / len(kept) if kept else 0.0
