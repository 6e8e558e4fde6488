"""The token format on its own: parts, randomness, checksum, and what counts as malformed."""

from __future__ import annotations

import math

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


def test_the_checksum_is_always_six_characters() -> None:
    assert keyformat.encode_base62(0, 6) == "000000"
    assert len(keyformat.encode_base62(2**32 - 1, 6)) == 6
    assert keyformat.checksum("jmy_x") == keyformat.checksum("jmy_x")


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
