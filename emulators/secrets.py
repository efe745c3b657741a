"""IOS password storage: `secret 5` (MD5-crypt, `$1$salt$hash`) and cleartext `password 0`.

Type 5 is what `show running-config` prints for secrets, so configs never carry cleartext and a
printed config can be fed back unchanged. MD5-crypt is implemented here because the standard
library's `crypt` module is deprecated; it is cheap enough (about a millisecond) that a hundred
emulators hashing their users at boot cost nothing.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets as _random

_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _to64(v: int, n: int) -> str:
    out = ""
    for _ in range(n):
        out += _ITOA64[v & 0x3F]
        v >>= 6
    return out


def md5_crypt(password: str, salt: str) -> str:
    """The FreeBSD/Cisco MD5-crypt of `password` with `salt` (up to 8 characters)."""
    pw = password.encode()
    s = salt[:8].encode()
    magic = b"$1$"
    alt = hashlib.md5(pw + s + pw).digest()
    ctx = pw + magic + s
    n = len(pw)
    while n > 0:
        ctx += alt[: min(16, n)]
        n -= 16
    i = len(pw)
    while i:
        ctx += b"\x00" if i & 1 else pw[:1]
        i >>= 1
    final = hashlib.md5(ctx).digest()
    for r in range(1000):
        c = pw if r & 1 else final
        if r % 3:
            c += s
        if r % 7:
            c += pw
        c += final if r & 1 else pw
        final = hashlib.md5(c).digest()
    f = final
    out = ""
    for a, b, cc in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)):
        out += _to64((f[a] << 16) | (f[b] << 8) | f[cc], 4)
    out += _to64(f[11], 2)
    return f"$1${salt[:8]}${out}"


def hash_secret(password: str) -> str:
    """A new type-5 hash with a random 4-character salt, as IOS makes them."""
    salt = "".join(_random.choice(_ITOA64) for _ in range(4))
    return md5_crypt(password, salt)


def is_type5(value: str) -> bool:
    parts = value.split("$")
    return len(parts) == 4 and parts[0] == "" and parts[1] == "1" and 0 < len(parts[2]) <= 8 and len(parts[3]) == 22


def verify(password: str, enc_type: int, stored: str) -> bool:
    """Check a typed password against a stored `secret 5` hash or `password 0` text."""
    if enc_type == 5:
        salt = stored.split("$")[2] if is_type5(stored) else ""
        return hmac.compare_digest(md5_crypt(password, salt), stored)
    return hmac.compare_digest(password.encode(), stored.encode())
