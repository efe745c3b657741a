"""Whole-grid forwarding properties: following the compiled rules through a simulated data plane, a
frame reaches every receiver exactly once and never loops, whatever the trunk cabling (cycles
included), and every link of the shipped lab (labs/vlinks.yaml) delivers by its type's rules."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controllers.vlink.compiler import COPY_TYPES, Context, LinkRecord, copy_sources, policy, ports_of
from controllers.vlink.model import parse_link
from twin.lab import load_lab
from twin.lab.grid import grid_of, pool_of
from vlink_sim import BCAST, DataPlane, Frame, all_rules, make_grid, records

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


@st.composite
def grids_with_a_switch_link(draw):
    n = draw(st.integers(2, 4))
    switches = [f"s{i}" for i in range(n)]
    # a random tree keeps the trunk graph connected; extra trunks (parallel ones too) add cycles
    pairs = [(draw(st.integers(0, i - 1)), i) for i in range(1, n)]
    pairs += draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(lambda p: p[0] != p[1]),
                           max_size=5))
    pairs = draw(st.permutations(pairs))
    trunks = [(f"s{a}", f"t{k}", f"s{b}", f"t{k}") for k, (a, b) in enumerate(pairs)]
    order = draw(st.permutations(switches))                 # the tree's root is the first listed switch
    k = draw(st.integers(2, 6))
    homes = draw(st.lists(st.sampled_from(switches), min_size=k, max_size=k))
    wiring = {f"m{i}:e1": f"{sw}:p{i}" for i, sw in enumerate(homes)}
    return make_grid(list(order), wiring, trunks), sorted(wiring)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grids_with_a_switch_link(), st.data())
def test_a_virtual_switch_delivers_each_frame_exactly_once_on_any_grid(grid_members, data):
    grid, members = grid_members
    links = records(("vsw", {"type": "switch", "members": members}))
    owner = data.draw(st.sampled_from(members))
    mac = "02:00:00:00:0f:0f"
    ctx = Context(grid, links, learned=data.draw(st.sampled_from([{}, {"vsw": {mac: owner}}])))
    dp = DataPlane(grid, all_rules(ctx), max_hops=4 * len(grid.switches) + 4)
    where = {ep: (grid.attachments[ep].switch, grid.attachments[ep].port) for ep in members}
    for sender in members:
        for frame in (Frame(eth_dst=BCAST), Frame(eth_dst="02:00:00:00:00:01")):
            trace = dp.send_from(sender, frame)                  # LoopError if it keeps circling
            got = sorted(trace.ports())
            assert got == sorted(where[m] for m in members if m != sender), (sender, trace)
            assert all(f == frame for _, _, f in trace.delivered), "untagged and unchanged"
        if ctx.learned:
            got = dp.send_from(sender, Frame(eth_dst=mac)).ports()
            assert got == ([] if sender == owner else [where[owner]])


@settings(max_examples=60, deadline=None)
@given(grids_with_a_switch_link(), st.data())
def test_a_p2mp_link_sends_the_root_to_every_leaf_and_each_leaf_to_the_root(grid_members, data):
    grid, members = grid_members
    root = data.draw(st.sampled_from(members))
    body = {"type": "p2mp", "members": [{m: "root"} if m == root else m for m in members]}
    ctx = Context(grid, records(("pm", body)))
    dp = DataPlane(grid, all_rules(ctx), max_hops=4 * len(grid.switches) + 4)
    where = {ep: (grid.attachments[ep].switch, grid.attachments[ep].port) for ep in members}
    assert sorted(dp.send_from(root, Frame()).ports()) == sorted(where[m] for m in members if m != root)
    for leaf in members:
        if leaf != root:
            assert dp.send_from(leaf, Frame()).ports() == [where[root]]


# ------------------------------------------------------------------ the shipped lab, every link
@pytest.fixture(scope="module")
def lab_ctx():
    spec = load_lab(ROOT / "labs" / "vlinks.yaml").spec
    pool = pool_of(spec)
    links: dict[str, LinkRecord] = {}
    for name, body in spec.vlinks.items():
        link = parse_link(body, name)
        vlan = link.vlan or pool.allocate(r.vlan for r in links.values())
        links[name] = LinkRecord(link, len(links) + 1, vlan)
    learned = {"vsw1": {"02:00:00:00:01:01": "h3:eth1"}, "hub1": {"02:00:00:00:02:02": "h4:eth2"}}
    return Context(grid_of(spec), links, learned=learned)


def test_no_two_links_of_the_lab_program_the_same_match(lab_ctx):
    rules = all_rules(lab_ctx)
    keys = [r.key for r in rules]
    assert len(set(keys)) == len(keys)
    assert all_rules(lab_ctx) == rules


def test_every_lab_link_floods_by_its_policy_without_loops_or_duplicates(lab_ctx):
    dp = DataPlane(lab_ctx.grid, all_rules(lab_ctx))
    checked = 0
    for rec in lab_ctx.links.values():
        if rec.spec.type in COPY_TYPES:
            continue
        ports = ports_of(rec, lab_ctx.grid)
        pol = policy(rec, ports, lab_ctx)
        sent, delivered = copy_sources(rec, lab_ctx)
        for sender in sorted(pol.sends):
            p = ports[sender]
            frame = Frame(vlan=(rec.vlan, 0) if p.tagged else None)
            trace = dp.send(p.switch, p.port, frame)
            receivers = pol.flood[pol.cls[sender]] - {sender}
            want = [(ports[i].switch, ports[i].port) for i in receivers]
            # copies: of what this sender sends, and of what is delivered to a probed receiver
            copies = sent.get(p.endpoint, []) + [c for i in receivers for c in delivered.get(ports[i].endpoint, [])]
            for c in dict.fromkeys(copies):
                want += [(a.switch, a.port) for a in map(lab_ctx.grid.attachment, lab_ctx.links[c].spec.endpoints())]
            assert sorted(trace.ports()) == sorted(want), (rec.name, p.endpoint, trace.delivered)
            checked += 1
    assert checked >= 20
