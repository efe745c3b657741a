"""Config sync between the two units of an `rp` pair running different images (Active 15.2(1)SY,
Standby 15.1(2)SY): bulk sync, line-by-line sync and the control-plane takeover, with the plain
copy of the same text as the floor, in the same run.

Both units run in this process (FakeNetlink, no namespaces); the RF channel between them is the real
one: signed JSON lines over TCP on 127.0.0.1. Every time below is time.monotonic() taken in this
process (one clock): the bench's own marks and the receive times its event subscribers record.
  1. Bulk sync of a running config of 1,000 and 10,000 lines, 5% of them needing transformation
     down to 15.1 (`logging server` -> `logging host`, `spanning-tree portfast edge default`,
     interface `ip flow ingress`, `ip ssh time-out`): from the Active starting a bulk sync
     (`_bulk_sync()`) to the Standby's `rf-standby-hot` event. Split into the Active's transform
     (the rcsf message's t_active_ms), the wire (rcsf signed, sent, read, verified, queued) and the
     Standby's apply + verification (rf-standby-hot's bulk_ms). Also the full renegotiation (the
     Standby says hello again: CLI dumps, diff lists, bulk sync) to HOT.
  2. The floor: the same config text sent over a TCP socket on 127.0.0.1 and written to a file
     with fsync by the receiver; ratio bulk / copy.
  3. Line-by-line: config commands typed on the Active (emulators.cli.testing.ScriptedTerminal),
     from `cmd()` returning (the Active's prompt is back) to the Standby's `sync-applied` event for
     that line. Typed one at a time (waiting for each), and pasted back-to-back.
  4. In-process control-plane takeover: from `close()` on the Active (its channel drops, the Standby
     reads the connection close) to the Standby's `rf-active` event; a fresh pair per trial. The
     data-plane outage of a switchover is measured end-to-end elsewhere, not here.
Targets: bulk sync of 10,000 lines under 1 s; line-by-line p99 under 20 ms.
Prints one JSON line and writes bench/results/configsync.md.
"""
from __future__ import annotations

import argparse
import logging
import os
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_out import publish  # noqa: E402

from emulators.cli.testing import ScriptedTerminal  # noqa: E402
from emulators.rp.loopback import loopback_unit  # noqa: E402
from emulators.rp.unit import RpUnit  # noqa: E402
from twin.ports import allocate_port, release_ports  # noqa: E402

ACTIVE_IMAGE, STANDBY_IMAGE = "15.2(1)SY", "15.1(2)SY"
SIZES = (1000, 10000)
TRANSFORM_SHARE = 0.05
ROUTES = 2000         # static routes per config (`--routes`)
USERS = 10
BULK_TARGET_MS = 1000.0
LINE_P99_TARGET_MS = 20.0
TIMEOUT_S = 60.0


# ---------------------------------------------------------------------------------------------
# configs


def _fixed_part() -> list[str]:
    """Lines every generated config has: the single-valued transformable features, four interface
    blocks with a transformable sub-mode line each, a few local users."""
    lines = ["spanning-tree portfast edge default", "ip ssh time-out 60"]
    for i in range(1, 5):
        lines += [f"interface eth{i}", f" description uplink {i} to the distribution layer",
                  f" ip address 10.{i}.0.1 255.255.255.0", " ip flow ingress"]
    lines += [f"username u{i} privilege 1 secret 0 pw{i}" for i in range(USERS)]
    return lines


FIXED_TRANSFORMABLE = 6   # spanning-tree, ssh time-out, 4 x ip flow ingress


def _ip(base: int, k: int) -> str:
    k += 1
    return f"{base >> 8}.{base & 0xFF}.{k >> 8 & 0xFF}.{k & 0xFF}"


