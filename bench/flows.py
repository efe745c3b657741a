"""Multi-stage flow routing (seed 003 [0045]-[0085]): new-flow setup through the 3-stage network of
Figure 5 against a plain os-ken learning switch, throughput of the chain, and the flows one node
failure moves, in one run.

Labs, one at a time (the first stopped before the second boots):
  * baseline, labs/bench_learning.yaml: one Open vSwitch bridge, h1 10.9.0.1 and h2 10.9.0.2, and
    controllers/bench_learning_switch.py (simple_switch_13 with exact-match per-flow rules: every new
    flow is one packet-in, a rule pair for both directions and a packet-out; ARP flooded);
  * labs/fig5.yaml: en5 (10.5.0.10) -> INODE id1 -> cluster AD -> AF -> INODE ie1 -> en6 (10.6.0.10),
    flow path 52, and -> AE -> if1 -> en7 (10.7.0.10), path 54. Every flow node forwards in
    userspace; the ingress INODE classifies each new flow and sets up its whole route.

1. New-flow setup: `twin.traffic.flows.burst` of `--latency-count` new UDP flows one at a time
   (window 1: setup latency without queueing), then `--count` new UDP flows (one datagram and its
   echo each, a fresh source port per flow) with `--windows` flows in flight (default 8 and 32),
   h1 -> h2 and en5 -> en6; new flows/s and first-packet round trip p50/p99. For fig5 also id1's own
   setup time (classify + route + send, `setup_us` of `twin flows nodes`, over its last <= 4096 new
   flows, read once its statistics report counts the burst's flows). Then `--tcp-count` TCP flows
   (connect + one echo + close, window `--tcp-window`) both ways. Before the bursts, on a fresh lab:
   the round trip of 10 established flows (the path's own cost, without setup).
2. Throughput: iperf3 TCP for `--iperf-seconds`: en5 -> en6 (path 52), en5 -> en7 (path 54), and
   h1 -> h2 over the learning switch as the reference line.
3. Moved flows: `--fail-flows` UDP flows en5 -> en6 (`FlowStream`, one probe per flow every 20 ms);
   each flow's AD node from id1's flow records (route[1]); power off ad2; once the MNODE's topology
   no longer lists ad2 live and id1 reports every ad2 flow on another node, the routes again: the
   fraction of the flows not on ad2 whose AD node changed (target 0) and their lost probes (target
   0); ad2 powered on again, back in the topology, the stream stopped. Over the same flow IDs and
   AD's three members: what plain modulo and Maglev (emulators/flows/hashing.py) would have moved,
   and bench/flow_hashing.py's simulation (100,000 flow IDs, n = 2..16) run in the same process.
Targets (the issue's): new-flow rate at least half the learning switch's (ratio >= 0.5, every
window); id1's setup p50 under 5 ms; 0 flows moved and 0 probes lost among the flows not on the
failed node. Prints one JSON line and writes bench/results/flows.md.
"""
from __future__ import annotations

import argparse
import io
import os
import re
import statistics
import subprocess
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any, Callable

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_out import publish  # noqa: E402
from trials import TrialFailed  # noqa: E402

from emulators.flows.selection import moved_fraction  # noqa: E402
from twin import flowsctl  # noqa: E402
from twin.boot import Lab  # noqa: E402
from twin.polling import wait_for  # noqa: E402
from twin.traffic.flows import BurstResult, FlowStream, FlowsResult, burst  # noqa: E402
from twin.traffic.iperf import iperf3  # noqa: E402

LEARN_FILE = ROOT / "labs" / "bench_learning.yaml"
FIG5_FILE = ROOT / "labs" / "fig5.yaml"
H2_IP, EN6, EN7 = "10.9.0.2", "10.6.0.10", "10.7.0.10"
INGRESS, VICTIM, AD = "id1", "ad2", ["ad1", "ad2", "ad3"]
BOOT_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 45.0
BURST_TIMEOUT_MS = 2000.0
REPORT_TIMEOUT_S = 10.0
STABLE_QUIET_S = 2.0
STABLE_TIMEOUT_S = 20.0
FAIL_TIMEOUT_S = 10.0
TARGET_RATE_RATIO = 0.5
TARGET_SETUP_P50_MS = 5.0
_TUPLE = re.compile(r"^(\w+) ([\d.]+):(\d+) > ([\d.]+):(\d+)$")

# ports: each burst and stream its own destination port and source ports, so no 5-tuple repeats
# (fig5 keeps idle UDP flows 10 s)
UDP_PORT, LAT_PORT, TCP_PORT, FAIL_PORT, WARM_PORT, STEADY_PORT = 7400, 7440, 7450, 7480, 7490, 7495
UDP_SPORT, LAT_SPORT, TCP_SPORT, FAIL_SPORT, WARM_SPORT, STEADY_SPORT = 30000, 40000, 50000, 46000, 47000, 48000
STEADY_FLOWS, STEADY_INTERVAL_MS, STEADY_S = 10, 10.0, 2.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def burst_row(r: BurstResult) -> dict[str, Any]:
    d = r.to_dict()
    d.pop("flows", None)
    for k in ("elapsed_s", "flows_per_s", "rtt_p50_ms", "rtt_p90_ms", "rtt_p99_ms", "rtt_max_ms"):
        if d.get(k) is not None:
            d[k] = round(d[k], 3 if k.startswith("rtt") or k == "elapsed_s" else 1)
    return d


