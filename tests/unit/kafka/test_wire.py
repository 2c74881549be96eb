"""Hops between the stages: an exact round trip of everything a stage hands on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.errors import ErrorCode, Rejection, Stage
from streams.core.records import Dialect, RawRecord, RecordKind, Source, SourceKind
from streams.core.stages import LinkRequest
from streams.kafka import topics as T
from streams.kafka.wire import (
    Hop,
    HopError,
    HopStage,
    decode_hop,
    decode_hops,
    decode_raw,
    encode_hop,
    encode_hops,
    encode_raw,
)
from tests.unit.core.factories import make_event

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
moments = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=200, deadline=None)
@given(
    properties=st.dictionaries(st.text(max_size=6), json_values, max_size=4),
    timestamp=moments,
    received=moments,
    key=st.none() | st.text(max_size=10),
    alias=st.none() | st.just({"email": "c@x.com"}),
    raw=st.none() | st.binary(max_size=30),
    profile=st.none() | st.text(max_size=10),
    rejected=st.booleans(),
    stage=st.sampled_from([HopStage.ROUTE, HopStage.DECIDE]),
)
def test_hop_round_trip_keeps_the_record_exactly(
    properties: dict[str, object],
    timestamp: datetime,
    received: datetime,
    key: str | None,
    alias: dict[str, str] | None,
    raw: bytes | None,
    profile: str | None,
    rejected: bool,
    stage: HopStage,
) -> None:
    event = make_event(
        user_id="42",
        email="a@x.com",
        properties=properties,
        timestamp=timestamp,
        received_at=received,
        idempotency_key=key,
        alias=alias,
    )
    event.url = "www.example.com/"
    rejection = (
        Rejection(ErrorCode.TOO_MANY_PROPERTIES, "too many", Stage.CATALOG, "sku")
        if rejected
        else None
    )
    hop = Hop(stage, "acme\x1fuser_id:42", event, rejection, raw, profile)
    assert decode_hop(encode_hop(hop)) == hop


def test_link_hop_round_trip() -> None:
    hop = Hop(
        HopStage.LINK,
        "acme\x1femail:a@x.com",
        link=LinkRequest("acme", "email:a@x.com", "user_id:42", "e1"),
        upload_id="up-1",
    )
    assert decode_hop(encode_hop(hop)) == hop


def test_arrival_hop_carries_the_raw_record() -> None:
    source = Source(SourceKind.FILE, Dialect.ZETA, "acme", "up-1", "a.jsonl", None, 7)
    record = RawRecord(
        source,
        datetime(2024, 6, 1, 12, 0, 0, 123000, tzinfo=UTC),
        b'{"user_id": "1"}',
        trigger=True,
        framing_error=Rejection(ErrorCode.LINE_TOO_LONG, "long", Stage.READ),
    )
    back = decode_hop(encode_hop(Hop(HopStage.ARRIVAL, "acme", record=record)))
    assert back.record == record
    # a stage-1 hop written before stage 1 ran on the arrival partition
    old = encode_hop(back).replace(b'"stage":"arrival"', b'"stage":"account"')
    assert decode_hop(old).stage is HopStage.ARRIVAL


def test_a_catalog_answer_returns_to_the_arrival_partition_with_the_names() -> None:
    hop = Hop(HopStage.ADMITTED, "k", make_event(user_id="1"), known=["a", "b"], origin=5)
    assert decode_hop(encode_hop(hop)) == hop


def test_hop_of_an_alias_record_round_trips() -> None:
    event = make_event(kind=RecordKind.ALIAS, user_id="1", alias={"email": "x@y.z"})
    event.timestamp = event.received_at = datetime(2024, 1, 1, tzinfo=UTC) - timedelta(days=1)
    hop = Hop(HopStage.ROUTE, "k", event)
    assert decode_hop(encode_hop(hop)) == hop


@pytest.mark.parametrize("data", [b"{}", b"[1]", b'{"stage": "nope", "key": "k"}', b"\xff"])
def test_a_message_that_is_not_a_hop_is_a_hop_error(data: bytes) -> None:
    with pytest.raises(HopError):
        decode_hop(data)


def test_a_batch_of_hops_for_one_partition_travels_as_one_message_in_order() -> None:
    hops = [Hop(HopStage.ROUTE, f"k{i}", make_event(user_id=str(i))) for i in range(5)]
    hops.append(Hop(HopStage.LINK, "l", link=LinkRequest("acme", "email:x@y.z", "user_id:1", "e")))
    assert decode_hops(encode_hops(hops)) == hops


def test_a_single_hop_message_still_decodes_as_a_batch_of_one() -> None:
    hop = Hop(HopStage.ROUTE, "k", make_event(user_id="1"))
    assert decode_hops(encode_hop(hop)) == [hop]


def test_a_bad_hop_in_a_batch_does_not_take_its_neighbours_with_it() -> None:
    good = Hop(HopStage.ROUTE, "k", make_event(user_id="1"))
    data = encode_hops([good]).replace(b'{"hops":[', b'{"hops":[{"stage":"nope"},', 1)
    first, second = decode_hops(data)
    assert isinstance(first, HopError)
    assert second == good


def test_partition_of_is_the_same_everywhere() -> None:
    # a contract between connectors and workers (and across releases): CRC-32 mod n
    assert [T.partition_of(k, 8) for k in ("acme", "acme\x1fuser_id:42", "é")] == [6, 1, 6]
    assert {T.partition_of(f"k{i}", 8) for i in range(200)} == set(range(8))


def test_a_csv_row_keeps_its_header_on_the_wire_framed_or_not() -> None:
    source = Source(SourceKind.FILE, Dialect.VERO, "acme", "up-1", "a.csv", None, 3)
    header = ("email", "time")
    framed = RawRecord(source, datetime(2024, 6, 1, tzinfo=UTC), b"a@x.com, t", header=header)
    framed.fields = {"email": "a@x.com", "time": "t"}
    unframed = RawRecord(
        source,
        datetime(2024, 6, 1, tzinfo=UTC),
        b"broken",
        framing_error=Rejection(ErrorCode.INVALID_ROW, "1 cell", Stage.READ),
        header=header,
    )
    for raw in (framed, unframed):
        assert decode_raw(encode_raw(raw), topic="t") == raw
        back = decode_hop(encode_hop(Hop(HopStage.ARRIVAL, "acme", record=raw)))
        assert back.record == raw
    assert b"header" not in encode_raw(framed)  # the fields' names are the header
    hop = Hop(HopStage.DECIDE, "k", make_event(user_id="1"), raw=b"x", header=header)
    assert decode_hop(encode_hop(hop)) == hop
