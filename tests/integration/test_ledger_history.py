"""The ledger's history pages (keyset), filters and dead letters, in SQLite on disk."""

from __future__ import annotations

import uuid
from pathlib import Path

from streams.core.records import SourceKind
from streams.embedded.ledger import Ledger


async def _ledger(tmp_path: Path, per_account: int) -> tuple[Ledger, list[str]]:
    ledger = Ledger(tmp_path / "ledger.db")
    await ledger.open()
    alice: list[str] = []
    async with ledger.transaction() as db:
        for i in range(per_account * 2):
            account = "alice" if i % 2 == 0 else "bob"
            upload_id = str(uuid.uuid4())
            await ledger.insert_upload(
                db, upload_id, account, f"File-{i:04d}.jsonl", SourceKind.FILE, "zeta",
                None, False, "2026-12-05T10:00:00.000Z",
            )  # fmt: skip
            status = "fail" if i % 3 == 0 else "success"
            await db.execute(
                "UPDATE uploads SET status = ? WHERE upload_id = ?", (status, upload_id)
            )
            if account == "alice":
                alice.append(upload_id)
                await db.execute(
                    "INSERT INTO rejections VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (upload_id, f"File-{i:04d}.jsonl", 1, "invalid_json" if i % 4 else
                     "missing_field", "bad", b"{x", None),
                )  # fmt: skip
    return ledger, alice


async def test_keyset_pages_list_every_upload_of_the_account_once_newest_first(
    tmp_path: Path,
) -> None:
    ledger, alice = await _ledger(tmp_path, 23)
    seen: list[str] = []
    cursor: int | None = None
    while True:
        views, cursor = await ledger.page_uploads("alice", 5, before=cursor)
        assert all(v.account == "alice" for v in views)
        seen += [v.upload_id for v in views]
        if cursor is None:
            break
    assert seen == list(reversed(alice))
    await ledger.close()


async def test_history_filters_by_status_and_by_part_of_the_name(tmp_path: Path) -> None:
    ledger, _ = await _ledger(tmp_path, 12)
    failed, _ = await ledger.page_uploads("alice", 100, status="fail")
    assert failed and {v.status for v in failed} == {"fail"}
    assert {v.filename for v in failed} == {f"File-{i:04d}.jsonl" for i in range(0, 24, 6)}
    named, _ = await ledger.page_uploads("alice", 100, name="file-001")
    assert sorted(v.filename for v in named) == [
        f"File-{i:04d}.jsonl" for i in (10, 12, 14, 16, 18)
    ]
    everyone, _ = await ledger.page_uploads(None, 100)
    assert {v.account for v in everyone} == {"alice", "bob"} and len(everyone) == 24
    await ledger.close()


async def test_dead_letters_are_the_accounts_rejected_lines_by_code(tmp_path: Path) -> None:
    ledger, alice = await _ledger(tmp_path, 8)
    codes = await ledger.dead_letter_codes("alice")
    assert codes == {"invalid_json": 4, "missing_field": 4}
    assert await ledger.dead_letter_codes("bob") == {}
    letters = await ledger.dead_letters("alice", code="missing_field", limit=3)
    assert [d.code for d in letters] == ["missing_field"] * 3
    assert letters[0].upload_id == alice[-2]  # newest upload first (i = 12: 12 % 4 == 0)
    rest = await ledger.dead_letters("alice", code="missing_field", limit=3, offset=3)
    assert len(rest) == 1 and rest[0].raw == b"{x"
    await ledger.close()
