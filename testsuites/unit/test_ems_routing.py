"""EMS circuit routing (spec 001, claims 11-13, 19-21): topology learned from `show interfaces`,
the distributed two-round route computation (checked against networkx on random graphs and
random domain assignments), and provisioning by static routes (checked on in-process routers by
walking a packet through their routing tables)."""
from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulators.cli.testing import ScriptedTerminal
from emulators.ems.provisioning import circuit_config, circuit_id, circuit_unconfig
from emulators.ems.routing import (Route, RouteError, Segment, Summary, borders, compute_route, domains,
                                   interdomain_links, plan, stitch, subroute, summarize, validate)
from emulators.ems.topology import (Interface, Link, Stub, TopologyError, find_endpoint, graph, infer,
                                    parse_show_interfaces)
from emulators.netlink import MAIN_TABLE
from emulators.router import Router

pytestmark = pytest.mark.unit


def iface(element: str, name: str, addr: str, up: bool = True) -> Interface:
    return Interface(element, name, ipaddress.IPv4Interface(addr), up)


# ------------------------------------------------------------------ topology
def make_router(tmp_path: Path, name: str, config: str) -> Router:
    d = Router(name, state_dir=tmp_path / name, users={}, enable_secret="", apply=False, initial_config=config)
    d.tick_interval = 0
    d.start()
    d.lines["con"].privilege = 15
    return d


def terminal(d: Router) -> ScriptedTerminal:
    t = ScriptedTerminal(d)
    t.read()
    t.cmd("terminal length 0")
    return t


def test_parse_show_interfaces_of_a_real_router(tmp_path):
    d = make_router(tmp_path, "r1", "interface eth1\n ip address 10.0.12.1 255.255.255.252\n"
                                    "interface eth2\n ip address 10.1.0.1 255.255.255.0\n shutdown\n"
                                    "interface eth4\n description no address\n")
    try:
        text = terminal(d).output("show interfaces")
    finally:
        d.close()
    assert "mgmt0 is up" in text and "Internet address is 172.20.0.2/24" in text   # present, but not ours
    got = parse_show_interfaces("r1", text)
    assert got == [iface("r1", "eth1", "10.0.12.1/30"), iface("r1", "eth2", "10.1.0.1/24", up=False)]


def test_parse_show_interfaces_tolerates_noise():
    text = ("r1#show interfaces\r\n*Nov 21 07:37:13: %LINK-3-UPDOWN: x\r\n"
            "eth1 is down, line protocol is down \r\n  Internet address is 10.0.0.1/30\r\n"
            "eth2 is up, line protocol is up \r\n  Hardware is veth\r\n  Internet address is 10.0.0.5/30\r\n"
            "mgmt0 is up, line protocol is up \r\n  Internet address is 172.20.0.2/24\r\nr1#")
    assert parse_show_interfaces("r1", text) == [iface("r1", "eth1", "10.0.0.1/30", up=False),
                                                 iface("r1", "eth2", "10.0.0.5/30")]
    assert parse_show_interfaces("r1", "") == []


def test_infer_links_stubs_and_multiaccess_segments():
    links, stubs = infer([
        iface("r1", "eth1", "10.0.12.1/30"), iface("r2", "eth1", "10.0.12.2/30"),
        iface("r1", "eth2", "10.1.0.1/24"),
        iface("r2", "eth2", "10.0.99.2/24"), iface("r3", "eth1", "10.0.99.3/24"), iface("r4", "eth1", "10.0.99.4/24"),
        iface("r3", "eth2", "10.3.0.1/24", up=False),
    ])
    assert links[0] == Link("r1", "eth1", ipaddress.IPv4Address("10.0.12.1"), "r2", "eth1",
                            ipaddress.IPv4Address("10.0.12.2"), ipaddress.IPv4Network("10.0.12.0/30"))
    assert {(l.a, l.b) for l in links if str(l.subnet) == "10.0.99.0/24"} == {("r2", "r3"), ("r2", "r4"), ("r3", "r4")}
    assert [(s.element, s.interface, str(s.network), s.up) for s in stubs] == [
        ("r1", "eth2", "10.1.0.0/24", True), ("r3", "eth2", "10.3.0.0/24", False)]
    l = links[0]
    assert (l.ip_of("r2"), l.if_of("r2"), l.other("r2")) == (ipaddress.IPv4Address("10.0.12.2"), "eth1", "r1")
    with pytest.raises(TopologyError):
        l.ip_of("r9")