def make_config(filler: int, transformable: int) -> str:
    """`_fixed_part` plus `filler` one-line global commands, of which `transformable -
    FIXED_TRANSFORMABLE` are `logging server` hosts; the rest `ip route` (at most ROUTES), `ntp
    server` and `snmp-server community`, interleaved."""
    logging_n = max(0, transformable - FIXED_TRANSFORMABLE)
    routes_n = min(ROUTES, max(0, filler - logging_n))
    rest = max(0, filler - logging_n - routes_n)
    counts = {"log": logging_n, "route": routes_n, "ntp": (rest + 1) // 2, "snmp": rest // 2}
    # spread each kind evenly through the config: the j-th of c lines sits at (j + 0.5) / c
    kinds = [k for _, k in sorted(((j + 0.5) / c, k) for k, c in counts.items() for j in range(c))]
    lines = _fixed_part()
    n = {"log": 0, "route": 0, "ntp": 0, "snmp": 0}
    for k in kinds:
        i = n[k]
        n[k] += 1
        if k == "log":
            lines.append(f"logging server {_ip(0xAC10, i)}")           # 172.16.x.y
        elif k == "route":
            lines.append(f"ip route 10.{100 + i // 250}.{i % 250}.0 255.255.255.0 10.1.0.{2 + i % 200}")
        elif k == "ntp":
            lines.append(f"ntp server {_ip(0xAC11, i)}")               # 172.17.x.y
        else:
            lines.append(f"snmp-server community community{i} ro")
    return "\n".join(lines) + "\n"


def rendered_base(tmp: Path) -> int:
    """Lines the running config renders to besides the filler: the fixed part plus what every unit
    has (hostname, redundancy, lines, section separators). Each filler line renders as one line."""
    filler = 2 * ROUTES + 10          # every kind of filler line present (each adds its section once)
    u = RpUnit("calib", state_dir=tmp / "calib", users={"admin": "admin"}, enable_secret="e", apply=False,
               hw={}, version=ACTIVE_IMAGE, initial_config=make_config(filler, FIXED_TRANSFORMABLE + 5))
    try:
        with u.lock:
            u._load()
            return len(u.render_body().splitlines()) - filler
    finally:
        u.close()


# ---------------------------------------------------------------------------------------------
# a pair in this process


class Events:
    """A unit's events with the monotonic time this process received each (in the callback)."""

    def __init__(self) -> None:
        self.items: list[tuple[float, dict[str, Any]]] = []
        self.cond = threading.Condition()

    def __call__(self, ev: dict[str, Any]) -> None:
        t = time.monotonic()
        if ev.get("type") == "log":
            return
        with self.cond:
            self.items.append((t, ev))
            self.cond.notify_all()

    def mark(self) -> int:
        with self.cond:
            return len(self.items)

    def wait(self, pred: Callable[[dict[str, Any]], bool], since: int, what: str,
             timeout: float = TIMEOUT_S) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, ev in self.items[since:]:
                    if pred(ev):
                        return t, ev
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SystemExit(f"configsync: timed out after {timeout:.0f} s waiting for {what}")
                self.cond.wait(left)


class Pair:
    def __init__(self, tmp: Path, tag: str, config: str) -> None:
        self.owner = f"bench-configsync-{os.getpid()}-{tag}"
        port = allocate_port(self.owner)
        d = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=tmp))
        self.a = loopback_unit("rpa", d / "a", unit="primary", port=port, version=ACTIVE_IMAGE, config=config,
                               pair=f"bench-{tag}", secret="bench-secret")
        self.b = loopback_unit("rpb", d / "b", unit="secondary", port=port, version=STANDBY_IMAGE,
                               pair=f"bench-{tag}", secret="bench-secret")
        self.ea, self.eb = Events(), Events()
        self.a.subscribe(self.ea)
        self.b.subscribe(self.eb)
        # what the Standby reads off the wire for a bulk sync: (receive time, t_active_ms, size, transformed)
        self.rcsf: list[tuple[float, float, int, int]] = []
        orig = self.b._rx_rcsf

        def rx_rcsf(m: dict[str, Any]) -> None:
            self.rcsf.append((time.monotonic(), float(m.get("t_active_ms", 0.0)), int(m.get("size", 0)),
                              int(m.get("transformed", 0))))
            orig(m)
        self.b._rx_rcsf = rx_rcsf          # type: ignore[method-assign]  # instance hook, read-only tap
        self.closed = False

    def start(self) -> None:
        mark_a, mark_b = self.ea.mark(), self.eb.mark()
        self.a.start()
        self.b.start()
        self.eb.wait(lambda e: e["type"] == "rf-standby-hot", mark_b, "the standby to reach STANDBY HOT")
        self.ea.wait(lambda e: e["type"] == "rf-peer-hot", mark_a, "the active to see its peer HOT")
        if self.a.role != "active" or self.b.role != "standby":
            raise SystemExit(f"configsync: unexpected roles {self.a.role}/{self.b.role}")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.a.close()
            self.b.close()
            release_ports(self.owner)


# ---------------------------------------------------------------------------------------------
# the copy floor


