"""The software images a redundant unit can run, and what each image's command grammar knows.

An image is a level in one release train. Every image accepts the router's commands (interfaces,
addresses, routes, users, lines, AAA, `redundancy`); the *versioned features* below are what
changes between releases, as real IOS trains do:

  * renamed twice, `cmd_x -> cmd_y -> cmd_z`:  `logging A.B.C.D` (15.0) -> `logging host A.B.C.D`
    (15.1) -> `logging server A.B.C.D` (15.2 on);
  * renamed and re-shaped (its range grew, so the way down is lossy): `ip ssh timeout <1-120>`
    (15.0, 15.1) -> `ip ssh time-out <1-300>` (15.2 only; 15.4 drops it with no transformation);
  * renamed, in a sub-mode: `ip route-cache flow` -> `ip flow ingress` (interface mode, 15.2 on),
    and `spanning-tree portfast default` -> `spanning-tree portfast edge default` (15.2 on);
  * added, unit-local, on the don't-care list: `license boot level WORD` (15.1 on) and
    `call-home reporting WORD` (15.2 on);
  * removed, obsolete, on the don't-care list: `scheduler allocate <busy> <idle>` (until 15.1);
  * added with no transformation and no don't-care entry, which makes 15.4 ISSU-incompatible with
    every other image: `platform hardware profile WORD`.

The transformation function table (TFT) holds one entry per change, registered at the level that
made the change; an image carries the entries of its own level and every level below it (a newer
image ships knowing how to talk to the older ones). An entry rewrites one level at a time, up or
down; a rewrite that cannot represent a value (an ssh time-out above 120 going down) returns None,
and the caller treats that line as not transformable.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from emulators.cli.types import NO_MATCH, make_type


@dataclass(frozen=True)
class Image:
    version: str
    level: int
    name: str          # the IOS-style image file name

    @property
    def train(self) -> str:
        return ".".join(re.findall(r"\d+", self.version)[:2])


IMAGES: tuple[Image, ...] = (
    Image("15.0(1)SY", 1, "s2t54-adventerprisek9-mz.SPA.150-1.SY.bin"),
    Image("15.1(2)SY", 2, "s2t54-adventerprisek9-mz.SPA.151-2.SY.bin"),
    Image("15.2(1)SY", 3, "s2t54-adventerprisek9-mz.SPA.152-1.SY.bin"),
    Image("15.4(1)SY", 4, "s2t54-adventerprisek9-mz.SPA.154-1.SY.bin"),
)
DEFAULT_IMAGE = "15.2(1)SY"


class UnknownImage(ValueError):
    """A version no image of the catalogue has."""


def image(version: str) -> Image:
    """The image for a version string (or its file name); UnknownImage lists the known ones."""
    for im in IMAGES:
        if version in (im.version, im.name, f"bootflash:{im.name}"):
            return im
    raise UnknownImage(f"unknown image version {version!r} (known: {', '.join(i.version for i in IMAGES)})")


# ---------------------------------------------------------------------------------------------
# versioned features


@dataclass(frozen=True)
class Feature:
    """One versioned configuration command. `multi`: several lines may coexist (one per value,
    like logging hosts); otherwise a new value replaces the old one. The `no` form takes the same
    arguments (multi) or none (single)."""

    syntax: str
    first: int
    last: int
    mode: str = "config"
    multi: bool = False
    help: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def at(self, level: int) -> bool:
        return self.first <= level <= self.last

    @property
    def keywords(self) -> str:
        """The words before the first argument: the slot a single-valued feature fills."""
        return " ".join(w for w in self.syntax.split() if not w.startswith("<"))

    @property
    def no_syntax(self) -> str:
        if self.multi:
            return "no " + self.syntax
        args = [w for w in self.syntax.split() if w.startswith("<")]
        return "no " + self.keywords + (" [" + " ".join(args) + "]" if args else "")

    def render(self, args: dict[str, object]) -> str:
        return " ".join(str(args[w[1:-1].split(":")[0]]) if w.startswith("<") else w
                        for w in self.syntax.split())


FEATURES: tuple[Feature, ...] = (
    Feature("logging <host:ipv4>", 1, 1, multi=True,
            help={"host": "IP address of the logging host"}),
    Feature("logging host <host:ipv4>", 2, 2, multi=True,
            help={"host": "Set syslog server IP address and parameters"}),
    Feature("logging server <host:ipv4>", 3, 4, multi=True,
            help={"server": "Set syslog server IP address and parameters"}),
    Feature("ip ssh timeout <seconds:int:1-120>", 1, 2,
            help={"ssh": "Configure ssh options", "timeout": "Specify SSH time-out interval",
                  "seconds": "SSH time-out interval (secs)"}),
    Feature("ip ssh time-out <seconds:int:1-300>", 3, 3,
            help={"ssh": "Configure ssh options", "time-out": "Specify SSH time-out interval",
                  "seconds": "SSH time-out interval (secs)"}),
    Feature("spanning-tree portfast default", 1, 2,
            help={"spanning-tree": "Spanning Tree Subsystem", "portfast": "Spanning tree portfast options",
                  "default": "Enable portfast by default on all access ports"}),
    Feature("spanning-tree portfast edge default", 3, 4,
            help={"spanning-tree": "Spanning Tree Subsystem", "portfast": "Spanning tree portfast options",
                  "edge": "Enable portfast edge on all access ports",
                  "default": "Enable portfast edge by default on all access ports"}),
    Feature("ip route-cache flow", 1, 2, mode="config-if",
            help={"route-cache": "Enable fast-switching cache for outgoing packets",
                  "flow": "Enable Flow fast-switching cache"}),
    Feature("ip flow ingress", 3, 4, mode="config-if",
            help={"flow": "NetFlow related commands", "ingress": "Enable inbound NetFlow"}),
    Feature("license boot level <level:word>", 2, 4,
            help={"license": "Configure license features", "boot": "license boot config commands",
                  "level": "License level to boot"}),
    Feature("call-home reporting <mode:word>", 3, 4,
            help={"call-home": "Enter call-home configuration mode",
                  "reporting": "Smart Call Home reporting (this unit's own)", "mode": "anonymous or contact-email-addr"}),
    Feature("scheduler allocate <busy:int:3000-60000> <idle:int:1000-4000>", 1, 2,
            help={"scheduler": "Scheduler parameters", "allocate": "Guarantee CPU time for processes",
                  "busy": "Microseconds handling network interrupts",
                  "idle": "Microseconds running processes"}),
    Feature("platform hardware profile <name:word>", 4, 4,
            help={"platform": "Platform configuration", "hardware": "Hardware configuration",
                  "profile": "Forwarding resource profile", "name": "Profile name"}),
    # unchanged across every image: they make random configs realistic and must sync as they are
    Feature("ntp server <peer:ipv4>", 1, 4, multi=True,
            help={"ntp": "Configure NTP", "server": "Configure NTP server", "peer": "IP address of peer"}),
    Feature("snmp-server community <name:word> ro", 1, 4, multi=True,
            help={"snmp-server": "Modify SNMP engine parameters", "community": "Enable SNMP; set community string",
                  "name": "SNMP community string", "ro": "Read-only access with this community string"}),
    Feature("snmp-server location <text:line>", 1, 4,
            help={"location": "Text for mib object sysLocation", "text": "The physical location of this node"}),
)


def features_at(level: int) -> list[Feature]:
    return [f for f in FEATURES if f.at(level)]


# ---------------------------------------------------------------------------------------------
# templates: a command's words with its arguments as `<type>`


def normalize(template: str) -> str:
    """`logging server <host:ipv4>` -> `logging server <ipv4>`: argument names are not part of
    the grammar two images compare."""
    return " ".join(f"<{arg_spec(w)}>" if w.startswith("<") else w for w in template.split())


def strip_no(text: str) -> tuple[bool, str]:
    t = text.strip()
    if t == "no" or t.startswith("no "):
        return True, t[3:].strip()
    return False, t


def match_template(template: str, line: str) -> list[str] | None:
    """The argument tokens of `line` if it is an instance of `template` (typed, normalized or
    not), else None. A `line` argument takes the rest of the line."""
    words = template.split()
    toks = line.split()
    args: list[str] = []
    for i, w in enumerate(words):
        if i >= len(toks):
            return None
        if w.startswith("<"):
            spec = arg_spec(w)
            if spec == "line":
                args.append(" ".join(toks[i:]))
                return args
            if make_type(spec).parse(toks[i], None) is NO_MATCH:
                return None
            args.append(toks[i])
        elif toks[i] != w:
            return None
    return args if len(toks) == len(words) else None


TYPE_NAMES = frozenset({"int", "ipv4", "mask", "prefix", "interface", "word", "line"})


def arg_spec(word: str) -> str:
    """The type of an argument word, named (`<host:ipv4>`) or not (`<ipv4>`, `<int:1-120>`)."""
    inner = word[1:-1]
    head, _, rest = inner.partition(":")
    return inner if head in TYPE_NAMES or not rest else rest


def sample(template: str) -> str:
    """A concrete line of a template (the smallest value of each argument), to try a
    transformation path on."""
    out = []
    for w in template.split():
        if not w.startswith("<"):
            out.append(w)
            continue
        spec = arg_spec(w)
        name, _, param = spec.partition(":")
        out.append({"ipv4": "10.0.0.1", "mask": "255.255.255.0", "prefix": "10.0.0.0/24",
                    "interface": "eth1"}.get(name, param.split("-")[0] if name == "int" else "x"))
    return " ".join(out)


def fill(template: str, args: list[str]) -> str:
    out, it = [], iter(args)
    for w in template.split():
        out.append(next(it) if w.startswith("<") else w)
    return " ".join(out)


# ---------------------------------------------------------------------------------------------
# the transformation function table


@dataclass(frozen=True)
class Rewrite:
    """`old` (the syntax of level-1) became `new` at `level`. `down_ok(args)` says whether the
    new form's values fit the old one (None: always). Lines with `no` transform with their form."""

    level: int
    old: str
    new: str
    down_ok: Callable[[list[str]], bool] | None = None

    def _apply(self, line: str, src: str, dst: str) -> str | None:
        no, body = strip_no(line)
        args = match_template(src, body)
        if args is None:
            # a `no` form may leave its arguments out (`no ip ssh time-out`)
            kw_src = " ".join(w for w in src.split() if not w.startswith("<"))
            if no and body == kw_src:
                return "no " + " ".join(w for w in dst.split() if not w.startswith("<"))
            return None
        out = fill(dst, args)
        return ("no " + out) if no else out

    def up(self, line: str) -> str | None:
        return self._apply(line, self.old, self.new)

    def down(self, line: str) -> str | None:
        no, body = strip_no(line)
        args = match_template(self.new, body)
        if args is not None and self.down_ok is not None and not self.down_ok(args):
            if no:      # removing a value the older image cannot hold: remove whatever it has
                return "no " + " ".join(w for w in self.old.split() if not w.startswith("<"))
            raise NotTransformable(f"{body!r} has no equivalent before {image_at(self.level).version}")
        return self._apply(line, self.new, self.old)

    def covers(self, template: str) -> bool:
        """Whether a (normalized) dump entry is one of this rewrite's forms."""
        _, body = strip_no(template)
        for t in (normalize(self.old), normalize(self.new)):
            if body == t or t.startswith(body + " <"):
                return True
        return False


