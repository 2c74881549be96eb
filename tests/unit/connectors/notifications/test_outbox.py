"""The outbox: one delivery per (upload, target), unknown results sent again, re-sends."""

from __future__ import annotations

from pathlib import Path

from connectors.notifications.outbox import Outbox

REPORT = {"status": "success", "filename": "a.jsonl"}


async def test_a_delivery_is_enqueued_once_per_upload_and_target(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "n.sqlite3")
    await outbox.open()
    for _ in range(3):
        await outbox.enqueue("u1", "acme", ["webhook:http://x/h", "email:a@b"], REPORT)
    assert len(await outbox.deliveries("acme")) == 2
    await outbox.close()
    reopened = Outbox(tmp_path / "n.sqlite3")
    assert await reopened.open() is False  # not a new outbox: no baseline again
    await reopened.enqueue("u1", "acme", ["webhook:http://x/h"], REPORT)
    assert len(await reopened.deliveries("acme")) == 2
    await reopened.close()


async def test_a_claimed_delivery_is_not_claimed_twice(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "n.sqlite3")
    await outbox.open()
    await outbox.enqueue("u1", "acme", ["webhook:http://x/h"], REPORT)
    assert len(await outbox.claim_due(10)) == 1
    assert await outbox.claim_due(10) == []
    await outbox.close()


async def test_an_uploads_deliveries_are_claimed_by_one_process_of_two(tmp_path: Path) -> None:
    """`tidegate import --broker` claims its upload's deliveries beside a running `run` on
    the same outbox: each delivery goes to whichever claims it first, never to both."""
    run, imported = Outbox(tmp_path / "n.sqlite3"), Outbox(tmp_path / "n.sqlite3")
    await run.open()
    await imported.open()
    await imported.enqueue("u1", "acme", ["webhook:http://x/h", "email:a@b"], REPORT)
    await imported.enqueue("u2", "acme", ["webhook:http://x/h"], REPORT)
    (taken,) = await run.claim_due(1)  # `run`'s send loop was first to one of them
    mine = await imported.claim_subject("u1")
    others = await run.claim_due(10)
    ids = [d.delivery_id for d in (taken, *mine, *others)]
    assert len(ids) == 3 and len(set(ids)) == 3  # each claimed once
    assert {d.subject for d in mine} == {"u1"}
    assert await imported.claim_subject("u1") == []
    states = {(d.subject, d.target): d.state for d in await imported.of_subject("u1")}
    assert set(states.values()) == {"sending"} and len(states) == 2
    await run.close()
    await imported.close()


async def test_an_attempt_of_unknown_result_is_sent_again_with_the_same_id(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "n.sqlite3")
    await outbox.open()
    await outbox.enqueue("u1", "acme", ["webhook:http://x/h"], REPORT)
    (first,) = await outbox.claim_due(10)
    await outbox.close()  # a crash while 'sending'
    outbox = Outbox(tmp_path / "n.sqlite3")
    await outbox.open()
    assert await outbox.recover() == 1
    (again,) = await outbox.claim_due(10)
    assert again.delivery_id == first.delivery_id
    await outbox.close()


async def test_a_delivered_one_is_never_sent_again(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "n.sqlite3")
    await outbox.open()
    await outbox.enqueue("u1", "acme", ["webhook:http://x/h"], REPORT)
    (d,) = await outbox.claim_due(10)
    await outbox.delivered(d.delivery_id)
    assert await outbox.recover() == 0
    assert await outbox.claim_due(10) == []
    assert await outbox.resend("acme") == 0  # only failed ones are re-sent
    await outbox.close()


async def test_a_failed_attempt_waits_for_its_retry_time(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "n.sqlite3")
    await outbox.open()
    await outbox.enqueue("u1", "acme", ["webhook:http://x/h"], REPORT)
    (d,) = await outbox.claim_due(10)
    await outbox.attempt_failed(d.delivery_id, "HTTP 500", retry_at=d.next_at + 100)
    assert await outbox.claim_due(10, now=d.next_at + 99) == []
    assert len(await outbox.claim_due(10, now=d.next_at + 100)) == 1
    await outbox.close()


async def test_failed_deliveries_are_listed_per_account_and_resent(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "n.sqlite3")
    await outbox.open()
    await outbox.enqueue("u1", "acme", ["webhook:http://x/h"], REPORT)
    await outbox.enqueue("u2", "zeta", ["webhook:http://y/h"], REPORT)
    for d in await outbox.claim_due(10):
        await outbox.attempt_failed(d.delivery_id, "HTTP 500", retry_at=None)
    failed = await outbox.deliveries("acme", "failed")
    assert [d.subject for d in failed] == ["u1"]
    assert await outbox.resend("acme") == 1
    (again,) = await outbox.claim_due(10)
    assert again.delivery_id == failed[0].delivery_id and again.account == "acme"
    await outbox.close()