class CopyFloor:
    """A receiver on 127.0.0.1 that reads length-prefixed blobs from one persistent connection and
    writes each to a file with fsync; `copy()` times one blob from the first byte sent to fsync done."""

    def __init__(self, tmp: Path) -> None:
        self.path = tmp / "copy-floor.cfg"
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(1)
        self.done: list[float] = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._serve, name="copy-floor", daemon=True)
        self.thread.start()
        self.tx = socket.create_connection(self.srv.getsockname())
        self.tx.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        conn, _ = self.srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            while True:
                head = self._read(conn, 8)
                if head is None:
                    return
                body = self._read(conn, struct.unpack("!Q", head)[0])
                if body is None:
                    return
                with open(self.path, "wb") as f:
                    f.write(body)
                    f.flush()
                    os.fsync(f.fileno())
                t = time.monotonic()
                with self.cond:
                    self.done.append(t)
                    self.cond.notify_all()

    @staticmethod
    def _read(conn: socket.socket, n: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            chunk = conn.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def copy(self, data: bytes) -> float:
        with self.cond:
            k = len(self.done)
        t0 = time.monotonic()
        self.tx.sendall(struct.pack("!Q", len(data)) + data)
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.done) > k, TIMEOUT_S):
                raise SystemExit("configsync: the copy floor's receiver did not finish")
            return (self.done[k] - t0) * 1000

    def close(self) -> None:
        self.tx.close()
        self.thread.join(timeout=5)
        self.srv.close()


def fs_type(path: Path) -> str:
    """The file system the copy floor fsyncs on (an fsync on tmpfs costs nothing)."""
    best, kind = "", "?"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            mnt = parts[1]
            if str(path).startswith(mnt.rstrip("/") + "/") or str(path) == mnt or mnt == "/":
                if len(mnt) >= len(best):
                    best, kind = mnt, parts[2]
    except OSError:
        pass
    return f"{kind} ({best})" if best else kind


# ---------------------------------------------------------------------------------------------
# measurements


def pct(xs: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))]


def bulk_trial(p: Pair) -> dict[str, float]:
    mark_b, mark_a, k = p.eb.mark(), p.ea.mark(), len(p.rcsf)
    with p.a.lock:
        t0 = time.monotonic()
        p.a._bulk_sync()
    t_hot, hot = p.eb.wait(lambda e: e["type"] == "rf-standby-hot", mark_b, "rf-standby-hot after a bulk sync")
    t_peer, peer_hot = p.ea.wait(lambda e: e["type"] == "rf-peer-hot", mark_a, "rf-peer-hot on the active")
    if t_peer < t_hot:
        raise SystemExit("configsync: the active saw its peer HOT before the standby was (a stale bulk-done)")
    t_rx, t_active, size, transformed = p.rcsf[k]
    return {"total_ms": (t_hot - t0) * 1000, "transform_ms": t_active,
            "wire_ms": (t_rx - t0) * 1000 - t_active, "apply_ms": float(hot["bulk_ms"]),
            "active_round_trip_ms": float(peer_hot["bulk_ms"]), "lines": int(hot["lines"]),
            "bytes": size, "transformed": transformed}


def renegotiation_trial(p: Pair) -> float:
    mark_a, mark_b = p.ea.mark(), p.eb.mark()
    with p.b.lock:
        t0 = time.monotonic()
        p.b._become_standby()
    t_hot, _ = p.eb.wait(lambda e: e["type"] == "rf-standby-hot", mark_b, "rf-standby-hot after renegotiation")
    # the Active's bulk-done must be in before the next trial starts one (it carries no generation)
    p.ea.wait(lambda e: e["type"] == "rf-peer-hot", mark_a, "rf-peer-hot after renegotiation")
    return (t_hot - t0) * 1000


