"""Sends forged events to a cluster manager's event bus from inside a lab node (the spoofing tests):
garbage, a `failing` event signed with a wrong secret, or a well-signed one from a name or address
that is not the member's. Repeats for a second, as a ZeroMQ publisher's first frames are lost
until the subscriber's subscription reaches it."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import zmq  # noqa: E402

from emulators.cluster.bus import EVENTS_PORT, Sequencer, encode  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--manager", required=True)
    ap.add_argument("--secret", default="")
    ap.add_argument("--sender", default="intruder")
    ap.add_argument("--garbage", action="store_true")
    ap.add_argument("--seconds", type=float, default=1.2)
    a = ap.parse_args()
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 500)
    pub.connect(f"tcp://{a.manager}:{EVENTS_PORT}")
    seq = Sequencer(a.sender)
    end = time.monotonic() + a.seconds
    while time.monotonic() < end:
        if a.garbage:
            pub.send(b"\x00\xff{not json")
        else:
            pub.send(encode(seq.make("failing", reason="forged by a test"), a.secret.encode()))
        time.sleep(0.1)
    pub.close()
    ctx.term()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
