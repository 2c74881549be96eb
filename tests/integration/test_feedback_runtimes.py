"""The feedback file of the same CSV upload on both runtimes: the embedded runtime's and the
Kafka runtime's (rows collected from the dead-letter topic) are the same bytes."""

from __future__ import annotations

import asyncio
import io
import zipfile
from pathlib import Path

import pytest

from connectors.files.reader import read_upload
from connectors.ports import FileUpload
from streams.core.settings import SettingsRegistry
from streams.embedded.ledger import Ledger
from streams.embedded.runtime import EmbeddedRuntime
from streams.kafka.ingest import KafkaIngest
from streams.kafka.topics import Topics
from tests.integration.faust_helpers import NOW, PARTITIONS, Workers

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

HEADER = "email, event_name, time, item"


def _csv(rows: list[str]) -> bytes:
    return ("\r\n".join([HEADER, *rows]) + "\r\n").encode()


def _uploads(root: Path) -> list[Path]:
    """A CSV file whose rejected rows are of every kind (a rule, a blocked identifier, a
    row that is not a CSV row of the header: no fields), and an archive of two CSV
    members, one of which begins with a row that cannot be framed."""
    at = "2024-06-01 11:30+00"  # half an hour before NOW
    plain = root / "march.csv"
    plain.write_bytes(
        _csv(
            [
                f"a@acme.test, Completes checkout, {at}, shirt",
                "b@acme.test, Completes checkout, not a time, hat",
                f"b@acme.test, Completes checkout, {at}, hat, extra",  # 5 cells
                f'"c@acme.test","Views, twice",{at},scarf',
                f"null, Completes checkout, {at}, shoe",  # a blocked identifier
                f", Completes checkout, {at}, sock",  # no identifier at all
            ]
        )
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("one.csv", _csv([f"d@acme.test, Buys, {at}, cap", "x, y"]))
        archive.writestr("two.csv", _csv(["broken", f"e@acme.test, Buys, {at}, cap"]))
    packed = root / "april.zip"
    packed.write_bytes(buffer.getvalue())
    return [plain, packed]


async def _embedded(paths: list[Path], data: Path) -> list[tuple[str, bytes] | None]:
    runtime = EmbeddedRuntime(data, SettingsRegistry(), read_upload, clock=lambda: NOW)
    await runtime.start()
    try:
        found = []
        for path in paths:
            receipt = await runtime.submit_file(FileUpload("acme", path.name, path, NOW))
            assert receipt.upload_id is not None, receipt.refused
            await runtime.wait(receipt.upload_id, timeout=120)
            found.append(await runtime.feedback(receipt.upload_id))
        return found
    finally:
        await runtime.stop()


async def _kafka(
    paths: list[Path], bootstrap: str, prefix: str, ledger: Path
) -> list[tuple[str, bytes] | None]:
    ingest = KafkaIngest(bootstrap, Topics.of(prefix), Ledger(ledger), read_upload, PARTITIONS)
    await ingest.start()
    try:
        found = []
        for path in paths:
            receipt = await ingest.submit_file(FileUpload("acme", path.name, path, NOW))
            assert receipt.upload_id is not None, receipt.refused
            await ingest.wait(receipt.upload_id, timeout=180)
            found.append(await ingest.feedback(receipt.upload_id))
        return found
    finally:
        await ingest.stop()


def test_a_csv_uploads_feedback_is_the_same_csv_on_both_runtimes(
    kafka_bootstrap: str, tmp_path: Path, prefix: str
) -> None:
    paths = _uploads(tmp_path)
    embedded = asyncio.run(_embedded(paths, tmp_path / "embedded"))
    workers = Workers(kafka_bootstrap, tmp_path, prefix)
    try:
        workers.start(1)
        kafka = asyncio.run(_kafka(paths, kafka_bootstrap, prefix, tmp_path / "connectors.db"))
    except BaseException:
        print(workers.report())
        raise
    finally:
        workers.stop()

    assert kafka == embedded
    plain, packed = embedded
    assert plain is not None and packed is not None
    assert plain[0] == "march.errors.csv" and packed[0] == "april.errors.csv"
    lines = plain[1].decode().splitlines()
    assert lines[0] == "email,event_name,time,item,error_code,error_message"
    codes = [line.split(",")[-2] for line in lines[1:]]
    assert len(codes) == 4 and "invalid_timestamp" in codes, lines
    # the rows as they were received, with the two columns added
    assert lines[2].startswith("b@acme.test, Completes checkout, 2024-06-01 11:30+00, hat, extra,")
    # the member whose first row could not be framed still has its header
    members = packed[1].decode().splitlines()
    assert members[0] == "email,event_name,time,item,error_code,error_message"
    assert [line.split(",")[0] for line in members[1:]] == ["x", "broken"]