def typed_commands(n: int) -> list[tuple[str, bool]]:
    """`n` groups of config commands (each group syncs one measured line, plus an `interface`
    line before an interface-mode command): every 20th needs transformation."""
    out: list[tuple[str, bool]] = []
    for i in range(n):
        if i % 20 == 10:
            kind = (i // 20) % 4
            if kind == 0:
                out.append((f"logging server {_ip(0xAC12, i)}", True))                  # 172.18.x.y
            elif kind == 1:
                out.append((f"ip ssh time-out {30 + i % 90}", True))
            elif kind == 2:
                out.append(("spanning-tree portfast edge default", True))
            else:
                out += [(f"interface eth{2 + i % 3}", False), ("ip flow ingress", True), ("exit", False)]
        elif i % 3 == 0:
            out.append((f"ntp server {_ip(0xAC13, i)}", False))                         # 172.19.x.y
        elif i % 3 == 1:
            out.append((f"snmp-server community typed{i} ro", False))
        else:
            out.append((f"ip route 10.200.{i % 250}.0 255.255.255.0 10.2.0.{2 + i % 200}", False))
    return out


def line_sync(p: Pair, n: int, paste: bool) -> dict[str, Any]:
    term = ScriptedTerminal(p.a, user="admin")
    term.read()
    out = term.cmd("configure terminal")
    if "(config)#" not in out:
        raise SystemExit(f"configsync: configure terminal failed on the active: {out!r}")
    returned: dict[int, tuple[float, str, bool]] = {}     # seq -> (cmd() returned, typed, transformed)
    latencies, wall, failed = [], [], []
    mark = p.eb.mark()

    def sync_event(seq: int, since: int) -> tuple[float, dict[str, Any]]:
        return p.eb.wait(lambda e: e["type"] == "sync-applied" and e["n"] == seq, since, f"sync-applied #{seq}")

    for line, _ in typed_commands(n):
        before_seq, before_tf = p.a._line_seq, p.a.counters["lines_transformed"]
        since = p.eb.mark()
        echo = term.cmd(line)
        t_ret = time.monotonic()
        if line != "exit" and "%" in echo:
            failed.append(line)
        if p.a._line_seq == before_seq:
            continue                      # not synced (navigation)
        seq = p.a._line_seq
        returned[seq] = (t_ret, line, p.a.counters["lines_transformed"] > before_tf)
        if not paste:
            t_app, ev = sync_event(seq, since)
            latencies.append((t_app - t_ret) * 1000)
            wall.append((ev["time"] - ev["sent"]) * 1000)
            if not ev["ok"]:
                failed.append(line)
    term.cmd("end")
    if paste:
        for seq, (t_ret, line, _) in returned.items():
            t_app, ev = sync_event(seq, mark)
            latencies.append((t_app - t_ret) * 1000)
            wall.append((ev["time"] - ev["sent"]) * 1000)
            if not ev["ok"]:
                failed.append(line)
    transformed = sum(1 for v in returned.values() if v[2])
    return {"lines": len(returned), "transformed": transformed, "p50_ms": statistics.median(latencies),
            "p99_ms": pct(latencies, 99), "max_ms": max(latencies), "min_ms": min(latencies),
            "sent_to_applied_p50_ms": statistics.median(wall), "sent_to_applied_p99_ms": pct(wall, 99),
            "failed": failed}


def takeover_trial(tmp: Path, config: str, i: int) -> dict[str, Any]:
    p = Pair(tmp, f"takeover{i}", config)
    try:
        p.start()
        time.sleep(0.2)                   # a few heartbeats in the steady state
        mark = p.eb.mark()
        t0 = time.monotonic()
        p.a.close()
        t_closed = time.monotonic()
        t_down, _ = p.eb.wait(lambda e: e["type"] == "rf-peer-down", mark, "rf-peer-down on the standby")
        t_act, ev = p.eb.wait(lambda e: e["type"] == "rf-active", mark, "rf-active on the standby")
        return {"takeover_ms": (t_act - t0) * 1000, "close_call_ms": (t_closed - t0) * 1000,
                "down_to_active_ms": (t_act - t_down) * 1000, "apply_ms": float(ev.get("apply_ms", 0.0)),
                "stateful": bool(ev.get("stateful")), "role": p.b.role}
    finally:
        p.closed = True
        p.b.close()


def summarize(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    return {**{f"{k}_p50": round(statistics.median(r[k] for r in rows), 3) for k in keys},
            **{f"{k}_max": round(max(r[k] for r in rows), 3) for k in keys}}


def main() -> int:
    global ROUTES
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer trials and typed lines (a smoke run)")
    ap.add_argument("--routes", type=int, default=ROUTES,
                    help=f"static routes per config (default {ROUTES})")
    args = ap.parse_args()
    ROUTES = args.routes
    logging.basicConfig(level=logging.ERROR)
    quick = args.quick
    trials = {1000: 2, 10000: 1} if quick else {1000: 10, 10000: 5}
    reneg_trials = {1000: 1, 10000: 1} if quick else {1000: 5, 10000: 3}
    copy_trials = 3 if quick else 20
    typed_n = 60 if quick else 300
    paste_n = 60 if quick else 300
    takeover_n = 2 if quick else 10
    t_start = time.monotonic()

    data: dict[str, Any] = {"bench": "configsync", "quick": quick, "active_image": ACTIVE_IMAGE,
                            "standby_image": STANDBY_IMAGE, "bulk": {}, "line_sync": {}, "takeover": {}}
    with tempfile.TemporaryDirectory(prefix="configsync-") as td:
        tmp = Path(td)
        base = rendered_base(tmp)
        floor = CopyFloor(tmp)
        data["copy_fs"] = fs_type(floor.path)
        configs = {}
        try:
            for n in SIZES:
                configs[n] = make_config(n - base, int(n * TRANSFORM_SHARE))
                p = Pair(tmp, f"bulk{n}", configs[n])
                try:
                    p.start()
                    reneg = [renegotiation_trial(p) for _ in range(reneg_trials[n])]
                    runs = [bulk_trial(p) for _ in range(trials[n])]
                    text = p.a.render_body().encode()
                    copies = [floor.copy(text) for _ in range(copy_trials)]
                    r0 = runs[0]
                    s = summarize(runs, ("total_ms", "transform_ms", "wire_ms", "apply_ms", "active_round_trip_ms"))
                    copy_p50 = statistics.median(copies)
                    data["bulk"][n] = {"lines": r0["lines"], "transformed": r0["transformed"],
                                       "transformed_pct": round(100 * r0["transformed"] / r0["lines"], 2),
                                       "rcsf_bytes": r0["bytes"], "text_bytes": len(text), "trials": len(runs), **s,
                                       "renegotiation_ms_p50": round(statistics.median(reneg), 3),
                                       "renegotiation_trials": len(reneg),
                                       "copy_ms_p50": round(copy_p50, 3), "copy_ms_max": round(max(copies), 3),
                                       "copy_trials": len(copies),
                                       "bulk_over_copy": round(s["total_ms_p50"] / max(copy_p50, 1e-6), 1)}
                    print(f"bulk {n}: {data['bulk'][n]}", file=sys.stderr)
                    if n == max(SIZES):
                        for mode, count in (("typed", typed_n), ("pasted", paste_n)):
                            r = line_sync(p, count, paste=(mode == "pasted"))
                            data["line_sync"][mode] = {k: (round(v, 3) if isinstance(v, float) else v)
                                                       for k, v in r.items()}
                            print(f"line sync {mode}: {data['line_sync'][mode]}", file=sys.stderr)
                        data["line_sync"]["config_lines"] = n
                finally:
                    p.close()
        finally:
            floor.close()
        tk = [takeover_trial(tmp, configs[min(SIZES)], i) for i in range(takeover_n)]
        data["takeover"] = {"trials": len(tk), "config_lines": min(SIZES),
                            **summarize(tk, ("takeover_ms", "close_call_ms", "down_to_active_ms", "apply_ms")),
                            "all_stateful": all(t["stateful"] for t in tk),
                            "all_active": all(t["role"] == "active" for t in tk)}
        print(f"takeover: {data['takeover']}", file=sys.stderr)

    big = data["bulk"][max(SIZES)]
    typed = data["line_sync"]["typed"]
    data["targets"] = {"bulk_10000_ms": BULK_TARGET_MS, "line_p99_ms": LINE_P99_TARGET_MS}
    data["met"] = {"bulk_10000": big["total_ms_p50"] < BULK_TARGET_MS,
                   "line_p99": typed["p99_ms"] < LINE_P99_TARGET_MS}
    data["wall_s"] = round(time.monotonic() - t_start, 1)

    md = ["# Config sync of an `rp` pair: Active 15.2(1)SY -> Standby 15.1(2)SY", "",
          "Both units in one process (FakeNetlink); the RF channel is the real one (signed JSON lines over TCP on "
          "127.0.0.1). Times are time.monotonic() in that process: the bench's marks and the receive times of its "
          f"event subscribers.{' Quick run (fewer trials).' if quick else ''}", "",
          "## Bulk sync (Active starts `_bulk_sync()` -> Standby's `rf-standby-hot`)", "",
          "| config lines | transformed | trials | bulk sync p50 (max) | Active transform | wire | Standby apply + verify "
          "| Active's round trip (rf-peer-hot) | full renegotiation p50 | copy floor p50 | bulk / copy |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    for n, b in data["bulk"].items():
        md.append(f"| {b['lines']:,} ({b['rcsf_bytes'] / 1024:.0f} KiB) | {b['transformed']} ({b['transformed_pct']}%) "
                  f"| {b['trials']} | {b['total_ms_p50']:.1f} ms ({b['total_ms_max']:.1f}) "
                  f"| {b['transform_ms_p50']:.1f} ms | {b['wire_ms_p50']:.1f} ms | {b['apply_ms_p50']:.1f} ms "
                  f"| {b['active_round_trip_ms_p50']:.1f} ms | {b['renegotiation_ms_p50']:.1f} ms "
                  f"| {b['copy_ms_p50']:.2f} ms | {b['bulk_over_copy']}x |")
    md += ["",
           "Transform: the Active renders its running config and maps every line to the Standby's syntax (the rcsf "
           "message's t_active_ms). Wire: the rcsf message signed, sent, read, verified and queued to the Standby's "
           "RF worker. Apply: the Standby resets its config, applies every line and verifies the result "
           "(rf-standby-hot's bulk_ms). Full renegotiation: the Standby says hello again; CLI dumps, diff lists, "
           "then the bulk sync, to HOT. Copy floor: the same running-config text over one persistent TCP connection "
           f"on 127.0.0.1, written to a file and fsync'd by the receiver (file system: {data['copy_fs']}).", "",
           f"Configs: {ROUTES} static routes, {USERS} local users, 4 interface blocks, the rest `ntp server`, "
           "`snmp-server community` and `logging server` lines (the transformable ones, with `spanning-tree portfast "
           "edge default`, `ip ssh time-out 60` and `ip flow ingress` in each interface).", "",
           f"## Line-by-line sync ({data['line_sync']['config_lines']:,}-line config; `cmd()` returns -> Standby's "
           "`sync-applied`)", "",
           "| mode | lines | transformed | p50 | p99 | max | min | sent -> applied p50 (wall clock) |",
           "|---|---|---|---|---|---|---|---|"]
    for mode, label in (("typed", "typed, one at a time"), ("pasted", "pasted back-to-back")):
        r = data["line_sync"][mode]
        md.append(f"| {label} | {r['lines']} | {r['transformed']} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms "
                  f"| {r['max_ms']:.2f} ms | {r['min_ms']:.2f} ms | {r['sent_to_applied_p50_ms']:.2f} ms |")
    md += ["",
           "The Active sends a line before its prompt returns, so a latency can be below zero when the Standby applies "
           "the line before `cmd()` returns. Pasted: every line typed without waiting, so later lines queue behind "
           "earlier ones on the Standby.", "",
           "## In-process control-plane takeover (`close()` on the Active -> Standby's `rf-active`)", "",
           "| trials | config lines | close -> rf-active p50 (max) | Standby: peer down -> rf-active "
           "| Standby's apply (rf-active apply_ms) | stateful | Active's `close()` returns after |",
           "|---|---|---|---|---|---|---|"]
    t = data["takeover"]
    md.append(f"| {t['trials']} | {t['config_lines']:,} | {t['takeover_ms_p50']:.2f} ms ({t['takeover_ms_max']:.2f}) "
              f"| {t['down_to_active_ms_p50']:.2f} ms | {t['apply_ms_p50']:.2f} ms "
              f"| {'yes' if t['all_stateful'] else 'NO'} | {t['close_call_ms_p50']:.2f} ms |")
    md += ["",
           "A fresh pair per trial. This is the control plane only: the Standby learns of the Active's death from the "
           "connection close (a crashed process), not from the 500 ms heartbeat timeout a powered-off unit needs, "
           "and no traffic is forwarded. The Active drops the channel early in `close()`, so the Standby is "
           "usually active before that call returns. The data-plane outage of a switchover is measured end-to-end elsewhere.", "",
           f"Targets: bulk sync of 10,000 lines under {BULK_TARGET_MS:.0f} ms "
           f"({'met' if data['met']['bulk_10000'] else 'NOT met'}: {big['total_ms_p50']:.1f} ms); line-by-line p99 under "
           f"{LINE_P99_TARGET_MS:.0f} ms ({'met' if data['met']['line_p99'] else 'NOT met'}: {typed['p99_ms']:.2f} ms)."]
    publish("configsync", data, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
