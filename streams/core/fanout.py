"""Which outputs a decided record goes to: accepted, triggers, dead letter (or none)."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from streams.core.outputs import dump_event, dump_outcome
from streams.core.records import Outcome, OutcomeKind


class Output(StrEnum):
    """The outputs of decided records (embedded: out/<name>.jsonl; Kafka: tidegate.events.<name>)."""

    ACCEPTED = "accepted"
    TRIGGERS = "triggers"
    DEADLETTER = "deadletter"


class OutputSink(Protocol):
    """Where routed records go: the embedded output files, the Kafka producer's batch."""

    def emit(self, output: Output, line: bytes, outcome: Outcome) -> None:
        """One record (`line`, already serialized) for `output`; `outcome` is the decision."""
        ...


_ACCEPTED = OutcomeKind.ACCEPTED
_REJECTED = OutcomeKind.REJECTED


def route_outcome(outcome: Outcome, sink: OutputSink) -> None:
    """An accepted record goes to accepted, and to triggers too when it triggered; a
    rejected one to the dead letter; a duplicate nowhere (it is only counted)."""
    kind = outcome.kind
    event = outcome.event
    if kind is _ACCEPTED and event is not None:
        line = dump_event(event)
        sink.emit(Output.ACCEPTED, line, outcome)
        if event.triggered:
            sink.emit(Output.TRIGGERS, line, outcome)
    elif kind is _REJECTED:
        sink.emit(Output.DEADLETTER, dump_outcome(outcome), outcome)
