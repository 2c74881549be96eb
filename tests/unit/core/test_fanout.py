"""Routing a decided record to its outputs: accepted, triggers, dead letter, or none."""

from __future__ import annotations

import dataclasses

from streams.core.errors import ErrorCode, Rejection, Stage
from streams.core.fanout import Output, route_outcome
from streams.core.outputs import dump_event, dump_outcome
from streams.core.records import Outcome, OutcomeKind
from tests.unit.core.factories import make_event


class Recorder:
    def __init__(self) -> None:
        self.emitted: list[tuple[Output, bytes]] = []

    def emit(self, output: Output, line: bytes, outcome: Outcome) -> None:
        self.emitted.append((output, line))


def routed(outcome: Outcome) -> list[tuple[Output, bytes]]:
    sink = Recorder()
    route_outcome(outcome, sink)
    return sink.emitted


def test_accepted_goes_to_accepted_and_to_triggers_only_when_triggered() -> None:
    event = make_event(user_id="1")
    outcome = Outcome(OutcomeKind.ACCEPTED, event.event_id, event.source, event=event)
    assert routed(outcome) == [(Output.ACCEPTED, dump_event(event))]
    fired = dataclasses.replace(event, triggered=True)
    outcome = Outcome(OutcomeKind.ACCEPTED, fired.event_id, fired.source, event=fired)
    line = dump_event(fired)
    assert routed(outcome) == [(Output.ACCEPTED, line), (Output.TRIGGERS, line)]


def test_rejected_goes_to_the_dead_letter_and_a_duplicate_nowhere() -> None:
    event = make_event(user_id="1")
    rejection = Rejection(ErrorCode.INVALID_FIELD, "bad", Stage.NORMALIZE)
    rejected = Outcome(
        OutcomeKind.REJECTED, event.event_id, event.source, rejection=rejection, raw=b"{}"
    )
    assert routed(rejected) == [(Output.DEADLETTER, dump_outcome(rejected))]
    duplicate = Outcome(OutcomeKind.DUPLICATE, event.event_id, event.source, event=event)
    assert routed(duplicate) == []
