"""Start-up values: each type's reading, and errors that name the setting and the value."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streams.core.config_values import (
    SettingError,
    read_bool,
    read_choice,
    read_float,
    read_int,
    read_port,
    read_port_range,
    read_str,
    read_time,
)


def test_unset_values_take_the_default() -> None:
    assert read_int({}, "TIDEGATE_X", 7) == 7
    assert read_float({}, "TIDEGATE_X", 0.5) == 0.5
    assert read_bool({}, "TIDEGATE_X", True) is True
    assert read_str({}, "TIDEGATE_X", "a") == "a"
    assert read_choice({}, "TIDEGATE_X", "a", ("a", "b")) == "a"
    assert read_port({}, "TIDEGATE_X", 2222) == 2222
    assert read_port_range({}, "TIDEGATE_X") is None
    assert read_port_range({"TIDEGATE_X": " "}, "TIDEGATE_X") is None
    assert read_time({}, "TIDEGATE_X") is None


def test_set_values_are_parsed() -> None:
    values = {"I": " 12 ", "F": "0.25", "B": "Off", "C": "b"}
    assert read_int(values, "I", 0) == 12
    assert read_float(values, "F", 0.0) == 0.25
    assert read_bool(values, "B", True) is False
    assert read_choice(values, "C", "a", ("a", "b")) == "b"


def test_ports_ranges_and_times_are_parsed() -> None:
    values = {
        "P": "0",
        "OFF": "-1",
        "R": "60000-60100",
        "ONE": "21",
        "T": "2018-09-02T01:00:00+01:00",
    }
    assert read_port(values, "P", 1) == 0
    assert read_port(values, "OFF", 1, minimum=-1) == -1
    assert read_port_range(values, "R") == (60000, 60100)
    assert read_port_range(values, "ONE") == (21, 21)
    assert read_time(values, "T") == datetime(2018, 9, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("reader", "text", "reason"),
    [
        (lambda v: read_int(v, "TIDEGATE_N", 1), "ten", "not a whole number"),
        (lambda v: read_int(v, "TIDEGATE_N", 1, minimum=1), "0", "must be at least 1"),
        (lambda v: read_float(v, "TIDEGATE_N", 1.0), "soon", "not a number"),
        (lambda v: read_float(v, "TIDEGATE_N", 1.0), "nan", "not a finite number"),
        (lambda v: read_float(v, "TIDEGATE_N", 1.0, minimum=0), "-1", "must be at least 0"),
        (lambda v: read_bool(v, "TIDEGATE_N", False), "maybe", "expected one of"),
        (lambda v: read_choice(v, "TIDEGATE_N", "a", ("a", "b")), "c", "expected one of a, b"),
        (lambda v: read_port(v, "TIDEGATE_N", 1), "http", "not a whole number"),
        (lambda v: read_port(v, "TIDEGATE_N", 1), "65536", "must be at most 65535"),
        (lambda v: read_port(v, "TIDEGATE_N", 1), "-1", "must be at least 0"),
        (lambda v: read_port_range(v, "TIDEGATE_N"), "60000:60100", "expected LOW-HIGH"),
        (lambda v: read_port_range(v, "TIDEGATE_N"), "60100-60000", "LOW <= HIGH"),
        (lambda v: read_port_range(v, "TIDEGATE_N"), "0-10", "within 1-65535"),
        (lambda v: read_time(v, "TIDEGATE_N"), "yesterday", "not an ISO-8601 time"),
    ],
)
def test_a_bad_value_names_the_setting_and_the_value(reader, text, reason) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SettingError) as caught:
        reader({"TIDEGATE_N": text})
    assert str(caught.value).startswith(f"TIDEGATE_N={text!r}: ")
    assert reason in str(caught.value)
