"""JSON documents whose numbers stay as written: parsed, compared, encoded by the core and
written back, a number a float cannot hold keeps its text."""

from __future__ import annotations

import json
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meepo_core import JsonNumber, RowEvent, dumps_exact, loads_exact
from meepo_core.serialization import decode_value, encode_value, event_from_json, event_to_json

DOCUMENT = ('{"big": 12345678901234567890.123456789, "e": 1e400, "f": 1.10, "g": 0.1, '
            '"i": 12345678901234567890123, "neg": -0.0, "tiny": 1.5E-7, "s": "é\\n\\"", '
            '"a": [1.0, 2.50, {"x": null, "t": true}]}')


def test_numbers_keep_their_text_and_floats_stay_floats() -> None:
    value = loads_exact(DOCUMENT)
    assert dumps_exact(value) == DOCUMENT
    assert dumps_exact(value, ",", ":") == DOCUMENT.replace(", ", ",").replace(": ", ":")
    assert type(value["g"]) is float and type(value["i"]) is int  # exact as they are
    assert isinstance(value["big"], JsonNumber) and value["big"].text == \
        "12345678901234567890.123456789"
    assert value["e"] == float("inf") and value["e"].text == "1e400"
    assert value["f"] == 1.1 and json.loads(DOCUMENT) == value  # the same floats as before
    assert json.dumps(value["f"]) == "1.1"  # other writers see the float


@pytest.mark.parametrize("text", ["1.10", "1e400", "-0.0", "[1E2]", '"1.10"', "null"])
def test_bare_values(text: str) -> None:
    assert dumps_exact(loads_exact(text)) == text


def test_the_core_encoding_and_pickle_keep_the_text() -> None:
    value = loads_exact(DOCUMENT)
    assert dumps_exact(decode_value(json.loads(json.dumps(encode_value(value))))) == DOCUMENT
    assert dumps_exact(pickle.loads(pickle.dumps(value))) == DOCUMENT
    event = RowEvent("s", "t", "write", 1, None, {"id": 1, "doc": value})
    assert dumps_exact(event_from_json(event_to_json(event)).after["doc"]) == DOCUMENT  # type: ignore[index]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)


@given(JSON_VALUES)
def test_without_kept_numbers_it_writes_what_json_dumps_writes(value: object) -> None:
    for separators in ((", ", ": "), (",", ":")):
        assert dumps_exact(value, *separators) == json.dumps(
            value, ensure_ascii=False, separators=separators)


@given(JSON_VALUES.filter(lambda v: "NaN" not in json.dumps(v)
                          and "Infinity" not in json.dumps(v)))
def test_what_it_writes_reads_back_as_written(value: object) -> None:
    text = dumps_exact(value)
    assert dumps_exact(loads_exact(text)) == text
