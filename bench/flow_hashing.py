"""Flows moved by one node failure: the flow engine's hashing against modulo and Maglev.

The design (seed 003 [0081]) hashes a flow over the cluster as the flow's own topology saw it, so a
failure moves no flow whose node survives; only the failed node's flows are redirected. The
comparison: plain modulo over the current members, and Maglev consistent hashing (Eisenbud et al.,
NSDI 2016, table size 65537). For each cluster size n, 100,000 random 32-bit flow IDs (Table 2's
flow ID is 4 bytes; random.Random(1)), one member (drawn from the same generator) fails; "moved" is
the fraction of the flows *not* on the failed member whose node changed (ideal 0). Also the cost of
one lookup for each method. Pure CPU, no lab. Prints one JSON line and writes
bench/results/flow_hashing.md.
"""
from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_out import publish  # noqa: E402

from emulators.flows.hashing import Maglev, modulo_pick  # noqa: E402
from emulators.flows.selection import hash_pick, moved_fraction, resolve, stable_hash  # noqa: E402
from emulators.flows.topology import ClusterView, Member, Topology  # noqa: E402

SIZES = (2, 3, 5, 8, 16)
FLOWS = 100_000
SEED = 1
LOOKUP_N = 8          # cluster size for the per-lookup timings
REPEATS = 3           # best of


def per_call_ns(fn: Callable[[int], Any], keys: list[int]) -> float:
    """Best-of-REPEATS mean time of fn over keys, loop overhead included (it is the same for all)."""
    best = float("inf")
    for _ in range(REPEATS):
        t = time.perf_counter_ns()
        for k in keys:
            fn(k)
        best = min(best, (time.perf_counter_ns() - t) / len(keys))
    return round(best, 1)


def lookup_costs(flows: list[int]) -> dict[str, float]:
    members = [f"m{i}" for i in range(1, LOOKUP_N + 1)]
    view = ClusterView.build("c", 1, [Member(m, i) for i, m in enumerate(members, 1)])
    t1 = Topology(1, {"c": view})
    t2 = t1.next(failed={members[0]})
    table = Maglev(members)
    return {"n": LOOKUP_N,
            "stable_hash": per_call_ns(stable_hash, flows),
            "design_hash_pick": per_call_ns(lambda f: hash_pick(f, view), flows),
            "design_resolve_after_failure": per_call_ns(lambda f: resolve(f, None, t1, t2, "c"), flows),
            "modulo": per_call_ns(lambda f: modulo_pick(stable_hash(f), members), flows),
            "maglev": per_call_ns(lambda f: table.lookup(stable_hash(f)), flows)}


def main() -> None:
    rng = random.Random(SEED)
    flows = [rng.getrandbits(32) for _ in range(FLOWS)]
    results = []
    for n in SIZES:
        members = [f"m{i}" for i in range(1, n + 1)]
        failed = rng.choice(members)
        view = ClusterView.build("c", 1, [Member(m, i) for i, m in enumerate(members, 1)])
        on_failed = sum(hash_pick(f, view).name == failed for f in flows) / FLOWS
        t = time.perf_counter()
        Maglev(members)
        build_ms = (time.perf_counter() - t) * 1000
        row = {"n": n, "failed": failed, "on_failed": round(on_failed, 4),
               **{f"{m}_moved": round(moved_fraction(m, flows, members, failed), 4)
                  for m in ("design", "modulo", "maglev")},
               "modulo_expected": round((n - 2) / (n - 1), 4), "maglev_build_ms": round(build_ms, 1)}
        results.append(row)
        print(f"n={n}: {row}", file=sys.stderr)
    costs = lookup_costs(flows)
    data = {"bench": "flow_hashing", "flows": FLOWS, "seed": SEED, "maglev_size": 65537,
            "results": results, "lookup_ns": costs}
    md = ["# Flow hashing: flows moved by one node failure",
          "",
          f"{FLOWS:,} random 32-bit flow IDs (random.Random({SEED})); one member of the cluster fails. "
          "Moved = fraction of the flows not on the failed member whose node changed (ideal 0). "
          "Design = hash over the live members of the topology the flow started in (seed 003 [0081]); "
          "modulo = hash over the current members (expected (n-2)/(n-1) of the survivors' flows); "
          "Maglev = table of 65537 entries rebuilt without the failed member.",
          "",
          "| n | failed | flows on failed | design moved | modulo moved | Maglev moved | Maglev build (ms) |",
          "|---|---|---|---|---|---|---|"]
    md += [f"| {r['n']} | {r['failed']} | {r['on_failed']:.2%} | {r['design_moved']:.2%} | {r['modulo_moved']:.2%} "
           f"| {r['maglev_moved']:.2%} | {r['maglev_build_ms']} |" for r in results]
    md += ["",
           f"Per lookup, n = {LOOKUP_N}, CPython, best of {REPEATS} over {FLOWS:,} flows (each includes the "
           "splitmix64 mix of the flow ID):",
           "",
           "| method | ns per lookup |",
           "|---|---|"]
    md += [f"| {k} | {v} |" for k, v in costs.items() if k != "n"]
    publish("flow_hashing", data, md)


if __name__ == "__main__":
    main()
