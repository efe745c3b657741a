"""Cluster re-provisioning failover (issue 5): the data-plane outage when the element holding a role
is powered off, until the first packet gets through the substitute the cluster manager cloned, with
VRRP-like timers (1 s adverts, 3 missed, heartbeats the only detector) as the baseline, in the same run.

Lab: labs/cluster.yaml (manager cm, elements ne1..ne3, spares sp1 and sp2). Probe: UDP every 5 ms
(`--interval-ms`) from c1 to srv1 10.0.0.100, the circuit of role ne1. Per trial:
  1. a fresh probe stream c1 -> srv1, flowing;
  2. power off the current holder of role ne1 (read from cm's cluster-status.json): every link down,
     management included;
  3. wait for cm's `cluster-done` of that failover (15 s at most), then for traffic to flow again;
  4. power the failed element on and wait (deadline, polling cluster-status.json) until the manager has
     rebooted it with the default config and it is back in the pool, the new holder heard from and no
     failover open;
  5. stop the stream. Outage: the probe's first outage starting at the fault (first lost probe to first
     probe answered again, `outage_after(fault time)`). Also recorded: the manager's steps
     (`steps_ms` of cluster-done, from its detection: selected, cloned, done), fault -> detection
     (cluster-failure's time), what detected it, and any loss while the failed element rejoined.
Baseline: the same lab file renamed `cluster-vrrp` with heartbeat_ms 1000, dead_intervals 3 and
detection [heartbeats]; the same fault. One lab at a time (the first stopped before the second boots).
Target: outage p50 under 300 ms. Prints one JSON line and writes bench/results/cluster_failover.md.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_out import publish  # noqa: E402
from trials import TrialFailed, require_result, stop_stream  # noqa: E402

from twin.boot import Lab  # noqa: E402
from twin.polling import wait_for  # noqa: E402
from twin.traffic.probe import ProbeStream  # noqa: E402

LAB_FILE = ROOT / "labs" / "cluster.yaml"
MANAGER = "cm"
ROLE = "ne1"
SRC, DST, DST_IP = "c1", "srv1", "10.0.0.100"
STATUS_FILE = "cluster-status.json"
DONE_TIMEOUT_S = 15.0
REJOIN_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 60.0
TARGET_P50_MS = 300.0
BASELINE_NAME = "cluster-vrrp"
BASELINE_VARS = {"heartbeat_ms": 1000, "dead_intervals": 3, "detection": ["heartbeats"]}


# ---------------------------------------------------------------------------------------------
# the manager's view


def status(lab: Lab) -> dict[str, Any] | None:
    """cm's status file (rewritten on every decision and every second), or None while it is missing
    or being replaced."""
    try:
        return json.loads((lab.device_dir(MANAGER) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None


def dead_ms(lab_vars: dict[str, Any]) -> float:
    return float(lab_vars.get("heartbeat_ms", 100)) * float(lab_vars.get("dead_intervals", 3))


def steady(st: dict[str, Any] | None, must_pool: list[str], hb_limit_ms: float) -> str | None:
    """Why the cluster is not ready for a fault (None when it is): every role held by an active
    element heard from lately, role ne1's MACs archived (its hello processed), no failover open, the
    elements in `must_pool` spares, and at least one selectable spare."""
    if st is None:
        return "no status file yet"
    els = st.get("elements", {})
    for role, r in st.get("roles", {}).items():
        h = r.get("holder")
        if not h:
            return f"role {role} has no holder"
        e = els.get(h, {})
        if e.get("state") != "active" or e.get("last_heard_ms") is None or e["last_heard_ms"] > hb_limit_ms:
            return f"holder {h} of {role} is {e.get('state')}, last heard {e.get('last_heard_ms')} ms ago"
    if not st["roles"].get(ROLE, {}).get("macs"):
        return f"role {ROLE}'s MACs not archived yet"
    open_f = [f for f in st.get("failovers", []) if f.get("finished") is None]
    if open_f:
        return f"failover(s) {', '.join(str(f['id']) for f in open_f)} still open"
    pool = st.get("pool", [])
    for n in must_pool:
        if n not in pool:
            return f"{n} not in the pool yet ({els.get(n, {}).get('state')}: {els.get(n, {}).get('detail')})"
    live = [p for p in pool if els.get(p, {}).get("last_heard_ms") is not None and els[p]["last_heard_ms"] <= hb_limit_ms]
    if not live:
        return f"no spare heard from lately (pool {pool})"
    return None


def wait_steady(lab: Lab, must_pool: list[str], hb_limit_ms: float, timeout: float, what: str) -> dict[str, Any]:
    last: list[str | None] = [None]

    def ok() -> dict[str, Any] | None:
        st = status(lab)
        last[0] = steady(st, must_pool, hb_limit_ms)
        return st if last[0] is None else None

    try:
        return wait_for(ok, timeout, what, interval=0.05)
    except AssertionError:
        raise TrialFailed(f"{what}: not within {timeout:.0f} s ({last[0]})") from None


def event_after(lab: Lab, type_: str, since: float, pred, timeout: float, what: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        for ev in lab.device_events(MANAGER, type_, since):
            if pred(ev):
                return ev
        return None

    try:
        return wait_for(find, timeout, what, interval=0.02)
    except AssertionError:
        raise TrialFailed(f"no {type_} event from {MANAGER} within {timeout:.0f} s ({what})") from None


def diagnostics(lab: Lab) -> str:
    """cm's decision timeline and the end of its emulator log, for a trial that failed."""
    out = []
    try:
        s = lab.device(MANAGER).console()
        try:
            s.enable()
            out.append("--- show cluster timeline\n" + s.run("show cluster timeline", timeout=20))
            out.append("--- show cluster elements\n" + s.run("show cluster elements", timeout=20))
            out.append("--- show cluster failovers\n" + s.run("show cluster failovers", timeout=20))
        finally:
            s.close()
    except Exception as exc:  # the diagnosis must not hide the failure it explains
        out.append(f"--- (console on {MANAGER} failed: {exc.__class__.__name__}: {exc})")
    try:
        text = (lab.device_dir(MANAGER) / "emulator.log").read_text(errors="replace")
        out.append("--- emulator.log (tail)\n" + "\n".join(text.splitlines()[-60:]))
    except OSError as exc:
        out.append(f"--- (no emulator.log: {exc})")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# one trial


