"""Every JSON object in every dialect gets a verdict: `normalize` never raises.

Arbitrary bytes (tests/unit/connectors/test_reader_properties.py) rarely form an object
with the fields a dialect reads, so these objects are built from each dialect's own keys
with hostile values (unparseable URLs, huge or negative numbers, NaN-like text, nesting).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.errors import Rejection
from streams.core.records import Dialect, Event
from tests.unit.core.rawfactory import NOW_MS, NOW_S, run

_KEYS = {
    Dialect.ZETA: ["user_id", "email", "event_type", "timestamp", "url", "resource_id",
                   "resource_type", "idempotencyKey", "price"],
    Dialect.KISSMETRICS: ["_p", "_p2", "_n", "_t", "_d", "idempotencyKey", "plan"],
    Dialect.NAXAI: ["name", "data", "identifier", "idempotencyKey", "timestamp"],
    Dialect.CLEVERTAP: ["type", "evtName", "evtData", "ts", "identity", "FBID", "GPID",
                        "objectId", "profileData", "idempotencyKey"],
    Dialect.CANONICAL: ["kind", "name", "identifiers", "timestamp", "properties", "alias",
                        "idempotency_key", "event_id", "url"],
}  # fmt: skip

_HOSTILE_TEXT = st.sampled_from(
    ["", " ", "https://[", "http://[::1", "$D_", "$D_abc", "$D_99999999999999999",
     "2024-13-45T99:99:99Z", "9999-12-31T23:59:59+14:00", "0001-01-01", "NaN", "-1", "0",
     "anonymous", "a@b.c", "\u0000", "\ud7ff", "x" * 600]
)  # fmt: skip
_NUMBERS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64),
    st.sampled_from([NOW_MS, NOW_S, -NOW_S, 10**30, 2**53 + 1]),
    st.floats(allow_nan=False, allow_infinity=False),
)
_SCALARS = st.one_of(st.none(), st.booleans(), _NUMBERS, _HOSTILE_TEXT, st.text(max_size=20))
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _objects(dialect: Dialect) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(_KEYS[dialect]), _VALUES, max_size=len(_KEYS[dialect]))


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(_KEYS)).flatmap(lambda d: st.tuples(st.just(d), _objects(d))))
def test_every_object_in_every_dialect_gets_a_verdict(case: tuple[Dialect, dict[str, Any]]) -> None:
    dialect, obj = case
    # json, not orjson: integers beyond 64 bits must reach the reader too.
    result = run(dialect, json.dumps(obj).encode())
    assert isinstance(result, Event | Rejection)