def run_bursts(lab: Lab, src: str, dst: str, dst_ip: str, args: argparse.Namespace,
               before: Callable[[], Any] | None = None,
               after: Callable[[Any, BurstResult], dict[str, Any]] | None = None) -> dict[str, Any]:
    """UDP bursts, one per window, then a TCP burst; each its own ports. `before()` runs before each
    UDP burst and `after(what before returned, result)` after it, its answer stored as ingress_setup."""
    out: dict[str, Any] = {"udp": {}, "tcp": None, "serial": None}
    if args.latency_count:   # one new flow at a time: setup latency without queueing behind other new flows
        r = burst(lab.nodes, src, dst, dst_ip, LAT_PORT, count=args.latency_count, proto="udp", window=1,
                  sport_base=LAT_SPORT, timeout_ms=BURST_TIMEOUT_MS)
        log(f"{lab.name}: {r}")
        if r.ok == 0:
            raise TrialFailed(f"UDP burst {src} -> {dst_ip} (window 1): no flow came up: {r.errors}")
        out["serial"] = burst_row(r)
    for i, w in enumerate(args.windows):
        ctx = before() if before is not None else None
        r = burst(lab.nodes, src, dst, dst_ip, UDP_PORT + i, count=args.count, proto="udp", window=w,
                  sport_base=UDP_SPORT + i * args.count, timeout_ms=BURST_TIMEOUT_MS)
        log(f"{lab.name}: {r}")
        if r.ok == 0:
            raise TrialFailed(f"UDP burst {src} -> {dst_ip} (window {w}): no flow came up: {r.errors}")
        row = burst_row(r)
        if after is not None:
            row["ingress_setup"] = after(ctx, r)
        out["udp"][str(w)] = row
    if args.tcp_count:
        r = burst(lab.nodes, src, dst, dst_ip, TCP_PORT, count=args.tcp_count, proto="tcp", window=args.tcp_window,
                  sport_base=TCP_SPORT, timeout_ms=BURST_TIMEOUT_MS)
        log(f"{lab.name}: {r}")
        if r.ok == 0:
            raise TrialFailed(f"TCP burst {src} -> {dst_ip}: no connection came up: {r.errors}")
        out["tcp"] = burst_row(r)
    return out


def steady_rtt(lab: Lab, src: str, dst: str, dst_ip: str) -> dict[str, Any]:
    """Round trip of established flows (not their first packet): what the path itself costs, so the
    first-packet round trip minus this is what setting a flow up adds."""
    with FlowStream(lab.nodes, src, dst, dst_ip, STEADY_PORT, flows=STEADY_FLOWS, interval_ms=STEADY_INTERVAL_MS,
                    sport_base=STEADY_SPORT) as s:
        time.sleep(STEADY_S)
        res = s.stop()
    p50 = sorted(r.rtt_p50_ms for r in res.per_flow.values() if r.rtt_p50_ms is not None)
    p99 = sorted(r.rtt_p99_ms for r in res.per_flow.values() if r.rtt_p99_ms is not None)
    if not p50:
        raise TrialFailed(f"no echo on the {STEADY_FLOWS} established flows {src} -> {dst_ip}: {res}")
    out = {"flows": STEADY_FLOWS, "interval_ms": STEADY_INTERVAL_MS, "rtt_p50_ms": round(statistics.median(p50), 3),
           "rtt_p99_ms": round(statistics.median(p99), 3), "sent": res.total_sent, "lost": sum(r.lost for r in res.per_flow.values())}
    log(f"{lab.name}: established flows {src} -> {dst_ip}: rtt p50 {out['rtt_p50_ms']} ms, p99 {out['rtt_p99_ms']} ms")
    return out


def machine() -> dict[str, Any]:
    """What else shares the 2 cores and the one userspace datapath process."""
    br = subprocess.run(["ovs-vsctl", "list-br"], capture_output=True, text=True, timeout=10).stdout.split()
    return {"loadavg_1m": round(os.getloadavg()[0], 2), "ovs_bridges": len(br)}


def tput(lab: Lab, client: str, server: str, ip: str, seconds: float) -> dict[str, Any]:
    r = iperf3(lab.nodes, client, server, ip, seconds=seconds)
    log(f"{lab.name}: {client} -> {server}: {r}")
    return {"mbps": round(r.mbps, 1), "retransmits": r.retransmits, "seconds": round(r.seconds, 2)}


def reachable(lab: Lab, src: str, ip: str, timeout: float) -> None:
    try:
        wait_for(lambda: lab.nodes.run(src, ["ping", "-n", "-q", "-c", "1", "-W", "1", ip], timeout=5).returncode == 0,
                 timeout, f"{src} to reach {ip}", interval=0.2)
    except AssertionError as exc:
        raise TrialFailed(str(exc)) from None


# ---------------------------------------------------------------------------------------------
# the baseline


def boot(lab: Any, what: str, key: str, errors: dict[str, str], out: dict[str, Any]) -> bool:
    """Boot one of the two labs; a failure is recorded under `key`, not raised."""
    try:
        lab.start(timeout=BOOT_TIMEOUT_S)
    except Exception as exc:
        errors[key] = f"{exc.__class__.__name__}: {exc}"
        log(f"{what}: FAILED to boot: {errors[key]}")
        return False
    out.update(lab=f"{lab.name} ({lab.prefix})", boot_s=round(lab.timings.get("boot_s", 0.0), 1))
    log(f"lab {out['lab']} up in {out['boot_s']} s")
    return True


