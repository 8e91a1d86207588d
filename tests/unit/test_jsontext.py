"""remediate.jsontext.dumps writes what json.dumps(default=str, ensure_ascii=False,
compact) writes, for the values the hot path encodes, and never fails on odd text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from remediate.jsontext import dumps


def reference(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))


labels = st.dictionaries(st.text(), st.text(), max_size=12)
scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text()
floats = st.floats(allow_nan=False, allow_infinity=False)
entries = st.dictionaries(
    st.text(), scalars | floats | labels | st.lists(scalars, max_size=4), max_size=12
)


@given(entries)
def test_same_text_as_the_json_module(entry: dict[str, Any]) -> None:
    text = dumps(entry)
    assert json.loads(text) == json.loads(reference(entry))
    if not any(isinstance(v, float) for v in entry.values()):
        # Floats may print in another (equally exact) form: 1e16 vs 1e+16.
        assert text == reference(entry)


def test_a_row_as_the_store_writes_it() -> None:
    row = {"alertname": "DiskFull", "instance": "nas:9100", "note": "voll — plein", "n": 3}
    assert (
        dumps(row) == '{"alertname":"DiskFull","instance":"nas:9100","note":"voll — plein","n":3}'
    )
    assert dumps({"path": Path("/var/log"), "pair": (1, 2)}) == '{"path":"/var/log","pair":[1,2]}'


def test_text_that_is_not_unicode_is_escaped_not_refused() -> None:
    """A lone surrogate (undecodable command-line bytes) cannot be UTF-8: the json module's
    escaping takes over, and the text still reads back."""
    value = {"target": "\udcff/data"}
    assert json.loads(dumps(value)) == value
    assert dumps(value).isascii()


answers = st.fixed_dictionaries(
    {
        "status": st.text(),
        "alerts_received": st.integers(0, 1000),
        "results": st.lists(
            st.dictionaries(st.text(), st.none() | st.integers(1, 2**63 - 1) | st.text()),
            max_size=5,
        ),
    }
)


@given(answers)
def test_webhook_answers_are_the_bytes_starlette_writes(answer: dict[str, Any]) -> None:
    from starlette.responses import JSONResponse

    from remediate.webhook.app import _json_body

    assert _json_body(answer) == JSONResponse(answer).body
