"""Configuration sync between units running different images (the specification's Figs. 2-4),
without I/O: the redundancy unit moves the messages, this module decides.

* `negotiate` (on the Standby, step 260-264): the Active diff list (ADL, on the Active's dump but
  not the Standby's) and the Standby diff list (SDL, the other way), each ADL entry's verdict
  (transformable, don't-care, or policy), and whether the images are compatible: an SDL entry with
  no registered transformation that is not on a don't-care list makes them incompatible, and the
  pair runs non-stateful (RPR).
* `LineSync` (on the Active, Figs. 3A and 4): one config line -> synced as is, synced transformed
  (down one level at a time until the Standby's grammar accepts it), not synced (don't-care), or
  handed to the policy.
* `upgrade` (on the Standby, Fig. 3C): up one level at a time while a transformation applies.
* `config_set` and `verify` (step 284): what the Standby must hold after a bulk sync.

The TFT a pair uses is the newer image's (it carries every older level's entries), restricted to the
levels between the two images; the don't-care lists of both images count.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .clidump import TemplateMatcher
from .images import DCL, NotTransformable, Rewrite, dcl_of, in_dcl, sample, strip_no, tft_of

POLICIES = ("drop", "out-of-sync", "downgrade")


def pair_tft(a: int, b: int) -> list[Rewrite]:
    lo, hi = min(a, b), max(a, b)
    return [r for r in tft_of(hi) if lo < r.level <= hi]


def pair_dcl(a: int, b: int) -> tuple[str, ...]:
    return tuple(dict.fromkeys(dcl_of(a) + dcl_of(b)))


@dataclass
class Negotiation:
    """What the Standby works out from the two dumps (and reports to the Active)."""

    active_level: int
    standby_level: int
    adl: list[str]
    sdl: list[str]
    adl_verdicts: dict[str, str]             # template -> "transform" | "dont-care" | "policy"
    sdl_unregistered: list[str]              # SDL entries that make the images incompatible

    @property
    def compatible(self) -> bool:
        return not self.sdl_unregistered

    def reason(self) -> str:
        if self.compatible:
            return ""
        shown = ", ".join(repr(t) for t in self.sdl_unregistered[:3])
        more = f" and {len(self.sdl_unregistered) - 3} more" if len(self.sdl_unregistered) > 3 else ""
        return f"images incompatible: no transformation registered for {shown}{more}"

    def to_dict(self) -> dict[str, Any]:
        return {"active_level": self.active_level, "standby_level": self.standby_level, "adl": self.adl,
                "sdl": self.sdl, "adl_verdicts": self.adl_verdicts, "sdl_unregistered": self.sdl_unregistered}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Negotiation":
        return cls(int(d["active_level"]), int(d["standby_level"]), list(d["adl"]), list(d["sdl"]),
                   dict(d["adl_verdicts"]), list(d["sdl_unregistered"]))


def negotiate(active_dump: list[str], standby_dump: list[str], active_level: int,
              standby_level: int) -> Negotiation:
    a, s = set(active_dump), set(standby_dump)
    adl, sdl = sorted(a - s), sorted(s - a)
    tft = pair_tft(active_level, standby_level)
    dcl = pair_dcl(active_level, standby_level)
    verdicts: dict[str, str] = {}
    for t in adl:
        if any(r.covers(t) for r in tft):
            verdicts[t] = "transform"
        elif in_dcl(t, dcl):
            verdicts[t] = "dont-care"
        else:
            verdicts[t] = "policy"
    # An SDL entry is fine when the transformations lead, level by level, from it to a command
    # the Active's image has (tried on a sample line of the entry), or when nobody needs it synced.
    active_matcher = TemplateMatcher(active_dump)

    def registered(t: str) -> bool:
        if not any(r.covers(t) for r in tft):
            return False
        try:
            moved = to_level(sample(t), standby_level, active_level)
        except Exception:
            return False
        return moved is not None and active_matcher.match(moved) is not None

    unregistered = [t for t in sdl if not in_dcl(t, dcl) and not registered(t)]
    return Negotiation(active_level, standby_level, adl, sdl, verdicts, unregistered)


@dataclass
class Outcome:
    """What happens to one line. `action`: "sync" (send `line`), "dont-care" (not synced, fine),
    "policy" (not synced; the policy decides what that means). `steps`: levels transformed."""

    action: str
    line: str
    original: str
    steps: int = 0
    reason: str = ""


class LineSync:
    """The Active's side of sync for one negotiated pair."""

    def __init__(self, neg: Negotiation, active_dump: list[str], standby_dump: list[str]) -> None:
        self.neg = neg
        self.adl = set(neg.adl)
        self.active = TemplateMatcher(active_dump)
        self.standby = TemplateMatcher(standby_dump)
        self.tft = pair_tft(neg.active_level, neg.standby_level)
        self.dcl = pair_dcl(neg.active_level, neg.standby_level)

    def outcome(self, line: str) -> Outcome:
        """Fig. 4 for one line (indentation kept; `line` is in the Active's syntax)."""
        indent = line[:len(line) - len(line.lstrip())]
        text = line.strip()
        m = self.active.match(text)
        template = m.template if m else None
        if template is None or template not in self.adl:
            return Outcome("sync", line, line)
        if self.neg.active_level < self.neg.standby_level:
            # the Standby is newer: it upgrades what it receives (it said which it can)
            if self.neg.adl_verdicts.get(template) == "transform":
                return Outcome("sync", line, line)
            return self._untransformable(line, template, "no upgrade registered on the Standby")
        current, steps = text, 0
        try:
            for level in range(self.neg.active_level, self.neg.standby_level, -1):
                for r in self.tft:
                    if r.level == level:
                        out = r.down(current)
                        if out is not None:
                            current, steps = out, steps + 1
                            break
                if self.standby.match(current) is not None:
                    return Outcome("sync", indent + current, line, steps)
        except NotTransformable as exc:
            return self._untransformable(line, template, str(exc))
        except Exception as exc:  # a transformation function that fails is a defect of that image
            return self._untransformable(line, template,
                                         f"transformation of {text!r} failed: {type(exc).__name__}: {exc}")
        return self._untransformable(line, template, "no transformation to the Standby's syntax")

    def _untransformable(self, line: str, template: str, reason: str) -> Outcome:
        if in_dcl(template, self.dcl):
            return Outcome("dont-care", line, line, reason="on the don't-care list")
        return Outcome("policy", line, line, reason=reason)