def learning(args: argparse.Namespace, errors: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"lab": None}
    lab = Lab.from_file(LEARN_FILE)
    try:
        if not boot(lab, "learning switch lab", "learning_boot", errors, out):
            return out
        try:
            reachable(lab, "h1", H2_IP, READY_TIMEOUT_S)
            out["machine"] = machine()
            try:
                out["steady"] = steady_rtt(lab, "h1", "h2", H2_IP)
            except Exception as exc:
                errors["learning_steady"] = f"{exc.__class__.__name__}: {exc}"
                log(f"learning switch established flows: FAILED {errors['learning_steady']}")
            out["bursts"] = run_bursts(lab, "h1", "h2", H2_IP, args)
            # every new flow a controller setup: its rule pair is on the switch
            flows_text = lab.dump_flows("s1")
            out["per_flow_rules"] = sum(1 for line in flows_text.splitlines() if "priority=10," in line)
            b = out["bursts"]
            # the bursts' flows, the established flows and the reachability ping (one ICMP flow)
            out["flows_set_up"] = sum(x["ok"] for x in [*b["udp"].values(), b["tcp"], b["serial"]] if x) + \
                (STEADY_FLOWS if out.get("steady") else 0) + 1
        except Exception as exc:
            errors["learning_bursts"] = f"{exc.__class__.__name__}: {exc}"
            log(f"learning switch bursts: FAILED {errors['learning_bursts']}")
        try:
            out["iperf"] = tput(lab, "h1", "h2", H2_IP, args.iperf_seconds)
        except Exception as exc:
            errors["learning_iperf"] = f"{exc.__class__.__name__}: {exc}"
            log(f"learning switch iperf3: FAILED {errors['learning_iperf']}")
        trouble = [line for line in lab.controller_log().splitlines()
                   if "Traceback" in line or "OFPErrorMsg" in line or " ERROR " in line]
        if trouble:
            errors["learning_controller"] = f"{len(trouble)} error line(s) in the controller log: {trouble[0][:300]}"
    finally:
        lab.stop()
    return out


# ---------------------------------------------------------------------------------------------
# fig5


def node_row(lab: Lab, node: str) -> dict[str, Any]:
    for r in flowsctl.call(lab, "nodes"):
        if r["node"] == node:
            return r
    raise TrialFailed(f"the MNODE lists no node {node}")


def ingress_setup(lab: Lab, before_new: int, count: int) -> dict[str, Any]:
    """id1's setup_us once its statistics report (every second) counts this burst's new flows."""
    want = before_new + count

    def fresh() -> dict[str, Any] | None:
        r = node_row(lab, INGRESS)
        return r if r["counters"].get("flows_new", 0) >= want else None
    try:
        row = wait_for(fresh, REPORT_TIMEOUT_S, f"{INGRESS}'s report counting {count} more new flows", interval=0.2)
    except AssertionError:
        r = node_row(lab, INGRESS)
        raise TrialFailed(f"{INGRESS} reported {r['counters'].get('flows_new', 0) - before_new} new flows of the "
                          f"burst's {count} within {REPORT_TIMEOUT_S:.0f} s") from None
    s = row.get("setup_us") or {}
    return {"p50_us": s.get("p50"), "p99_us": s.get("p99"), "flows_new": row["counters"].get("flows_new", 0),
            "latency_us": row.get("latency_us")}


def ingress_records(lab: Lab, dst: str, port: int, sports: list[int]) -> dict[int, dict[str, Any]]:
    out = {}
    for r in flowsctl.call(lab, "flows"):
        if r["role"] != "ingress" or r["node"] != INGRESS:
            continue
        m = _TUPLE.match(r["tuple"])
        if m and m.group(4) == dst and int(m.group(5)) == port and int(m.group(3)) in sports:
            out[int(m.group(3))] = r
    return out


def ad_live(lab: Lab) -> set[str]:
    return set(flowsctl.call(lab, "summary")["topology"]["clusters"]["AD"]["live"])


def topology(lab: Lab) -> tuple[int, list[str], list[dict[str, Any]]]:
    """The MNODE's topology ID, the flow nodes it does not list live, and its topology events."""
    s = flowsctl.call(lab, "summary")
    t = s["topology"]
    down = sorted(m["name"] for c in t["clusters"].values() for m in c["members"] if m["name"] not in c["live"])
    return t["id"], down, s.get("events", [])


def wait_stable(lab: Lab, quiet_s: float, timeout: float) -> dict[str, Any]:
    """Every flow node live and no topology change for `quiet_s`: a node declared failed because its
    heartbeats were late would spoil what follows. Never raises: says how it went."""
    t0 = time.monotonic()
    last_id, since = None, time.monotonic()
    down: list[str] = []
    while time.monotonic() - t0 < timeout:
        tid, down, _ = topology(lab)
        if tid != last_id or down:
            last_id, since = tid, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return {"stable": True, "waited_s": round(time.monotonic() - t0, 1), "topology": tid}
        time.sleep(0.1)
    return {"stable": False, "waited_s": round(time.monotonic() - t0, 1), "topology": last_id, "down": down}


