"""The embedded runtime end to end: uploads through the rules to the JSON-lines outputs."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from connectors.files.reader import read_upload
from connectors.ports import FileUpload, UploadView
from streams.core.settings import SettingsRegistry
from streams.embedded.runtime import EmbeddedRuntime

UPLOADS = Path(__file__).parent.parent / "fixtures" / "uploads"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)

Importer = Callable[..., Any]


def outputs(data: Path, name: str) -> list[dict[str, Any]]:
    path = data / "out" / f"{name}.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[EmbeddedRuntime]:
    rt = EmbeddedRuntime(tmp_path / "data", SettingsRegistry(), read_upload, clock=lambda: NOW)
    await rt.start()
    yield rt
    await rt.stop()


async def submit(
    rt: EmbeddedRuntime, source: Path, *, name: str | None = None, trigger: bool | None = None
) -> UploadView:
    receipt = await rt.submit_file(
        FileUpload("acme", name or source.name, source, NOW, trigger=trigger)
    )
    assert receipt.upload_id is not None, receipt.refused
    return await rt.wait(receipt.upload_id, timeout=60)


async def test_email_only_event_follows_link_from_an_earlier_upload(
    runtime: EmbeddedRuntime,
) -> None:
    await submit(runtime, UPLOADS / "links_first.jsonl")
    await submit(runtime, UPLOADS / "links_second.jsonl", trigger=True)
    by_line = {
        (r["source"]["file"], r["source"]["line"]): r for r in outputs(runtime.data_dir, "accepted")
    }
    assert by_line[("links_second.jsonl", 1)]["profile_id"] == "user_id:42"


async def test_conflicting_link_is_reported_and_not_merged(runtime: EmbeddedRuntime) -> None:
    await submit(runtime, UPLOADS / "links_first.jsonl")
    await submit(runtime, UPLOADS / "links_second.jsonl")
    accepted = {
        r["source"]["line"]: r
        for r in outputs(runtime.data_dir, "accepted")
        if r["source"]["file"] == "links_second.jsonl"
    }
    assert accepted[2]["profile_id"] == "user_id:43"
    conflicts = outputs(runtime.data_dir, "conflicts")
    assert [
        (c["identifier"], c["existing_profile"], c["attempted_profile"]) for c in conflicts
    ] == [("email:ada@example.com", "user_id:42", "user_id:43")]


async def test_same_key_same_user_is_duplicate_other_user_is_not(runtime: EmbeddedRuntime) -> None:
    await submit(runtime, UPLOADS / "links_first.jsonl")
    view = await submit(runtime, UPLOADS / "links_second.jsonl")
    assert view.counts["duplicate"] == 1
    lines = {
        r["source"]["line"]
        for r in outputs(runtime.data_dir, "accepted")
        if r["source"]["file"] == "links_second.jsonl"
    }
    assert 3 not in lines and 4 in lines


async def test_every_record_gets_exactly_one_outcome(runtime: EmbeddedRuntime) -> None:
    view = await submit(runtime, UPLOADS / "links_second.jsonl")
    counts = view.counts
    assert counts["records"] == 7
    assert counts["accepted"] + counts["duplicate"] + counts["rejected"] == 7
    assert counts["by_code"] == {"blocked_identity": 1}
    assert view.status == "partial"
    assert len(outputs(runtime.data_dir, "deadletter")) == 1


async def test_every_dead_letter_says_when_its_record_was_received(
    runtime: EmbeddedRuntime,
) -> None:
    await submit(runtime, UPLOADS / "bad_rows.csv")
    letters = outputs(runtime.data_dir, "deadletter")
    assert {(d["source"]["line"], d["stage"]) for d in letters} == {
        (3, "normalize"),
        (4, "normalize"),
    }
    assert {d["received_at"] for d in letters} == {"2024-06-01T12:00:00Z"}


async def test_import_is_passive_unless_opted_in(runtime: EmbeddedRuntime) -> None:
    view = await submit(runtime, UPLOADS / "links_first.jsonl")
    assert view.counts["triggered"] == 0
    assert outputs(runtime.data_dir, "triggers") == []


async def test_old_and_future_events_never_trigger(runtime: EmbeddedRuntime) -> None:
    view = await submit(runtime, UPLOADS / "links_second.jsonl", trigger=True)
    triggered = {r["source"]["line"] for r in outputs(runtime.data_dir, "triggers")}
    assert triggered == {1, 2, 3, 4}  # 6 is 48 h old, 7 is 23 h ahead
    assert view.counts["triggered"] == 4


async def test_same_key_25_hours_later_is_accepted_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    clock = {"now": NOW}
    rt = EmbeddedRuntime(data, SettingsRegistry(), read_upload, clock=lambda: clock["now"])
    await rt.start()
    try:
        await submit(rt, UPLOADS / "links_first.jsonl")
        again = tmp_path / "again.jsonl"
        shutil.copy(UPLOADS / "links_first.jsonl", again)
        clock["now"] = NOW + timedelta(hours=1)
        assert (await submit(rt, again, name="one-hour-later.jsonl")).counts["duplicate"] == 1
        clock["now"] = NOW + timedelta(hours=25)
        view = await submit(rt, again, name="next-day.jsonl")
        assert view.counts["duplicate"] == 0 and view.counts["accepted"] == 2
    finally:
        await rt.stop()


async def test_reused_filename_is_refused(runtime: EmbeddedRuntime) -> None:
    await submit(runtime, UPLOADS / "links_first.jsonl")
    receipt = await runtime.submit_file(
        FileUpload("acme", "links_first.jsonl", UPLOADS / "links_first.jsonl", NOW)
    )
    assert receipt.upload_id is None
    assert receipt.refused is not None and receipt.refused.code == "duplicate_filename"
    # Another account may use the same name.
    other = await runtime.submit_file(
        FileUpload("globex", "links_first.jsonl", UPLOADS / "links_first.jsonl", NOW)
    )
    assert other.upload_id is not None


async def test_fixed_feedback_file_reimports_cleanly(
    runtime: EmbeddedRuntime, tmp_path: Path
) -> None:
    view = await submit(runtime, UPLOADS / "bad_rows.csv")
    assert (view.counts["accepted"], view.counts["rejected"]) == (1, 2)
    feedback = await runtime.feedback(view.upload_id)
    assert feedback is not None
    name, content = feedback
    assert name == "bad_rows.errors.csv"
    text = content.decode()
    lines = text.splitlines()
    assert lines[0] == "email,event_name,time,item_type,error_code,error_message"
    assert lines[1].startswith(", Completes checkout") and ",blocked_identity," in lines[1]
    assert ",invalid_timestamp," in lines[2]
    fixed = tmp_path / "bad_rows.fixed.csv"
    fixed.write_text(
        text.replace(
            ", Completes checkout", "cersei@casterlyrock.com, Completes checkout", 1
        ).replace("not a time", "2024-05-03 10:00+10")
    )
    again = await submit(runtime, fixed)
    assert again.status == "success" and again.counts["accepted"] == 2
    props = [
        r["properties"]
        for r in outputs(runtime.data_dir, "accepted")
        if r["source"]["file"] == "bad_rows.fixed.csv"
    ]
    assert all("error_code" not in p for p in props)


async def test_upload_shows_the_trigger_opt_in_of_its_manifest(
    runtime: EmbeddedRuntime, tmp_path: Path
) -> None:
    import zipfile

    archive = tmp_path / "drop.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("manifest.json", b'{"contents": [{"filename": "a.jsonl"}], "trigger": true}')
        z.writestr("a.jsonl", (UPLOADS / "links_first.jsonl").read_bytes())
    view = await submit(runtime, archive)
    assert view.counts["triggered"] > 0
    assert view.trigger is True
    stored = await runtime.get_upload(view.upload_id)
    assert stored is not None and stored.trigger is True


async def test_an_upload_with_nothing_rejected_has_no_feedback_file(
    runtime: EmbeddedRuntime,
) -> None:
    view = await submit(runtime, UPLOADS / "links_first.jsonl")
    assert view.counts["rejected"] == 0
    assert await runtime.feedback(view.upload_id) is None


async def test_naxai_api_feedback_rows_carry_the_path_identifier_and_reimport(
    runtime: EmbeddedRuntime, tmp_path: Path
) -> None:
    from streams.core.records import Dialect, RawRecord, Source, SourceKind

    bodies = [{"name": "purchase", "data": {}}, {"data": {"total": 5}}]
    raws = [
        RawRecord(
            Source(SourceKind.API, Dialect.NAXAI, "acme", "req-9", "api:/people", None, i + 1),
            NOW,
            orjson.dumps(body),
            path_identifier="buyer@example.com",
        )
        for i, body in enumerate(bodies)
    ]
    await runtime.submit_records("acme", "api:/people", raws)
    view = await runtime.wait("req-9", timeout=30)
    assert view.counts["by_code"] == {"missing_event_name": 1}
    feedback = await runtime.feedback("req-9")
    assert feedback is not None
    (row,) = [orjson.loads(line) for line in feedback[1].splitlines()]
    assert row["record"] == {"identifier": "buyer@example.com", "data": {"total": 5}}
    fixed = tmp_path / "fixed.jsonl"
    fixed.write_bytes(orjson.dumps(row | {"record": row["record"] | {"name": "refund"}}))
    receipt = await runtime.submit_file(
        FileUpload("acme", "fixed.jsonl", fixed, NOW, dialect=Dialect.NAXAI)
    )
    assert receipt.upload_id is not None
    again = await runtime.wait(receipt.upload_id, timeout=60)
    assert (again.status, again.counts["accepted"]) == ("success", 1)
    (record,) = [r for r in outputs(runtime.data_dir, "accepted") if r["name"] == "refund"]
    assert record["identifiers"] == {"email": "buyer@example.com"}


async def test_api_records_are_stored_then_decided(runtime: EmbeddedRuntime) -> None:
    from streams.core.records import Dialect, RawRecord, Source, SourceKind

    raws = [
        RawRecord(
            Source(SourceKind.API, Dialect.NAXAI, "acme", "req-1", "api:/people", None, i + 1),
            NOW,
            orjson.dumps({"name": "purchase", "data": {"total": i}, "idempotencyKey": "same"}),
            path_identifier="buyer@example.com",
            trigger=True,
        )
        for i in range(3)
    ]
    receipt = await runtime.submit_records("acme", "api:/people", raws)
    assert receipt.upload_id == "req-1"
    view = await runtime.wait("req-1", timeout=30)
    assert (view.counts["accepted"], view.counts["duplicate"], view.counts["triggered"]) == (
        1,
        2,
        1,
    )


async def test_second_runtime_on_the_same_data_dir_is_refused(runtime: EmbeddedRuntime) -> None:
    from streams.embedded.engine import DataDirInUse

    second = EmbeddedRuntime(runtime.data_dir, SettingsRegistry(), read_upload, clock=lambda: NOW)
    with pytest.raises(DataDirInUse, match="in use by tidegate pid"):
        await second.start()


async def test_first_records_of_new_users_read_no_dedup_state(runtime: EmbeddedRuntime) -> None:
    # A profile that has no link yet has no dedup keys: the engine skips their lookups,
    # and a key repeated within the new user's first batch is still a duplicate.
    await submit(runtime, UPLOADS / "links_first.jsonl")
    reads: list[str] = []

    def trace(sql: str) -> None:
        if "FROM st_dedup " in sql and sql.lstrip().startswith("SELECT"):
            reads.append(sql)

    runtime.engine.conn.set_trace_callback(trace)
    view = await submit(runtime, UPLOADS / "new_users.jsonl")
    assert (view.counts["accepted"], view.counts["duplicate"]) == (2, 1)
    assert reads == []
    view = await submit(runtime, UPLOADS / "links_second.jsonl")  # user 42 is known
    assert view.counts["duplicate"] == 1
    assert reads != []


async def test_upload_shows_the_manifest_trigger_and_names_a_failed_member_once(
    runtime: EmbeddedRuntime, tmp_path: Path
) -> None:
    """The embedded twin of the Kafka test of the same name (test_kafka_ingest.py)."""
    import zipfile

    archive = tmp_path / "drop.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(
            "manifest.json",
            b'{"contents": [{"filename": "a.jsonl"}, {"filename": "README.md"}], "trigger": true}',
        )
        z.writestr("a.jsonl", (UPLOADS / "links_first.jsonl").read_bytes())
        z.writestr("README.md", b"# what is in this drop\n")
    view = await submit(runtime, archive)
    assert view.trigger is True
    assert view.status == "warning", view
    [warning] = view.warnings
    assert warning.count("README.md") == 1, warning
    assert warning.startswith("unsupported_format: "), warning


async def test_archive_member_not_of_the_dialects_file_type_fails_as_a_whole(
    runtime: EmbeddedRuntime, tmp_path: Path
) -> None:
    """A notes.txt beside a Zeta drop's .jsonl files fails as a whole: the upload is
    warning, not partial with a line of invalid_json per line of the notes."""
    import zipfile

    archive = tmp_path / "zeta.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.jsonl", (UPLOADS / "links_first.jsonl").read_bytes())
        z.writestr("notes.txt", b"exported by the nightly job\nsee the wiki\n")
    view = await submit(runtime, archive)
    assert view.status == "warning", view
    assert view.counts["rejected"] == 0, view
    [warning] = view.warnings
    assert warning.startswith("unsupported_format: member notes.txt"), warning
