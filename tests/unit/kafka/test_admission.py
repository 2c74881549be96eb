"""The agents' admission of an event after a rebalance: each record processed once, in order."""

from __future__ import annotations

from streams.kafka.admission import Admission, admit


def test_first_event_of_a_partition_is_processed() -> None:
    assert admit(None, 17, held=False) is Admission.PROCESS


def test_held_event_of_a_partition_without_a_processed_offset_is_left_for_the_seek() -> None:
    # the partition may have moved to another worker and back while the event was held:
    # that worker may have decided it already, and the seek brings the right next record
    assert admit(None, 17, held=True) is Admission.LEAVE


def test_next_offset_is_processed() -> None:
    assert admit(9, 10, held=False) is Admission.PROCESS
    assert admit(9, 10, held=True) is Admission.PROCESS


def test_offset_at_or_before_the_last_processed_is_a_redelivery() -> None:
    assert admit(9, 9, held=False) is Admission.REDELIVERY
    assert admit(9, 3, held=True) is Admission.REDELIVERY


def test_event_held_across_a_rebalance_after_a_gap_is_left_for_the_seek() -> None:
    # offsets 10..11 were dropped from the queue by the rebalance: processing 12 now would
    # make them look like re-deliveries when the seek brings them back
    assert admit(9, 12, held=True) is Admission.LEAVE


def test_gap_in_fetch_order_is_processed_when_not_held() -> None:
    # transactional inputs: commit markers take offsets, so 9 -> 11 is the next record
    assert admit(9, 11, held=False) is Admission.PROCESS


def test_replaying_a_dropped_run_after_the_seek_processes_each_record_once() -> None:
    """Taken: 10, 11 then a rebalance drops 12, 13 and keeps 14 (held); the seek re-reads
    from 12. Every offset is processed exactly once, in order."""
    done: int | None = 9
    processed: list[int] = []
    stream = [(10, False), (11, False), (14, True), (12, False), (13, False), (14, False)]
    for offset, held in stream:
        admission = admit(done, offset, held)
        if admission is Admission.PROCESS:
            processed.append(offset)
            done = offset
    assert processed == [10, 11, 12, 13, 14]
