"""Distributed circuit routing (spec 001, claims 11-13, 19-21), as pure steps.

No server sees the whole network's internals: each one knows the elements of its own domain and
the inter-domain links at its borders. A route is computed in two rounds:

1. every server is asked (with the circuit's source and destination, claim 21) for a `Summary`:
   the shortest-path costs inside its domain between its "ports" (border elements, plus the source
   or destination if they are its own). The coordinating server joins the summaries with the
   inter-domain links into a small abstract graph and runs Dijkstra on it (`plan`). Because every
   shortest path in the whole network is a chain of intra-domain runs between ports joined by
   inter-domain links, the abstract shortest path has exactly the length of the real one.
2. the servers on that abstract path (claim 13's "selected" servers) are asked for the explicit
   sub-route of each of their segments (`subroute`), which the coordinator consolidates (`stitch`).

`compute_route` runs both rounds in one process: the reference the networked version must agree
with, and what the tests check against networkx.
"""
from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import networkx as nx


class RouteError(ValueError):
    """No circuit route can be found or a proposed one is not valid."""


def _weight(g: nx.Graph, u: str, v: str) -> int:
    return int(g.edges[u, v].get("weight", 1))


def domains(owner: Mapping[str, int]) -> dict[int, set[str]]:
    """Invert the assignment: server -> the elements it manages."""
    out: dict[int, set[str]] = {}
    for element, server in owner.items():
        out.setdefault(server, set()).add(element)
    return out


def borders(g: nx.Graph, domain: Iterable[str]) -> set[str]:
    """Where a route can leave or enter the domain; only these (and the endpoints) matter to
    anyone outside it."""
    dom = set(domain)
    return {n for n in dom if n in g and any(m not in dom for m in g.adj[n])}


def interdomain_links(g: nx.Graph, owner: Mapping[str, int]) -> list[tuple[str, str, int]]:
    """Links whose ends are managed by different servers, with their weight. Both servers see
    such a link (it ends on their elements), so the coordinator can learn it from either side.
    Elements nobody manages are left out: no server could route through them."""
    out = []
    for u, v in g.edges:
        if u in owner and v in owner and owner[u] != owner[v]:
            a, b = sorted((u, v))
            out.append((a, b, _weight(g, u, v)))
    return sorted(out)


# ------------------------------------------------------------------ round 1: summaries and plan
@dataclass
class Summary:
    """One server's answer to a summary request: what crossing its domain costs, without how."""
    server: int
    costs: dict[tuple[str, str], int]
    ports: list[str] = field(default_factory=list)   # so an isolated port is still known

    def to_json(self) -> dict[str, Any]:
        return {"server": self.server, "ports": sorted(self.ports),
                "costs": [[a, b, c] for (a, b), c in sorted(self.costs.items())]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Summary:
        return cls(server=int(data["server"]),
                   costs={(str(a), str(b)): int(c) for a, b, c in data.get("costs", [])},
                   ports=[str(p) for p in data.get("ports", [])])


def summarize(g: nx.Graph, domain: Iterable[str], server: int, targets: Iterable[str]) -> Summary:
    """Computed only over the domain's own subgraph: a server cannot vouch for paths through
    elements it does not manage; the plan composes those through other servers' summaries."""
    dom = {n for n in domain if n in g}
    ports = borders(g, dom) | {t for t in targets if t in dom}
    sub = g.subgraph(dom)
    costs: dict[tuple[str, str], int] = {}
    for p in sorted(ports):
        lengths = nx.single_source_dijkstra_path_length(sub, p, weight="weight")
        for q in sorted(ports):
            if q != p and q in lengths:
                costs[(p, q)] = int(lengths[q])
    return Summary(server, costs, sorted(ports))


class Segment(NamedTuple):
    """A stretch of the route inside one domain, from where it enters to where it leaves. A
    tuple so it serializes to JSON as-is."""
    server: int
    entry: str
    exit: str

    def to_json(self) -> dict[str, Any]:
        return {"server": self.server, "entry": self.entry, "exit": self.exit}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | Sequence[Any]) -> Segment:
        if isinstance(data, Mapping):
            return cls(int(data["server"]), str(data["entry"]), str(data["exit"]))
        server, entry, exit_ = data
        return cls(int(server), str(entry), str(exit_))


def plan(summaries: Iterable[Summary], interdomain_links: Iterable[Sequence[Any]],
         owner: Mapping[str, int], src: str, dst: str) -> list[Segment]:
    """Shortest path over the abstract graph of ports, cut into per-domain segments. A domain
    shows up once per visit: a path may leave it and come back when the detour is shorter."""
    no_route = f"no route from {src} to {dst}"
    for e in (src, dst):
        if e not in owner:
            raise RouteError(f"{no_route}: {e} is not managed by any server")
    if src == dst:
        return [Segment(owner[src], src, src)]
    ag = nx.DiGraph()
    ag.add_nodes_from((src, dst))
    for s in sorted(summaries, key=lambda s: s.server):
        ag.add_nodes_from(sorted(s.ports))
        for (a, b), c in sorted(s.costs.items()):
            if owner.get(a) == s.server and owner.get(b) == s.server:
                ag.add_edge(a, b, weight=c)
    for link in sorted(tuple(l) for l in interdomain_links):
        a, b = link[0], link[1]
        w = link[2] if len(link) > 2 else 1
        if a in owner and b in owner and owner[a] != owner[b]:
            ag.add_edge(a, b, weight=w)
            ag.add_edge(b, a, weight=w)
    try:
        path = nx.dijkstra_path(ag, src, dst, weight="weight")
    except nx.NetworkXNoPath:
        raise RouteError(no_route) from None
    segments: list[Segment] = []
    entry = path[0]
    for u, v in zip(path, path[1:]):
        if owner[u] != owner[v]:
            segments.append(Segment(owner[u], entry, u))
            entry = v
    segments.append(Segment(owner[path[-1]], entry, path[-1]))
    return segments


