#!/usr/bin/env python3
"""Peak memory of fetching an S3 object the way `tidegate run` does, against object size.

Starts s3proxy (scripts/s3server), puts a small and a big object, and measures the peak
RSS of a child process that fetches each with `S3Imports._download` (the body streamed to
disk in 1 MiB chunks). Memory must be flat in object size: a 1 GB object is never held.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import peak_rss

BUCKET = "bench"


def child(endpoint: str, key: str, target: str) -> None:
    from connectors.s3 import S3Imports, S3Source, write_s3_secret
    from tests.integration.recording_ingest import RecordingIngest
    from tests.integration.s3_helpers import ACCESS_KEY, SECRET_KEY

    data = Path(target).parent / "data"
    write_s3_secret(data, "bench", SECRET_KEY)
    source = S3Source("bench", BUCKET, "", None, endpoint, ACCESS_KEY)
    imports = S3Imports(data, [source], RecordingIngest())
    imports._download(imports._client(source), source, key, Path(target))


def _object(path: Path, megabytes: int) -> None:
    line = b'{"_n":"visited site","_p":"person@mail.com","_t":1393344604,"pad":"' + b"x" * 40
    line += b'"}\n'
    with path.open("wb") as out:
        for _ in range(megabytes * 1_000_000 // len(line)):
            out.write(line)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(*sys.argv[2:])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--big-mb", type=int, default=1024)
    parser.add_argument("--small-mb", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from tests.integration.s3_helpers import s3_server

    with tempfile.TemporaryDirectory() as tmp, s3_server(Path(tmp) / "server") as server:
        client = server.client()
        client.create_bucket(Bucket=BUCKET)
        for megabytes in (args.small_mb, args.big_mb):
            body = Path(tmp) / f"{megabytes}.jsonl"
            _object(body, megabytes)
            size = body.stat().st_size
            client.upload_file(str(body), BUCKET, body.name)
            body.unlink()
            peaks, secs = [], []
            for run in range(args.runs):
                target = Path(tmp) / f"fetched-{run}.part"
                cmd = [sys.executable, __file__, "--child", server.endpoint, body.name]
                code, elapsed, peak = peak_rss.run([*cmd, str(target)])
                assert code == 0 and target.stat().st_size == size
                target.unlink()
                peaks.append(peak)
                secs.append(elapsed)
            print(
                f"object {size / 1e6:,.0f} MB: peak RSS median {statistics.median(peaks):.1f} MiB "
                f"(runs {' / '.join(f'{p:.1f}' for p in peaks)}), "
                f"fetch {statistics.median(secs):.1f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
