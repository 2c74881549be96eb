"""The per-record fast paths give exactly what the plain forms they replace give."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.decide import decide
from streams.core.identifiers import BLOCKED_VALUES, clean_identifier, identifier_text
from streams.core.outputs import DUMPS_OPTIONS, dump_event
from streams.core.records import (
    EVENT_ID_NAMESPACE,
    Dialect,
    Event,
    RecordKind,
    Source,
    SourceKind,
    make_event_id,
    source_factory,
)
from streams.core.settings import AccountSettings
from streams.core.state import MemoryStore
from tests.unit.core.factories import T0, make_event


@given(
    account=st.text(min_size=1, max_size=8),
    upload=st.text(max_size=8),
    file=st.text(max_size=8),
    member=st.none() | st.text(max_size=8),
    line=st.integers(min_value=0, max_value=10**9),
)
@settings(max_examples=300)
def test_event_id_is_uuid5_of_the_source_line(
    account: str, upload: str, file: str, member: str | None, line: int
) -> None:
    source = Source(SourceKind.FILE, Dialect.ZETA, account, upload, file, member, line)
    name = f"{account}\x1f{upload}\x1f{file}\x1f{member or ''}\x1f{line}"
    try:
        expected = str(uuid.uuid5(EVENT_ID_NAMESPACE, name))
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            make_event_id(source)
        return
    assert make_event_id(source) == expected


def test_source_factory_makes_the_same_frozen_source() -> None:
    make = source_factory(SourceKind.FILE, Dialect.ZETA, "acme", "up", "f.jsonl", None)
    made = make(7)
    plain = Source(SourceKind.FILE, Dialect.ZETA, "acme", "up", "f.jsonl", None, 7)
    assert made == plain
    assert hash(made) == hash(plain)
    assert repr(made) == repr(plain)
    assert orjson.dumps(made) == orjson.dumps(plain)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.line = 8  # type: ignore[misc]


def _event(**changes: object) -> Event:
    event = make_event(user_id="42", email="a@x.com", properties={"p": [1, {"q": None}]})
    return dataclasses.replace(event, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "event",
    [
        _event(),
        _event(url="https://x.example/a", resource_id="r", resource_type="t"),
        _event(kind=RecordKind.ALIAS, name=None, alias={"email": "b@x.com"}),
        _event(profile_id="user_id:42", triggered=True, trigger_requested=True),
        _event(timestamp=datetime(2024, 6, 1, 14, tzinfo=timezone(timedelta(hours=2)))),
        _event(received_at=datetime(2024, 6, 1, 12)),  # naive
        _event(properties={"é": "ü\u2028", "n": 2**63, "f": 1.5, "b": True, "z": None}),
    ],
)
def test_dump_event_is_the_dataclass_serialization(event: Event) -> None:
    assert dump_event(event) == orjson.dumps(event, option=DUMPS_OPTIONS)


def test_dump_event_names_every_field() -> None:
    # dump_event spells the fields out: a new field must be added there too.
    event = _event()
    document = orjson.loads(dump_event(event))
    assert list(document) == [f.name for f in dataclasses.fields(Event)]
    assert list(document["source"]) == [f.name for f in dataclasses.fields(Source)]


@given(st.one_of(st.text(max_size=12), st.sampled_from(sorted(BLOCKED_VALUES))))
def test_clean_identifier_fast_path(value: str) -> None:
    for namespace in ("user_id", "email"):
        text = identifier_text(value)
        assert text is not None
        expected = None if text.lower() in BLOCKED_VALUES else text
        if expected is not None and namespace == "email":
            expected = expected.lower()
        assert clean_identifier(namespace, value) == expected
        assert clean_identifier(namespace, f"  {value.upper()} ") == clean_identifier(
            namespace, value.upper()
        )


def test_decide_in_place_gives_the_same_outcome_on_the_given_event() -> None:
    copied, owned = MemoryStore(), MemoryStore()
    settings_ = AccountSettings()
    for index in range(20):
        now = T0 + timedelta(minutes=index)
        key = f"k{index % 7}"
        first = make_event(user_id=str(index % 3), idempotency_key=key, line=index + 1)
        second = dataclasses.replace(first)
        a = decide(first, copied, now, settings_)
        b = decide(second, owned, now, settings_, in_place=True)
        assert a is not None and b is not None
        assert first.profile_id is None
        assert b.outcome.event is second
        assert a == b
    assert copied.tables == owned.tables


def test_window_bounds_follow_received_at() -> None:
    from streams.core.window import check_window

    received = datetime(2024, 6, 1, tzinfo=UTC)
    assert check_window(received - timedelta(days=365), received) is None
    assert check_window(received - timedelta(days=366), received) is not None
    later = received + timedelta(days=10)
    assert check_window(received - timedelta(days=360), later) is not None
    assert check_window(later + timedelta(days=1), later) is None
    assert check_window(later + timedelta(days=1, seconds=1), later) is not None