# ------------------------------------------------------------------ round 2: sub-routes
def subroute(g: nx.Graph, domain: Iterable[str], entry: str, exit: str) -> list[str]:
    """A shortest path inside the domain. Ties are broken towards the lexicographically smallest
    sequence of names so that every server (and a retry) gives the same route for the same
    request - the circuit's identity must not depend on dict order.

    Dijkstra on (cost, path) labels: a lexicographically smallest shortest path has prefixes
    that are themselves lexicographically smallest shortest paths (weights are positive), so the
    first label popped for a node is final."""
    dom = {n for n in domain if n in g}
    for e in (entry, exit):
        if e not in dom:
            raise RouteError(f"no sub-route from {entry} to {exit}: {e} is not in this domain")
    best: dict[str, tuple[int, list[str]]] = {}
    heap: list[tuple[int, list[str]]] = [(0, [entry])]
    while heap:
        cost, path = heapq.heappop(heap)
        node = path[-1]
        if node in best:
            continue
        best[node] = (cost, path)
        if node == exit:
            return path
        for nxt in g.adj[node]:
            if nxt in dom and nxt not in best:
                heapq.heappush(heap, (cost + _weight(g, node, nxt), path + [nxt]))
    raise RouteError(f"no sub-route from {entry} to {exit} inside the domain")


def validate(g: nx.Graph, path: Sequence[str]) -> None:
    """A circuit is provisioned hop by hop, so every hop must be a real link and no element may
    appear twice (a static route cannot send the same prefix two ways)."""
    if not path:
        raise RouteError("empty route")
    for n in path:
        if n not in g:
            raise RouteError(f"route goes through unknown element {n}")
    if len(set(path)) != len(path):
        raise RouteError(f"route visits an element twice: {' -> '.join(path)}")
    for u, v in zip(path, path[1:]):
        if not g.has_edge(u, v):
            raise RouteError(f"route uses a link that does not exist: {u} -> {v}")


def stitch(subroutes: Sequence[Sequence[str]], g: nx.Graph | None = None) -> list[str]:
    """Consolidate the servers' sub-routes (claim 13). Consecutive segments meet over an
    inter-domain link, so they are simply concatenated; a repeated junction element (a server
    that included its neighbour's entry) is collapsed. Given `g`, the result is validated."""
    path: list[str] = []
    for i, sr in enumerate(subroutes):
        if not sr:
            raise RouteError(f"sub-route {i} is empty")
        part = list(sr)
        if path and part[0] == path[-1]:
            part = part[1:]
        path += part
    if not path:
        raise RouteError("no sub-routes to consolidate")
    if g is not None:
        validate(g, path)
    return path


# ------------------------------------------------------------------ reference
@dataclass
class Route:
    path: list[str]
    segments: list[Segment]
    servers_asked: list[int]     # servers asked for a sub-route, in path order, each once

    @property
    def hops(self) -> int:
        return len(self.path) - 1

    def to_json(self) -> dict[str, Any]:
        return {"path": list(self.path), "segments": [s.to_json() for s in self.segments],
                "servers_asked": list(self.servers_asked)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Route:
        return cls(path=[str(p) for p in data["path"]],
                   segments=[Segment.from_json(s) for s in data["segments"]],
                   servers_asked=[int(s) for s in data["servers_asked"]])


def compute_route(g: nx.Graph, owner: Mapping[str, int], src: str, dst: str) -> Route:
    """The whole protocol in one process, with the same steps and data a networked run
    exchanges (each server only ever looks at its own domain's subgraph)."""
    for e in (src, dst):
        if e not in g:
            raise RouteError(f"no route from {src} to {dst}: unknown element {e}")
        if e not in owner:
            raise RouteError(f"no route from {src} to {dst}: {e} is not managed by any server")
    doms = domains(owner)
    summaries = [summarize(g, doms[s], s, (src, dst)) for s in sorted(doms)]
    segments = plan(summaries, interdomain_links(g, owner), owner, src, dst)
    subroutes = [subroute(g, doms[seg.server], seg.entry, seg.exit) for seg in segments]
    path = stitch(subroutes, g)
    if path[0] != src or path[-1] != dst:
        raise RouteError(f"consolidated route {' -> '.join(path)} does not join {src} to {dst}")
    asked: list[int] = []
    for seg in segments:
        if seg.server not in asked:
            asked.append(seg.server)
    return Route(path, segments, asked)