def upgrade(line: str, from_level: int, to_level: int) -> tuple[str, int]:
    """Fig. 3C: raise a line from `from_level`'s syntax one level at a time while a
    transformation applies (lines of the Active's syntax that are valid as they are pass through)."""
    indent = line[:len(line) - len(line.lstrip())]
    current, steps = line.strip(), 0
    for level in range(from_level + 1, to_level + 1):
        for r in tft_of(to_level):
            if r.level == level:
                out = r.up(current)
                if out is not None:
                    current, steps = out, steps + 1
                    break
    return indent + current, steps


def downgrade_text(line: str, from_level: int, to_level: int) -> str | None:
    """A line of `from_level`'s syntax in `to_level`'s (lower), or None where values do not fit.
    Used to compare a Standby's config with its Active's."""
    indent = line[:len(line) - len(line.lstrip())]
    current = line.strip()
    for level in range(from_level, to_level, -1):
        for r in tft_of(from_level):
            if r.level == level:
                try:
                    out = r.down(current)
                except NotTransformable:
                    return None
                if out is not None:
                    current = out
                    break
    return indent + current


def to_level(line: str, from_level: int, target: int) -> str | None:
    if target >= from_level:
        return upgrade(line, from_level, target)[0]
    return downgrade_text(line, from_level, target)


# ---------------------------------------------------------------------------------------------
# the config a unit holds, as a set, for verification


def config_set(text: str) -> set[tuple[str, str]]:
    """(section, line) pairs of a rendered config: order-free, without the lines that differ by
    unit on purpose (the image's `version`)."""
    out: set[tuple[str, str]] = set()
    section = ""
    for raw in text.splitlines():
        if not raw.strip() or raw.startswith(("!", "Building configuration", "Current configuration")):
            continue
        if raw.strip() == "end":
            break
        if raw.startswith(" "):
            out.add((section, raw.strip()))
            continue
        section = raw.strip()
        if section.startswith("version "):
            continue
        out.add(("", section))
    return out


@dataclass
class Verification:
    missing: list[tuple[str, str]] = field(default_factory=list)     # sent, not configured
    extra: list[tuple[str, str]] = field(default_factory=list)       # configured, not sent

    @property
    def ok(self) -> bool:
        return not self.missing and not self.extra

    def describe(self, limit: int = 3) -> str:
        parts = [f"missing {s + ' / ' if s else ''}{l!r}" for s, l in self.missing[:limit]]
        parts += [f"unexpected {s + ' / ' if s else ''}{l!r}" for s, l in self.extra[:limit]]
        return "; ".join(parts)


def verify(expected_text: str, actual_text: str) -> Verification:
    exp, act = config_set(expected_text), config_set(actual_text)
    return Verification(sorted(exp - act), sorted(act - exp))


__all__ = ["DCL", "POLICIES", "LineSync", "Negotiation", "Outcome", "Verification", "config_set",
           "downgrade_text", "negotiate", "pair_dcl", "pair_tft", "strip_no", "to_level", "upgrade", "verify"]
