"""What the failover benchmarks share: a trial that failed, and stopping its probe stream."""
from __future__ import annotations

from typing import Any

from twin.traffic.probe import ProbeResult, ProbeStream


class TrialFailed(RuntimeError):
    pass


def stop_stream(stream: ProbeStream, rec: dict[str, Any]) -> ProbeResult | None:
    """Stop a trial's probe stream, from a `finally`: it never raises, so the trial's own error
    wins; a stream that gave no result returns None with the reason in `rec["probe_error"]`."""
    try:
        return stream.stop()
    except Exception as exc:
        rec.setdefault("probe_error", f"{exc.__class__.__name__}: {exc}")
    return None


def require_result(res: ProbeResult | None, rec: dict[str, Any]) -> ProbeResult:
    if res is None:
        raise TrialFailed(f"probe stream failed: {rec.get('probe_error')}")
    return res
