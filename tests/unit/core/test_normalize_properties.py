"""Property tests: no input, however broken, makes the core raise; each line one outcome."""

from __future__ import annotations

import io
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.files.csvrows import iter_csv_rows
from connectors.files.lines import iter_lines
from streams.core.errors import Rejection
from streams.core.normalize import normalize
from streams.core.outputs import dump_event
from streams.core.records import Dialect, Event
from tests.unit.core.rawfactory import raw

JSON_DIALECTS = [d for d in Dialect if d is not Dialect.VERO]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = [
    "user_id",
    "email",
    "event_type",
    "timestamp",
    "_p",
    "_t",
    "_n",
    "_p2",
    "name",
    "data",
    "identifier",
    "identity",
    "FBID",
    "type",
    "evtName",
    "evtData",
    "ts",
    "idempotencyKey",
    "url",
    "resource_id",
    "kind",
    "identifiers",
    "properties",
    "record",
    "code",
    "line",
]
objects = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=10), json_values, max_size=8)


@settings(max_examples=300, deadline=None)
@given(dialect=st.sampled_from(JSON_DIALECTS), payload=st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_normalize(dialect: Dialect, payload: bytes) -> None:
    assert isinstance(normalize(raw(dialect, payload)), Event | Rejection)


@settings(max_examples=500, deadline=None)
@given(dialect=st.sampled_from(JSON_DIALECTS), obj=objects)
def test_arbitrary_json_objects_never_crash_normalize(
    dialect: Dialect, obj: dict[str, Any]
) -> None:
    result = normalize(raw(dialect, orjson.dumps(obj)))
    assert isinstance(result, Event | Rejection)
    if isinstance(result, Event):
        assert result.identifiers, "an accepted record always has an identity"
        assert orjson.loads(dump_event(result))["event_id"] == result.event_id


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=600))
def test_every_non_blank_line_of_any_bytes_gets_exactly_one_outcome(data: bytes) -> None:
    non_blank = {
        n
        for n, line in enumerate(data.split(b"\n"), 1)
        if line.strip(b" \t\r\x0b\x0c") and not (n == 1 and line.strip() == b"\xef\xbb\xbf")
    }
    outcomes = []
    for line in iter_lines(io.BytesIO(data)):
        record = raw(Dialect.ZETA, line.data, line=line.number)
        outcomes.append((line.number, type(normalize(record)).__name__))
    assert len({n for n, _ in outcomes}) == len(outcomes)
    assert {n for n, _ in outcomes} <= non_blank | {1}


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=400))
def test_arbitrary_csv_bytes_never_crash_the_vero_path(data: bytes) -> None:
    from connectors.files.errors import MemberFailed

    try:
        for row in iter_csv_rows(iter_lines(io.BytesIO(b"email,name,time\n" + data))):
            record = raw(Dialect.VERO, row.raw, fields=row.fields, line=row.number)
            record.framing_error = row.error
            assert isinstance(normalize(record), Event | Rejection)
    except MemberFailed:
        pass  # a header-level failure is a member outcome, not a crash