def test_graph_leaves_out_down_links_but_keeps_their_elements():
    links, _ = infer([iface("r1", "eth1", "10.0.12.1/30"), iface("r2", "eth1", "10.0.12.2/30"),
                      iface("r2", "eth2", "10.0.23.1/30"), iface("r3", "eth1", "10.0.23.2/30", up=False)])
    g = graph(links, nodes=["r9"])
    assert sorted(g.nodes) == ["r1", "r2", "r3", "r9"]
    assert list(g.edges) == [("r1", "r2")]
    assert g.edges["r1", "r2"]["weight"] == 1 and g.edges["r1", "r2"]["link"] is links[0]


def test_graph_keeps_one_of_parallel_links_deterministically():
    ifs = [iface("r1", "eth1", "10.0.12.5/30"), iface("r2", "eth1", "10.0.12.6/30"),
           iface("r1", "eth2", "10.0.12.1/30"), iface("r2", "eth2", "10.0.12.2/30")]
    links, _ = infer(ifs)
    assert str(graph(links).edges["r1", "r2"]["link"].subnet) == "10.0.12.0/30"
    assert str(graph(reversed(links)).edges["r1", "r2"]["link"].subnet) == "10.0.12.0/30"


def test_find_endpoint():
    stubs = [Stub("r1", "eth2", ipaddress.IPv4Interface("10.1.0.1/24")),
             Stub("r4", "eth3", ipaddress.IPv4Interface("10.4.0.1/16"))]
    assert find_endpoint(stubs, "10.1.0.77").element == "r1"
    assert find_endpoint(stubs, "10.1.0.0/24").element == "r1"
    assert find_endpoint(stubs, "10.4.3.0/24").element == "r4"
    with pytest.raises(TopologyError, match=r"no element has a LAN containing 10\.9\.9\.9$"):
        find_endpoint(stubs, "10.9.9.9")
    with pytest.raises(TopologyError, match="10.0.0.0/8"):
        find_endpoint(stubs, "10.0.0.0/8")
    with pytest.raises(TopologyError, match="not an IPv4"):
        find_endpoint(stubs, "r1")


# ------------------------------------------------------------------ routing: explicit cases
def named(g: nx.Graph) -> nx.Graph:
    return nx.relabel_nodes(g, {n: f"e{i}" for i, n in enumerate(sorted(g.nodes, key=str))})


def path_graph(*paths: str) -> nx.Graph:
    g = nx.Graph()
    for p in paths:
        nx.add_path(g, p.split(), weight=1)
    return g


def check(g: nx.Graph, owner: dict[str, int], src: str, dst: str) -> Route:
    route = compute_route(g, owner, src, dst)
    assert route.path[0] == src and route.path[-1] == dst
    validate(g, route.path)
    assert len(route.path) - 1 == nx.shortest_path_length(g, src, dst)
    assert [s.server for s in route.segments] == [owner[s.entry] for s in route.segments]
    assert all(owner[s.entry] == owner[s.exit] for s in route.segments)
    return route


def test_route_leaves_a_domain_and_comes_back():
    # A's own path a1..a5 is long; the short way goes a1 -> b1 -> a3 -> c1 -> a5.
    g = path_graph("a1 a2 x1 x2 a3 x3 x4 a5", "a1 b1 a3 c1 a5")
    owner = {n: {"a": 1, "b": 2, "c": 3, "x": 1}[n[0]] for n in g}
    route = check(g, owner, "a1", "a5")
    assert route.path == ["a1", "b1", "a3", "c1", "a5"]
    assert route.segments == [Segment(1, "a1", "a1"), Segment(2, "b1", "b1"), Segment(1, "a3", "a3"),
                              Segment(3, "c1", "c1"), Segment(1, "a5", "a5")]
    assert route.servers_asked == [1, 2, 3]