def detector(reason: str) -> str:
    """Which of the manager's inputs started the failover, from its failure reason."""
    for start, what in (("switch port", "port event"), ("reported", "element's link-down"),
                        ("announced", "element's failing"), ("missed", "heartbeats"), ("never heard", "heartbeats")):
        if reason.startswith(start):
            return what
    return reason


def trial(lab: Lab, n: int, interval_ms: float, hb_limit_ms: float, tag: str) -> dict[str, Any]:
    st = status(lab)
    if st is None:
        raise TrialFailed(f"{MANAGER}'s {STATUS_FILE} is missing")
    holder = st["roles"][ROLE]["holder"]
    pool_before = list(st["pool"])
    stream = ProbeStream(lab.nodes, SRC, DST, DST_IP, interval_ms=interval_ms, flow_timeout_s=10.0)
    stream.start()
    rec: dict[str, Any] = {"trial": n, "failed": holder, "pool_before": pool_before}
    try:
        fault = lab.faults.power_off(holder)
        t0 = fault.time
        failure = event_after(lab, "cluster-failure", t0 - 1.0, lambda e: e.get("element") == holder,
                              DONE_TIMEOUT_S, f"{holder} failing")
        fid = failure.get("failover")
        done = event_after(lab, "cluster-done", t0 - 1.0, lambda e: e.get("failover") == fid,
                           max(1.0, DONE_TIMEOUT_S - (time.time() - t0)), f"failover {fid} of role {ROLE} done")
        try:
            stream.wait_until_flowing(5.0)
        except Exception as exc:
            raise TrialFailed(f"failover {fid} done ({holder} -> {done.get('substitute')}) but traffic "
                              f"{SRC} -> {DST_IP} does not flow: {exc}") from None
        t_flowing = time.time()
        m = re.search(r"\((\d+) ms silent\)", str(failure.get("reason")))
        rec["silent_ms"] = int(m.group(1)) if m else None   # heartbeat detection: since last heard
        rec.update(substitute=done.get("substitute"), failover=fid, reason=failure.get("reason"),
                   detect_ms=round((failure["time"] - t0) * 1000, 1),
                   done_after_fault_ms=round((done["time"] - t0) * 1000, 1), steps_ms=done.get("steps_ms"))
        on = lab.faults.power_on(holder)
        st = wait_steady(lab, [holder], hb_limit_ms, REJOIN_TIMEOUT_S, f"{holder} back in the pool")
        back = [e for e in lab.device_events(MANAGER, "cluster-pool", on.time) if e.get("element") == holder]
        rec["rejoin_ms"] = round((back[0]["time"] - on.time) * 1000, 1) if back else None
        rec["pool_after"] = list(st["pool"])
        rec["holder_after"] = st["roles"][ROLE]["holder"]
    finally:
        res = stop_stream(stream, rec)
    res = require_result(res, rec)
    o = res.outage_after(t0)
    if o is None:
        raise TrialFailed(f"no outage seen after the fault at {t0:.3f} (probe: {res})")
    if not o.recovered or o.end_wall > t_flowing:
        raise TrialFailed(f"the outage after the fault did not end before traffic was seen flowing "
                          f"({o.duration_ms:.1f} ms, recovered={o.recovered})")
    later = [x for x in res.outages if x.start_wall > o.end_wall]
    rec.update(outage_ms=round(o.duration_ms, 1), lost=o.lost, outage_start_after_fault_ms=round((o.start_wall - t0) * 1000, 1),
               probes_sent=res.sent, rejoin_loss_events=len(later),
               rejoin_loss_max_ms=round(max((x.duration_ms for x in later), default=0.0), 1))
    print(f"{tag} trial {n}: {holder} -> {rec['substitute']}: outage {rec['outage_ms']} ms ({o.lost} lost), "
          f"detected after {rec['detect_ms']} ms ({rec['reason']}), steps {rec['steps_ms']}, "
          f"rejoined {rec['rejoin_ms']} ms after power-on", file=sys.stderr)
    return rec


