"""What "blank" means for text a person or a client gives (a comment, a memory's content).

Blank is only white space in Unicode's sense (the ``White_Space`` property): what the HTTP
schema's ``NOT_BLANK_PATTERN`` (``\\S``) refuses, as the service's validation (pydantic's Rust
regex) and clients and fuzzers (ECMA-262) read it. Python's ``str.strip()`` and
``str.isspace()`` also strip the information separators U+001C-U+001F, which that ``\\S`` counts
as text, so a check written with ``strip()`` refused what the schema accepts (schemathesis:
``{"comment": "\\u001c"}`` answered 400). Every door checks blankness here.
"""

from __future__ import annotations

# Unicode's White_Space property, which \s means in pydantic's (Rust) regex.
WHITESPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


def is_blank(text: str) -> bool:
    """True when ``text`` holds nothing but white space (or nothing)."""
    return not text.strip(WHITESPACE)