def test_same_domain_endpoints_routed_through_another_domain():
    g = path_graph("s a1 a2 a3 a4 d", "s b1 b2 d")
    owner = {n: 2 if n.startswith("b") else 1 for n in g}
    route = check(g, owner, "s", "d")
    assert route.path == ["s", "b1", "b2", "d"]
    assert route.segments == [Segment(1, "s", "s"), Segment(2, "b1", "b2"), Segment(1, "d", "d")]


def test_single_server_and_single_element():
    g = named(nx.grid_2d_graph(3, 4))
    owner = {n: 7 for n in g}
    route = check(g, owner, "e0", "e11")
    assert route.segments == [Segment(7, "e0", "e11")] and route.servers_asked == [7]
    assert compute_route(g, owner, "e5", "e5") == Route(["e5"], [Segment(7, "e5", "e5")], [7])


def test_unreachable_and_unknown_elements():
    g = path_graph("a b", "c d")
    owner = {"a": 1, "b": 2, "c": 2, "d": 1}
    with pytest.raises(RouteError, match="^no route from a to d$"):
        compute_route(g, owner, "a", "d")
    with pytest.raises(RouteError, match="no route from a to zz: unknown element zz"):
        compute_route(g, owner, "a", "zz")
    g.add_node("lonely")
    with pytest.raises(RouteError, match="lonely is not managed by any server"):
        compute_route(g, owner, "lonely", "a")


def test_unreachable_inside_a_domain_but_reachable_around():
    # Server 1's elements are split in two pieces; only server 2 joins them.
    g = path_graph("a1 b1 a2")
    route = check(g, {"a1": 1, "a2": 1, "b1": 2}, "a1", "a2")
    assert route.path == ["a1", "b1", "a2"]
    with pytest.raises(RouteError, match="inside the domain"):
        subroute(g, {"a1", "a2"}, "a1", "a2")


def test_borders_summary_and_plan_steps():
    g = path_graph("s a1 a2 b1 b2 d", "a1 b2")
    owner = {"s": 1, "a1": 1, "a2": 1, "b1": 2, "b2": 2, "d": 2}
    doms = domains(owner)
    assert doms == {1: {"s", "a1", "a2"}, 2: {"b1", "b2", "d"}}
    assert borders(g, doms[1]) == {"a1", "a2"} and borders(g, doms[2]) == {"b1", "b2"}
    s1 = summarize(g, doms[1], 1, ["s", "d"])
    assert s1.ports == ["a1", "a2", "s"]
    assert s1.costs[("s", "a2")] == 2 and s1.costs[("a2", "s")] == 2 and ("s", "s") not in s1.costs
    assert interdomain_links(g, owner) == [("a1", "b2", 1), ("a2", "b1", 1)]
    s2 = summarize(g, doms[2], 2, ["s", "d"])
    segs = plan([s1, s2], interdomain_links(g, owner), owner, "s", "d")
    assert segs == [Segment(1, "s", "a1"), Segment(2, "b2", "d")]
    assert stitch([subroute(g, doms[s.server], s.entry, s.exit) for s in segs], g) == ["s", "a1", "b2", "d"]
    with pytest.raises(RouteError, match="no route from s to q: q is not managed"):
        plan([s1, s2], [], owner, "s", "q")


def test_subroute_breaks_ties_by_name():
    g = path_graph("a c z", "a b z", "a d z")
    assert subroute(g, g.nodes, "a", "z") == ["a", "b", "z"]
    assert subroute(g, g.nodes, "z", "a") == ["z", "b", "a"]


def test_stitch_and_validate_errors():
    g = path_graph("a b c d")
    assert stitch([["a", "b"], ["c", "d"]], g) == ["a", "b", "c", "d"]
    assert stitch([["a", "b"], ["b", "c"]]) == ["a", "b", "c"]
    with pytest.raises(RouteError, match="does not exist: b -> d"):
        stitch([["a", "b"], ["d"]], g)
    with pytest.raises(RouteError, match="twice"):
        validate(g, ["a", "b", "a"])
    with pytest.raises(RouteError, match="empty"):
        stitch([["a"], []])
    with pytest.raises(RouteError, match="unknown element q"):
        validate(g, ["a", "q"])


