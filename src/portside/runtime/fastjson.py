"""json.loads/dumps over the C accelerator, without importing the `json` package.

The runtime reads and writes JSON on every container start; `json` imports `re`,
and `re` imports `enum`, `functools` and `collections`: a fifth of a `run` of
/bin/true. The C scanner and encoder are what `json` itself uses for the same
inputs; anything unusual (indentation, bytes that are not UTF-8, a BOM, an
error to report) goes to `json`, so results and error messages stay its own.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False  # typing costs start-up time on every container run
if TYPE_CHECKING:
    from typing import Any

_WHITESPACE = " \t\n\r"


class _Context:
    """The attributes the C scanner reads from a json.JSONDecoder, with its defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # duck-typed by the C code


def _unserializable(obj: object) -> object:
    raise TypeError(f"Object of type {obj.__class__.__name__} is not JSON serializable")


def loads(data: str | bytes) -> Any:
    """What json.loads returns, and on bad input the same JSONDecodeError (a ValueError)."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return _slow_loads(data)
    else:
        text = data
    start = len(text) - len(text.lstrip(_WHITESPACE))
    if text.startswith("\ufeff"):
        return _slow_loads(data)
    try:
        obj, end = _scan(text, start)
    except (StopIteration, ValueError, SystemError):
        # the C scanner reports a syntax error through json.decoder, and only if that
        # module is loaded already (SystemError otherwise): json says it properly
        return _slow_loads(data)
    if text[end:].strip(_WHITESPACE):
        return _slow_loads(data)
    return obj


def _slow_loads(data: str | bytes) -> Any:
    import json

    return json.loads(data)


def dumps(
    obj: Any,
    *,
    ensure_ascii: bool = True,
    indent: int | None = None,
    sort_keys: bool = False,
    separators: tuple[str, str] | None = None,
) -> str:
    """json.dumps(obj) with these options (indented output goes through `json`)."""
    if indent is not None:
        import json

        return json.dumps(
            obj,
            ensure_ascii=ensure_ascii,
            indent=indent,
            sort_keys=sort_keys,
            separators=separators,
        )
    encode = _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring
    item_separator, key_separator = separators or (", ", ": ")
    encoder = _json.make_encoder(
        {}, _unserializable, encode, None, key_separator, item_separator, sort_keys, False, True
    )
    return "".join(encoder(obj, 0))
