"""The rendered report must make no network request when opened: it is read on lab machines and
CI artefacts without internet, and it must not report to a tracker.

Allure 2 embeds a Google Analytics (gtag.js) snippet unless ALLURE_NO_ANALYTICS=true at generation
time (render-report.sh sets it). This module is the check behind that: `remote_references` lists
every analytics snippet and every remote URL the page would load by itself (script/link/img/iframe/
media sources, CSS url()/@import, fetch/XMLHttpRequest/sendBeacon/WebSocket to a remote host),
including inside the base64 data: scripts and styles a single-file report inlines; `strip_remote`
removes what can be removed. Links a reader clicks (<a href>) and data: or relative URLs are fine.

    python -m twin.report.offline INDEX_HTML [--strip]   # exit 1 if a remote reference remains
"""
from __future__ import annotations

import argparse
import base64
import binascii
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Sequence
from urllib.parse import unquote

# Strings that only an analytics/tracking snippet contains (checked case-insensitively).
ANALYTICS_MARKERS = ("googletagmanager", "google-analytics", "gtag(", "datalayer.push")

_REMOTE = re.compile(r"^\s*(?:(?:https?|wss?|ftp):)?//", re.IGNORECASE)
_Q = r"""["'`]"""
_URL_IN_QUOTES = rf"""{_Q}((?:(?:https?|wss?|ftp):)?//[^"'`\s]+)"""
# Requests a script makes by itself with a literal remote URL.
_JS_REQUESTS = [
    ("fetch", re.compile(rf"\bfetch\(\s*{_URL_IN_QUOTES}")),
    ("XMLHttpRequest", re.compile(rf"\.open\(\s*{_Q}[A-Za-z]+{_Q}\s*,\s*{_URL_IN_QUOTES}")),
    ("sendBeacon", re.compile(rf"\bsendBeacon\(\s*{_URL_IN_QUOTES}")),
    ("WebSocket/EventSource/Worker",
     re.compile(rf"\bnew\s+(?:WebSocket|EventSource|Worker|SharedWorker)\(\s*{_URL_IN_QUOTES}")),
    ("import", re.compile(rf"\b(?:importScripts|import)\(\s*{_URL_IN_QUOTES}")),
    ("src assignment", re.compile(rf"\.src\s*=\s*{_URL_IN_QUOTES}")),
]
_CSS_URLS = [re.compile(r"""url\(\s*["']?((?:(?:https?|ftp):)?//[^"')\s]+)""", re.IGNORECASE),
             re.compile(r"""@import\s+["']((?:(?:https?|ftp):)?//[^"']+)""", re.IGNORECASE)]

# Attributes through which an element loads something when the page opens.
_URL_ATTRS: dict[str, tuple[str, ...]] = {
    "script": ("src",), "link": ("href",), "img": ("src", "srcset"), "iframe": ("src",),
    "frame": ("src",), "embed": ("src",), "object": ("data",), "source": ("src", "srcset"),
    "video": ("src", "poster"), "audio": ("src",), "track": ("src",), "input": ("src",),
    "image": ("href", "xlink:href"), "use": ("href", "xlink:href"), "body": ("background",),
}
_DATA_URI = re.compile(r"^\s*data:([^,;]*)((?:;[^,;]*)*?)(;base64)?,(.*)$", re.IGNORECASE | re.DOTALL)
_MAX_DECODED = 64 * 1024 * 1024


def is_remote(url: str) -> bool:
    """True for http(s)/ws(s)/ftp and scheme-relative (//host) URLs; data:, blob:, relative: False."""
    return bool(_REMOTE.match(url))


def _srcset_urls(value: str) -> list[str]:
    return [part.strip().split()[0] for part in value.split(",") if part.strip()]


def _decode_data_uri(uri: str) -> tuple[str, str] | None:
    """(media type, text) of a data: URI whose content is script or style; None otherwise."""
    m = _DATA_URI.match(uri)
    if not m:
        return None
    media = m.group(1).strip().lower()
    if not any(t in media for t in ("javascript", "ecmascript", "css")):
        return None
    payload = m.group(4)
    if m.group(3):
        if len(payload) > _MAX_DECODED * 4 // 3:
            return None
        try:
            data = base64.b64decode(payload, validate=False)
        except (binascii.Error, ValueError):
            return None
        return media, data.decode("utf-8", "replace")
    return media, unquote(payload)


def _script_findings(code: str, where: str, analytics_word: bool) -> list[str]:
    found = []
    low = code.lower()
    for marker in ANALYTICS_MARKERS:
        if marker in low:
            found.append(f"{where}: analytics snippet ({marker})")
    if analytics_word and "analytics" in low and not any("analytics" in f for f in found):
        found.append(f"{where}: analytics script")
    for label, rx in _JS_REQUESTS:
        for m in rx.finditer(code):
            found.append(f"{where}: {label} {m.group(1)}")
    return found


def _css_findings(css: str, where: str) -> list[str]:
    return [f"{where}: url {m.group(1)}" for rx in _CSS_URLS for m in rx.finditer(css)]