def test_messages_survive_json():
    g = path_graph("s a1 a2 b1 b2 d", "a1 b2")
    owner = {"s": 1, "a1": 1, "a2": 1, "b1": 2, "b2": 2, "d": 2}
    s = summarize(g, domains(owner)[1], 1, ["s", "d"])
    assert Summary.from_json(json.loads(json.dumps(s.to_json()))) == s
    seg = Segment(2, "b2", "d")
    assert Segment.from_json(json.loads(json.dumps(seg))) == seg               # as a tuple
    assert Segment.from_json(json.loads(json.dumps(seg.to_json()))) == seg     # as a dict
    r = compute_route(g, owner, "s", "d")
    assert Route.from_json(json.loads(json.dumps(r.to_json()))) == r


# ------------------------------------------------------------------ routing: property
@st.composite
def topologies(draw) -> nx.Graph:
    kind = draw(st.sampled_from(["gnp", "regular", "grid", "ring", "two-parts"]))
    seed = draw(st.integers(0, 2 ** 16))
    if kind == "gnp":
        g = nx.gnp_random_graph(draw(st.integers(1, 18)), draw(st.floats(0.05, 0.6)), seed=seed)
    elif kind == "regular":
        d = draw(st.integers(1, 4))
        n = draw(st.integers(d + 1, 18))
        g = nx.random_regular_graph(d, n + (n * d) % 2, seed=seed)
    elif kind == "grid":
        g = nx.grid_2d_graph(draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    elif kind == "ring":
        n = draw(st.integers(3, 18))
        g = nx.cycle_graph(n)
        for a, b in draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=4)):
            if a != b:
                g.add_edge(a, b)
    else:
        g = nx.disjoint_union(nx.path_graph(draw(st.integers(1, 6))), nx.cycle_graph(draw(st.integers(3, 8))))
    return named(g)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_distributed_route_is_a_shortest_path(data):
    g = data.draw(topologies())
    nodes = sorted(g.nodes)
    servers = data.draw(st.integers(1, 6))
    owner = dict(zip(nodes, data.draw(st.lists(st.integers(1, servers), min_size=len(nodes), max_size=len(nodes)))))
    src = data.draw(st.sampled_from(nodes))
    dst = data.draw(st.sampled_from(nodes))
    if nx.has_path(g, src, dst):
        route = check(g, owner, src, dst)
        assert set(route.servers_asked) == {owner[n] for n in route.path}
    else:
        with pytest.raises(RouteError, match=f"^no route from {src} to {dst}$"):
            compute_route(g, owner, src, dst)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2 ** 16), n=st.integers(2, 10), p=st.floats(0.2, 0.7), data=st.data())
def test_subroute_is_the_smallest_shortest_path_by_name(seed, n, p, data):
    names = data.draw(st.permutations(range(n)))      # names unrelated to the insertion order
    g = nx.relabel_nodes(nx.gnp_random_graph(n, p, seed=seed), {i: f"e{names[i]}" for i in range(n)})
    src, dst = "e0", f"e{n - 1}"
    if not nx.has_path(g, src, dst):
        return
    assert subroute(g, g.nodes, src, dst) == min(nx.all_shortest_paths(g, src, dst))


# ------------------------------------------------------------------ provisioning
CHAIN = [  # r1 - r2 - r3 - r4, customer LANs on r1 and r4
    iface("r1", "eth1", "10.0.12.1/30"), iface("r2", "eth1", "10.0.12.2/30"),
    iface("r2", "eth2", "10.0.23.1/30"), iface("r3", "eth1", "10.0.23.2/30"),
    iface("r3", "eth2", "10.0.34.1/30"), iface("r4", "eth1", "10.0.34.2/30"),
    iface("r1", "eth3", "10.1.0.1/24"), iface("r4", "eth3", "10.4.0.1/24"),
]