def changes_since(lab: Lab, t_wall: float) -> list[str]:
    """The MNODE's topology changes since a wall time (its event list keeps the last 500)."""
    return [f"{e['topology']}: {e['reason']}" for e in topology(lab)[2] if e["time"] >= t_wall]


def moved_flows(lab: Lab, n: int, interval_ms: float) -> dict[str, Any]:
    sports = [FAIL_SPORT + i for i in range(n)]
    s = FlowStream(lab.nodes, "en5", "en6", EN6, FAIL_PORT, flows=n, interval_ms=interval_ms,
                   sport_base=FAIL_SPORT, flow_timeout_s=10.0)
    s.start()
    rec: dict[str, Any] = {"flows": n, "interval_ms": interval_ms}
    powered_off = False
    result: FlowsResult | None = None
    try:
        def reported() -> dict[int, dict[str, Any]] | None:
            got = ingress_records(lab, EN6, FAIL_PORT, sports)
            return got if len(got) == n and all(min(r["pkts"]) > 0 for r in got.values()) else None
        try:
            before = wait_for(reported, REPORT_TIMEOUT_S, f"{INGRESS} reporting the {n} flows both ways", interval=0.2)
        except AssertionError:
            raise TrialFailed(f"{INGRESS} reported {len(ingress_records(lab, EN6, FAIL_PORT, sports))} of the "
                              f"{n} flows within {REPORT_TIMEOUT_S:.0f} s") from None
        ad_before = {sp: r["route"][1] for sp, r in before.items()}
        hit = sorted(sp for sp, d in ad_before.items() if d == VICTIM)
        spared = sorted(sp for sp, d in ad_before.items() if d != VICTIM)
        if not hit or not spared:
            raise TrialFailed(f"the {n} flows should use {VICTIM} and its siblings: {ad_before}")
        topo_before = flowsctl.call(lab, "summary")["topology"]["id"]
        t_cmd = time.time()
        fault = lab.faults.power_off(VICTIM)
        powered_off = True
        t_fail = fault.time
        rec["power_off_cmd_ms"] = round((time.time() - t_cmd) * 1000, 1)
        try:
            wait_for(lambda: VICTIM not in ad_live(lab), FAIL_TIMEOUT_S, f"{VICTIM} gone from the MNODE's topology",
                     interval=0.02)
        except AssertionError:
            raise TrialFailed(f"the MNODE still lists {VICTIM} live {FAIL_TIMEOUT_S:.0f} s after power-off") from None
        detect_ms = (time.time() - t_fail) * 1000
        topo_after = flowsctl.call(lab, "summary")["topology"]["id"]

        def rerouted() -> dict[int, dict[str, Any]] | None:
            got = ingress_records(lab, EN6, FAIL_PORT, sports)
            return got if len(got) == n and all(got[sp]["route"][1] != VICTIM for sp in hit) else None
        try:
            after = wait_for(rerouted, REPORT_TIMEOUT_S, f"{INGRESS} reporting {VICTIM}'s flows elsewhere", interval=0.2)
        except AssertionError:
            got = ingress_records(lab, EN6, FAIL_PORT, sports)
            raise TrialFailed(f"{INGRESS}'s records still put flows on {VICTIM} {REPORT_TIMEOUT_S:.0f} s after "
                              f"it failed: {[sp for sp in hit if got.get(sp, {}).get('route', [None, VICTIM])[1] == VICTIM]}"
                              ) from None
        ad_after = {sp: r["route"][1] for sp, r in after.items()}
        index = {FAIL_SPORT + i: i for i in range(n)}
        try:
            s.wait_until_flowing(5)   # redirect strategy: every flow, ad2's too, flows again
        except Exception as exc:
            rec["not_flowing_after_failure"] = str(exc)
        t_on = time.time()
        lab.faults.power_on(VICTIM)
        powered_off = False
        try:
            wait_for(lambda: VICTIM in ad_live(lab), FAIL_TIMEOUT_S, f"{VICTIM} back in the topology", interval=0.05)
        except AssertionError:
            rec["not_back"] = f"{VICTIM} not back in the MNODE's topology {FAIL_TIMEOUT_S:.0f} s after power-on"
        try:
            s.wait_until_flowing(5)
        except Exception as exc:
            rec["not_flowing_after_repair"] = str(exc)
        result = s.stop()
    finally:
        if powered_off:
            try:
                lab.faults.power_on(VICTIM)
            except Exception as exc:
                rec["power_on_error"] = f"{exc.__class__.__name__}: {exc}"
        if result is None:
            try:
                s.stop()
            except Exception:
                pass
    moved = [sp for sp in spared if ad_after[sp] != ad_before[sp]]
    ids = [int(before[sp]["id"], 16) for sp in sorted(before)]
    spared_r = [result.per_flow[index[sp]] for sp in spared]
    hit_r = [result.per_flow[index[sp]] for sp in hit]
    spared_lost_fail = sum(o.lost for r in spared_r for o in r.outages if o.start_wall < t_on)
    spared_lost_repair = sum(o.lost for r in spared_r for o in r.outages if o.start_wall >= t_on)
    hit_outage = [r.outage_after(t_fail) for r in hit_r]
    rec.update(
        topology=[topo_before, topo_after], detect_ms=round(detect_ms, 1),
        per_ad_before={d: sum(1 for x in ad_before.values() if x == d) for d in AD},
        on_failed=len(hit), spared=len(spared), spared_moved=len(moved), spared_moved_sports=moved,
        spared_moved_fraction=round(len(moved) / len(spared), 4),
        hit_redirected_to={d: sum(1 for sp in hit if ad_after[sp] == d) for d in AD if d != VICTIM},
        spared_lost=sum(r.lost for r in spared_r), spared_lost_during_failure=spared_lost_fail,
        spared_lost_after_repair=spared_lost_repair, spared_sent=sum(r.sent for r in spared_r),
        hit_lost=sum(r.lost for r in hit_r),
        hit_outage_ms_max=round(max((o.duration_ms for o in hit_outage if o is not None), default=0.0), 1),
        hit_recovered=sum(1 for o in hit_outage if o is not None and o.recovered),
        max_lag_ms=round(result.max_lag_ms, 1),
        # the same flow IDs, the same three members, the same failed member
        same_ids={m: round(moved_fraction(m, ids, AD, VICTIM), 4) for m in ("modulo", "maglev", "design")})
    log(f"moved flows: {len(hit)} of {n} on {VICTIM}, {len(moved)} of {len(spared)} others moved, "
        f"{rec['spared_lost']} of their probes lost; same IDs: {rec['same_ids']}")
    return rec


