"""environment.properties: the versions a run was produced with, shown on the report's overview.

A network twin's results mean little without the exact Open vSwitch, Mininet, os-ken, kernel and twin
commit behind them: an outage window that doubled is a regression only if nothing else changed.
Every probe is best effort (a missing tool gives "unknown"), since a report must still render.
"""
from __future__ import annotations

import importlib.metadata
import json
import platform
import re
import subprocess
from pathlib import Path

UNKNOWN = "unknown"
FILE_NAME = "environment.properties"

# The keys, in the order the report shows them.
KEYS = ("Open vSwitch", "Mininet", "mnexec", "os-ken", "Python", "Kernel", "Debian", "twin",
        "twin commit", "Java", "Allure")

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run(cmd: list[str], cwd: Path | None = None) -> str | None:
    """stdout+stderr of a command, or None when it is missing, fails or hangs (never raises)."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, cwd=cwd)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return (out.stdout + out.stderr).strip()


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return UNKNOWN


def ovs_version() -> str:
    """'3.1.0' from the first line of `ovs-vsctl --version` ('ovs-vsctl (Open vSwitch) 3.1.0')."""
    out = _run(["ovs-vsctl", "--version"])
    m = re.search(r"Open vSwitch\)\s+(\S+)", out or "")
    return m.group(1) if m else UNKNOWN


def mnexec_version() -> str:
    """`mnexec -v` when it prints one; Debian's mininet builds print nothing, so fall back to the
    version of the Debian package that provides /usr/bin/mnexec."""
    out = _run(["mnexec", "-v"])
    if out:
        return out.splitlines()[0].strip()
    deb = _run(["dpkg-query", "-W", "-f=${Version}", "mininet"])
    return f"debian package mininet {deb}" if deb else UNKNOWN


def debian_release(root: Path = Path("/")) -> str:
    """'Debian GNU/Linux 12 (bookworm), 12.11': the release name and the point release."""
    pretty = None
    try:
        for line in (root / "etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                pretty = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    try:
        point = (root / "etc/debian_version").read_text().strip()
    except OSError:
        point = None
    parts = [p for p in (pretty, point) if p]
    return ", ".join(parts) if parts else UNKNOWN


def git_commit(repo: Path = REPO_ROOT) -> str:
    """Short commit of the work tree, with '-dirty' when tracked files differ from it."""
    head = _run(["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"])
    if not head:
        return UNKNOWN
    status = _run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"])
    return head + ("-dirty" if status else "")


def java_version() -> str:
    """'17.0.15' from `java -version` (Allure 2 runs on it)."""
    out = _run(["java", "-version"])
    m = re.search(r'version "([^"]+)"', out or "")
    return m.group(1) if m else UNKNOWN


def allure_version(allure_bin: Path | None) -> str:
    """Version of the npm allure-commandline behind a node_modules/.bin/allure link, read from its
    package.json (running `allure --version` would start a JVM just for that)."""
    if allure_bin is None:
        return UNKNOWN
    try:
        pkg = Path(allure_bin).resolve().parents[1] / "package.json"
        return str(json.loads(pkg.read_text())["version"])
    except (OSError, ValueError, KeyError, IndexError):
        return UNKNOWN


def collect(allure_bin: Path | None = None, repo: Path = REPO_ROOT) -> dict[str, str]:
    """Every key of KEYS with its value on this machine."""
    values = {
        "Open vSwitch": ovs_version(),
        "Mininet": _dist_version("mininet"),
        "mnexec": mnexec_version(),
        "os-ken": _dist_version("os-ken"),
        "Python": platform.python_version(),
        "Kernel": platform.release() or UNKNOWN,
        "Debian": debian_release(),
        "twin": _dist_version("twin"),
        "twin commit": git_commit(repo),
        "Java": java_version(),
        "Allure": allure_version(allure_bin),
    }
    return {k: values[k] for k in KEYS}


def _escape(text: str, is_key: bool) -> str:
    """Java .properties escaping, so Allure's reader gets back exactly what was written."""
    out = []
    for i, ch in enumerate(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch in "=:#!":
            out.append("\\" + ch)
        elif ch == " " and (is_key or i == 0):
            out.append("\\ ")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) > 0x7E:
            out.append("".join(f"\\u{u:04x}" for u in _utf16(ch)))
        else:
            out.append(ch)
    return "".join(out)


def _utf16(ch: str) -> list[int]:
    data = ch.encode("utf-16-be")
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]


def format_properties(values: dict[str, str]) -> str:
    """The text of a .properties file, one `key=value` a line, in the given order."""
    return "".join(f"{_escape(k, True)}={_escape(v, False)}\n" for k, v in values.items())


def parse_properties(text: str) -> dict[str, str]:
    """Reads back what format_properties writes (enough of the format for tests and tools)."""
    result: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.lstrip()
        if not line or line[0] in "#!":
            continue
        key, value, cur, i, in_key = "", "", [], 0, True
        while i < len(line):
            ch = line[i]
            if ch == "\\" and i + 1 < len(line):
                nxt = line[i + 1]
                if nxt == "u":
                    cur.append(chr(int(line[i + 2:i + 6], 16)))
                    i += 6
                    continue
                cur.append({"n": "\n", "r": "\r", "t": "\t"}.get(nxt, nxt))
                i += 2
                continue
            if in_key and ch in "=:":
                key, cur, in_key = "".join(cur), [], False
                i += 1
                continue
            cur.append(ch)
            i += 1
        if in_key:
            key = "".join(cur)
        else:
            value = "".join(cur)
        # Surrogate pairs written as two \u escapes come back joined.
        result[key] = value.encode("utf-16", "surrogatepass").decode("utf-16")
    return result


def write(results_dir: Path, values: dict[str, str]) -> Path:
    """Writes environment.properties into the results directory, replacing any earlier one."""
    path = Path(results_dir) / FILE_NAME
    path.write_text(format_properties(values), encoding="utf-8")
    return path