class NotTransformable(Exception):
    """A registered transformation exists, but this line's values cannot be expressed."""


TFT: tuple[Rewrite, ...] = (
    Rewrite(2, "logging <host:ipv4>", "logging host <host:ipv4>"),
    Rewrite(3, "logging host <host:ipv4>", "logging server <host:ipv4>"),
    Rewrite(3, "ip ssh timeout <seconds:int:1-120>", "ip ssh time-out <seconds:int:1-300>",
            down_ok=lambda a: int(a[0]) <= 120),
    Rewrite(3, "spanning-tree portfast default", "spanning-tree portfast edge default"),
    Rewrite(3, "ip route-cache flow", "ip flow ingress"),
)

# Don't-care lists: commands that need no sync (unit-local or obsolete), by the image that lists them.
DCL: dict[int, tuple[str, ...]] = {
    2: ("license boot level <word>",),
    3: ("license boot level <word>", "scheduler allocate <int:3000-60000> <int:1000-4000>",
        "call-home reporting <word>"),
    4: ("license boot level <word>", "scheduler allocate <int:3000-60000> <int:1000-4000>",
        "call-home reporting <word>"),
}


def image_at(level: int) -> Image:
    return next(i for i in IMAGES if i.level == level)


def tft_of(level: int) -> list[Rewrite]:
    """The TFT an image at `level` carries: every rewrite up to its own level."""
    return [r for r in TFT if r.level <= level]


def dcl_of(level: int) -> tuple[str, ...]:
    return DCL.get(level, ())


def in_dcl(template: str, dcl: tuple[str, ...] | list[str] | set[str]) -> bool:
    _, body = strip_no(template)
    return any(body == d or d.startswith(body + " <") for d in dcl)
