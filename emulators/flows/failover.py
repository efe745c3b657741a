"""Where a flow goes at one cluster, given every topology since the flow started ([0081], [0085]).

`selection.resolve` compares two topologies; a node that failed and came back in between would look
untouched there, yet it lost the flow's state ([0085] c: "the original primary ... will have lost
its state"). So the hop is found by walking the topology history from the flow's own topology to
the current one: the first topology in which the chosen node is gone applies the cluster's
strategy, and the result sticks. A flow redirected while its cluster had no live member at all (a
one-node cluster) goes to the first member that is live again: redirect assumes no state to lose.
Every node walks the same history, so the previous hop (forward) and the next hop (reverse) reach
the same node without telling each other: stickiness and symmetry hold across failures without
shared state.
"""
from __future__ import annotations

from .selection import Hop, hash_pick
from .topology import Topology, TopologyHistory


def ordered(history: TopologyHistory) -> list[Topology]:
    """The held topologies, oldest first."""
    out = []
    for i in history.ids():
        t = history.get(i)
        if t is not None:
            out.append(t)
    return out


def route_hop(flow_id: int, assigned: int, flow_topo: int, topologies: list[Topology], cluster: str) -> Hop:
    """The node of `cluster` for this flow's packets now. `assigned` is the node ID the descriptor
    carries (0: distributed, hash over the n of the flow's topology); `topologies` oldest first."""
    if not topologies:
        return Hop(None, "discard")
    start = None
    for i in range(len(topologies) - 1, -1, -1):
        if topologies[i].id == flow_topo:
            start = i
            break
    if start is None:               # a topology older than the history: route by the current one
        start = len(topologies) - 1
    first = topologies[start].clusters.get(cluster)
    if first is None:
        return Hop(None, "discard")
    if assigned:
        try:
            chosen: str | None = first.by_id(assigned).name
        except KeyError:
            return Hop(None, "discard")
        action = "primary"
    else:
        m = hash_pick(flow_id, first)
        chosen, action = (m.name if m else None), "select"
    taken_over = False
    original = chosen
    prev = first
    for t in topologies[start + 1:]:
        view = t.clusters.get(cluster)
        if view is None:
            break
        if chosen is None:              # redirected while nobody was live: the first one back takes it
            m = hash_pick(flow_id, view)
            chosen, action = (m.name if m else None), "redirect"
        elif chosen not in view.live:
            if view.strategy == "discard":
                return Hop(None, "discard")
            # the flow's backup is the one of its own topology (the node that got its shadow copies)
            owner = first if chosen == original else prev
            # a backup that took a flow over and fails in turn has no shadow of its own: redirect
            backup = owner.backups.get(chosen) if view.strategy == "backup" and not taken_over else None
            if backup is not None and backup in view.live:
                chosen, action, taken_over = backup, "backup", True
            else:
                m = hash_pick(flow_id, view)
                chosen, action = (m.name if m else None), "redirect"
        prev = view
    current = topologies[-1].clusters.get(cluster)
    if chosen is None or current is None or chosen not in current.live:
        return Hop(None, "discard")
    shadow = None
    if current.strategy == "backup" and not taken_over and action in ("primary", "select"):
        b = first.backups.get(chosen)
        if b is not None and b in current.live:
            shadow = b
    return Hop(chosen, action, shadow)
