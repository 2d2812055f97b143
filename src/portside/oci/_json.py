"""A small typed-JSON layer under every model here: known fields as dataclass attributes,
unknown fields kept in `extra`, source key order and explicit nulls remembered.

Why not plain dicts: callers get attributes and types; why not a schema library: the
runtime imports these models on every container start, so this stays a few dozen
lines of stdlib. Documents that came from bytes keep those bytes (see `Document`),
because a digest is over bytes and re-serialising would change it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, Self

from portside.errors import InvalidDigest, InvalidDocument
from portside.oci.digest import Digest

__all__ = [
    "Document",
    "JSONModel",
    "canonical_json",
    "jkey",
    "load_json",
]

# Kinds of field values and the check each applies while decoding.
_INT64 = (-(2**63), 2**63 - 1)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_strlist(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _is_strmap(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(x, str) for x in v.values())


_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "any": (lambda v: True, "value"),
    "str": (lambda v: isinstance(v, str), "string"),
    "int": (_is_int, "integer"),
    "uint": (lambda v: _is_int(v) and v >= 0, "non-negative integer"),
    "bool": (lambda v: isinstance(v, bool), "boolean"),
    "number": (lambda v: _is_int(v) or isinstance(v, float), "number"),
    "strlist": (_is_strlist, "list of strings"),
    "strmap": (_is_strmap, "object of strings"),
    "object": (lambda v: isinstance(v, dict), "object"),
    "list": (lambda v: isinstance(v, list), "list"),
    "digest": (lambda v: isinstance(v, str), "digest string"),
    "digests": (_is_strlist, "list of digest strings"),
    "model": (lambda v: isinstance(v, dict), "object"),
    "models": (lambda v: isinstance(v, list), "list of objects"),
}


def jkey(
    key: str,
    kind: str = "any",
    *,
    model: type[JSONModel] | None = None,
    always: bool = False,
    required: bool = False,
) -> dict[str, Any]:
    """Field metadata binding a dataclass field to JSON key `key`.

    `always` writes the key even when the value is None; `required` refuses a decoded
    object without it (fields without a default are required anyway).
    """
    if kind not in _CHECKS:
        raise ValueError(f"unknown field kind {kind!r}")
    return {"json": key, "kind": kind, "model": model, "always": always, "required": required}


@dataclass(frozen=True)
class _Spec:
    name: str
    key: str
    kind: str
    model: type[JSONModel] | None
    always: bool
    required: bool
    default: Any


_SPECS: dict[type, tuple[_Spec, ...]] = {}


_NO_DEFAULT = object()


def _default_of(f: Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return _NO_DEFAULT


def _specs(cls: type) -> tuple[_Spec, ...]:
    cached = _SPECS.get(cls)
    if cached is None:
        cached = tuple(
            _Spec(
                f.name,
                f.metadata["json"],
                f.metadata["kind"],
                f.metadata["model"],
                f.metadata["always"],
                f.metadata["required"] or (f.default is MISSING and f.default_factory is MISSING),
                _default_of(f),
            )
            for f in fields(cls)
            if "json" in f.metadata
        )
        _SPECS[cls] = cached
    return cached


def _copy(v: Any) -> Any:
    """Deep copy of decoded JSON (dicts and lists only), so models never alias inputs."""
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_copy(x) for x in v]
    return v


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _decode(spec: _Spec, v: Any, where: str) -> Any:
    if v is None:
        return None
    check, what = _CHECKS[spec.kind]
    if not check(v):
        raise InvalidDocument(f"{where}: must be a {what}, got {_type_name(v)}")
    try:
        if spec.kind == "digest":
            return Digest.parse(v)
        if spec.kind == "digests":
            return [Digest.parse(x) for x in v]
    except InvalidDigest as e:
        raise InvalidDocument(f"{where}: {e}") from None
    if spec.kind == "model":
        assert spec.model is not None
        return spec.model.from_dict(v, where=where)
    if spec.kind == "models":
        assert spec.model is not None
        return [spec.model.from_dict(x, where=f"{where}[{i}]") for i, x in enumerate(v)]
    if spec.kind == "int" and not _INT64[0] <= v <= _INT64[1]:
        raise InvalidDocument(f"{where}: {v} is out of the int64 range")
    return _copy(v)


def _encode(spec: _Spec, v: Any) -> Any:
    if v is None:
        return None
    if spec.kind == "model":
        return v.to_dict()
    if spec.kind == "models":
        return [x.to_dict() for x in v]
    if spec.kind == "digest":
        return str(v)
    if spec.kind == "digests":
        return [str(x) for x in v]
    return _copy(v)


@dataclass(kw_only=True)
class JSONModel:
    """Base for JSON objects: known keys as fields, the rest in `extra` (never lost)."""

    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    # key -> "was null" for every key of the object this was decoded from (None: built in code)
    _keys: dict[str, bool] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_dict(cls, d: Any, *, where: str | None = None) -> Self:
        where = where or cls._what()
        if not isinstance(d, dict):
            raise InvalidDocument(f"{where}: must be a JSON object, got {_type_name(d)}")
        kwargs: dict[str, Any] = {}
        known: set[str] = set()
        for spec in _specs(cls):
            known.add(spec.key)
            if spec.key in d:
                kwargs[spec.name] = _decode(spec, d[spec.key], f"{where}.{spec.key}")
            elif spec.required:
                raise InvalidDocument(f"{where}: missing required field {spec.key!r}")
        extra = {k: _copy(v) for k, v in d.items() if k not in known}
        obj = cls(**kwargs, extra=extra, _keys={k: v is None for k, v in d.items()})
        obj._validate(where)
        return obj

    @classmethod
    def _what(cls) -> str:
        return cls.__name__

    def _validate(self, where: str) -> None:
        """Checks beyond types; subclasses raise InvalidDocument naming `where`."""

    def to_dict(self) -> dict[str, Any]:
        known: dict[str, Any] = {}
        src = self._keys
        for spec in _specs(type(self)):
            v = getattr(self, spec.name)
            if v is None and not spec.always and not (src is not None and src.get(spec.key)):
                continue
            if (
                src is not None
                and spec.key not in src
                and not spec.always
                and spec.default is not None
                and v == spec.default
            ):
                # Decoded without this key and still at its default: leave it out again.
                continue
            known[spec.key] = _encode(spec, v)
        out: dict[str, Any] = {}
        if src is not None:
            for k in src:
                if k in known:
                    out[k] = known.pop(k)
                elif k in self.extra:
                    out[k] = _copy(self.extra[k])
        out.update(known)
        for k, v in self.extra.items():
            if k not in out and k not in known:
                out[k] = _copy(v)
        return out

    def copy(self) -> Self:
        """A deep copy that keeps the source key order (not the raw bytes)."""
        new = type(self).from_dict(self.to_dict())
        new._keys = dict(self._keys) if self._keys is not None else None
        return new


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def load_json(raw: bytes | str, what: str) -> Any:
    """Decode JSON or raise one InvalidDocument line naming `what`."""
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise InvalidDocument(f"{what}: not valid JSON: {e}") from None


def canonical_json(d: Any) -> bytes:
    """How we write new documents: compact, key order as given, UTF-8."""
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(kw_only=True)
class Document(JSONModel):
    """A JSON model that came from (or will become) content-addressed bytes."""

    raw: bytes | None = field(default=None, compare=False, repr=False)
    _source: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    # The media type it was served as (Content-Type), for documents without a mediaType field.
    header_type: str | None = field(default=None, compare=False, repr=False)

    @classmethod
    def _load(cls, raw: bytes, what: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Two independent decodes: one to build from, one to detect later edits against."""
        if not isinstance(raw, bytes | bytearray | memoryview):
            raise TypeError(f"{what}: expected bytes, got {type(raw).__name__}")
        raw = bytes(raw)
        d = load_json(raw, what)
        if not isinstance(d, dict):
            raise InvalidDocument(f"{what}: must be a JSON object, got {_type_name(d)}")
        return d, json.loads(raw)

    def _attach(self, raw: bytes, source: dict[str, Any]) -> None:
        self.raw = bytes(raw)
        self._source = source

    def copy(self) -> Self:
        new = super().copy()
        new.header_type = self.header_type
        return new

    def is_modified(self) -> bool:
        return self.raw is None or self._source is None or self.to_dict() != self._source

    def to_bytes(self) -> bytes:
        """The exact bytes parsed if nothing changed since; canonical JSON otherwise."""
        if self.raw is not None and not self.is_modified():
            return self.raw
        return canonical_json(self.to_dict())

    @property
    def digest(self) -> Digest:
        return Digest.from_bytes(self.to_bytes())

    @property
    def size(self) -> int:
        return len(self.to_bytes())
