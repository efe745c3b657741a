"""The RADIUS dictionary shared by the `aaa` server kind and the router's RADIUS client."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pyrad.dictionary import Dictionary

DICTIONARY_FILE = Path(__file__).with_name("dictionary")


@lru_cache(maxsize=1)
def dictionary() -> Dictionary:
    return Dictionary(str(DICTIONARY_FILE))
