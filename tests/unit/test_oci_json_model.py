"""Generated documents with unknown fields: exact bytes kept, edits lose nothing."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portside.oci import mediatypes as mt
from portside.oci.digest import Digest
from portside.oci.manifest import Manifest
from portside.oci.runtime_spec import Spec
from tests.unit.test_oci_schemas import RICH_SPEC

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
EXTRA_KEYS = st.text(min_size=1, max_size=8).map(lambda k: "x-" + k)
EXTRAS = st.dictionaries(EXTRA_KEYS, JSON_VALUES, max_size=3)
DUMP_STYLES = st.sampled_from(
    [
        {"separators": (",", ":")},
        {"indent": 3},
        {"indent": "\t", "ensure_ascii": False},
        {"separators": (", ", ": "), "sort_keys": True},
    ]
)


def _manifest_dict(top: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        **top,
        "mediaType": mt.OCI_MANIFEST,
        "config": {
            "mediaType": mt.OCI_CONFIG,
            "digest": Digest.from_bytes(b"c"),
            "size": 1,
        },
        "layers": [
            {
                "mediaType": mt.OCI_LAYER_GZIP,
                "digest": Digest.from_bytes(b"l"),
                "size": 2,
                **layer,
            }
        ],
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EXTRAS, EXTRAS, DUMP_STYLES)
def test_manifest_bytes_and_extras(
    top: dict[str, Any], layer: dict[str, Any], style: dict[str, Any]
) -> None:
    doc = _manifest_dict(top, layer)
    raw = json.dumps(doc, **style).encode()
    m = Manifest.parse(raw)
    assert m.to_bytes() == raw
    assert m.digest == Digest.from_bytes(raw)
    m.annotations = {"edited": "yes"}
    out = json.loads(m.to_bytes())
    assert out.pop("annotations") == {"edited": "yes"}
    assert out == json.loads(raw)
    assert list(out) == list(json.loads(raw))
    m.annotations = None
    assert m.to_bytes() == raw


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EXTRAS, EXTRAS, EXTRAS)
def test_spec_round_trip_with_extras(
    top: dict[str, Any], process: dict[str, Any], memory: dict[str, Any]
) -> None:
    doc = json.loads(json.dumps(RICH_SPEC))
    doc.update(top)
    doc["process"].update(process)
    doc["linux"]["resources"]["memory"].update(memory)
    spec = Spec.from_dict(doc)
    assert spec.to_dict() == doc
    assert json.dumps(spec.to_dict()) == json.dumps(doc)
    assert Spec.from_dict(spec.to_dict()) == spec