def run_lab(path: Path, trials: int, interval_ms: float, lab_vars: dict[str, Any], tag: str) -> dict[str, Any]:
    hb_limit = max(dead_ms(lab_vars), 1000.0)
    lab = Lab.from_file(path)
    out: dict[str, Any] = {"lab": None, "trials_asked": trials, "runs": [], "error": None}
    try:
        lab.start()
        out["lab"] = f"{lab.name} ({lab.prefix})"
        out["boot_s"] = round(lab.timings.get("boot_s", 0.0), 1)
        print(f"{tag}: lab {lab.name} ({lab.prefix}) up in {out['boot_s']} s", file=sys.stderr)
        initial_pool = lab.model.spec.groups["spares"].members
        try:
            wait_steady(lab, list(initial_pool), hb_limit, READY_TIMEOUT_S, "cluster ready after boot")
            for i in range(1, trials + 1):
                out["runs"].append(trial(lab, i, interval_ms, hb_limit, tag))
        except Exception as exc:          # a trial that failed is reported with the manager's own account
            out["error"] = f"trial {len(out['runs']) + 1}: {exc.__class__.__name__}: {exc}"
            diag = diagnostics(lab)
            print(f"{tag}: FAILED {out['error']}\n{diag}", file=sys.stderr)
            out["diagnostics_tail"] = diag[-4000:]
    finally:
        lab.stop()
    return out