def test_circuit_config_on_a_chain():
    links, stubs = infer(CHAIN)
    g = graph(links)
    src, dst = find_endpoint(stubs, "10.1.0.10"), find_endpoint(stubs, "10.4.0.0/24")
    path = ["r1", "r2", "r3", "r4"]
    assert circuit_config(g, path, src, dst) == {
        "r1": ["ip routing", "ip route 10.4.0.0 255.255.255.0 10.0.12.2"],
        "r2": ["ip routing", "ip route 10.4.0.0 255.255.255.0 10.0.23.2", "ip route 10.1.0.0 255.255.255.0 10.0.12.1"],
        "r3": ["ip routing", "ip route 10.4.0.0 255.255.255.0 10.0.34.2", "ip route 10.1.0.0 255.255.255.0 10.0.23.1"],
        "r4": ["ip routing", "ip route 10.1.0.0 255.255.255.0 10.0.34.1"],
    }
    assert circuit_unconfig(g, path, src, dst) == {
        "r1": ["no ip route 10.4.0.0 255.255.255.0 10.0.12.2"],
        "r2": ["no ip route 10.4.0.0 255.255.255.0 10.0.23.2", "no ip route 10.1.0.0 255.255.255.0 10.0.12.1"],
        "r3": ["no ip route 10.4.0.0 255.255.255.0 10.0.34.2", "no ip route 10.1.0.0 255.255.255.0 10.0.23.1"],
        "r4": ["no ip route 10.1.0.0 255.255.255.0 10.0.34.1"],
    }
    back = circuit_config(g, path[::-1], dst, src)
    assert back["r2"] == ["ip routing", "ip route 10.1.0.0 255.255.255.0 10.0.12.1",
                          "ip route 10.4.0.0 255.255.255.0 10.0.23.2"]
    assert circuit_id(src, dst) == circuit_id(dst, src) == "10.1.0.0/24<->10.4.0.0/24"


def test_circuit_config_edge_cases():
    links, stubs = infer(CHAIN + [iface("r1", "eth4", "10.11.0.1/24")])
    g = graph(links)
    a, b = find_endpoint(stubs, "10.1.0.1"), find_endpoint(stubs, "10.11.0.1")
    assert circuit_config(g, ["r1"], a, b) == {"r1": ["ip routing"]}      # both LANs on one element
    assert circuit_unconfig(g, ["r1"], a, b) == {"r1": []}
    d = find_endpoint(stubs, "10.4.0.1")
    with pytest.raises(RouteError, match="ends at r3"):
        circuit_config(g, ["r1", "r2", "r3"], a, d)
    with pytest.raises(RouteError, match="starts at r2"):
        circuit_config(g, ["r2", "r3", "r4"], a, d)
    with pytest.raises(RouteError, match="does not exist"):
        circuit_config(g, ["r1", "r3", "r4"], a, d)


# A ring r1-r2-r3-r4-r5-r6-r1 with a chord r2-r4; LANs on r1 and r4; three servers.
def addressing(**ifs: str) -> str:
    """Router config giving each named interface an address (written as a prefix)."""
    out = []
    for name, prefix in ifs.items():
        i = ipaddress.IPv4Interface(prefix)
        out += [f"interface {name}", f" ip address {i.ip} {i.netmask}"]
    return "\n".join(out) + "\n"


RING = {
    "r1": addressing(eth1="10.0.12.1/30", eth2="10.0.16.1/30", eth3="10.1.0.1/24"),
    "r2": addressing(eth1="10.0.12.2/30", eth2="10.0.23.1/30", eth3="10.0.24.1/30"),
    "r3": addressing(eth1="10.0.23.2/30", eth2="10.0.34.1/30"),
    "r4": addressing(eth1="10.0.34.2/30", eth2="10.0.45.1/30", eth3="10.4.0.1/24", eth4="10.0.24.2/30"),
    "r5": addressing(eth1="10.0.45.2/30", eth2="10.0.56.1/30"),
    "r6": addressing(eth1="10.0.56.2/30", eth2="10.0.16.2/30"),
}
OWNER = {"r1": 1, "r2": 2, "r3": 2, "r4": 3, "r5": 3, "r6": 1}


