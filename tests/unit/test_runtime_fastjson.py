"""The runtime's json-without-`re` gives json's results and json's errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from portside.runtime import fastjson

SRC = str(Path(fastjson.__file__).parents[2])

DOCS: list[Any] = [
    {"a": [1, 2.5, None, True, False, 'é\u2028"\\x\x01'], "b": {"c": -1e300, "d": 10**30}},
    [],
    {},
    "x",
    0,
    {"t": "hello", "pid": 5},
]

BAD: list[str | bytes] = [
    "",
    "  ",
    "{",
    "{} x",
    "[1,]",
    '{"a": "\\q"}',
    '{"a":1}}',
    "nul",
    "\ufeff{}",
    b"\xff{}",
]


def _error(fn: Any, arg: Any) -> str | None:
    try:
        fn(arg)
    except ValueError as e:
        return f"{type(e).__name__}: {e}"
    return None


@pytest.mark.parametrize("doc", DOCS)
def test_round_trip_equals_json(doc: Any) -> None:
    assert fastjson.dumps(doc) == json.dumps(doc)
    assert fastjson.dumps(doc, ensure_ascii=False) == json.dumps(doc, ensure_ascii=False)
    assert fastjson.dumps(doc, indent=2) == json.dumps(doc, indent=2)
    compact = {"sort_keys": True, "separators": (",", ":")}
    assert fastjson.dumps(doc, **compact) == json.dumps(doc, **compact)  # type: ignore[arg-type]
    assert fastjson.dumps(doc, indent=1, **compact) == json.dumps(doc, indent=1, **compact)  # type: ignore[arg-type]
    text = json.dumps(doc)
    assert fastjson.loads(text) == json.loads(text)
    assert fastjson.loads(f" \n{text}\t\r\n".encode()) == json.loads(text)


@pytest.mark.parametrize("bad", BAD)
def test_errors_are_jsons(bad: str | bytes) -> None:
    assert _error(fastjson.loads, bad) == _error(json.loads, bad)


def test_errors_in_a_process_that_never_imported_json() -> None:
    """As in `portside-runtime`: the C scanner cannot report errors without json.decoder."""
    code = (
        f"import sys; sys.path.insert(0, {SRC!r})\n"
        "from portside.runtime import fastjson\n"
        "assert 'json' not in sys.modules and 're' not in sys.modules\n"
        "for bad in sys.argv[1:]:\n"
        "    try:\n"
        "        fastjson.loads(bad)\n"
        "    except ValueError as e:\n"
        "        print(type(e).__name__, e)\n"
    )
    bad = [b for b in BAD if isinstance(b, str)]
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, *bad], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == [(_error(json.loads, b) or "").replace(":", "", 1) for b in bad]


def test_unserializable_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="Object of type object is not JSON serializable"):
        fastjson.dumps({"a": object()})
