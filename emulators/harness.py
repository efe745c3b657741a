"""Run one emulated device in the current process (and network namespace) and drive a CLI session
through stdin/stdout, one JSON object a line - the simplest way for a test to put a device inside a
namespace (`ip netns exec NS python -m emulators.harness ...`) without the network transports.

Requests: {"feed": "text"} types raw text; {"cmd": "line"} types a line and Enter; {"wait": 0.5}
sleeps then returns what arrived meanwhile (asynchronous log messages). Each answer is
{"out": "everything the device wrote since the last answer", "closed": bool}.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from pathlib import Path

from .kinds import device_class


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kind", default="router")
    ap.add_argument("--name", required=True)
    ap.add_argument("--state-dir", required=True, type=Path)
    ap.add_argument("--user", action="append", default=[], help="NAME:PASSWORD (repeatable)")
    ap.add_argument("--enable-secret", default="")
    ap.add_argument("--initial-config", type=Path)
    ap.add_argument("--transport", default="console")
    ap.add_argument("--no-apply", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    users = dict(u.split(":", 1) for u in args.user)
    device = device_class(args.kind)(
        args.name, state_dir=args.state_dir, users=users, enable_secret=args.enable_secret,
        initial_config=args.initial_config.read_text() if args.initial_config else None, apply=not args.no_apply)
    device.start()
    buf = bytearray()
    lock = threading.Lock()
    closed = threading.Event()

    def write(data: bytes) -> None:
        with lock:
            buf.extend(data)

    session = device.new_session(transport=args.transport, write=write, close=closed.set,
                                 authenticated_user=next(iter(users), None) if args.transport == "ssh" else None)
    session.start()

    def answer() -> None:
        with lock:
            out = buf.decode("ascii", "replace")
            buf.clear()
        sys.stdout.write(json.dumps({"out": out, "closed": closed.is_set()}) + "\n")
        sys.stdout.flush()

    answer()
    for raw in sys.stdin:
        try:
            req = json.loads(raw)
        except ValueError:
            continue
        if "feed" in req:
            session.feed(req["feed"].encode("latin-1"))
        elif "cmd" in req:
            session.feed((req["cmd"] + "\r").encode("latin-1"))
        elif "wait" in req:
            time.sleep(float(req["wait"]))
        answer()
    device.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
