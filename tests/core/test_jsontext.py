"""compact_json is the standard library's compact JSON, byte for byte, whatever the value."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.jsontext import _MAX_DEPTH, compact_json


def standard(value, sort_keys=False) -> bytes:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
    return text.encode("utf-8", "surrogatepass")


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()  # any code point, lone surrogates included
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=24,
)


@settings(max_examples=600)
@given(values, st.booleans())
def test_same_bytes_as_the_standard_library(value, sort_keys):
    assert compact_json(value, sort_keys=sort_keys) == standard(value, sort_keys)


@pytest.mark.parametrize(
    "value",
    [1e16, 9.99e-05, 1e22, -2.5e-7, float("nan"), float("inf"), "lone \ud800", {"k": [1e300]}],
    ids=repr,
)
def test_values_msgspec_writes_differently(value):
    assert compact_json(value) == standard(value)


def test_sorted_keys_follow_code_points():
    value = {"é": 1, "z": 2, "A": 3, "😀": 4, "\uffff": 5, "": 6}
    assert compact_json(value, sort_keys=True) == standard(value, True)


def test_other_keys_and_deep_nesting():
    assert compact_json({1: "a", None: 2, 2.5: 3}) == standard({1: "a", None: 2, 2.5: 3})
    deep = current = []
    for _ in range(_MAX_DEPTH + 5):
        current.append([])
        current = current[0]
    assert compact_json(deep) == standard(deep)


@pytest.mark.parametrize("value", [date(2026, 1, 1), Decimal("1.5"), {"when": date(2026, 1, 1)}, {1, 2}])
def test_what_json_cannot_write_is_refused_alike(value):
    with pytest.raises(TypeError):
        standard(value)
    with pytest.raises(TypeError):
        compact_json(value)
