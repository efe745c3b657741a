"""Which element-management server manages which network element (spec 001, claim 6).

The master recomputes the map whenever a server joins or leaves. Moving an element costs a
re-sync of its state on the new server (alarms, event log, circuits), so the map is sticky: an
element stays where it is unless its server died or balance needs a slot. Balance means the
per-server counts differ by at most one. The result depends only on the sets given, never on
their order, so every server that computes it from the same inputs gets the same map.
"""
from __future__ import annotations


def assign(elements: list[str], servers: list[int], previous: dict[str, int] | None = None) -> dict[str, int]:
    """Balanced and sticky with the fewest possible moves; {} when there is no server."""
    srv = sorted(set(servers))
    elems = sorted(set(elements))
    if not srv:
        return {}
    prev = previous or {}
    alive = set(srv)
    q, r = divmod(len(elems), len(srv))

    kept: dict[int, list[str]] = {s: [] for s in srv}
    for e in elems:
        s = prev.get(e)
        if s in alive:
            kept[s].append(e)
    # The r slots of size q+1 go to the servers that already hold the most: that maximises what stays.
    big = set(sorted(srv, key=lambda s: (-len(kept[s]), s))[:r])
    cap = {s: q + (1 if s in big else 0) for s in srv}

    result: dict[str, int] = {}
    for s in srv:
        for e in kept[s][:cap[s]]:
            result[e] = s
    pool = [e for e in elems if e not in result]
    it = iter(pool)
    for s in srv:
        for _ in range(cap[s] - len(kept[s][:cap[s]])):
            result[next(it)] = s
    return dict(sorted(result.items()))


def moved(old: dict[str, int], new: dict[str, int]) -> int:
    """Elements present in both maps whose server changed: the re-syncs a reassignment costs."""
    return sum(1 for e, s in new.items() if e in old and old[e] != s)


def counts(assignment: dict[str, int]) -> dict[int, int]:
    """Elements per server, for balance checks and status pages."""
    out: dict[int, int] = {}
    for s in assignment.values():
        out[s] = out.get(s, 0) + 1
    return dict(sorted(out.items()))
