"""The process that owns a lab started with `twin up`: it boots the lab, then waits for SIGTERM
(`twin down`) and tears the lab down. Mininet's namespaces live as long as its shells, and the
shells as long as their parent: some process has to stay."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from twin.boot import Lab


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="twin-supervisor")
    ap.add_argument("lab_file")
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    lab = Lab.from_file(args.lab_file, prefix=args.prefix)
    try:
        lab.start(timeout=args.timeout, progress=lambda m: print(f"PROGRESS {m}", flush=True))
    except Exception as exc:  # the CLI reads the state file for the error
        print(f"FAILED {exc}", flush=True)
        return 1
    print("READY", flush=True)
    while not stop.wait(1.0):
        pass
    lab.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
