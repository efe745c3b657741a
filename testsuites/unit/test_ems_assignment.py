"""Element assignment by the EMS master (spec 001, claim 6): every element exactly once, balanced,
sticky (the fewest moves when a server dies or joins), and independent of input order."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulators.ems.assignment import assign, counts, moved

pytestmark = pytest.mark.unit

ELEMENTS = [f"ne-{i:02d}" for i in range(23)]


def check_balanced(a: dict[str, int], elements: list[str], servers: list[int]) -> None:
    assert sorted(a) == sorted(set(elements))
    assert set(a.values()) <= set(servers)
    per = [counts(a).get(s, 0) for s in set(servers)]
    assert max(per) - min(per) <= 1, per


def max_kept(elements: list[str], servers: list[int], previous: dict[str, int]) -> int:
    """Upper bound on elements that can stay: each server keeps at most its capacity, r of them q+1."""
    q, r = divmod(len(set(elements)), len(set(servers)))
    keep = [sum(1 for e in set(elements) if previous.get(e) == s) for s in set(servers)]
    return sum(min(k, q) for k in keep) + min(r, sum(1 for k in keep if k > q))


def test_no_server_no_assignment_and_no_element_empty_map():
    assert assign(ELEMENTS, []) == {}
    assert assign([], [1, 2]) == {}


def test_balanced_and_complete():
    for n_servers in range(1, 8):
        servers = list(range(1, n_servers + 1))
        check_balanced(assign(ELEMENTS, servers), ELEMENTS, servers)


def test_deterministic_whatever_the_input_order():
    servers = [5, 1, 4, 2, 3]
    base = assign(ELEMENTS, servers)
    rng = random.Random(7)
    for _ in range(5):
        e, s = ELEMENTS[:], servers[:]
        rng.shuffle(e)
        rng.shuffle(s)
        assert assign(e, s) == base
        assert assign(e + e[:3], s + s[:1]) == base            # duplicates do not matter either


def test_killing_one_server_of_five_moves_only_its_elements():
    servers = [1, 2, 3, 4, 5]
    before = assign(ELEMENTS, servers)
    for dead in servers:
        after = assign(ELEMENTS, [s for s in servers if s != dead], before)
        orphans = {e for e, s in before.items() if s == dead}
        assert {e for e in ELEMENTS if after[e] != before[e]} == orphans
        assert moved(before, after) == len(orphans)
        check_balanced(after, ELEMENTS, [s for s in servers if s != dead])


def test_a_joining_server_takes_only_what_balance_needs():
    before = assign(ELEMENTS, [1, 2, 3, 4])
    after = assign(ELEMENTS, [1, 2, 3, 4, 5], before)
    check_balanced(after, ELEMENTS, [1, 2, 3, 4, 5])
    assert moved(before, after) == counts(after)[5] == len(ELEMENTS) // 5
    # New elements go where there is room; the old ones stay.
    grown = assign(ELEMENTS + ["ne-new"], [1, 2, 3, 4, 5], after)
    assert moved(after, grown) == 0 and "ne-new" in grown


def test_moved_counts_only_elements_in_both_maps():
    assert moved({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 1}) == 1
    assert moved({}, {"a": 1}) == 0


@settings(max_examples=150, deadline=None)
@given(elements=st.lists(st.text("abcdefgh", min_size=1, max_size=3), max_size=40),
       before=st.sets(st.integers(1, 9), min_size=1, max_size=7),
       after=st.sets(st.integers(1, 9), min_size=1, max_size=7),
       extra=st.lists(st.text("xyz", min_size=1, max_size=2), max_size=5))
def test_property_balanced_sticky_minimal(elements, before, after, extra):
    prev = assign(elements, sorted(before))
    check_balanced(prev, elements, sorted(before))
    new_elements = elements + extra
    new = assign(new_elements, sorted(after), prev)
    check_balanced(new, new_elements, sorted(after))
    # Fewest moves: every element that could have stayed did.
    stayed = sum(1 for e, s in new.items() if prev.get(e) == s)
    assert stayed == max_kept(new_elements, sorted(after), prev)
    assert assign(list(reversed(new_elements)), sorted(after, reverse=True), prev) == new
