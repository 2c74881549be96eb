"""Zeta JSONL rules, one test per rule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streams.core.records import Dialect
from tests.unit.core.rawfactory import NOW_MS, accepted, code_of

Z = Dialect.ZETA
BASE = {"user_id": "1234", "event_type": "purchased", "timestamp": "2024-06-01T10:00:00"}


def test_iso_timestamp_without_zone_is_utc() -> None:
    event = accepted(Z, BASE)
    assert event.timestamp == datetime(2024, 6, 1, 10, 0, tzinfo=UTC)


def test_epoch_timestamp_is_milliseconds() -> None:
    event = accepted(Z, {**BASE, "timestamp": NOW_MS - 1000})
    assert event.timestamp.year == 2024
    assert event.timestamp == datetime.fromtimestamp((NOW_MS - 1000) / 1000, UTC)


def test_either_user_id_or_email_is_required() -> None:
    assert accepted(Z, {**BASE, "user_id": None, "email": "A@B.com"}).identifiers == {
        "email": "a@b.com"
    }
    assert code_of(Z, {"event_type": "x", "timestamp": NOW_MS}) == "missing_identity"


def test_event_type_is_required() -> None:
    assert code_of(Z, {"user_id": "1", "timestamp": NOW_MS}) == "missing_event_name"


def test_timestamp_is_required() -> None:
    assert code_of(Z, {"user_id": "1", "event_type": "x"}) == "missing_timestamp"


def test_unreadable_timestamp_is_invalid() -> None:
    assert code_of(Z, {**BASE, "timestamp": "yesterday"}) == "invalid_timestamp"
    assert code_of(Z, {**BASE, "timestamp": True}) == "invalid_timestamp"


@pytest.mark.parametrize(
    "key",
    [
        "enriched",
        "identity",
        "status",
        "identified",
        "properties",
        "event_id",
        "is_test",
        "bsin",
        "site_id",
    ],
)
def test_reserved_keys_reject_the_line(key: str) -> None:
    assert code_of(Z, {**BASE, key: "x"}) == "reserved_field"


def test_resource_fields_go_to_the_top_level() -> None:
    event = accepted(
        Z,
        {**BASE, "url": "https://shop.example/p/1", "resource_id": 17, "resource_type": "product"},
    )
    assert (event.url, event.resource_id, event.resource_type) == (
        "https://shop.example/p/1",
        "17",
        "product",
    )
    assert "url" not in event.properties


def test_resource_fields_are_validated() -> None:
    assert code_of(Z, {**BASE, "url": "not a url"}) == "invalid_field"
    assert code_of(Z, {**BASE, "resource_id": {"a": 1}}) == "invalid_field"
    assert code_of(Z, {**BASE, "resource_type": ""}) == "invalid_field"


def test_url_that_cannot_be_parsed_is_invalid_field() -> None:
    # urlsplit raises on an unclosed IPv6 bracket; the line is rejected, not the upload.
    for url in ("https://[", "http://[::1", "https://]x["):
        assert code_of(Z, {**BASE, "url": url}) == "invalid_field"


def test_other_keys_go_to_properties_with_nesting_kept() -> None:
    cart = [{"item_name": "Shoes", "price": 123.99}]
    event = accepted(Z, {**BASE, "shopping_cart_items": cart, "keywords": ["a"]})
    assert event.properties == {"shopping_cart_items": cart, "keywords": ["a"]}


def test_top_level_idempotency_key_is_the_idempotency_key() -> None:
    event = accepted(Z, {**BASE, "idempotencyKey": "k-1"})
    assert event.idempotency_key == "k-1"
    assert "idempotencyKey" not in event.properties
