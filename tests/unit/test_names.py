"""Names and digests: the distribution grammar, nothing more."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cache_under_test.names import (
    InvalidDigest,
    InvalidName,
    parse_digest,
    parse_name,
    parse_reference,
)

HEX64 = "a" * 64


@pytest.mark.parametrize("name", ["app", "team/app", "a/b/c", "my-app", "a__b", "a.b_c", "x" * 255])
def test_valid_names(name):
    assert parse_name(name) == name


@pytest.mark.parametrize("name", ["", "App", "../etc", "a/../b", "a//b", "/a", "a/", "-a", "a-",
                                  "a..b", "a b", "a%2fb", "x" * 256, "a/./b", "ä"])
def test_invalid_names(name):
    with pytest.raises(InvalidName):
        parse_name(name)


@pytest.mark.parametrize("digest", [f"sha256:{HEX64}", f"sha512:{'b' * 128}"])
def test_valid_digests(digest):
    assert str(parse_digest(digest)) == digest


@pytest.mark.parametrize("digest", [f"md5:{HEX64}", f"sha256:{'A' * 64}", f"sha256:{HEX64[:-1]}",
                                    f"sha256:{HEX64}0", "sha256", f"sha256:../{HEX64[3:]}",
                                    "sha256:" + "g" * 64, "x" * 1000, f"SHA256:{HEX64}"])
def test_invalid_digests(digest):
    with pytest.raises(InvalidDigest):
        parse_digest(digest)


def test_references():
    assert parse_reference("latest") == "latest"
    assert parse_reference(f"sha256:{HEX64}")
    with pytest.raises(InvalidName):
        parse_reference("-bad")
    with pytest.raises(InvalidDigest):
        parse_reference("sha256:bad")


@given(st.text(max_size=300))
def test_any_accepted_name_is_a_safe_relative_path(text):
    try:
        name = parse_name(text)
    except InvalidName:
        return
    parts = name.split("/")
    assert all(p and p not in (".", "..") for p in parts)
    assert not name.startswith("/") and "\\" not in name and "\x00" not in name
