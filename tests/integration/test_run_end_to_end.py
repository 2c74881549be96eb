"""`tidegate run` as a user meets it: real SFTP and HTTP clients against the embedded runtime."""

from __future__ import annotations

import ftplib
import io
import json
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import paramiko
import pytest

from tests.integration.run_helpers import (
    api_key,
    ftp_port,
    http_port,
    passcode,
    read_welcome,
    sftp_login,
    sftp_port,
    start_run,
    stop_run,
)


@dataclass
class Running:
    proc: subprocess.Popen[str]
    data: Path
    sftp_port: int
    http_port: int
    user: str
    password: str
    api_key: str
    passcode: str
    ftp_port: int = 0


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    data = tmp_path / "data"
    proc = start_run(data, "--settle", "0.3")
    try:
        text = read_welcome(proc, 30)
        user, password = sftp_login(text)
        yield Running(
            proc,
            data,
            sftp_port(text),
            http_port(text),
            user,
            password,
            api_key(text),
            passcode(text),
            ftp_port(text),
        )
    finally:
        stop_run(proc)


def _events(n: int, prefix: str) -> bytes:
    ts = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    return b"".join(
        json.dumps({"user_id": f"{prefix}-{i}", "event_type": "viewed", "timestamp": ts}).encode()
        + b"\n"
        for i in range(n)
    )


def _accepted(data: Path) -> list[dict[str, object]]:
    path = data / "out" / "accepted.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def _sftp(r: Running) -> tuple[paramiko.Transport, paramiko.SFTPClient]:
    transport = paramiko.Transport(("127.0.0.1", r.sftp_port))
    transport.connect(username=r.user, password=r.password)
    client = paramiko.SFTPClient.from_transport(transport)
    assert client is not None
    return transport, client


def test_sftp_drop_reaches_the_outputs_within_two_seconds_plus_settle(running: Running) -> None:
    transport, client = _sftp(running)
    try:
        with client.open("events/first.jsonl", "wb") as handle:
            handle.write(_events(100, "sftp"))
        closed = time.monotonic()
    finally:
        client.close()
        transport.close()
    while not _accepted(running.data) and time.monotonic() - closed < 10:
        time.sleep(0.02)
    latency = time.monotonic() - closed
    records = _accepted(running.data)
    assert len(records) >= 1
    assert latency < 2.0 + 0.3, f"{latency:.2f} s from close to the first output record"
    deadline = time.monotonic() + 10
    while len(_accepted(running.data)) < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert {r["source"]["file"] for r in _accepted(running.data)} == {"first.jsonl"}  # type: ignore[index]
    history = subprocess.run(
        [sys.executable, "-m", "tidegate.cli", "uploads", "--data", str(running.data), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    uploads = json.loads(history.stdout)
    assert [(u["filename"], u["status"], u["counts"]["accepted"]) for u in uploads] == [
        ("first.jsonl", "success", 100)
    ]


def test_reupload_of_the_same_name_is_refused(running: Running) -> None:
    transport, client = _sftp(running)
    try:
        with client.open("events/twice.jsonl", "wb") as handle:
            handle.write(_events(3, "twice"))
        time.sleep(1.0)
        with (
            pytest.raises(OSError, match="duplicate_filename"),
            client.open("events/twice.jsonl", "wb") as handle,
        ):
            handle.write(_events(3, "again"))
    finally:
        client.close()
        transport.close()
    deadline = time.monotonic() + 10
    while len(_accepted(running.data)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    assert len(_accepted(running.data)) == 3, "the second upload must not be processed"


def test_clevertap_api_and_sftp_share_one_pipeline(running: Running) -> None:
    ts = int(time.time()) - 60
    body = {
        "d": [
            {
                "identity": "ada@example.com",
                "ts": ts,
                "type": "event",
                "evtName": "Charged",
                "evtData": {"Amount": 300},
            },
            {"identity": "", "ts": ts, "type": "event", "evtName": "Charged", "evtData": {}},
        ]
    }
    response = httpx.post(
        f"http://127.0.0.1:{running.http_port}/1/upload",
        json=body,
        headers={"X-CleverTap-Account-Id": "demo", "X-CleverTap-Passcode": running.passcode},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "partial" and answer["processed"] == 1
    assert answer["unprocessed"][0]["record"]["identity"] == ""
    deadline = time.monotonic() + 10
    while not _accepted(running.data) and time.monotonic() < deadline:
        time.sleep(0.05)
    [record] = _accepted(running.data)
    assert record["profile_id"] == "email:ada@example.com"
    triggers = (running.data / "out" / "triggers.jsonl").read_bytes().splitlines()
    assert len(triggers) == 1  # real-time API events trigger by default


def test_ftp_tls_drop_reaches_the_outputs(running: Running) -> None:
    cert = running.data / "ftp_tls_cert.pem"  # generated at the first start
    ftp = ftplib.FTP_TLS(context=ssl.create_default_context(cafile=str(cert)), timeout=20)
    ftp.connect("127.0.0.1", running.ftp_port)
    ftp.login(running.user, running.password)
    ftp.prot_p()
    ftp.storbinary("STOR events/over-ftps.jsonl", io.BytesIO(_events(20, "ftps")))
    ftp.quit()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        files = {r["source"]["file"] for r in _accepted(running.data)}  # type: ignore[index]
        if "over-ftps.jsonl" in files:
            break
        time.sleep(0.1)
    accepted = [r for r in _accepted(running.data) if r["source"]["file"] == "over-ftps.jsonl"]  # type: ignore[index]
    assert len(accepted) == 20