class _Scanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in: str | None = None  # "script" or "style" while inside one with inline content

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        for attr in _URL_ATTRS.get(tag, ()):
            if attr not in a:
                continue
            urls = _srcset_urls(a[attr]) if attr == "srcset" else [a[attr]]
            for url in urls:
                if is_remote(url):
                    self.found.append(f"<{tag} {attr}>: {url.strip()}")
                else:
                    self._scan_data_uri(url, f"<{tag} {attr}> data: URI")
        if tag == "script" and "analytics" in a.get("src", "").lower() and not is_remote(a["src"]):
            self.found.append(f"<script src>: analytics script {a['src']}")
        if "style" in a:
            self.found += _css_findings(a["style"], f"<{tag} style>")
        if tag == "meta" and a.get("http-equiv", "").lower() == "refresh":
            m = re.search(r"url\s*=\s*(\S+)", a.get("content", ""), re.IGNORECASE)
            if m and is_remote(m.group(1).strip("'\"")):
                self.found.append(f"<meta refresh>: {m.group(1)}")
        self._in = tag if tag in ("script", "style") and not a.get("src") else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.found += _script_findings(data, "inline <script>", analytics_word=True)
        elif self._in == "style":
            self.found += _css_findings(data, "inline <style>")

    def _scan_data_uri(self, uri: str, where: str) -> None:
        decoded = _decode_data_uri(uri)
        if decoded is None:
            return
        media, text = decoded
        if "css" in media:
            self.found += _css_findings(text, where)
        else:
            # A bundled app may say "analytics" innocently; only real markers and requests count.
            self.found += _script_findings(text, where, analytics_word=False)


def remote_references(html: str) -> list[str]:
    """Every analytics snippet and remote URL the page would load when opened, one line each
    (empty when the page is offline-clean). Order of first appearance, no duplicates."""
    scanner = _Scanner()
    scanner.feed(html)
    scanner.close()
    found = list(scanner.found)
    low = html.lower()
    for marker in ANALYTICS_MARKERS:
        if marker in low and not any(f"({marker})" in f or marker in f.lower() for f in found):
            found.append(f"page: analytics snippet ({marker})")
    return list(dict.fromkeys(found))


_SCRIPT_ELEMENT = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL)
_SRC_ATTR = re.compile(r"""\b(?:src|href|data|srcset|poster)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""",
                       re.IGNORECASE)
_LOADING_TAGS = re.compile(r"<(?:link|img|source|track|embed|input|iframe|frame)\b[^>]*>(?:\s*</iframe\s*>)?",
                           re.IGNORECASE)


def _attr_urls(tag_text: str) -> list[str]:
    urls: list[str] = []
    for m in _SRC_ATTR.finditer(tag_text):
        value = m.group(1).strip("'\"")
        urls += _srcset_urls(value) if "," in value and not value.startswith("data:") else [value]
    return urls


def strip_remote(html: str) -> tuple[str, list[str]]:
    """The page without remote-loading tags and inline analytics scripts, and what was removed.
    What this cannot remove (remote requests inside a bundled script, CSS url()) stays, for
    `remote_references` to report."""
    removed: list[str] = []

    def script(m: re.Match[str]) -> str:
        opening, body = m.group(1), m.group(2)
        remote = [u for u in _attr_urls(opening) if is_remote(u)]
        low = body.lower()
        if remote or any(marker in low for marker in ANALYTICS_MARKERS):
            removed.append(f"<script>: {remote[0] if remote else body.strip()[:80]}")
            return ""
        return m.group(0)

    def loading_tag(m: re.Match[str]) -> str:
        remote = [u for u in _attr_urls(m.group(0)) if is_remote(u)]
        if remote:
            removed.append(f"{m.group(0).split()[0]}>: {remote[0]}")
            return ""
        return m.group(0)

    html = _SCRIPT_ELEMENT.sub(script, html)
    html = _LOADING_TAGS.sub(loading_tag, html)
    return html, removed


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m twin.report.offline",
                                 description="Check (and with --strip, clean) a report for remote references.")
    ap.add_argument("index_html", type=Path)
    ap.add_argument("--strip", action="store_true", help="remove what can be removed, then check again")
    a = ap.parse_args(argv)
    html = a.index_html.read_text(encoding="utf-8")
    before = remote_references(html)
    for ref in before:
        print(f"offline: found {ref}", file=sys.stderr)
    if before and a.strip:
        html, removed = strip_remote(html)
        for r in removed:
            print(f"offline: stripped {r}", file=sys.stderr)
        a.index_html.write_text(html, encoding="utf-8")
        after = remote_references(html)
    else:
        after = before
    if after:
        print(f"offline: {a.index_html} still holds {len(after)} remote reference(s) (network requests when opened):",
              file=sys.stderr)
        for ref in after:
            print(f"  {ref}", file=sys.stderr)
        return 1
    note = f" ({len(before)} stripped)" if before else ""
    print(f"offline: {a.index_html}: no remote references{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