def fig5(args: argparse.Namespace, errors: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"lab": None}
    lab = Lab.from_file(FIG5_FILE)
    try:
        if not boot(lab, "fig5", "fig5_boot", errors, out):
            return out
        try:
            reachable(lab, "en5", EN6, READY_TIMEOUT_S)
            reachable(lab, "en5", EN7, READY_TIMEOUT_S)
            # warm-up: the agents' first start and the nodes' first flows are not what is measured
            burst(lab.nodes, "en5", "en6", EN6, WARM_PORT, count=20, window=4, sport_base=WARM_SPORT,
                  timeout_ms=BURST_TIMEOUT_MS)
        except Exception as exc:
            errors["fig5_ready"] = f"{exc.__class__.__name__}: {exc}"
            log(f"fig5: FAILED to get ready: {errors['fig5_ready']}")
            return out
        out["machine"] = machine()

        def bursts() -> dict[str, Any]:
            return run_bursts(lab, "en5", "en6", EN6, args,
                              before=lambda: node_row(lab, INGRESS)["counters"].get("flows_new", 0),
                              after=lambda before_new, r: ingress_setup(lab, before_new, r.ok))

        out["stability"] = {}
        for key, fn in (("fig5_steady", lambda: steady_rtt(lab, "en5", "en6", EN6)),
                        ("fig5_bursts", bursts),
                        ("fig5_iperf_52", lambda: tput(lab, "en5", "en6", EN6, args.iperf_seconds)),
                        ("fig5_iperf_54", lambda: tput(lab, "en5", "en7", EN7, args.iperf_seconds)),
                        ("fig5_moved", lambda: moved_flows(lab, args.fail_flows, args.interval_ms))):
            part = key.removeprefix("fig5_")
            st = wait_stable(lab, STABLE_QUIET_S, STABLE_TIMEOUT_S)
            if not st["stable"]:
                log(f"{key}: the MNODE's topology did not settle within {STABLE_TIMEOUT_S:.0f} s "
                    f"(down: {st.get('down')}); measuring anyway")
            t_part = time.time()
            try:
                out[part] = fn()
            except Exception as exc:       # one part failing still lets the others measure
                errors[key] = f"{exc.__class__.__name__}: {exc}"
                log(f"{key}: FAILED {errors[key]}")
            try:
                st["changes"] = changes_since(lab, t_part)
            except Exception as exc:
                st["changes"] = [f"(MNODE not answering: {exc})"]
            # the failure test makes two changes of its own (ad2 failed, ad2 back)
            st["unexpected_changes"] = len(st["changes"]) - (2 if part == "moved" else 0)
            if st["unexpected_changes"] > 0:
                log(f"{key}: {len(st['changes'])} topology change(s) during the part: {st['changes'][:6]}")
            out["stability"][part] = st
        try:
            id1 = node_row(lab, INGRESS)
            out["ingress_final"] = {"setup_us": id1.get("setup_us"), "latency_us": id1.get("latency_us"),
                                    "flows_new": id1["counters"].get("flows_new")}
        except Exception:
            pass
    finally:
        lab.stop()
    return out


# ---------------------------------------------------------------------------------------------


