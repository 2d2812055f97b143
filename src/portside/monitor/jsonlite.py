"""JSON for the monitor without the `json` package.

`import json` pulls in `re` and the pure-Python decoder, about 1 MB per
process; the monitor stays resident for every container, so it parses with
the C scanner from `_json` directly and writes its few small documents itself.
"""

from __future__ import annotations

import _json

from portside.errors import InvalidDocument

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing itself costs the resident monitor ~1 MB (it imports re)
    from typing import Any

_WS = " \t\n\r"


class _Context:
    """The attributes the C scanner reads from its decoder object."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]


def loads(text: str | bytes, what: str = "document") -> Any:
    """Parse one JSON value; raise InvalidDocument naming `what` on any error."""
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError as exc:
            raise InvalidDocument(f"{what}: not UTF-8: {exc}") from None
    idx = len(text) - len(text.lstrip(_WS))
    try:
        value, end = _scan(text, idx)
    except StopIteration as exc:
        raise InvalidDocument(f"{what}: invalid JSON at offset {exc.value}") from None
    except (ValueError, SystemError) as exc:
        # Without `json.decoder` loaded the C scanner fails with a bare SystemError.
        if isinstance(exc, SystemError):
            raise InvalidDocument(f"{what}: invalid JSON") from None
        raise InvalidDocument(f"{what}: invalid JSON: {exc}") from None
    if text[end:].strip(_WS):
        raise InvalidDocument(f"{what}: invalid JSON: extra data at offset {end}")
    return value


def dumps(value: Any) -> str:
    """Compact JSON (ASCII, no spaces), as `json.dumps(v, separators=(",", ":"))`."""
    out: list[str] = []
    _dump(value, out)
    return "".join(out)


def _dump(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_json.encode_basestring_ascii(value))
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("NaN and infinity are not JSON")
        out.append(float.__repr__(value))
    elif isinstance(value, dict):
        out.append("{")
        first = True
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be str, not {type(key).__name__}")
            if not first:
                out.append(",")
            first = False
            out.append(_json.encode_basestring_ascii(key))
            out.append(":")
            _dump(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _dump(item, out)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
