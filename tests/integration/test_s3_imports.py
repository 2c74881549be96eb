"""S3 bucket imports under `tidegate run`: a real S3 server (s3proxy) and a real client (boto3)."""

from __future__ import annotations

import functools
import io
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from connectors.accounts import add_account
from connectors.s3 import read_s3_secret, secret_path, write_s3_secret
from tests.integration.run_helpers import read_welcome, start_run
from tests.integration.s3_helpers import BUCKET, SECRET_KEY, S3Server, free_port, s3
from tests.integration.test_embedded_crash import _event_ids

SEEDS = Path(__file__).resolve().parents[1] / "fixtures" / "seeds"
__all__ = ["s3"]  # the fixture


@dataclass
class Run:
    data: Path
    proc: subprocess.Popen[str]
    http: str
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)

    def get(self, path: str, key: str) -> Any:
        response = httpx.get(
            self.http + path, headers={"Authorization": f"Bearer {key}"}, timeout=10
        )
        response.raise_for_status()
        return response.json()


def _accounts(data: Path, s3: S3Server, prefixes: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Accounts with an S3 source each: name -> (prefix, endpoint); returns their API keys."""
    keys = {}
    for name, (prefix, endpoint) in prefixes.items():
        creds = add_account(data / "accounts.toml", name)
        keys[name] = creds.api_key
        with (data / "accounts.toml").open("a", encoding="utf-8") as handle:
            handle.write(
                f's3_bucket = "{BUCKET}"\ns3_prefix = "{prefix}"\n'
                f's3_endpoint_url = "{endpoint}"\ns3_access_key_id = "tidegate-test"\n'
            )
    return keys


def _start(data: Path) -> Run:
    http_port = free_port()
    log = data / f"run-{time.monotonic_ns()}.log"
    with log.open("w") as err:
        proc = start_run(
            data, "--http-port", str(http_port), "--settle", "0.3", "--s3-interval", "0.3",
            stderr=err,
        )  # fmt: skip
    run = Run(data, proc, f"http://127.0.0.1:{http_port}", log)
    read_welcome(proc, 60, last="  accounts  ")
    assert proc.poll() is None, log.read_text()
    return run


@pytest.fixture
def start() -> Iterator[Callable[[Path], Run]]:
    runs: list[Run] = []

    def make(data: Path) -> Run:
        run = _start(data)
        runs.append(run)
        return run

    yield make
    for run in runs:
        run.stop()


def _wait(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _final(run: Run, key: str, filename: str) -> dict[str, Any] | None:
    for view in run.get("/uploads", key)["uploads"]:
        if view["filename"] == filename and view["status"] not in ("queued", "processing"):
            return dict(view)
    return None


def _imported_alone(tmp: Path, name: str, content: bytes) -> dict[str, Any]:
    """The upload's counts when the same file is imported with `tidegate import`."""
    path = tmp / name
    path.write_bytes(content)
    command = [sys.executable, "-m", "tidegate.cli", "import", str(path), "--account", "x"]
    proc = subprocess.run(
        [*command, "--data", str(tmp / "alone"), "--json"],
        capture_output=True,
        check=False,
    )
    report = orjson.loads(proc.stdout)
    counts = {**report["counts"], "by_code": report["rejected_by_code"]}
    return {"status": report["status"], "counts": counts}


def _recent_kissmetrics(n: int, tag: str) -> bytes:
    t = int((datetime.now(UTC) - timedelta(minutes=5)).timestamp())
    return (
        b"".join(
            orjson.dumps({"_n": "visited site", "_p": f"{tag}{i}@mail.com", "_t": t}) + b"\n"
            for i in range(n)
        )
        + b'{"_n": "no person"}\n'
    )


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_objects_put_into_the_bucket_become_uploads_with_their_outcomes(
    s3: S3Server, tmp_path: Path, start: Callable[[Path], Run]
) -> None:
    data = tmp_path / "data"
    keys = _accounts(data, s3, {"acme": ("acme/in/", s3.endpoint)})
    write_s3_secret(data, "acme", SECRET_KEY)
    objects = {
        "km.json": _recent_kissmetrics(50, "km"),
        "zeta.jsonl": (SEEDS / "zeta_sample.jsonl").read_bytes(),
        "vero.csv": (SEEDS / "vero_checkouts.csv").read_bytes(),
        "bundle.zip": _zip(
            {"a.json": _recent_kissmetrics(5, "za"), "b.jsonl": _recent_kissmetrics(3, "zb")}
        ),
    }
    client = s3.client()
    for name, content in objects.items():
        client.put_object(Bucket=BUCKET, Key=f"acme/in/{name}", Body=content)
    client.put_object(Bucket=BUCKET, Key="acme/in/nested/skip.json", Body=b"{}\n")
    client.put_object(Bucket=BUCKET, Key="acme/other.json", Body=b"{}\n")
    run = start(data)
    for name, content in objects.items():
        view = _wait(name, functools.partial(_final, run, keys["acme"], name))
        assert {"status": view["status"], "counts": view["counts"]} == _imported_alone(
            tmp_path, name, content
        ), (name, view)
    uploads = run.get("/uploads", keys["acme"])["uploads"]
    assert sorted(u["filename"] for u in uploads) == sorted(objects)  # nothing else imported
    km = next(u for u in uploads if u["filename"] == "km.json")
    feedback = httpx.get(
        f"{run.http}/uploads/{km['upload_id']}/errors",
        headers={"Authorization": f"Bearer {keys['acme']}"},
    )
    assert feedback.status_code == 200 and b"missing_identity" in feedback.content
    status = run.get("/sources", keys["acme"])["s3"]
    assert status["state"] == "ok" and status["bucket"] == BUCKET


def test_a_rewritten_object_is_refused_once_as_duplicate_filename(
    s3: S3Server, tmp_path: Path, start: Callable[[Path], Run]
) -> None:
    data = tmp_path / "data"
    keys = _accounts(data, s3, {"acme": ("rewrite/", s3.endpoint)})
    write_s3_secret(data, "acme", SECRET_KEY)
    client = s3.client()
    client.put_object(Bucket=BUCKET, Key="rewrite/daily.json", Body=_recent_kissmetrics(3, "a"))
    run = start(data)
    first = _wait("the first import", lambda: _final(run, keys["acme"], "daily.json"))
    client.put_object(Bucket=BUCKET, Key="rewrite/daily.json", Body=_recent_kissmetrics(9, "b"))
    refused = _wait(
        "the refusal", lambda: run.get("/sources", keys["acme"])["s3"]["refused"], timeout=30
    )
    time.sleep(2)  # several more listings see the same rewritten object
    status = run.get("/sources", keys["acme"])["s3"]
    assert [(r["key"], r["code"]) for r in status["refused"]] == [
        ("rewrite/daily.json", "duplicate_filename")
    ]
    assert refused[0]["etag"] != ""
    uploads = run.get("/uploads", keys["acme"])["uploads"]
    assert [u["upload_id"] for u in uploads] == [first["upload_id"]]
    assert uploads[0]["counts"]["records"] == 4  # the first version only
    assert run.log.read_text().count("duplicate_filename") == 1


def test_wrong_credentials_show_on_the_status_and_recover_when_fixed(
    s3: S3Server, tmp_path: Path, start: Callable[[Path], Run]
) -> None:
    data = tmp_path / "data"
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    keys = _accounts(
        data,
        s3,
        {"acme": ("creds/", s3.endpoint), "good": ("good/", s3.endpoint), "gone": ("x/", dead)},
    )
    wrong = "not-the-secret-7c1e"
    write_s3_secret(data, "acme", wrong)
    write_s3_secret(data, "good", SECRET_KEY)
    write_s3_secret(data, "gone", SECRET_KEY)
    assert secret_path(data, "acme").stat().st_mode & 0o777 == 0o600
    client = s3.client()
    client.put_object(Bucket=BUCKET, Key="creds/late.json", Body=_recent_kissmetrics(2, "c"))
    client.put_object(Bucket=BUCKET, Key="good/now.json", Body=_recent_kissmetrics(2, "g"))
    run = start(data)

    def failing(account: str) -> dict[str, Any] | None:
        status = run.get("/sources", keys[account])["s3"]
        return status if status["state"] == "error" and status["failures"] >= 2 else None

    acme = _wait("the credential error", lambda: failing("acme"))
    assert acme["error"]["kind"] == "bad_credentials", acme
    assert _wait("the unreachable error", lambda: failing("gone"))["error"]["kind"] == (
        "unreachable"
    )
    # other accounts unaffected: `good` imports while the other two fail
    _wait("the good account's import", lambda: _final(run, keys["good"], "now.json"))
    assert run.get("/uploads", keys["acme"])["uploads"] == []
    assert acme["retry_in_seconds"] > 0.3  # backing off

    fixed = subprocess.run(
        [sys.executable, "-m", "tidegate.cli", "s3-secret", "acme", "--data", str(data)],
        input=SECRET_KEY + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    assert SECRET_KEY not in fixed.stdout + fixed.stderr
    _wait("the import after the fix", lambda: _final(run, keys["acme"], "late.json"), timeout=90)
    status = run.get("/sources", keys["acme"])["s3"]
    assert (status["state"], status["error"], status["failures"]) == ("ok", None, 0)
    log = run.log.read_text()
    assert "s3: acme: bucket tidegate-imports" in log and "bad_credentials" in log
    assert wrong not in log and SECRET_KEY not in log
    assert read_s3_secret(data, "acme") == SECRET_KEY


LINES = 200_000


def _write_object(path: Path) -> int:
    """200,000 Naxai-style lines with repeats and bad lines; returns the distinct good keys."""
    ts = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    keys: set[int] = set()
    with path.open("wb") as out:
        for i in range(LINES):
            if i % 1000 == 7:
                out.write(b"{not json\n")
                continue
            record = {
                "user_id": f"u{i % 5000}",
                "event_type": "viewed",
                "timestamp": ts,
                "idempotencyKey": f"k{i % 150_000}",
                "page": i,
            }
            out.write(orjson.dumps(record) + b"\n")
            keys.add(i % 150_000)
    return len(keys)


@pytest.mark.slow
def test_kill_9_during_a_200k_line_object_then_restart_writes_every_outcome_once(
    s3: S3Server, tmp_path: Path, start: Callable[[Path], Run]
) -> None:
    data = tmp_path / "data"
    keys = _accounts(data, s3, {"acme": ("crash/", s3.endpoint)})
    write_s3_secret(data, "acme", SECRET_KEY)
    body = tmp_path / "events-200k.jsonl"
    distinct = _write_object(body)
    s3.client().upload_file(str(body), BUCKET, "crash/events-200k.jsonl")
    accepted = data / "out" / "accepted.jsonl"

    first = start(data)
    _wait(
        "a part of the upload committed",
        lambda: accepted.exists() and accepted.stat().st_size > 5_000_000,
        timeout=300,
    )
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait()
    before = len(_event_ids(accepted))
    assert 0 < before < distinct, "the kill must land mid-import"

    second = start(data)
    view = _wait("the resumed upload", lambda: _final(second, keys["acme"], body.name), timeout=600)
    time.sleep(1.5)  # more listings: the object is not imported again
    uploads = second.get("/uploads", keys["acme"])["uploads"]
    assert len(uploads) == 1
    counts = view["counts"]
    accepted_ids = _event_ids(accepted)
    dead_ids = _event_ids(data / "out" / "deadletter.jsonl")
    assert not [i for i, n in Counter(accepted_ids).items() if n > 1], "an event_id twice"
    assert not [i for i, n in Counter(dead_ids).items() if n > 1]
    assert not set(accepted_ids) & set(dead_ids)
    bad = LINES // 1000
    assert counts["records"] == LINES
    assert counts["rejected"] == len(dead_ids) == bad
    assert counts["accepted"] == len(accepted_ids) == distinct
    assert counts["duplicate"] == LINES - distinct - bad
