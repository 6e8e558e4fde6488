"""The token format on its own: parts, randomness, checksum, and what counts as malformed."""

from __future__ import annotations

import math
import zlib

import pytest

from jamey_engine.keys import keyformat


def test_a_new_token_parses_back_to_its_parts() -> None:
    plaintext, parts = keyformat.new_token()
    assert plaintext.startswith("jmy_")
    assert keyformat.parse_token(plaintext) == parts
    assert plaintext.split("_")[1] == parts.lookup_id
    assert plaintext.split("_")[2] == parts.secret


def test_the_secret_carries_at_least_128_bits() -> None:
    assert keyformat.SECRET_LENGTH * math.log2(len(keyformat.ALPHABET)) >= 128
    assert len(keyformat.new_token()[1].secret) == keyformat.SECRET_LENGTH


def test_tokens_are_unique() -> None:
    assert len({keyformat.new_token()[0] for _ in range(1000)}) == 1000


def test_any_changed_character_fails_the_checksum() -> None:
    plaintext, _ = keyformat.new_token()
    for position in range(len(keyformat.PREFIX), len(plaintext)):
        if plaintext[position] == "_":
            continue
        replacement = "A" if plaintext[position] != "A" else "B"
        changed = plaintext[:position] + replacement + plaintext[position + 1 :]
        assert keyformat.parse_token(changed) is None, changed


@pytest.mark.parametrize(
    "text",
    [
        "",
        "jmy_",
        "jmy_abc",
        "xyz_AAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAA_AAAAAA",
        "jmy_AAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAA_AAAAAA",
        "jmy_AAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAA!_AAAAAA",
        "jmy_AAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAA_AAAAAA",
    ],
)
def test_malformed_tokens_do_not_parse(text: str) -> None:
    assert keyformat.parse_token(text) is None


def test_a_valid_token_with_whitespace_around_it_is_malformed() -> None:
    plaintext, _ = keyformat.new_token()
    assert keyformat.parse_token(f" {plaintext}") is None
    assert keyformat.parse_token(f"{plaintext}\n") is None


def _decode_base62(text: str) -> int:
    number = 0
    for character in text:
        number = number * 62 + keyformat.ALPHABET.index(character)
    return number


def test_the_checksum_is_always_six_characters_of_the_bodys_crc32() -> None:
    assert keyformat.encode_base62(0, 6) == "000000"
    assert len(keyformat.encode_base62(2**32 - 1, 6)) == 6
    bodies = ["", "jmy_x", *(f"jmy_{n}" for n in range(2000))]
    checksums = [keyformat.checksum(body) for body in bodies]
    assert {len(value) for value in checksums} == {6}
    assert any(value.startswith("0") for value in checksums), "some CRCs are small enough to be padded"
    for body, value in zip(bodies, checksums, strict=True):
        assert _decode_base62(value) == zlib.crc32(body.encode("ascii")), body
    assert keyformat.checksum("jmy_x") != keyformat.checksum("jmy_y")


def test_base62_refuses_numbers_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        keyformat.encode_base62(62**3, 3)
    with pytest.raises(ValueError):
        keyformat.encode_base62(-1, 3)


def test_build_token_refuses_parts_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError):
        keyformat.build_token("short", "A" * keyformat.SECRET_LENGTH)


def test_the_token_repr_hides_the_secret() -> None:
    _, parts = keyformat.new_token()
    assert parts.secret not in repr(parts)
    assert parts.lookup_id in repr(parts)


def test_lookup_ids_are_recognised() -> None:
    assert keyformat.is_lookup_id(keyformat.new_lookup_id())
    assert not keyformat.is_lookup_id("legacy")