def summary(r: dict[str, Any]) -> dict[str, Any]:
    runs = r["runs"]
    out = {"lab": r["lab"], "trials": len(runs), "trials_asked": r["trials_asked"], "error": r["error"]}
    if not runs:
        return out
    xs = [x["outage_ms"] for x in runs]
    out.update(outage_ms_p50=round(statistics.median(xs), 1), outage_ms_max=max(xs), outage_ms_min=min(xs),
               detect_ms_p50=round(statistics.median(x["detect_ms"] for x in runs), 1),
               detect_to_done_ms_p50=round(statistics.median(x["steps_ms"]["done"] for x in runs), 1),
               detect_to_selected_ms_p50=round(statistics.median(x["steps_ms"]["selected"] for x in runs), 1),
               selected_to_cloned_ms_p50=round(statistics.median(x["steps_ms"]["cloned"] - x["steps_ms"]["selected"]
                                                                 for x in runs), 1),
               cloned_to_done_ms_p50=round(statistics.median(x["steps_ms"]["done"] - x["steps_ms"]["cloned"]
                                                             for x in runs), 1),
               reasons=sorted({detector(x["reason"]) for x in runs}),
               rejoin_loss_events=sum(x["rejoin_loss_events"] for x in runs))
    silent = [x["silent_ms"] for x in runs if x.get("silent_ms") is not None]
    if silent:
        out.update(silent_at_detection_ms_p50=statistics.median(silent), silent_at_detection_ms_max=max(silent))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10, help="trials on the twin's own timers")
    ap.add_argument("--baseline-trials", type=int, default=5, help="trials with VRRP-like timers (about 5 s each)")
    ap.add_argument("--interval-ms", type=float, default=5.0, help="probe interval")
    args = ap.parse_args()
    t_start = time.monotonic()

    spec = yaml.safe_load(LAB_FILE.read_text())
    twin_vars = dict(spec["groups"]["agg"]["vars"])
    base = json.loads(json.dumps(spec))
    base["name"] = BASELINE_NAME
    base["groups"]["agg"]["vars"].update(BASELINE_VARS)
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        base_path = Path(tmp) / f"{BASELINE_NAME}.yaml"
        base_path.write_text(yaml.safe_dump(base, sort_keys=False))
        twin = run_lab(LAB_FILE, args.trials, args.interval_ms, twin_vars, "twin")
        baseline = run_lab(base_path, args.baseline_trials, args.interval_ms, base["groups"]["agg"]["vars"], "baseline")

    tw, bl = summary(twin), summary(baseline)
    ratio = round(bl["outage_ms_p50"] / tw["outage_ms_p50"], 1) if "outage_ms_p50" in tw and "outage_ms_p50" in bl \
        and tw["outage_ms_p50"] > 0 else None
    complete = twin["error"] is None and baseline["error"] is None
    met = complete and "outage_ms_p50" in tw and tw["outage_ms_p50"] < TARGET_P50_MS
    data = {"bench": "cluster_failover", "interval_ms": args.interval_ms, "twin": tw, "baseline": bl,
            "ratio_baseline_over_twin_p50": ratio, "target": {"outage_p50_ms": TARGET_P50_MS}, "met": met,
            "twin_vars": {k: twin_vars.get(k) for k in ("heartbeat_ms", "dead_intervals")} |
                         {"detection": twin_vars.get("detection", ["heartbeats", "ports", "events"])},
            "baseline_vars": BASELINE_VARS, "runs": {"twin": twin["runs"], "baseline": baseline["runs"]},
            "wall_s": round(time.monotonic() - t_start, 1)}

    def cell(s: dict[str, Any], key: str) -> str:
        return f"{s[key]:.1f} ms" if key in s else "-"

    md = ["# Cluster failover: power-off of role ne1's holder, outage until traffic flows through the substitute", "",
          f"Probe: UDP every {args.interval_ms:g} ms from {SRC} to {DST} {DST_IP} (role {ROLE}'s circuit). Fault: "
          f"`power_off` of the element holding {ROLE} (every link down, management included). Outage: first lost "
          "probe to first probe answered again. After each trial the failed element is powered on and the bench "
          "waits until the manager has rebooted it with the default config and it is back in the pool. "
          "One lab at a time.", "",
          "| timers | lab | trials | outage p50 | max | min | fault -> detection p50 | detection -> done p50 "
          "| detected by |",
          "|---|---|---|---|---|---|---|---|---|"]
    for label, s in ((f"twin: heartbeat {twin_vars.get('heartbeat_ms', 100)} ms x {twin_vars.get('dead_intervals', 3)}, "
                      "ports, events", tw),
                     ("baseline, VRRP-like: heartbeat 1000 ms x 3, heartbeats only", bl)):
        md.append(f"| {label} | {s['lab']} | {s['trials']} of {s['trials_asked']} | {cell(s, 'outage_ms_p50')} "
                  f"| {cell(s, 'outage_ms_max')} | {cell(s, 'outage_ms_min')} | {cell(s, 'detect_ms_p50')} "
                  f"| {cell(s, 'detect_to_done_ms_p50')} | {', '.join(s.get('reasons', [])) or '-'} |")
    md += ["", f"Baseline / twin outage (p50): **{ratio if ratio is not None else '-'}x**. "
               f"Target: outage p50 under {TARGET_P50_MS:.0f} ms: "
               f"{'met' if met else 'NOT met'}" + ("" if complete else " (not every trial completed)") + ".", ""]
    if args.baseline_trials != args.trials:
        md += [f"The baseline ran {args.baseline_trials} trial{'' if args.baseline_trials == 1 else 's'} to the twin's {args.trials}: each waits seconds "
               "for three missed 1 s heartbeats.", ""]
    md += ["## Per trial (manager's steps from its detection: selected, cloned, done)", "",
           "| timers | trial | failed -> substitute | outage | lost | fault -> detection | silent when declared dead "
           "| selected | cloned | done | rejoined after power-on | loss while rejoining |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, r in (("twin", twin), ("baseline", baseline)):
        for x in r["runs"]:
            s = x["steps_ms"]
            md.append(f"| {label} | {x['trial']} | {x['failed']} -> {x['substitute']} | {x['outage_ms']:.1f} ms "
                      f"| {x['lost']} | {x['detect_ms']:.1f} ms "
                      f"| {str(x['silent_ms']) + ' ms' if x.get('silent_ms') is not None else '- (' + detector(x['reason']) + ')'} "
                      f"| {s['selected']:.1f} | {s['cloned']:.1f} "
                      f"| {s['done']:.1f} ms | {x['rejoin_ms'] if x['rejoin_ms'] is not None else '-'} ms "
                      f"| {x['rejoin_loss_events']} ({x['rejoin_loss_max_ms']:.1f} ms) |")
    md += ["", "Silent when declared dead: how long the manager had not heard the element when its heartbeat "
               "deadline declared it dead (from the failure reason). VRRP declares a master down 3 adverts plus a skew "
               "after its last advert, about 3 s with 1 s adverts; anything well beyond that is the manager's own "
               "rule or its check period."]
    for label, r in (("twin", twin), ("baseline", baseline)):
        if r["error"]:
            md += ["", f"**{label} stopped early**: {r['error']}"]
    publish("cluster_failover", data, md)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
