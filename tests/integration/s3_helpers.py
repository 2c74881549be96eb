"""A real S3-compatible server (s3proxy via scripts/s3server) and a boto3 client for tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.integration.conftest import in_ci

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "s3server"
ACCESS_KEY = "tidegate-test"
SECRET_KEY = "s3-test-secret-9f2c"
# a cold start resolves the s3proxy jars with Maven first
START_TIMEOUT = float(os.environ.get("S3SERVER_START_TIMEOUT", "600"))


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    log: Path

    def client(self, secret: str = SECRET_KEY) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=secret,
            region_name="us-east-1",
            config=Config(
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": "path"},
            ),
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"CI=true and no S3 server: {reason}", pytrace=False)
    pytest.skip(f"no S3 server: {reason}")


BUCKET = "tidegate-imports"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One s3proxy per test module, with the bucket `BUCKET`."""
    with s3_server(tmp_path_factory.mktemp("s3server")) as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield server


@contextmanager
def s3_server(root: Path) -> Iterator[S3Server]:
    """Starts scripts/s3server in its own process on a free loopback port; stops it after."""
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            _unavailable(f"{tool} not found")
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    log = root / "s3server.log"
    env = {**os.environ, "S3_ACCESS_KEY": ACCESS_KEY, "S3_SECRET_KEY": SECRET_KEY}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(SCRIPT), "run", str(root), str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    server = S3Server(f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        client = server.client()
        while True:
            if proc.poll() is not None:
                _unavailable(
                    f"scripts/s3server exited {proc.returncode}: {log.read_text()[-2000:]}"
                )
            try:
                client.list_buckets()
                break
            except Exception:
                if time.monotonic() > deadline:
                    _unavailable(f"scripts/s3server did not answer in {START_TIMEOUT:.0f}s")
                time.sleep(0.3)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