def forward(routers: dict[str, Router], start: str, dest: str) -> list[str]:
    """Where a packet to `dest` entering at `start` goes, by longest-prefix match on each
    router's (in-memory) kernel table; ends where `dest` is directly connected."""
    by_ip = {ip: name for name, r in routers.items() for addrs in r.net.addresses().values() for ip, _ in addrs}
    target = ipaddress.IPv4Address(dest)
    hops, here = [start], start
    for _ in range(len(routers) + 1):
        table = [(ipaddress.IPv4Network(f"{r.dst}/{r.plen}"), r) for r in routers[here].net.routes()
                 if r.table == MAIN_TABLE and r.type == 1]
        matches = [(net.prefixlen, r) for net, r in table if target in net]
        if not matches:
            return hops + ["<dropped>"]
        _, best = max(matches, key=lambda m: m[0])
        if best.gateway is None:
            return hops
        here = by_ip[best.gateway]
        hops.append(here)
    return hops + ["<loop>"]


def type_config(terms: dict, config: dict[str, list[str]]) -> None:
    """Type each element's lines at its CLI, as an operator (or the EMS) would; none may be refused."""
    for name, lines in config.items():
        t = terms[name]
        t.cmd("configure terminal")
        for line in lines:
            out = t.cmd(line)
            assert "%" not in out.split("\r\n", 1)[1], (name, line, out)
        t.cmd("end")


def static_lines(t: ScriptedTerminal) -> list[str]:
    return [ln for ln in t.output("show ip route").split("\r\n") if ln.startswith("S")]


def test_provisioned_circuit_carries_traffic_both_ways(tmp_path):
    routers = {n: make_router(tmp_path, n, cfg) for n, cfg in RING.items()}
    try:
        terms = {n: terminal(r) for n, r in routers.items()}
        interfaces = [i for n, t in terms.items()
                      for i in parse_show_interfaces(n, t.output("show interfaces"))]
        assert not any(i.name == "mgmt0" for i in interfaces)
        links, stubs = infer(interfaces)
        g = graph(links)
        assert sorted(tuple(sorted(e)) for e in g.edges) == [
            ("r1", "r2"), ("r1", "r6"), ("r2", "r3"), ("r2", "r4"), ("r3", "r4"), ("r4", "r5"), ("r5", "r6")]
        src, dst = find_endpoint(stubs, "10.1.0.50"), find_endpoint(stubs, "10.4.0.50")
        route = compute_route(g, OWNER, src.element, dst.element)
        assert route.path == ["r1", "r2", "r4"] and route.servers_asked == [1, 2, 3]
        assert forward(routers, "r1", "10.4.0.50") == ["r1", "<dropped>"]

        type_config(terms, circuit_config(g, route.path, src, dst))
        r2 = static_lines(terms["r2"])
        assert any(re.match(r"S\s+10\.4\.0\.0/24 \[1/0\] via 10\.0\.24\.2$", ln) for ln in r2), r2
        assert any(re.match(r"S\s+10\.1\.0\.0/24 \[1/0\] via 10\.0\.12\.1$", ln) for ln in r2), r2
        assert len(static_lines(terms["r1"])) == len(static_lines(terms["r4"])) == 1
        assert static_lines(terms["r3"]) == static_lines(terms["r5"]) == []
        assert "ip route 10.4.0.0 255.255.255.0 10.0.24.2" in routers["r2"].running_config()
        assert forward(routers, "r1", "10.4.0.50") == route.path
        assert forward(routers, "r4", "10.1.0.50") == route.path[::-1]

        type_config(terms, circuit_unconfig(g, route.path, src, dst))
        assert all(static_lines(t) == [] for t in terms.values())
        assert forward(routers, "r1", "10.4.0.50") == ["r1", "<dropped>"]
    finally:
        for r in routers.values():
            r.close()
