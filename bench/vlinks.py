"""Virtual connectivity grid: 100 cables created through the API until traffic flows on all of them,
the resilient link's cutover window, and TCP throughput over a virtual cable against a plain link, in
one run on one lab.

Lab: generated into a temp directory (`lab_spec()`, name `bench-vlinks`): two grid switches g1 and g2
joined by one trunk, two plain switches s1 and s2 (left out of `grid: {switches: [g1, g2]}`, so they
stay NORMAL-forwarding bridges) joined the same way, and
  * hosts a0..a9 on g1 and b0..b9 on g2, ten spare interfaces each (`auto_address: false`): pair k is
    a<i>:eth<j> -- b<i>:eth<j>, k = 10 i + j - 1, addressed 10.100.k.1/24 and 10.100.k.2/24 by the bench;
  * resilient link res1: root rr:eth1 (g1) 10.70.0.1, primary rp:eth1 and standby rs:eth1 (both on g2)
    sharing 10.70.0.2;
  * cable tp1 v1:eth1 (g1) -- v2:eth1 (g2), and the plain path u1:eth1 (s1) -- u2:eth1 (s2): the same
    hop count (host, switch, trunk, switch, host).

1. Cables: 100 `POST /vlinks` one after the other (each returns once its rules are on every switch),
   then every a-host pings its ten peers in parallel (one round per host, `ping -c1 -w3 -i0.05`, rounds
   repeated for pairs still silent until a deadline) until all 100 pairs answered. Before the POSTs one
   pair must not answer (the grid drops what is on no link). Then the 100 links are deleted.
2. Cutover: per trial a fresh UDP probe stream every 1 ms from rr to 10.70.0.2 (echo on rp, a second
   echo on the standby rs); link_down rp:eth1; the controller's `vlink_cutover` event (rp -> rs, its
   `program_ms`); traffic flowing through the standby; link_up rp:eth1; the revert event (rs -> rp) and
   traffic flowing again; stop. Outage: `outage_after(fault time)` (first lost probe to first answered);
   loss after the revert is reported separately.
3. Throughput: iperf3 TCP v1 -> v2 (virtual cable) and u1 -> u2 (plain), alternating, 3 runs each.
Targets: cutover outage p50 under 100 ms; virtual cable throughput at least 90% of the plain link's
(medians). Prints one JSON line and writes bench/results/vlinks.md.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_out import publish  # noqa: E402
from trials import TrialFailed, require_result, stop_stream  # noqa: E402

from twin.boot import Lab  # noqa: E402
from twin.polling import wait_for  # noqa: E402
from twin.traffic.iperf import iperf3  # noqa: E402
from twin.traffic.probe import ProbeStream, percentile  # noqa: E402

LAB_NAME = "bench-vlinks"
SIDE_HOSTS, INTFS = 10, 10                 # per grid switch: 10 hosts x 10 spare interfaces = 100 pairs
PAIRS = SIDE_HOSTS * INTFS
ROOT_EP, PRIMARY_EP, STANDBY_EP = "rr:eth1", "rp:eth1", "rs:eth1"
RES_LINK, SHARED_IP, ECHO_PORT = "res1", "10.70.0.2", 7801
PING_DEADLINE_S = 60.0
EVENT_TIMEOUT_S = 10.0
BOOT_TIMEOUT_S = 120.0
TARGET_CUTOVER_P50_MS = 100.0
TARGET_RATIO = 0.90


# ---------------------------------------------------------------------------------------------
# the lab


def pair_hosts(k: int) -> tuple[str, str, str]:
    """(a-host, b-host, interface) of pair k."""
    i, j = divmod(k, INTFS)
    return f"a{i}", f"b{i}", f"eth{j + 1}"


def pair_ip(k: int, side: int) -> str:
    return f"10.100.{k}.{side}"


def lab_spec() -> dict[str, Any]:
    nodes: dict[str, Any] = {sw: {"kind": "switch"} for sw in ("g1", "g2", "s1", "s2")}
    links: list[dict[str, Any]] = [{"endpoints": ["g1:t1", "g2:t1"]}, {"endpoints": ["s1:t1", "s2:t1"]}]
    for i in range(SIDE_HOSTS):
        nodes[f"a{i}"] = {"auto_address": False}
        nodes[f"b{i}"] = {"auto_address": False}
    for k in range(PAIRS):
        a, b, intf = pair_hosts(k)
        links.append({"endpoints": [f"{a}:{intf}", f"g1:p{k + 1}"]})
        links.append({"endpoints": [f"{b}:{intf}", f"g2:p{k + 1}"]})
    nodes["rr"] = {"interfaces": {"eth1": {"ipv4": "10.70.0.1/24"}}}
    nodes["rp"] = {"interfaces": {"eth1": {"ipv4": f"{SHARED_IP}/24"}}}
    nodes["rs"] = {"interfaces": {"eth1": {"ipv4": f"{SHARED_IP}/24"}}}
    for n in ("v1", "v2", "u1", "u2"):
        nodes[n] = {}
    links += [{"endpoints": [ROOT_EP, f"g1:p{PAIRS + 1}"]}, {"endpoints": [PRIMARY_EP, f"g2:p{PAIRS + 1}"]},
              {"endpoints": [STANDBY_EP, f"g2:p{PAIRS + 2}"]},
              {"endpoints": ["v1:eth1", f"g1:p{PAIRS + 2}"]}, {"endpoints": ["v2:eth1", f"g2:p{PAIRS + 3}"]},
              {"endpoints": ["u1:eth1", "s1:p1"]}, {"endpoints": ["u2:eth1", "s2:p1"]}]
    return {"name": LAB_NAME, "message": "virtual link benchmark: 100 runtime cables, resilient cutover, "
                                         "throughput against a plain link",
            "mgmt": {"enabled": False},
            "grid": {"switches": ["g1", "g2"], "vlan_block": [3000, 3199]},
            "nodes": nodes, "links": links,
            "vlinks": {RES_LINK: {"type": "resilient",
                                  "members": [{ROOT_EP: "root"}, {PRIMARY_EP: "primary"}, {STANDBY_EP: "standby"}]},
                       "tp1": {"type": "cable", "members": ["v1:eth1", "v2:eth1"]}}}


# ---------------------------------------------------------------------------------------------
# 1. 100 cables through the API


def ping_round(lab: Lab, host: str, ips: list[str]) -> dict[str, float]:
    """Ping every address from `host` at once; {ip: wall time its first echo was seen}."""
    script = " ".join(f"(ping -n -q -c 1 -w 3 -i 0.05 {ip} >/dev/null 2>&1 && echo OK {ip} $(date +%s.%N)) &"
                      for ip in ips) + " wait"
    out = lab.nodes.sh(host, script, timeout=30).stdout
    got = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "OK":
            got[parts[1]] = float(parts[2])
    return got


def ping_all(lab: Lab, pairs: list[int], deadline_s: float) -> tuple[dict[int, float], int]:
    """Rounds of parallel pings (every a-host at once) until every pair answered; ({pair: wall}, rounds)."""
    pending = set(pairs)
    answered: dict[int, float] = {}
    by_ip = {pair_ip(k, 2): k for k in pairs}
    end = time.monotonic() + deadline_s
    rounds = 0
    with ThreadPoolExecutor(max_workers=SIDE_HOSTS) as pool:
        while pending and time.monotonic() < end:
            rounds += 1
            hosts: dict[str, list[str]] = {}
            for k in sorted(pending):
                hosts.setdefault(pair_hosts(k)[0], []).append(pair_ip(k, 2))
            for got in pool.map(lambda h: ping_round(lab, h, hosts[h]), list(hosts)):
                for ip, t in got.items():
                    answered[by_ip[ip]] = t
                    pending.discard(by_ip[ip])
    if pending:
        shown = ", ".join(f"{pair_hosts(k)[0]}:{pair_hosts(k)[2]}->{pair_ip(k, 2)}" for k in sorted(pending)[:10])
        raise TrialFailed(f"{len(pending)} of {len(pairs)} pairs never answered a ping within {deadline_s:.0f} s "
                          f"({rounds} rounds): {shown}")
    return answered, rounds


def bulk_cables(lab: Lab) -> dict[str, Any]:
    for i in range(SIDE_HOSTS):
        for side, host in ((1, f"a{i}"), (2, f"b{i}")):
            batch = "".join(f"addr add {pair_ip(k, side)}/24 dev {pair_hosts(k)[2]}\n"
                            for k in range(i * INTFS, (i + 1) * INTFS))
            lab.nodes.run(host, ["ip", "-batch", "-"], input=batch, check=True)
    # the grid drops what is on no link: pair 0 must not answer before its cable exists
    before = lab.nodes.run("a0", ["ping", "-n", "-q", "-c", "2", "-i", "0.1", "-W", "0.3", pair_ip(0, 2)], timeout=10)
    if before.returncode == 0:
        raise TrialFailed("pair 0 answered a ping before its cable was created")
    names = [f"bc{k}" for k in range(PAIRS)]
    per_ms: list[float] = []
    vlans = set()
    t0 = time.time()
    for k, name in enumerate(names):
        a, b, intf = pair_hosts(k)
        t = time.perf_counter()
        r = lab.controller.request("POST", "/vlinks", {"name": name, "type": "cable",
                                                       "members": [f"{a}:{intf}", f"{b}:{intf}"]})
        per_ms.append((time.perf_counter() - t) * 1000)
        if not r.get("programmed"):
            raise TrialFailed(f"POST /vlinks {name}: not programmed: {r}")
        vlans.add(r.get("vlan"))
    t_created = time.time()
    print(f"cables: {PAIRS} created in {t_created - t0:.2f} s", file=sys.stderr)
    answered, rounds = ping_all(lab, list(range(PAIRS)), PING_DEADLINE_S)
    t_all = max(answered.values())
    t = time.perf_counter()
    for name in names:
        lab.controller.request("DELETE", f"/vlinks/{name}")
    delete_s = time.perf_counter() - t
    left = [l["name"] for l in lab.controller.request("GET", "/vlinks")["links"] if l["name"] in names]
    if left:
        raise TrialFailed(f"links still listed after DELETE: {left[:5]}")
    out = {"links": PAIRS, "distinct_vlans": len(vlans), "create_s": round(t_created - t0, 3),
           "create_ms_p50": round(percentile(per_ms, 50), 1), "create_ms_p99": round(percentile(per_ms, 99), 1),
           "create_ms_max": round(max(per_ms), 1),
           # does a POST get slower as the switches fill up?
           "create_ms_first10_p50": round(percentile(per_ms[:10], 50), 1),
           "create_ms_last10_p50": round(percentile(per_ms[-10:], 50), 1),
           "created_to_all_ping_s": round(t_all - t_created, 3), "total_s": round(t_all - t0, 3),
           "ping_rounds": rounds, "delete_s": round(delete_s, 3)}
    print(f"cables: every pair answered {out['created_to_all_ping_s']} s after the last POST ({rounds} round(s)); "
          f"total {out['total_s']} s; per link p50 {out['create_ms_p50']} ms p99 {out['create_ms_p99']} ms; "
          f"deleted in {out['delete_s']} s", file=sys.stderr)
    return out


# ---------------------------------------------------------------------------------------------
# 2. resilient cutover


def start_standby_echo(lab: Lab):
    ready = lab.dir / "rs-echo.ready"
    ready.unlink(missing_ok=True)
    proc = lab.nodes.popen("rs", [sys.executable, "-m", "twin.traffic.probe_agent", "echo", "--port", str(ECHO_PORT),
                                  "--ready-file", str(ready)],
                           env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: ready.exists() or proc.poll() is not None, 10, "the standby's echo responder")
    except AssertionError:
        proc.kill()
        raise
    if proc.poll() is not None:
        raise TrialFailed(f"the standby's echo responder exited with {proc.returncode}")
    return proc


def flowing_again(stream: ProbeStream, after: int, more: int, what: str) -> None:
    """Echoes are coming back now and `more` of them arrived since the count `after`."""
    def ok() -> bool:
        p = stream.progress()
        return p is not None and p.received > after + more and p.last_rx_age_ms is not None and p.last_rx_age_ms < 20
    try:
        wait_for(ok, EVENT_TIMEOUT_S, what, interval=0.005)
    except AssertionError:
        raise TrialFailed(f"{what}: not within {EVENT_TIMEOUT_S:.0f} s ({stream.progress()})") from None


def cutover_trial(lab: Lab, n: int, interval_ms: float) -> dict[str, Any]:
    active = lab.controller.request("GET", f"/vlinks/{RES_LINK}").get("active")
    if active != PRIMARY_EP:
        raise TrialFailed(f"{RES_LINK} is on {active}, not on its primary {PRIMARY_EP}, before the trial")
    stream = ProbeStream(lab.nodes, "rr", "rp", SHARED_IP, port=ECHO_PORT, interval_ms=interval_ms, flow_timeout_s=10.0)
    stream.start()
    rec: dict[str, Any] = {"trial": n}
    t_up = None
    try:
        flowing_again(stream, 0, 100, "probes flowing through the primary")
        since = lab.controller.events(0)["next"]
        fault = lab.faults.link_down(PRIMARY_EP)
        t0 = fault.time
        cut = lab.controller.wait_event(since, EVENT_TIMEOUT_S, type="vlink_cutover", link=RES_LINK)
        if cut.get("to") != STANDBY_EP:
            raise TrialFailed(f"cutover went {cut.get('from')} -> {cut.get('to')}, not to the standby {STANDBY_EP}")
        flowing_again(stream, stream.progress().received, 200, "probes answered by the standby")
        since = lab.controller.events(0)["next"]
        up = lab.faults.link_up(PRIMARY_EP)
        t_up = up.time
        back = lab.controller.wait_event(since, EVENT_TIMEOUT_S, type="vlink_cutover", link=RES_LINK)
        if back.get("to") != PRIMARY_EP:
            raise TrialFailed(f"revert went {back.get('from')} -> {back.get('to')}, not back to {PRIMARY_EP}")
        flowing_again(stream, stream.progress().received, 200, "probes answered by the primary again")
        rec.update(program_ms=cut["program_ms"], revert_program_ms=back["program_ms"],
                   detect_ms=round((cut["event_time"] - t0) * 1000, 1) if cut.get("event_time") else None,
                   cutover_at_ms=round((cut["time"] - t0) * 1000, 1),
                   revert_at_ms=round((back["time"] - t_up) * 1000, 1))
    finally:
        res = stop_stream(stream, rec)
    res = require_result(res, rec)
    o = res.outage_after(t0)
    if o is None or not o.recovered or o.start_wall > t_up:
        raise TrialFailed(f"no recovered outage between the fault at {t0:.3f} and the repair (probe: {res})")
    later = [x for x in res.outages if x.start_wall > o.end_wall]
    revert = [x for x in later if x.start_wall >= t_up - 0.05]       # the switch back to the primary
    stray = [x for x in later if x.start_wall < t_up - 0.05]         # while on the standby
    rec.update(outage_ms=round(o.duration_ms, 1), lost=o.lost, probes_sent=res.sent,
               revert_loss_ms=round(sum(x.duration_ms for x in revert), 1), revert_lost=sum(x.lost for x in revert),
               standby_lost=sum(x.lost for x in stray))
    print(f"cutover trial {n}: outage {rec['outage_ms']} ms ({o.lost} lost), port event after {rec['detect_ms']} ms, "
          f"program {rec['program_ms']} ms; revert: {rec['revert_lost']} lost, program {rec['revert_program_ms']} ms",
          file=sys.stderr)
    return rec


def cutovers(lab: Lab, trials: int, interval_ms: float) -> dict[str, Any]:
    out: dict[str, Any] = {"trials_asked": trials, "runs": [], "error": None}
    echo = start_standby_echo(lab)
    try:
        for i in range(1, trials + 1):
            out["runs"].append(cutover_trial(lab, i, interval_ms))
    except Exception as exc:
        out["error"] = f"trial {len(out['runs']) + 1}: {exc.__class__.__name__}: {exc}"
        print(f"cutover: FAILED {out['error']}", file=sys.stderr)
    finally:
        echo.terminate()
        try:
            echo.wait(5)
        except Exception:
            echo.kill()
            echo.wait()
    runs = out["runs"]
    if runs:
        xs = [r["outage_ms"] for r in runs]
        pm = [r["program_ms"] for r in runs]
        det = [r["detect_ms"] for r in runs if r["detect_ms"] is not None]
        out.update(outage_ms_p50=round(statistics.median(xs), 1), outage_ms_max=max(xs), outage_ms_min=min(xs),
                   program_ms_p50=round(statistics.median(pm), 2), program_ms_max=max(pm),
                   detect_ms_p50=round(statistics.median(det), 1) if det else None,
                   revert_program_ms_p50=round(statistics.median(r["revert_program_ms"] for r in runs), 2),
                   revert_lost_total=sum(r["revert_lost"] for r in runs),
                   standby_lost_total=sum(r["standby_lost"] for r in runs),
                   revert_loss_ms_max=max(r["revert_loss_ms"] for r in runs))
    return out


# ---------------------------------------------------------------------------------------------
# 3. throughput


def throughput(lab: Lab, runs: int, seconds: float) -> dict[str, Any]:
    paths = {"vlink": ("v1", "v2", lab.address("v2", "eth1")), "plain": ("u1", "u2", lab.address("u2", "eth1"))}
    for name, (c, s, ip) in paths.items():
        wait_for(lambda: lab.nodes.run(c, ["ping", "-n", "-q", "-c", "1", "-W", "1", ip], timeout=5).returncode == 0,
                 10, f"{c} to reach {ip} ({name})", interval=0.05)
    # Open vSwitch's userspace datapath is one process for every bridge on the machine: other labs'
    # traffic and other load share it, so the run records what else was there
    others = subprocess.run(["ovs-vsctl", "list-br"], capture_output=True, text=True, timeout=10).stdout.split()
    context = {"loadavg_1m": round(os.getloadavg()[0], 2),
               "other_bridges": len([b for b in others if not b.startswith(lab.prefix)])}
    mbps: dict[str, list[float]] = {"vlink": [], "plain": []}
    retrans: dict[str, list[int | None]] = {"vlink": [], "plain": []}
    for i in range(runs):
        for name in (("vlink", "plain") if i % 2 == 0 else ("plain", "vlink")):
            c, s, ip = paths[name]
            r = iperf3(lab.nodes, c, s, ip, seconds=seconds)
            mbps[name].append(round(r.mbps, 1))
            retrans[name].append(r.retransmits)
            print(f"throughput run {i + 1} {name}: {r}", file=sys.stderr)
    med = {k: round(statistics.median(v), 1) for k, v in mbps.items()}
    context["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
    return {"seconds": seconds, "runs": runs, "mbps": mbps, "retransmits": retrans, "machine": context,
            "vlink_mbps_median": med["vlink"], "plain_mbps_median": med["plain"],
            "ratio": round(med["vlink"] / med["plain"], 3) if med["plain"] > 0 else None}


# ---------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10, help="resilient cutover trials")
    ap.add_argument("--interval-ms", type=float, default=1.0, help="probe interval")
    ap.add_argument("--iperf-runs", type=int, default=3, help="iperf3 runs per path")
    ap.add_argument("--iperf-seconds", type=float, default=4, help="length of one iperf3 run")
    args = ap.parse_args()
    t_start = time.monotonic()

    errors: dict[str, str] = {}
    cables: dict[str, Any] = {}
    cut: dict[str, Any] = {"trials_asked": args.trials, "runs": [], "error": None}
    tput: dict[str, Any] = {}
    lab_label, boot_s = None, None
    with tempfile.TemporaryDirectory(prefix="bench-vlinks-") as tmp:
        path = Path(tmp) / f"{LAB_NAME}.yaml"
        path.write_text(yaml.safe_dump(lab_spec(), sort_keys=False))
        lab = Lab.from_file(path)
        try:
            lab.start(timeout=BOOT_TIMEOUT_S)
            lab_label, boot_s = f"{lab.name} ({lab.prefix})", round(lab.timings.get("boot_s", 0.0), 1)
            print(f"lab {lab_label} up in {boot_s} s", file=sys.stderr)
            for key, fn in (("cables", lambda: bulk_cables(lab)),
                            ("cutover", lambda: cutovers(lab, args.trials, args.interval_ms)),
                            ("throughput", lambda: throughput(lab, args.iperf_runs, args.iperf_seconds))):
                try:
                    got = fn()
                except Exception as exc:      # one part failing still lets the others measure
                    errors[key] = f"{exc.__class__.__name__}: {exc}"
                    print(f"{key}: FAILED {errors[key]}", file=sys.stderr)
                    continue
                if key == "cables":
                    cables = got
                elif key == "cutover":
                    cut = got
                    if got["error"]:
                        errors[key] = got["error"]
                else:
                    tput = got
        finally:
            lab.stop()

    cut_runs = cut.pop("runs")
    cut_met = "outage_ms_p50" in cut and cut["outage_ms_p50"] < TARGET_CUTOVER_P50_MS and not cut["error"]
    tput_met = tput.get("ratio") is not None and tput["ratio"] >= TARGET_RATIO
    met = not errors and cut_met and tput_met
    data = {"bench": "vlinks", "lab": lab_label, "boot_s": boot_s, "cables": cables,
            "cutover": {**cut, "interval_ms": args.interval_ms, "trials": len(cut_runs)}, "throughput": tput,
            "target": {"cutover_outage_p50_ms": TARGET_CUTOVER_P50_MS, "vlink_over_plain_min": TARGET_RATIO},
            "met": met, "errors": errors, "runs": {"cutover": cut_runs}, "wall_s": round(time.monotonic() - t_start, 1)}

    def v(d: dict[str, Any], key: str, fmt: str = "{:.1f}", unit: str = " ms") -> str:
        return (fmt.format(d[key]) + unit) if d.get(key) is not None else "-"

    md = ["# Virtual links: 100 cables through the API, resilient cutover, throughput against a plain link", "",
          f"Lab `{LAB_NAME}` (generated by the bench): grid switches g1 and g2 joined by one trunk, plain switches "
          "s1 and s2 (not in the grid: NORMAL forwarding) joined the same way. "
          f"Boot: {boot_s if boot_s is not None else '-'} s. One run, one lab.", "",
          "| measure (2 cores) | result | target |", "|---|---|---|",
          f"| {PAIRS} cables created, {PAIRS} `POST /vlinks` one after the other (each returns once its rules are on "
          f"both switches) | {v(cables, 'create_s', '{:.2f}', ' s')}: per link p50 {v(cables, 'create_ms_p50')}, "
          f"p99 {v(cables, 'create_ms_p99')} | |",
          f"| last POST answered to every one of the {PAIRS} pairs answering a ping (parallel pings) "
          f"| {v(cables, 'created_to_all_ping_s', '{:.2f}', ' s')} ({cables.get('ping_rounds', '-')} round(s)) | |",
          f"| first POST to all {PAIRS} pairs pinging | **{v(cables, 'total_s', '{:.2f}', ' s')}** | |",
          f"| {PAIRS} links deleted (`DELETE /vlinks/NAME`) | {v(cables, 'delete_s', '{:.2f}', ' s')} | |",
          f"| resilient cutover outage, p50 / max ({len(cut_runs)} trials, UDP probes every {args.interval_ms:g} ms) "
          f"| **{v(cut, 'outage_ms_p50')}** / {v(cut, 'outage_ms_max')} | p50 under {TARGET_CUTOVER_P50_MS:.0f} ms: "
          f"{'met' if cut_met else 'NOT met'} |",
          f"| link down to the controller's port event, p50 | {v(cut, 'detect_ms_p50')} | |",
          f"| controller's reprogramming (`program_ms`), p50 / max | {v(cut, 'program_ms_p50', '{:.2f}')} / "
          f"{v(cut, 'program_ms_max', '{:.2f}')} | |",
          f"| revert to the primary once its link is up: probes lost in all trials, worst trial's loss window, "
          f"program_ms p50 | {cut.get('revert_lost_total', '-')}, {v(cut, 'revert_loss_ms_max')}, "
          f"{v(cut, 'revert_program_ms_p50', '{:.2f}')} | |",
          f"| iperf3 TCP, median of {tput.get('runs', '-')} x {tput.get('seconds', '-')} s: virtual cable / plain link "
          f"| {v(tput, 'vlink_mbps_median', '{:.0f}', '')} / {v(tput, 'plain_mbps_median', '{:.0f}', '')} Mbit/s: "
          f"**{v(tput, 'ratio', '{:.1%}', '')}** | at least {TARGET_RATIO:.0%}: {'met' if tput_met else 'NOT met'} |",
          ""]
    if tput:
        md += ["Throughput runs (alternating, Mbit/s): virtual cable " + ", ".join(f"{x:.0f}" for x in tput["mbps"]["vlink"])
               + "; plain " + ", ".join(f"{x:.0f}" for x in tput["mbps"]["plain"]) + f". Load average "
               f"{tput['machine']['loadavg_1m']} before, {tput['machine']['loadavg_1m_after']} after; "
               f"{tput['machine']['other_bridges']} other Open vSwitch bridge(s) on the machine (the userspace "
               "datapath is one process for all of them).", ""]
    md += ["## Cutover trials", "",
           "| trial | outage | lost | port event after the fault | reprogrammed (program_ms) | revert: lost | revert program_ms |",
           "|---|---|---|---|---|---|---|"]
    for r in cut_runs:
        md.append(f"| {r['trial']} | {r['outage_ms']:.1f} ms | {r['lost']} | {v(r, 'detect_ms')} | {r['program_ms']:.2f} ms "
                  f"| {r['revert_lost']} | {r['revert_program_ms']:.2f} ms |")
    md += ["", "Outage: first lost probe to first probe answered again, by the standby's echo responder (same IP). "
               "The fault is `link_down` of the primary's link (carrier lost at both ends)."]
    for key, err in errors.items():
        md += ["", f"**{key} failed**: {err}"]
    publish("vlinks", data, md)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
