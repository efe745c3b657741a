"""Packet captures inside a node (tcpdump in its namespace), kept as pcap evidence for the report."""
from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from twin.nodeexec import NodeExec


class Capture:
    """`with lab.capture("h2", "eth1", "udp") as cap: ...` then `cap.count()`; the pcap stays."""

    def __init__(self, nodes: NodeExec, node: str, intf: str, bpf: str, path: Path) -> None:
        self.nodes, self.node, self.intf, self.bpf, self.path = nodes, node, intf, bpf, Path(path)
        self._proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 5.0) -> "Capture":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        argv = ["tcpdump", "-i", self.intf, "-n", "-U", "--immediate-mode", "-s", "256", "-w", str(self.path)] + (self.bpf.split() if self.bpf else [])
        self._proc = self.nodes.popen(self.node, argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # tcpdump says "listening on ..." once the capture is armed
        deadline = time.monotonic() + timeout_s
        line = ""
        while time.monotonic() < deadline:
            line = self._proc.stderr.readline()
            if "listening on" in line:
                return self
            if self._proc.poll() is not None:
                break
        raise RuntimeError(f"tcpdump on {self.node}:{self.intf} did not start: {line.strip() or self._proc.returncode}")

    def stop(self) -> Path:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        return self.path

    def count(self, bpf: str = "") -> int:
        """Packets in the pcap (optionally those matching a filter)."""
        out = subprocess.run(["tcpdump", "-n", "-r", str(self.path)] + (bpf.split() if bpf else []),
                             capture_output=True, text=True, timeout=30)
        return len([l for l in out.stdout.splitlines() if l.strip()])

    def __enter__(self) -> "Capture":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