def hashing_simulation() -> dict[str, Any]:
    """bench/flow_hashing.py's figures, by running its main() here with its publishing captured
    (it would otherwise print its own JSON line and rewrite its own table)."""
    import flow_hashing  # bench/ is on sys.path (this file's directory)
    got: dict[str, Any] = {}
    saved = flow_hashing.publish
    flow_hashing.publish = lambda name, data, md: got.update(data)  # type: ignore[assignment]
    try:
        with redirect_stdout(io.StringIO()):
            flow_hashing.main()
    finally:
        flow_hashing.publish = saved
    return got


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=2000, help="new UDP flows per burst")
    ap.add_argument("--windows", type=lambda s: [int(x) for x in s.split(",")], default=[8, 32],
                    help="flows in flight, one UDP burst per value (comma separated)")
    ap.add_argument("--latency-count", type=int, default=300,
                    help="new UDP flows one at a time (window 1), before the windowed bursts; 0: none")
    ap.add_argument("--tcp-count", type=int, default=300, help="new TCP flows (connect + echo + close)")
    ap.add_argument("--tcp-window", type=int, default=8)
    ap.add_argument("--iperf-seconds", type=float, default=5)
    ap.add_argument("--fail-flows", type=int, default=30, help="UDP flows running while ad2 fails")
    ap.add_argument("--interval-ms", type=float, default=20.0, help="probe interval of those flows")
    args = ap.parse_args()
    t_start = time.monotonic()
    errors: dict[str, str] = {}

    base = learning(args, errors)
    twin = fig5(args, errors)
    sim: dict[str, Any] = {}
    try:
        sim = hashing_simulation()
    except Exception as exc:
        errors["flow_hashing"] = f"{exc.__class__.__name__}: {exc}"

    # ---- comparisons and targets
    def burst_of(lab_out: dict[str, Any], w: int) -> dict[str, Any] | None:
        bursts = lab_out.get("bursts") or {}
        return bursts.get("serial") if w == 1 and str(1) not in (bursts.get("udp") or {}) \
            else (bursts.get("udp") or {}).get(str(w))

    def ratio_of(key: str, t: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
        return round(t[key] / b[key], 3) if t and b and t.get(key) is not None and b.get(key) else None

    # flows/s and first-packet RTT p50, fig5 over the learning switch, per window ("1": the serial burst)
    ratios: dict[str, float | None] = {}
    rtt_ratio: dict[str, float | None] = {}
    for w in ([1] if args.latency_count else []) + args.windows:
        ratios[str(w)] = ratio_of("flows_per_s", burst_of(twin, w), burst_of(base, w))
        rtt_ratio[str(w)] = ratio_of("rtt_p50_ms", burst_of(twin, w), burst_of(base, w))
    tt, bt = (twin.get("bursts") or {}).get("tcp"), (base.get("bursts") or {}).get("tcp")
    tcp_ratio = ratio_of("flows_per_s", tt, bt)
    setup_adds: dict[str, float | None] = {}
    for name, lab_out in (("fig5", twin), ("learning_switch", base)):
        ser, est = (lab_out.get("bursts") or {}).get("serial") or {}, lab_out.get("steady") or {}
        setup_adds[name] = round(ser["rtt_p50_ms"] - est["rtt_p50_ms"], 3) \
            if ser.get("rtt_p50_ms") is not None and est.get("rtt_p50_ms") is not None else None
    setups = [((twin.get("bursts") or {}).get("udp") or {}).get(str(w), {}).get("ingress_setup") or {}
              for w in args.windows]
    setup_all_p50 = [s["p50_us"] / 1000 for s in setups if s.get("p50_us") is not None]
    mv = twin.get("moved") or {}
    rate_met = bool(args.windows) and all(ratios.get(str(w)) is not None and ratios[str(w)] >= TARGET_RATE_RATIO
                                          for w in args.windows)
    setup_met = bool(setup_all_p50) and len(setup_all_p50) == len(args.windows) and \
        max(setup_all_p50) < TARGET_SETUP_P50_MS
    moved_met = bool(mv) and mv.get("spared_moved") == 0
    loss_met = bool(mv) and mv.get("spared_lost") == 0
    met = {"rate_ratio": rate_met, "setup_p50": setup_met, "moved": moved_met, "spared_loss": loss_met}
    all_met = all(met.values()) and not errors
    learn_rules = base.get("per_flow_rules")
    data = {"bench": "flows", "learning_switch": base, "fig5": twin,
            "ratios": {"flows_per_s_twin_over_learning": ratios, "tcp_flows_per_s_twin_over_learning": tcp_ratio,
                       "rtt_p50_twin_over_learning": rtt_ratio, "first_packet_setup_adds_ms": setup_adds,
                       "iperf_52_over_learning": _ratio(twin.get("iperf_52"), base.get("iperf")),
                       "iperf_54_over_learning": _ratio(twin.get("iperf_54"), base.get("iperf"))},
            "flow_hashing": sim,
            "target": {"flows_per_s_ratio_min": TARGET_RATE_RATIO, "ingress_setup_p50_ms_max": TARGET_SETUP_P50_MS,
                       "spared_moved": 0, "spared_lost": 0},
            "met": met, "all_met": all_met, "errors": errors, "wall_s": round(time.monotonic() - t_start, 1)}

    # ---- markdown
    def f(x: Any, fmt: str = "{:.1f}", unit: str = "") -> str:
        return "-" if x is None else fmt.format(x) + unit

    def mark(ok: bool) -> str:
        return "met" if ok else "**NOT met**"

    md = ["# Flow routing: new-flow setup, chain throughput and moved flows (Figure 5 against a learning switch)", "",
          f"One run on one machine, one lab at a time: `{base.get('lab') or 'bench_learning (not booted)'}` "
          f"(boot {f(base.get('boot_s'), unit=' s')}), then `{twin.get('lab') or 'fig5 (not booted)'}` "
          f"(boot {f(twin.get('boot_s'), unit=' s')}). Load average at the bursts: learning switch "
          f"{(base.get('machine') or {}).get('loadavg_1m', '-')}, fig5 {(twin.get('machine') or {}).get('loadavg_1m', '-')}"
          f" ({(twin.get('machine') or {}).get('ovs_bridges', '-')} Open vSwitch bridges on the machine, one "
          "userspace datapath process for all). Wall time "
          f"{data['wall_s']} s.", "",
          "| measure (2 cores) | result | target |", "|---|---|---|"]
    tb, bb = twin.get("bursts") or {}, base.get("bursts") or {}
    ts, bs = tb.get("serial") or {}, bb.get("serial") or {}
    if ts or bs:
        md.append(f"| first-packet round trip p50 / p99, one new UDP flow at a time ({args.latency_count} flows, "
                  f"window 1): fig5 / learning switch | **{f(ts.get('rtt_p50_ms'), '{:.2f}')}** / "
                  f"{f(ts.get('rtt_p99_ms'), '{:.2f}')} ms; {f(bs.get('rtt_p50_ms'), '{:.2f}')} / "
                  f"{f(bs.get('rtt_p99_ms'), '{:.2f}')} ms ({f(ts.get('flows_per_s'), '{:.0f}')} / "
                  f"{f(bs.get('flows_per_s'), '{:.0f}')} flows/s) | |")
    tst, bst = twin.get("steady") or {}, base.get("steady") or {}
    if tst or bst:
        md.append(f"| round trip p50 / p99 of established flows ({STEADY_FLOWS} UDP flows, one probe / "
                  f"{STEADY_INTERVAL_MS:g} ms each, {STEADY_S:g} s, before the bursts): fig5 / learning switch (the "
                  f"path without setup) | {f(tst.get('rtt_p50_ms'), '{:.2f}')} / {f(tst.get('rtt_p99_ms'), '{:.2f}')} ms; "
                  f"{f(bst.get('rtt_p50_ms'), '{:.2f}')} / {f(bst.get('rtt_p99_ms'), '{:.2f}')} ms | |")
        md.append(f"| what a flow's setup adds to its first packet's round trip (p50, window 1 minus established): "
                  f"fig5 / learning switch | {f(setup_adds.get('fig5'), '{:.2f}', ' ms')} / "
                  f"{f(setup_adds.get('learning_switch'), '{:.2f}', ' ms')} | |")
    for w in args.windows:
        t, b = (tb.get("udp") or {}).get(str(w)), (bb.get("udp") or {}).get(str(w))
        r = ratios.get(str(w))
        md.append(f"| new UDP flows/s, {args.count} flows, window {w}: fig5 en5 -> en6 (path 52) / learning switch "
                  f"h1 -> h2 | {f((t or {}).get('flows_per_s'), '{:.0f}')} / {f((b or {}).get('flows_per_s'), '{:.0f}')}: "
                  f"**{f(r, '{:.2f}')}x** | at least {TARGET_RATE_RATIO}x: {mark(r is not None and r >= TARGET_RATE_RATIO)} |")
        md.append(f"| first-packet round trip p50 / p99 (window {w}): fig5 / learning switch | "
                  f"{f((t or {}).get('rtt_p50_ms'), '{:.2f}')} / {f((t or {}).get('rtt_p99_ms'), '{:.2f}')} ms; "
                  f"{f((b or {}).get('rtt_p50_ms'), '{:.2f}')} / {f((b or {}).get('rtt_p99_ms'), '{:.2f}')} ms | |")
        s = (t or {}).get("ingress_setup") or {}
        md.append(f"| id1's flow setup (classify + route + send) p50 / p99, after the window-{w} burst "
                  f"(its last <= 4096 new flows) | **{f(s.get('p50_us'), '{:.0f}')}** / {f(s.get('p99_us'), '{:.0f}')} us | "
                  f"p50 under {TARGET_SETUP_P50_MS:.0f} ms: "
                  f"{mark(s.get('p50_us') is not None and s['p50_us'] / 1000 < TARGET_SETUP_P50_MS)} |")
        for label, x in (("fig5", t), ("learning switch", b)):
            if x and x.get("failed"):
                md.append(f"| flows that got no echo within {BURST_TIMEOUT_MS:.0f} ms (window {w}, {label}) | "
                          f"{x['failed']} of {x['count']} ({x.get('errors')}) | |")
    md.append(f"| new TCP flows/s (connect + echo + close), {args.tcp_count} flows, window {args.tcp_window}: fig5 / "
              f"learning switch | {f((tt or {}).get('flows_per_s'), '{:.0f}')} / {f((bt or {}).get('flows_per_s'), '{:.0f}')}: "
              f"{f(tcp_ratio, '{:.2f}')}x | |")
    md.append(f"| TCP connect time p50 / p99: fig5 / learning switch | {f((tt or {}).get('rtt_p50_ms'), '{:.2f}')} / "
              f"{f((tt or {}).get('rtt_p99_ms'), '{:.2f}')} ms; {f((bt or {}).get('rtt_p50_ms'), '{:.2f}')} / "
              f"{f((bt or {}).get('rtt_p99_ms'), '{:.2f}')} ms | |")
    if learn_rules is not None:
        md.append(f"| learning switch: per-flow rules on s1 after the bursts (2 per flow set up: "
                  f"{base.get('flows_set_up')} flows) | {learn_rules} | |")
    ip = base.get("iperf") or {}
    for key, what in (("iperf_52", "en5 -> en6, path 52 (id1, AD, AF, ie1)"), ("iperf_54", "en5 -> en7, path 54 (id1, AD, AE, if1)")):
        x = twin.get(key) or {}
        md.append(f"| iperf3 TCP {args.iperf_seconds:g} s, {what} | **{f(x.get('mbps'), '{:.0f}', ' Mbit/s')}** "
                  f"({x.get('retransmits', '-')} retransmits) | |")
    md.append(f"| iperf3 TCP {args.iperf_seconds:g} s, h1 -> h2 over the learning switch (reference) | "
              f"{f(ip.get('mbps'), '{:.0f}', ' Mbit/s')} ({ip.get('retransmits', '-')} retransmits) | |")
    if mv:
        md += [f"| {mv['flows']} UDP flows en5 -> en6 (one probe / {mv['interval_ms']:g} ms each), {VICTIM} powered off: "
               f"flows on {VICTIM} / on the others | {mv['on_failed']} / {mv['spared']} (AD before: "
               f"{', '.join(f'{k} {v}' for k, v in mv['per_ad_before'].items())}) | |",
               f"| flows not on {VICTIM} whose AD node changed (measured: id1's routes before and after) | "
               f"**{mv['spared_moved']} of {mv['spared']} ({mv['spared_moved_fraction']:.0%})** | 0: {mark(moved_met)} |",
               f"| probes lost by the flows not on {VICTIM} (during the failure / after power-on) | "
               f"**{mv['spared_lost']} of {mv['spared_sent']}** ({mv['spared_lost_during_failure']} / "
               f"{mv['spared_lost_after_repair']}) | 0: {mark(loss_met)} |",
               f"| {VICTIM}'s flows: redirected to, recovered, longest outage | "
               f"{', '.join(f'{k} {v}' for k, v in mv['hit_redirected_to'].items())}; {mv['hit_recovered']} of "
               f"{mv['on_failed']}; {mv['hit_outage_ms_max']} ms | |",
               f"| power-off to the MNODE's topology without {VICTIM} (heartbeat {fig5_timers()[0]} ms x "
               f"{fig5_timers()[1]} missed; topology {mv['topology'][0]} -> "
               f"{mv['topology'][1]}; the power-off command itself, all of {VICTIM}'s links down: "
               f"{mv.get('power_off_cmd_ms', '-')} ms) | {mv['detect_ms']} ms | |",
               f"| the same {mv['flows']} flow IDs over ad1..ad3, {VICTIM} failing: others moved by modulo / Maglev / "
               f"the design's hashing | {mv['same_ids']['modulo']:.0%} / {mv['same_ids']['maglev']:.0%} / "
               f"{mv['same_ids']['design']:.0%} | |"]
    md.append("")
    stab = twin.get("stability") or {}
    if stab:
        hb = fig5_timers()
        md += [f"fig5's MNODE topology (heartbeats every {hb[0]} ms, {hb[1]} missed = failed): before each part the bench waits "
               f"up to {STABLE_TIMEOUT_S:.0f} s for every node live and {STABLE_QUIET_S:g} s without a change. "
               + "; ".join(f"{part}: {'settled' if st['stable'] else '**never settled**'}, "
                           f"{max(st.get('unexpected_changes', 0), 0)} unexpected change(s) during it"
                           for part, st in stab.items())
               + ". Changes nobody caused mean nodes missed heartbeats (CPU starved): the part's figures are disturbed.",
               ""]
    if sim:
        md += [f"Simulation (bench/flow_hashing.py, {sim['flows']:,} random flow IDs, one member fails), flows not on "
               "the failed member that move:", "",
               "| n | design | modulo | Maglev |", "|---|---|---|---|"]
        md += [f"| {r['n']} | {r['design_moved']:.2%} | {r['modulo_moved']:.2%} | {r['maglev_moved']:.2%} |"
               for r in sim["results"]]
        md.append("")
    md += ["Setup rate: `twin.traffic.flows.burst`, one datagram per flow and its echo (a fresh source port each), "
           "so every flow is new to id1 and to the learning switch's controller (which then installs an exact-match "
           "rule pair, controllers/bench_learning_switch.py). The round trip of the first packet is the setup as a "
           "client sees it: through fig5 it crosses id1, an AD node, an AF node and ie1 each way, all forwarding in "
           "userspace; through the learning switch, a packet-in, two flow-mods and a packet-out. id1's setup time "
           "is its own classify + route + send of a flow's first packet. One flow at a time (window 1) the rate is "
           "1 / round trip, so that ratio mostly compares the paths (eight flow-node hops in userspace, and the grid switches between them, against one "
           "Open vSwitch bridge), not the setups; the target is judged on the windowed bursts. Single run: the machine is shared "
           "(load average above), so rates move by tens of percent from run to run."]
    for key, err in errors.items():
        md += ["", f"**{key} failed**: {err}"]
    publish("flows", data, md)
    return 0 if all_met else 1


def fig5_timers() -> tuple[Any, Any]:
    """fig5's heartbeat period and dead intervals, as its lab file has them."""
    try:
        fl = yaml.safe_load(FIG5_FILE.read_text()).get("flows") or {}
        return fl.get("heartbeat_ms", 100), fl.get("dead_intervals", 3)
    except (OSError, ValueError, AttributeError):
        return "?", "?"


def _ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    if not a or not b or not b.get("mbps"):
        return None
    return round(a["mbps"] / b["mbps"], 3)


if __name__ == "__main__":
    sys.exit(main())
