"""API key tokens: `cdy_` + 40 random base62 characters + a 6-character CRC32 checksum.

The prefix makes a leaked key recognisable; the checksum lets a scanner (and
this server, before any database work) tell a real key from a typo.
"""

from __future__ import annotations

import secrets
import string
import zlib

PREFIX = "cdy_"
_ALPHABET = string.digits + string.ascii_letters
_BODY = 40
_CHECKSUM = 6
LENGTH = len(PREFIX) + _BODY + _CHECKSUM


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rest = divmod(number, 62)
        digits.append(_ALPHABET[rest])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECKSUM)


def generate() -> str:
    """A new token (about 238 bits of entropy)."""
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_BODY))
    return PREFIX + body + _checksum(body)


def well_formed(token: str) -> bool:
    """Prefix, length, alphabet and checksum are right."""
    if len(token) != LENGTH or not token.startswith(PREFIX):
        return False
    body, checksum = token[len(PREFIX) : -_CHECKSUM], token[-_CHECKSUM:]
    if any(c not in _ALPHABET for c in body):
        return False
    return secrets.compare_digest(_checksum(body), checksum)


def masked(hint: str) -> str:
    """What a key looks like outside create, rotate and reveal: its prefix and last four."""
    return f"{PREFIX}{'*' * 8}{hint}"
