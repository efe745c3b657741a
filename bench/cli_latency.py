"""CLI round trip and device start-up (issue 3).

- `show version` round trip over the console (pexpect pty) and over SSH (OpenSSH client from the
  management station), p50/p99, against the floor: a bare `cat` echo through the same kind of pexpect
  pty, the cost of the pty and pexpect alone.
- Time to start N emulated routers until every CLI answers (target: 100 in under 20 s).
Prints one JSON line and writes bench/results/cli_latency.md.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_out import publish  # noqa: E402

import pexpect  # noqa: E402

from twin.boot import Lab  # noqa: E402
from twin.lab import load_lab, parse_lab  # noqa: E402


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


def cat_floor(n: int) -> list[float]:
    # the driver's own pexpect settings: no delay before each send (pexpect's default is 50 ms)
    child = pexpect.spawn("cat", encoding="utf-8", echo=False)
    child.delaybeforesend = None
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        child.sendline(f"line{i}")
        child.expect_exact(f"line{i}\r\n")
        out.append((time.perf_counter() - t0) * 1000)
    child.terminate(force=True)
    return out


def round_trips(session, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        text = session.run("show version")
        out.append((time.perf_counter() - t0) * 1000)
        assert "Version" in text
    return out


def console_answers(sock_path: str, timeout: float) -> bool:
    """A CLI answers when its console returns a prompt to an Enter."""
    end = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(b"\r")
        buf = b""
        while time.monotonic() < end:
            buf += s.recv(4096)
            if buf.rstrip().endswith((b">", b"#")):
                return True
    return False


def routers_lab(n: int) -> str:
    lines = [f"name: rt{n}", "nodes:"] + [f"  r{i}: {{kind: router}}" for i in range(1, n + 1)]
    lines += ["  s1: {kind: switch}", "links:"]
    lines += [f"  - endpoints: [r{i}:eth1, s1:e{i}]" for i in range(1, n + 1)]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--commands", type=int, default=200)
    ap.add_argument("--routers", type=int, default=100)
    args = ap.parse_args()
    result: dict = {"bench": "cli_latency"}

    floor = cat_floor(args.commands)
    with Lab(load_lab(ROOT / "labs/default.yaml")) as lab:
        with lab.device("r1").console() as con:
            console = round_trips(con, args.commands)
        with lab.device("r1").ssh() as ssh:
            over_ssh = round_trips(ssh, args.commands)
    for name, vals in (("cat_floor", floor), ("console", console), ("ssh", over_ssh)):
        result[name] = {"p50_ms": round(pct(vals, 50), 3), "p99_ms": round(pct(vals, 99), 3)}
    result["console_vs_floor_p50"] = round(result["console"]["p50_ms"] / result["cat_floor"]["p50_ms"], 2)

    model = parse_lab(routers_lab(args.routers), "generated")
    lab = Lab(model)
    t0 = time.monotonic()
    lab.start(timeout=300)
    ready = time.monotonic() - t0
    try:
        answered = sum(console_answers(lab.state.nodes[r].console, 10) for r in lab.devices())
        all_answer = time.monotonic() - t0
    finally:
        lab.stop()
    result["routers"] = {"count": args.routers, "ready_s": round(ready, 2), "all_cli_answer_s": round(all_answer, 2),
                         "answered": answered}
    md = ["# CLI round trip and device start-up", "",
          f"{args.commands} `show version` round trips on r1 of the default lab; {os.cpu_count()} cores.", "",
          "| path | p50 (ms) | p99 (ms) |", "|---|---|---|"]
    for name in ("cat_floor", "console", "ssh"):
        md.append(f"| {name} | {result[name]['p50_ms']:.2f} | {result[name]['p99_ms']:.2f} |")
    md += ["", f"console p50 / cat floor p50 = {result['console_vs_floor_p50']}", "",
           f"{args.routers} routers: lab ready (every CLI listening) in {ready:.1f} s; every console answered "
           f"a prompt by {all_answer:.1f} s ({answered}/{args.routers})."]
    publish("cli_latency", result, md)
    return 0 if answered == args.routers else 1


if __name__ == "__main__":
    sys.exit(main())
