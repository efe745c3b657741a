"""Boot-to-ready and teardown time of twin labs vs plain Mininet booting the same topology.

Targets (issue 2): default lab ready in under 5 s, a 100-node lab in under 20 s, on 2 cores.
Plain Mininet is the baseline: same hosts, switches and links (userspace datapath, TCULink), no
controller (standalone switches), no addressing: the floor any Mininet-based harness stands on.
Prints one JSON line and writes bench/results/boot_time.md.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_out import publish  # noqa: E402

from twin.boot import Lab  # noqa: E402
from twin.lab import load_lab, parse_lab  # noqa: E402
from twin.lab.loader import LabModel  # noqa: E402


def generated_lab(n_nodes: int = 100, per_switch: int = 10) -> str:
    """A chain of switches with hosts hanging off them: n_nodes nodes in all, no management net."""
    n_sw = max(1, n_nodes // (per_switch + 1))
    n_hosts = n_nodes - n_sw
    lines = [f"name: gen{n_nodes}", "mgmt: {enabled: false}", "nodes:"]
    lines += [f"  s{i}: {{kind: switch}}" for i in range(1, n_sw + 1)]
    lines += [f"  h{i}: {{}}" for i in range(1, n_hosts + 1)]
    lines.append("links:")
    for i in range(1, n_sw):
        lines.append(f"  - endpoints: [s{i}:eth99, s{i + 1}:eth98]")
    for i in range(1, n_hosts + 1):
        sw = (i - 1) % n_sw + 1
        lines.append(f"  - endpoints: [h{i}:eth1, s{sw}:eth{i}]")
    return "\n".join(lines) + "\n"


def plain_mininet(model: LabModel, tag: str) -> tuple[float, float]:
    """Boot and stop the same topology with plain Mininet; returns (boot_s, teardown_s)."""
    from mininet.link import TCULink
    from mininet.net import Mininet
    from mininet.node import OVSSwitch

    spec = model.spec
    t0 = time.monotonic()
    net = Mininet(build=False, controller=None, autoSetMacs=False, waitConnected=False, link=TCULink)
    nodes = {}
    for h in spec.hosts():
        nodes[h] = net.addHost(f"{tag}-{h}", ip=None)
    for i, s in enumerate(spec.switches()):
        nodes[s] = net.addSwitch(f"{tag}{s}", cls=OVSSwitch, datapath="user", failMode="standalone", dpid=f"{i + 1:016x}")
    mg = None
    if spec.mgmt.enabled:
        mg = net.addSwitch(f"{tag}-mg", cls=OVSSwitch, datapath="user", failMode="standalone", dpid=f"{0xfffe:016x}")
    for link in spec.links:
        a, b = link.endpoints
        na = f"{tag}{a.node}-{a.intf}" if spec.is_switch(a.node) else a.intf
        nb = f"{tag}{b.node}-{b.intf}" if spec.is_switch(b.node) else b.intf
        net.addLink(nodes[a.node], nodes[b.node], intfName1=na, intfName2=nb)
    if mg is not None:
        for i, h in enumerate(spec.hosts()):
            net.addLink(nodes[h], mg, intfName1="mgmt0", intfName2=f"{tag}-m{i}")
    net.start()
    boot = time.monotonic() - t0
    t1 = time.monotonic()
    net.stop()
    # plain Mininet leaves switch-to-switch veths behind with the userspace datapath (LAB-NOTES)
    from twin.cleanup import clean_lab
    clean_lab(tag, keep_dir=True)
    return boot, time.monotonic() - t1


def twin_boot(model: LabModel) -> tuple[float, float, bool]:
    lab = Lab(model)
    t0 = time.monotonic()
    lab.start(timeout=120)
    boot = time.monotonic() - t0
    ok = all(s["connected"] for s in lab.controller.switches())
    t1 = time.monotonic()
    lab.stop()
    return boot, time.monotonic() - t1, ok


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--nodes", type=int, default=100)
    args = ap.parse_args()
    cases = {"default (12 nodes)": load_lab(ROOT / "labs/default.yaml"),
             f"generated ({args.nodes} nodes)": parse_lab(generated_lab(args.nodes), "generated")}
    rows, out = [], {"bench": "boot_time", "trials": args.trials, "cases": {}}
    for label, model in cases.items():
        tw_b, tw_t, mn_b, mn_t = [], [], [], []
        for i in range(args.trials):
            b, t, ok = twin_boot(model)
            if not ok:
                raise SystemExit(f"{label}: switches not connected after boot")
            tw_b.append(b)
            tw_t.append(t)
            b, t = plain_mininet(model, f"bm{os.getpid() % 100:02d}{i}"[:5])
            mn_b.append(b)
            mn_t.append(t)
        rec = {"twin_boot_s": statistics.median(tw_b), "twin_teardown_s": statistics.median(tw_t),
               "mininet_boot_s": statistics.median(mn_b), "mininet_teardown_s": statistics.median(mn_t)}
        rec["boot_ratio"] = rec["twin_boot_s"] / rec["mininet_boot_s"]
        rec["teardown_ratio"] = rec["twin_teardown_s"] / rec["mininet_teardown_s"]
        out["cases"][label] = rec
        rows.append((label, rec))
    md = ["# Boot-to-ready and teardown time", "",
          f"Median of {args.trials} trials on {os.cpu_count()} cores. twin's ready = controller up, every "
          "switch connected and its table-miss confirmed, every address and route set. Plain Mininet = "
          "the same topology built and started with standalone switches and no addressing.", "",
          "| lab | twin boot (s) | plain Mininet boot (s) | ratio | twin teardown (s) | Mininet teardown (s) | ratio |",
          "|---|---|---|---|---|---|---|"]
    for label, r in rows:
        md.append(f"| {label} | {r['twin_boot_s']:.2f} | {r['mininet_boot_s']:.2f} | {r['boot_ratio']:.2f} | "
                  f"{r['twin_teardown_s']:.2f} | {r['mininet_teardown_s']:.2f} | {r['teardown_ratio']:.2f} |")
    publish("boot_time", out, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
