"""Blank text: the engine refuses exactly what the HTTP schema's NOT_BLANK pattern refuses.

Seen failing before jamey_engine.text: schemathesis sent a plan approval with the comment
"\\u001c" (schema-valid: \\S matches it), and the engine's str.strip() check answered 400.
"""

from __future__ import annotations

import pydantic
import pytest

from jamey_engine.service.contract import NOT_BLANK_PATTERN
from jamey_engine.text import is_blank


class _Body(pydantic.BaseModel):
    text: str = pydantic.Field(min_length=1, pattern=NOT_BLANK_PATTERN)


def _schema_accepts(text: str) -> bool:
    try:
        _Body(text=text)
    except pydantic.ValidationError:
        return False
    return True


def test_every_character_is_blank_exactly_when_the_schema_refuses_it_alone() -> None:
    disagree = [
        hex(code)
        for code in range(0x3100)
        if not 0xD800 <= code <= 0xDFFF and is_blank(chr(code) * 2) == _schema_accepts(chr(code) * 2)
    ]
    assert disagree == []


@pytest.mark.parametrize("text", ["\x1c", "\x1f note", "a"])
def test_separators_and_letters_are_text(text: str) -> None:
    assert not is_blank(text)


@pytest.mark.parametrize("text", ["", " ", "\t\n\r\v\f", "\xa0\u2003\u3000", "\x85"])
def test_white_space_alone_is_blank(text: str) -> None:
    assert is_blank(text)
