"""Content digests (`algorithm:hex`), streaming verification and diffID -> chainID.

A `Digest` is a `str` so it can key dicts and go into JSON untouched; parsing is
the only way to get a checked one, so code that holds a `Digest` may trust it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from portside.errors import DigestMismatch, InvalidArgument, InvalidDigest, SizeMismatch

__all__ = [
    "ALGORITHMS",
    "Digest",
    "DigestVerifier",
    "chain_id",
    "chain_ids",
    "new_hasher",
]

# image-spec descriptor grammar: algorithm-component (separator component)* ":" encoded
_GRAMMAR = re.compile(r"([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")

# Registered algorithms we can compute, with the exact encoded form the spec requires.
ALGORITHMS: dict[str, re.Pattern[str]] = {
    "sha256": re.compile(r"[a-f0-9]{64}"),
    "sha512": re.compile(r"[a-f0-9]{128}"),
}


def new_hasher(algorithm: str = "sha256") -> hashlib._Hash:
    """A fresh hashlib object for a supported algorithm (so callers need not know names)."""
    if algorithm not in ALGORITHMS:
        raise InvalidDigest(f"unsupported digest algorithm {algorithm!r}")
    return hashlib.new(algorithm)


class Digest(str):
    """A validated `algorithm:encoded` digest string."""

    __slots__ = ()

    def __new__(cls, value: str) -> Digest:
        if isinstance(value, Digest):
            return value
        _check(value)
        return super().__new__(cls, value)

    @classmethod
    def parse(cls, value: str) -> Digest:
        """Validate `value`; raises InvalidDigest with one line naming the input."""
        if not isinstance(value, str):
            raise InvalidDigest(f"invalid digest {value!r}: not a string")
        return cls(value)

    @classmethod
    def from_bytes(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        h = new_hasher(algorithm)
        h.update(data)
        return str.__new__(cls, f"{algorithm}:{h.hexdigest()}")

    @classmethod
    def from_hex(cls, hexdigest: str, algorithm: str = "sha256") -> Digest:
        return cls(f"{algorithm}:{hexdigest}")

    @property
    def algorithm(self) -> str:
        return self.partition(":")[0]

    @property
    def hex(self) -> str:
        return self.partition(":")[2]

    @property
    def encoded(self) -> str:
        return self.partition(":")[2]

    def short(self, length: int = 12) -> str:
        """The docker-style short ID: first `length` hex characters, no algorithm."""
        return self.hex[:length]

    def hasher(self) -> hashlib._Hash:
        return new_hasher(self.algorithm)

    def verifier(self) -> DigestVerifier:
        return DigestVerifier(self.algorithm)

    def __repr__(self) -> str:
        return f"Digest({str.__repr__(self)})"


def _check(value: str) -> None:
    m = _GRAMMAR.fullmatch(value)
    if m is None:
        raise InvalidDigest(f"invalid digest {value!r}: expected algorithm:hex")
    algorithm, encoded = m.group(1), m.group(2)
    pattern = ALGORITHMS.get(algorithm)
    if pattern is None:
        raise InvalidDigest(f"invalid digest {value!r}: unsupported algorithm {algorithm!r}")
    if pattern.fullmatch(encoded) is None:
        want = 64 if algorithm == "sha256" else 128
        raise InvalidDigest(
            f"invalid digest {value!r}: {algorithm} needs {want} lowercase hex characters"
        )


class DigestVerifier:
    """Hash a stream as it passes and check it at the end (digest and size)."""

    def __init__(self, algorithm: str = "sha256") -> None:
        self.algorithm = algorithm
        self._hash = new_hasher(algorithm)
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)

    def digest(self) -> Digest:
        return str.__new__(Digest, f"{self.algorithm}:{self._hash.hexdigest()}")

    def verify(
        self, expected: Digest | str, expected_size: int | None = None, what: str = "content"
    ) -> Digest:
        """Raise SizeMismatch/DigestMismatch if the stream was not what was announced."""
        expected = Digest.parse(expected)
        if expected_size is not None and expected_size != self.size:
            raise SizeMismatch(expected_size, self.size, what)
        if expected.algorithm != self.algorithm:
            raise InvalidDigest(
                f"{what}: verifier hashed {self.algorithm} but {expected} was expected"
            )
        actual = self.digest()
        if actual != expected:
            raise DigestMismatch(expected, actual, what)
        return actual


def chain_ids(diff_ids: Sequence[Digest | str]) -> list[Digest]:
    """ChainID(L0)=DiffID(L0); ChainID(Ln)=sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    out: list[Digest] = []
    for raw in diff_ids:
        diff_id = Digest.parse(raw)
        if not out:
            out.append(diff_id)
        else:
            out.append(Digest.from_bytes(f"{out[-1]} {diff_id}".encode()))
    return out


def chain_id(diff_ids: Sequence[Digest | str]) -> Digest:
    """The chainID of the top of a layer stack; an empty stack has none."""
    if not diff_ids:
        raise InvalidArgument("chain_id of an empty layer list")
    return chain_ids(diff_ids)[-1]
