"""`tidegate run --broker`'s Ingest port (`KafkaIngest`) against a real broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.files.reader import read_upload
from connectors.ports import FileUpload
from streams.core.records import SourceKind
from streams.core.upload import UploadRow
from streams.embedded.ledger import Ledger
from streams.kafka.ingest import KafkaIngest
from streams.kafka.producer import find_claim, new_producer, write_claim
from streams.kafka.topics import Topics
from tests.integration.faust_helpers import NOW, PARTITIONS, _lines, _ts

pytestmark = [pytest.mark.kafka]

UPLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "uploads"

IMPORTED = "11111111-2222-4333-8444-666666666666"


async def test_filename_claimed_by_an_import_is_refused(
    kafka_bootstrap: str, tmp_path: Path, prefix: str
) -> None:
    """A name that `tidegate import --broker` claimed on the names topic is refused with
    duplicate_filename, as a name the connector's own ledger knows; another account may
    use it, and the connector then claims it in turn."""
    path = tmp_path / "may.jsonl"
    _lines(path, [{"user_id": "u1", "event_type": "view", "timestamp": _ts(2)}])
    ingest = KafkaIngest(
        kafka_bootstrap,
        Topics.of(prefix),
        Ledger(tmp_path / "conn" / "connectors.db"),
        read_upload,
        PARTITIONS,
    )
    await ingest.start()
    try:
        imported = UploadRow(
            IMPORTED, "acme", "may.jsonl", SourceKind.FILE, None, str(path), None, NOW
        )
        producer = new_producer(kafka_bootstrap)
        await producer.start()
        try:
            await write_claim(producer, Topics.of(prefix), imported)
        finally:
            await producer.stop()

        refused = await ingest.submit_file(FileUpload("acme", "may.jsonl", path, NOW))
        assert refused.upload_id is None
        assert refused.refused is not None and refused.refused.code == "duplicate_filename"
        assert await ingest.ledger.list_uploads(None, 10) == []  # nothing registered

        other = await ingest.submit_file(FileUpload("globex", "may.jsonl", path, NOW))
        assert other.upload_id is not None, other.refused
        claim = await find_claim(
            kafka_bootstrap, Topics.of(prefix), "globex", "may.jsonl", PARTITIONS
        )
        assert claim is not None and claim["upload_id"] == other.upload_id
    finally:
        await ingest.stop()
    # stop() let the accepted upload finish producing and record it (not queued again)
    ledger = Ledger(tmp_path / "conn" / "connectors.db")
    await ledger.open()
    try:
        view = await ledger.get_upload(other.upload_id)
        assert view is not None and view.status == "processing", view
    finally:
        await ledger.close()


MANIFEST_TRIGGER = (
    b'{"contents": [{"filename": "a.jsonl"}, {"filename": "README.md"}], "trigger": true}'
)


def _drop_with_manifest_and_readme(path: Path) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as z:
        z.writestr("manifest.json", MANIFEST_TRIGGER)
        z.writestr("a.jsonl", (UPLOADS / "links_first.jsonl").read_bytes())
        z.writestr("README.md", b"# what is in this drop\n")
    return path


async def test_kafka_upload_shows_the_manifest_trigger_and_names_a_failed_member_once(
    kafka_bootstrap: str, tmp_path: Path, prefix: str
) -> None:
    """The announcement (the upload's row on the Kafka path) carries the manifest's
    "trigger": true, as the embedded runtime's row does; a failed member is named once in
    the warnings (before: "README.md: unsupported_format: member README.md: ...")."""
    from streams.kafka import topics as T
    from streams.kafka.producer import produce_upload

    archive = _drop_with_manifest_and_readme(tmp_path / "drop.zip")
    row = UploadRow(IMPORTED, "acme", "drop.zip", SourceKind.FILE, None, str(archive), None, NOW)
    await T.ensure_topics(kafka_bootstrap, Topics.of(prefix), PARTITIONS)
    producer = new_producer(kafka_bootstrap)
    await producer.start()
    try:
        announcement = await produce_upload(producer, Topics.of(prefix), row, read_upload(row))
    finally:
        await producer.stop()
    assert announcement["trigger"] is True, announcement
    assert announcement["failed_members"] == 1, announcement
    [warning] = announcement["warnings"]
    assert warning.count("README.md") == 1, warning
    assert warning.startswith("unsupported_format: "), warning


async def test_kafka_archive_member_not_of_the_dialects_file_type_fails_as_a_whole(
    kafka_bootstrap: str, tmp_path: Path, prefix: str
) -> None:
    """A notes.txt beside a Zeta drop's .jsonl files is not data: the member fails as a
    whole (unsupported_format, named in the warnings), none of its lines is produced."""
    import zipfile

    from streams.kafka import topics as T
    from streams.kafka.producer import produce_upload

    archive = tmp_path / "zeta.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.jsonl", (UPLOADS / "links_first.jsonl").read_bytes())
        z.writestr("notes.txt", b"exported by the nightly job\nsee the wiki\n")
    row = UploadRow(IMPORTED, "acme", "zeta.zip", SourceKind.FILE, None, str(archive), None, NOW)
    await T.ensure_topics(kafka_bootstrap, Topics.of(prefix), PARTITIONS)
    producer = new_producer(kafka_bootstrap)
    await producer.start()
    try:
        announcement = await produce_upload(producer, Topics.of(prefix), row, read_upload(row))
    finally:
        await producer.stop()
    lines = (UPLOADS / "links_first.jsonl").read_bytes().strip().splitlines()
    assert announcement["total"] == len(lines), announcement
    assert announcement["failed_members"] == 1, announcement
    [warning] = announcement["warnings"]
    assert warning.startswith("unsupported_format: member notes.txt"), warning
