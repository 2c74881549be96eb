"""`tidegate run --broker`'s Ingest port (`KafkaIngest`) against a real broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.ports import FileUpload
from streams.core.records import SourceKind
from streams.core.upload import UploadRow
from streams.embedded.ledger import Ledger
from tests.integration.faust_helpers import NOW, PARTITIONS, _lines, _ts
from tidegate.kafka_connectors import KafkaIngest
from tidegate.kafka_import import find_claim, new_producer, write_claim

pytestmark = [pytest.mark.kafka]

IMPORTED = "11111111-2222-4333-8444-666666666666"


async def test_filename_claimed_by_an_import_is_refused(
    kafka_bootstrap: str, tmp_path: Path, prefix: str
) -> None:
    """A name that `tidegate import --broker` claimed on the names topic is refused with
    duplicate_filename, as a name the connector's own ledger knows; another account may
    use it, and the connector then claims it in turn."""
    path = tmp_path / "may.jsonl"
    _lines(path, [{"user_id": "u1", "event_type": "view", "timestamp": _ts(2)}])
    ingest = KafkaIngest(kafka_bootstrap, tmp_path / "conn", PARTITIONS)
    await ingest.start()
    try:
        imported = UploadRow(
            IMPORTED, "acme", "may.jsonl", SourceKind.FILE, None, str(path), None, NOW
        )
        producer = new_producer(kafka_bootstrap)
        await producer.start()
        try:
            await write_claim(producer, imported)
        finally:
            await producer.stop()

        refused = await ingest.submit_file(FileUpload("acme", "may.jsonl", path, NOW))
        assert refused.upload_id is None
        assert refused.refused is not None and refused.refused.code == "duplicate_filename"
        assert await ingest.ledger.list_uploads(None, 10) == []  # nothing registered

        other = await ingest.submit_file(FileUpload("globex", "may.jsonl", path, NOW))
        assert other.upload_id is not None, other.refused
        claim = await find_claim(kafka_bootstrap, "globex", "may.jsonl", PARTITIONS)
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
