"""S3 imports across a crash at each step before the hand-over (real s3proxy, in-process poller)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from connectors.s3 import S3Imports, S3Source, write_s3_secret
from tests.integration.recording_ingest import RecordingIngest
from tests.integration.s3_helpers import ACCESS_KEY, BUCKET, SECRET_KEY, S3Server, s3

__all__ = ["s3"]  # the fixture

BODY = b'{"_n":"visited site","_p":"person@mail.com","_t":1393344604}\n' * 1000


def _source(s3: S3Server, prefix: str) -> S3Source:
    return S3Source(
        account="acme",
        bucket=BUCKET,
        prefix=prefix,
        endpoint_url=s3.endpoint,
        access_key_id=ACCESS_KEY,
    )


async def _run_until_idle(imports: S3Imports, ingest: RecordingIngest, count: int) -> None:
    imports.start()
    try:
        await ingest.wait_for(count, timeout=20)
        await asyncio.sleep(1.0)  # several more listings: nothing is handed over again
    finally:
        await imports.aclose()


def test_a_crash_after_the_claim_resubmits_that_claim_once(s3: S3Server, tmp_path: Path) -> None:
    source = _source(s3, "after-claim/")
    s3.client().put_object(Bucket=BUCKET, Key="after-claim/a.json", Body=BODY)
    write_s3_secret(tmp_path, "acme", SECRET_KEY)

    async def crash_after_claim() -> None:
        # the steps of S3Imports._fetch up to the claim, then "kill -9" (no row update)
        imports = S3Imports(tmp_path, [source], RecordingIngest(), poll_interval=0.1)
        client = imports._client(source)
        imports.state.put("acme", "after-claim/a.json", "x", "a.json", "fetching", None)
        part = tmp_path / "s3" / "incoming" / "acme" / "1.part"
        part.parent.mkdir(parents=True)
        imports._download(client, source, "after-claim/a.json", part)
        imports.handover.claim(
            part,
            account="acme",
            folder="events",
            filename="a.json",
            received_at=datetime.now(UTC),
            trigger=None,
        )
        imports.state.close()

    asyncio.run(crash_after_claim())
    ingest = RecordingIngest()

    async def restart() -> None:
        imports = S3Imports(tmp_path, [source], ingest, poll_interval=0.1)
        await _run_until_idle(imports, ingest, 1)

    asyncio.run(restart())
    assert [(h.upload.filename, h.content) for h in ingest.handed] == [("a.json", BODY)]


def test_a_crash_during_the_download_fetches_the_object_again(s3: S3Server, tmp_path: Path) -> None:
    source = _source(s3, "mid-download/")
    s3.client().put_object(Bucket=BUCKET, Key="mid-download/b.json", Body=BODY)
    write_s3_secret(tmp_path, "acme", SECRET_KEY)
    first = S3Imports(tmp_path, [source], RecordingIngest(), poll_interval=0.1)
    first.state.put("acme", "mid-download/b.json", "x", "b.json", "fetching", None)
    part = tmp_path / "s3" / "incoming" / "acme" / "2.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(BODY[:100])  # the half-written download a kill -9 leaves
    first.state.close()
    ingest = RecordingIngest()

    async def restart() -> None:
        imports = S3Imports(tmp_path, [source], ingest, poll_interval=0.1)
        await _run_until_idle(imports, ingest, 1)

    asyncio.run(restart())
    assert [(h.upload.filename, h.content) for h in ingest.handed] == [("b.json", BODY)]
    assert not part.exists()
