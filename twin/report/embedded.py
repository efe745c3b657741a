"""Reads the data files a single-file Allure 2 report carries inside its index.html.

`allure generate --single-file` writes no data/ or history/ folder: every file of the report is
embedded base64-encoded as `d('history/history-trend.json','...')` calls. The history kept between
runs is harvested from there, and tests read categories and results from there too.
"""
from __future__ import annotations

import base64
import binascii
import re

_CALL = re.compile(r"""\bd\(\s*'([^'\\]+)'\s*,\s*'([A-Za-z0-9+/=]*)'\s*\)""")


def embedded_files(html: str) -> dict[str, bytes]:
    """Report-relative path -> content, for every file embedded in a single-file report."""
    files: dict[str, bytes] = {}
    for m in _CALL.finditer(html):
        try:
            files[m.group(1)] = base64.b64decode(m.group(2), validate=True)
        except (binascii.Error, ValueError):
            continue
    return files
