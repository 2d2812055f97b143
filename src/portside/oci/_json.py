"""A small typed-JSON layer under every model here: known fields as attributes, unknown
fields kept in `extra`, source key order and explicit nulls remembered.

Why not plain dicts: callers get attributes and types. Why not a schema library, or even
`dataclasses`: the runtime imports these models on every container start, and generating
~50 dataclasses costs tens of milliseconds there; this builds each class's field table
once with no code generation, and `dataclass_transform` gives type checkers the same
picture as a kw-only dataclass. Documents that came from bytes keep those bytes (see
`Document`), because a digest is over bytes and re-serialising would change it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Self, dataclass_transform

from portside.errors import InvalidDigest, InvalidDocument

if TYPE_CHECKING:
    from portside.oci.digest import Digest

__all__ = [
    "Document",
    "JSONModel",
    "canonical_json",
    "internal",
    "jfield",
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
    "any": (lambda v: True, "a value"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "int": (_is_int, "an integer"),
    "uint": (lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
    "bool": (lambda v: isinstance(v, bool), "a boolean"),
    "number": (lambda v: _is_int(v) or isinstance(v, float), "a number"),
    "strlist": (_is_strlist, "a list of strings"),
    "strmap": (_is_strmap, "an object of strings"),
    "object": (lambda v: isinstance(v, dict), "an object"),
    "list": (lambda v: isinstance(v, list), "a list"),
    "digest": (lambda v: isinstance(v, str), "a digest string"),
    "digests": (_is_strlist, "a list of digest strings"),
    "model": (lambda v: isinstance(v, dict), "an object"),
    "models": (lambda v: isinstance(v, list), "a list of objects"),
    "modelmap": (lambda v: isinstance(v, dict), "an object of objects"),
    "uintlist": (
        lambda v: isinstance(v, list) and all(_is_int(x) and x >= 0 for x in v),
        "a list of non-negative integers",
    ),
}


_MISSING: Any = object()


class _Spec:
    """One attribute of a model: its JSON key (None for internal state) and how to check it."""

    __slots__ = (
        "always",
        "compare",
        "default",
        "factory",
        "key",
        "kind",
        "model",
        "name",
        "required",
    )

    def __init__(
        self,
        key: str | None,
        kind: str,
        model: type[JSONModel] | None,
        default: Any,
        factory: Callable[[], Any] | None,
        always: bool,
        required: bool,
        compare: bool,
    ) -> None:
        if kind not in _CHECKS:
            raise ValueError(f"unknown field kind {kind!r}")
        self.name = ""
        self.key = key
        self.kind = kind
        self.model = model
        self.default = default
        self.factory = factory
        self.always = always
        # Without a default the field is required both in code and in decoded JSON.
        self.required = required or (default is _MISSING and factory is None)
        self.compare = compare

    def initial(self) -> Any:
        if self.factory is not None:
            return self.factory()
        return self.default

    def default_value(self) -> Any:
        """The value a freshly built object has (for "absent and unchanged" checks)."""
        if self.factory is not None:
            return self.factory()
        return None if self.default is _MISSING else self.default


def jfield(
    key: str,
    kind: str = "any",
    *,
    model: type[JSONModel] | None = None,
    default: Any = _MISSING,
    default_factory: Callable[[], Any] | None = None,
    always: bool = False,
    required: bool = False,
) -> Any:
    """An attribute bound to JSON key `key`.

    `always` writes the key even when the value is None; `required` refuses a decoded
    object without it (fields without a default are required anyway).
    """
    return _Spec(key, kind, model, default, default_factory, always, required, True)


def internal(
    *,
    default: Any = _MISSING,
    default_factory: Callable[[], Any] | None = None,
    compare: bool = False,
) -> Any:
    """An attribute that is not part of the JSON (bytes, source keys, ...)."""
    return _Spec(None, "any", None, default, default_factory, False, False, compare)


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


def _decode(spec: _Spec, v: Any, parent: str, key: str) -> Any:
    """Check and convert `v`, the value at `parent`.`key` (the path is built only if needed)."""
    if v is None:
        return None
    kind = spec.kind
    check, what = _CHECKS[kind]
    if not check(v):
        raise InvalidDocument(f"{parent}.{key}: must be {what}, got {_type_name(v)}")
    if kind == "str" or kind == "bool":
        return v
    if kind == "int":
        if not _INT64[0] <= v <= _INT64[1]:
            raise InvalidDocument(f"{parent}.{key}: {v} is out of the int64 range")
        return v
    if kind == "digest" or kind == "digests":
        from portside.oci.digest import Digest  # hashlib only for image documents

        try:
            return Digest.parse(v) if kind == "digest" else [Digest.parse(x) for x in v]
        except InvalidDigest as e:
            raise InvalidDocument(f"{parent}.{key}: {e}") from None
    model = spec.model
    if kind == "model":
        assert model is not None
        return model.from_dict(v, where=f"{parent}.{key}")
    if kind == "models":
        assert model is not None
        return [model.from_dict(x, where=f"{parent}.{key}[{i}]") for i, x in enumerate(v)]
    if kind == "modelmap":
        assert model is not None
        return {k: model.from_dict(x, where=f"{parent}.{key}.{k}") for k, x in v.items()}
    if kind == "strlist":
        return list(v)
    return _copy(v)


def _encode(spec: _Spec, v: Any) -> Any:
    if v is None:
        return None
    if spec.kind == "model":
        return v.to_dict()
    if spec.kind == "models":
        return [x.to_dict() for x in v]
    if spec.kind == "modelmap":
        return {k: x.to_dict() for k, x in v.items()}
    if spec.kind == "digest":
        return str(v)
    if spec.kind == "digests":
        return [str(x) for x in v]
    return _copy(v)


@dataclass_transform(kw_only_default=True, field_specifiers=(jfield, internal))
class JSONModel:
    """Base for JSON objects: known keys as attributes, the rest in `extra` (never lost).

    Subclasses declare attributes as `name: type = jfield("jsonKey", kind, ...)`; the
    constructor takes them as keywords, like a kw-only dataclass.
    """

    _fields: ClassVar[tuple[_Spec, ...]] = ()
    _json_fields: ClassVar[tuple[_Spec, ...]] = ()
    _by_key: ClassVar[dict[str, _Spec]] = {}
    _required: ClassVar[tuple[_Spec, ...]] = ()

    extra: dict[str, Any] = internal(default_factory=dict, compare=True)
    # key -> "was null" for every key of the object this was decoded from (None: built in code)
    _keys: dict[str, bool] | None = internal(default=None)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _collect(cls)

    def __init__(self, **kwargs: Any) -> None:
        for spec in self._fields:
            if spec.name in kwargs:
                value = kwargs.pop(spec.name)
            elif spec.default is _MISSING and spec.factory is None:
                raise TypeError(f"{type(self).__name__}() missing keyword argument {spec.name!r}")
            else:
                value = spec.initial()
            object.__setattr__(self, spec.name, value)
        if kwargs:
            raise TypeError(f"{type(self).__name__}() got unexpected arguments {sorted(kwargs)}")
        self.__post_init__()

    def __post_init__(self) -> None:
        """Hook for subclasses (normalising values built in code)."""

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(
            getattr(self, s.name) == getattr(other, s.name) for s in self._fields if s.compare
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{s.name}={getattr(self, s.name)!r}"
            for s in self._json_fields
            if getattr(self, s.name) is not None
        )
        return f"{type(self).__name__}({parts})"

    def replace(self, **changes: Any) -> Self:
        """A shallow copy with some attributes changed (like dataclasses.replace)."""
        new = type(self).__new__(type(self))
        for spec in self._fields:
            object.__setattr__(new, spec.name, getattr(self, spec.name))
        for name, value in changes.items():
            if not any(s.name == name for s in self._fields):
                raise TypeError(f"{type(self).__name__} has no field {name!r}")
            object.__setattr__(new, name, value)
        new.__post_init__()
        return new

    @classmethod
    def from_dict(cls, d: Any, *, where: str | None = None) -> Self:
        where = where or cls._what()
        if not isinstance(d, dict):
            raise InvalidDocument(f"{where}: must be an object, got {_type_name(d)}")
        by_key = cls._by_key
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in d.items():
            spec = by_key.get(key)
            if spec is None:
                extra[key] = _copy(value)
            else:
                kwargs[spec.name] = _decode(spec, value, where, key)
        for spec in cls._required:
            if spec.name not in kwargs:
                raise InvalidDocument(f"{where}: missing required field {spec.key!r}")
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
        for spec in self._json_fields:
            key = spec.key
            assert key is not None
            v = getattr(self, spec.name)
            if v is None and not spec.always and not (src is not None and src.get(key)):
                continue
            if src is not None and key not in src and not spec.always and v is not None:
                default = spec.default_value()
                if default is not None and v == default:
                    # Decoded without this key and still at its default: leave it out again.
                    continue
            known[key] = _encode(spec, v)
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


def _collect(cls: type[JSONModel]) -> None:
    """Build the field table of `cls`: inherited fields first, then its own in order."""
    specs = {s.name: s for s in cls._fields}
    # Not inspect.get_annotations: importing inspect alone costs more than this module.
    for name in cls.__dict__.get("__annotations__", {}):  # noqa: RUF063
        spec = cls.__dict__.get(name)
        if isinstance(spec, _Spec):
            spec.name = name
            specs.pop(name, None)
            specs[name] = spec
            delattr(cls, name)
    cls._fields = tuple(specs.values())
    cls._json_fields = tuple(s for s in cls._fields if s.key is not None)
    cls._by_key = {s.key: s for s in cls._json_fields if s.key is not None}
    cls._required = tuple(s for s in cls._json_fields if s.required)


_collect(JSONModel)


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


class Document(JSONModel):
    """A JSON model that came from (or will become) content-addressed bytes."""

    raw: bytes | None = internal(default=None)
    _source: dict[str, Any] | None = internal(default=None)
    # The media type it was served as (Content-Type), for documents without a mediaType field.
    header_type: str | None = internal(default=None)

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
        from portside.oci.digest import Digest

        return Digest.from_bytes(self.to_bytes())

    @property
    def size(self) -> int:
        return len(self.to_bytes())
