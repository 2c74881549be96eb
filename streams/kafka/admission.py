"""Admission: an owned partition's event is processed, acked as a redelivery, or left alone."""

from __future__ import annotations

from enum import Enum


class Admission(Enum):
    """What the agent does with one event of a partition it owns."""

    PROCESS = "process"
    REDELIVERY = "redelivery"  # processed (and committed) already: acked, not processed again
    LEAVE = "leave"  # neither processed nor acked: it comes again after the seek


def admit(done: int | None, offset: int, held: bool) -> Admission:
    """Decides an event at `offset` given the last offset processed on its partition
    (`done`, None when none was) and whether it was taken before a rebalance (`held`).

    A rebalance drops the queued events and seeks back to the committed offsets, so an
    event held across one may come after a gap: it may go on only when it is the very next
    offset (else the records in the gap would later be taken for re-deliveries and lost).
    A held event of a partition without a processed offset is left too: the partition may
    have moved to another worker and back in the meantime (its last offset is forgotten
    when it moves away), and that worker may have decided the event already. An event that
    was not held follows the previous one in fetch order; on a transactional input its
    offset may step over commit markers, so no contiguity is asked of it."""
    if done is not None and offset <= done:
        return Admission.REDELIVERY
    if held and (done is None or offset != done + 1):
        return Admission.LEAVE
    return Admission.PROCESS
