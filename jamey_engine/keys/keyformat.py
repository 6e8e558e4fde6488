"""The API key token format: ``jmy_<lookup id>_<secret>_<checksum>``, all base62.

* ``jmy_`` is a fixed prefix, so secret scanners (and people) recognise a leaked key.
* the lookup id (12 characters, ~71 bits) is public: it names the key in lists, logs and the
  audit trail, and finds its row without scanning.
* the secret (24 characters, ~142 bits) comes from :mod:`secrets`.
* the checksum is the CRC32 of everything before it, in 6 base62 characters, as GitHub's
  tokens carry: a typo or a random string is rejected by :func:`parse_token` without any
  database query.

Nothing here touches a database or a clock; :mod:`jamey_engine.keys` builds on it.
"""

from __future__ import annotations

import re
import secrets
import zlib
from dataclasses import dataclass

PREFIX = "jmy_"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
LOOKUP_ID_LENGTH = 12
SECRET_LENGTH = 24
CHECKSUM_LENGTH = 6

_TOKEN = re.compile(
    rf"{PREFIX}([0-9A-Za-z]{{{LOOKUP_ID_LENGTH}}})_([0-9A-Za-z]{{{SECRET_LENGTH}}})_([0-9A-Za-z]{{{CHECKSUM_LENGTH}}})"
)
_LOOKUP_ID = re.compile(rf"[0-9A-Za-z]{{{LOOKUP_ID_LENGTH}}}")


@dataclass(frozen=True)
class Token:
    """A well-formed token split into its parts. ``secret`` is sensitive: never log it."""

    lookup_id: str
    secret: str

    def __repr__(self) -> str:  # keep the secret out of tracebacks and debug logs
        return f"Token(lookup_id={self.lookup_id!r}, secret=<hidden>)"


def encode_base62(number: int, width: int) -> str:
    """``number`` in base62, left-padded with ``0`` to ``width`` characters.

    Raises ValueError when the number is negative or does not fit in ``width`` characters.
    """
    if number < 0:
        raise ValueError("base62 encodes numbers of zero or more")
    original = number
    digits = []
    while number:
        number, rest = divmod(number, 62)
        digits.append(ALPHABET[rest])
    text = "".join(reversed(digits)).rjust(width, "0")
    if len(text) > width:
        raise ValueError(f"{original} does not fit in {width} base62 characters")
    return text


def random_base62(length: int) -> str:
    """``length`` characters drawn uniformly from the base62 alphabet by :mod:`secrets`."""
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def checksum(body: str) -> str:
    """The 6-character base62 CRC32 of ``body`` (the token without its checksum part)."""
    return encode_base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def new_lookup_id() -> str:
    """A fresh random public lookup id."""
    return random_base62(LOOKUP_ID_LENGTH)


def build_token(lookup_id: str, secret: str) -> str:
    """Assemble a token from its parts, appending the checksum.

    Raises ValueError when a part has the wrong length or alphabet.
    """
    body = f"{PREFIX}{lookup_id}_{secret}"
    token = f"{body}_{checksum(body)}"
    if not _TOKEN.fullmatch(token):
        raise ValueError("lookup id or secret has the wrong length or characters")
    return token


def new_token(lookup_id: str | None = None) -> tuple[str, Token]:
    """A new random token (with ``lookup_id`` when given): the plaintext and its parts."""
    parts = Token(lookup_id or new_lookup_id(), random_base62(SECRET_LENGTH))
    return build_token(parts.lookup_id, parts.secret), parts


def parse_token(text: str) -> Token | None:
    """Split a presented token into its parts, or ``None`` when it is malformed.

    Malformed means: not ``jmy_`` + 12 + ``_`` + 24 + ``_`` + 6 base62 characters, or a
    checksum that does not match. Pure string work, so garbage never costs a database query.
    """
    match = _TOKEN.fullmatch(text)
    if match is None:
        return None
    body_end = len(text) - CHECKSUM_LENGTH - 1
    if checksum(text[:body_end]) != match.group(3):
        return None
    return Token(match.group(1), match.group(2))


def looks_like_token(text: str) -> bool:
    """True when ``text`` starts with the token prefix (so it is never a legacy key)."""
    return text.startswith(PREFIX)


def is_lookup_id(text: str) -> bool:
    """True when ``text`` has the shape of a lookup id (used to validate CLI arguments)."""
    return bool(_LOOKUP_ID.fullmatch(text))
