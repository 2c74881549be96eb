"""A full data directory (a small tmpfs) during an import and during API intake: the upload
pauses at its last committed batch with the cause logged, no output holds a partial line,
new uploads are refused (HTTP 507), and once space is freed it ends with every outcome once."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from connectors.files.reader import read_upload
from connectors.http import create_app
from connectors.ports import FileUpload, StorageFull
from streams.core.records import RawRecord
from streams.core.settings import SettingsRegistry
from streams.embedded.runtime import EmbeddedRuntime
from tests.integration.memory_ingest import StaticAuth

pytestmark = pytest.mark.timeout(300)

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
LINES = 60_000
FREE_LEFT = 3 * 1024 * 1024  # what the balloon leaves free: a few batches' worth


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount: Path) -> Path:
    """A balloon file taking all but FREE_LEFT bytes of the filesystem."""
    balloon = mount / "balloon"
    stats = os.statvfs(mount)
    size = stats.f_bavail * stats.f_frsize - FREE_LEFT
    with balloon.open("wb") as out:
        chunk = b"\0" * (1 << 20)
        while size > 0:
            out.write(chunk[: min(size, len(chunk))])
            size -= len(chunk)
    return balloon


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines() if path.exists() else []


async def test_a_full_disk_pauses_the_import_refuses_uploads_and_resumes_once_freed(
    small_fs: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    data = small_fs / "data"
    drop = tmp_path / "drop.jsonl"
    with drop.open("wb") as handle:
        for i in range(LINES):
            record = {
                "user_id": f"u{i}",
                "event_type": "viewed",
                "timestamp": "2024-06-01T10:00:00Z",
                "page": "x" * 200,
            }
            handle.write(orjson.dumps(record) + b"\n")
    runtime = EmbeddedRuntime(
        data, SettingsRegistry(), read_upload, clock=lambda: NOW, full_retry_seconds=0.2
    )
    await runtime.start()
    try:
        balloon = _fill(small_fs)
        receipt = await runtime.submit_file(FileUpload("acme", "drop.jsonl", drop, NOW))
        assert receipt.upload_id is not None
        for _ in range(600):
            if runtime.storage_full:
                break
            await asyncio.sleep(0.1)
        assert runtime.storage_full and "No space left on device" in runtime.storage_full
        assert "is full" in caplog.text and receipt.upload_id in caplog.text

        view = await runtime.get_upload(receipt.upload_id)
        assert view is not None and view.status == "processing"
        out = data / "out"
        for name in ("accepted", "deadletter"):
            content = (out / f"{name}.jsonl").read_bytes()
            assert content == b"" or content.endswith(b"\n"), f"{name}: a partial line"
        paused_at = len(_lines(out / "accepted.jsonl"))
        assert paused_at < LINES  # what was committed before it filled up (may be none)

        # New uploads are refused, through the port and over HTTP (507, with the reason).
        with pytest.raises(StorageFull):
            await runtime.submit_records("acme", "api", list[RawRecord]())
        app = create_app(runtime, StaticAuth(passcodes={"acme": "pass"}))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post(
                "/1/upload",
                headers={"X-CleverTap-Account-Id": "acme", "X-CleverTap-Passcode": "pass"},
                json={
                    "d": [
                        {"identity": "a@x.io", "ts": 1717236000, "type": "event"}
                        | {"evtName": "Viewed", "evtData": {}}
                    ]
                },
            )
        assert response.status_code == 507, response.text
        assert response.json()["code"] == "insufficient_storage"
        assert "no space left" in response.json()["message"]

        balloon.unlink()  # space is freed: the same upload resumes, in this process
        final = await runtime.wait(receipt.upload_id, timeout=240)
        assert final.status == "success", final
        assert runtime.storage_full is None
        assert "resumed" in caplog.text
    finally:
        await runtime.stop()

    accepted = [orjson.loads(line)["event_id"] for line in _lines(out / "accepted.jsonl")]
    assert len(accepted) == LINES
    assert max(Counter(accepted).values()) == 1
    assert final.counts["accepted"] == LINES
