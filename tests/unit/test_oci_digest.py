"""Digest parsing, hashing, streaming verification and chainIDs."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portside.errors import DigestMismatch, InvalidArgument, InvalidDigest, SizeMismatch
from portside.oci.digest import Digest, DigestVerifier, chain_id, chain_ids, new_hasher

HEX = "0123456789abcdef"
EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# No timing in tests: a loaded CI machine must not turn slowness into failures.
RELAXED = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100)


@RELAXED
@given(st.text(alphabet=HEX, min_size=64, max_size=64))
def test_sha256_round_trip(hexpart: str) -> None:
    d = Digest.parse(f"sha256:{hexpart}")
    assert str(d) == f"sha256:{hexpart}"
    assert d.algorithm == "sha256"
    assert d.hex == hexpart
    assert Digest.from_hex(hexpart) == d
    assert json.loads(json.dumps({d: d})) == {d: d}


@RELAXED
@given(st.text(alphabet=HEX, min_size=128, max_size=128))
def test_sha512_accepted(hexpart: str) -> None:
    d = Digest.parse(f"sha512:{hexpart}")
    assert d.algorithm == "sha512"
    assert d.hex == hexpart


@RELAXED
@given(st.binary(max_size=4096), st.sampled_from(["sha256", "sha512"]))
def test_from_bytes_matches_hashlib(data: bytes, algorithm: str) -> None:
    d = Digest.from_bytes(data, algorithm)
    assert d == f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
    assert Digest.parse(str(d)) == d
    h = d.hasher()
    h.update(data)
    assert h.hexdigest() == d.hex


@RELAXED
@given(st.integers(min_value=0, max_value=200).filter(lambda n: n != 64))
def test_sha256_wrong_length_rejected(n: int) -> None:
    with pytest.raises(InvalidDigest):
        Digest.parse("sha256:" + "a" * n)


@RELAXED
@given(st.integers(min_value=1, max_value=300).filter(lambda n: n != 128))
def test_sha512_wrong_length_rejected(n: int) -> None:
    with pytest.raises(InvalidDigest):
        Digest.parse("sha512:" + "a" * n)


@RELAXED
@given(
    st.text(alphabet=HEX, min_size=64, max_size=64).filter(lambda s: any(c.isalpha() for c in s))
)
def test_uppercase_hex_rejected(hexpart: str) -> None:
    with pytest.raises(InvalidDigest, match="lowercase"):
        Digest.parse("sha256:" + hexpart.upper())


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sha256",
        "sha256:",
        ":" + "a" * 64,
        "SHA256:" + "a" * 64,
        "md5:" + "a" * 32,
        "sha1:" + "a" * 40,
        "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
        "sha256:" + "a" * 64 + "\n",
        " sha256:" + "a" * 64,
        "sha256:" + "g" * 64,
        "sha256::" + "a" * 64,
        "sha-:abc",
        "-sha256:" + "a" * 64,
    ],
)
def test_invalid_digests(text: str) -> None:
    with pytest.raises(InvalidDigest) as info:
        Digest.parse(text)
    assert repr(text) in str(info.value)
    assert "\n" not in str(info.value).replace("\\n", "")


def test_unknown_algorithm_names_it() -> None:
    with pytest.raises(InvalidDigest, match="unsupported algorithm 'blake3'"):
        Digest.parse("blake3:" + "a" * 64)
    with pytest.raises(InvalidDigest):
        new_hasher("md5")


def test_digest_is_str_and_constructor_validates() -> None:
    d = Digest(EMPTY)
    assert isinstance(d, str)
    assert Digest(d) is d
    assert d.short() == "e3b0c44298fc"
    assert {d: 1}[EMPTY] == 1
    with pytest.raises(InvalidDigest):
        Digest("nope")
    with pytest.raises(InvalidDigest):
        Digest.parse(123)  # type: ignore[arg-type]


@RELAXED
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_verifier_accepts_stream(chunks: list[bytes]) -> None:
    data = b"".join(chunks)
    expected = Digest.from_bytes(data)
    v = DigestVerifier()
    for c in chunks:
        v.update(c)
    assert v.size == len(data)
    assert v.verify(expected, len(data)) == expected
    assert v.verify(expected) == expected


def test_verifier_mismatches() -> None:
    v = DigestVerifier()
    v.update(b"hello")
    with pytest.raises(SizeMismatch) as s:
        v.verify(Digest.from_bytes(b"hello"), 6)
    assert (s.value.expected, s.value.actual) == (6, 5)
    with pytest.raises(DigestMismatch) as m:
        v.verify(Digest(EMPTY), 5, what="blob x")
    assert m.value.expected == EMPTY
    assert m.value.actual == Digest.from_bytes(b"hello")
    assert "blob x" in str(m.value)
    v512 = Digest.from_bytes(b"hello", "sha512").verifier()
    v512.update(b"hello")
    assert v512.verify(Digest.from_bytes(b"hello", "sha512"), 5).algorithm == "sha512"
    with pytest.raises(InvalidDigest):
        v512.verify(Digest.from_bytes(b"hello"))


def test_chain_ids_per_image_spec() -> None:
    a = Digest.from_bytes(b"a")
    b = Digest.from_bytes(b"b")
    c = Digest.from_bytes(b"c")
    ab = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    abc = "sha256:" + hashlib.sha256(f"{ab} {c}".encode()).hexdigest()
    assert chain_ids([a, b, c]) == [a, ab, abc]
    assert chain_id([a]) == a
    assert chain_id([a, b, c]) == abc
    assert chain_ids([]) == []
    with pytest.raises(InvalidArgument):
        chain_id([])
    with pytest.raises(InvalidDigest):
        chain_ids([a, "bogus"])


def test_chain_id_known_value() -> None:
    # Expected value from: printf 'sha256:1..1 sha256:2..2' | sha256sum
    l0 = Digest("sha256:" + "1" * 64)
    l1 = Digest("sha256:" + "2" * 64)
    want = "9932074217c35353d2e03a3f5a86549f7c67bfeb0ba53e23d69f4d4c8f7958f5"
    assert chain_id([l0, l1]) == "sha256:" + want
