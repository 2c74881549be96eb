"""The HTTP API on a real uvicorn server (uvloop) on an ephemeral loopback port.

The seeds' own example requests run as written, host aside: the CleverTap `curl` command
through the real curl binary and the Python `requests` snippet. schemathesis drives every
operation of `/openapi.json` and finds no 5xx.
"""

from __future__ import annotations

import asyncio
import glob
import json
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from connectors.http import HttpLimits, IngestUnavailable, create_app, serve_http
from connectors.http.server import HttpServer, run
from tests.integration.memory_ingest import MemoryIngest, StaticAuth

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO.parent / "shared" / "seeds"
SEED_DAY = datetime(2016, 7, 13, tzinfo=UTC)  # the seed's ts 1468308340 is 2016-07-12
SEED_HOST = "https://api.clevertap.com"

# Seed 004's example request and Python snippet, verbatim.
SEED_CURL = """curl -X POST -d '{ "d": [ { "FBID": "34322423", "ts": 1468308340, "type": "event", "evtName": "Product viewed", "evtData": { "Product name": "Casio Chronograph Watch", "Category": "Mens Watch", "Price": 59.99, "Currency": "USD" } } ] }' "https://api.clevertap.com/1/upload" \\
-H "X-CleverTap-Account-Id: ACCOUNT_ID" \\
-H "X-CleverTap-Passcode: PASSCODE" \\
-H "Content-Type: application/json; charset=utf-8\""""
SEED_REQUESTS = """import requests
headers = {
'X-CleverTap-Account-Id': 'ACCOUNT_ID',
'X-CleverTap-Passcode': 'PASSCODE',
'Content-Type': 'application/json; charset=utf-8',
}
data = '{ "d": [ { "FBID": "34322423", "ts": 1468308340, "type": "event", "evtName": "Product viewed", "evtData": { "Product name": "Casio Chronograph Watch", "Category": "Mens Watch", "Price": 59.99, "Currency": "USD" } } ] }'
response = requests.post('https://api.clevertap.com/1/upload', headers=headers, data=data)"""
SEED_RESPONSE = {"status": "success", "processed": 1, "unprocessed": []}
# Seed 003's curl, verbatim but for the host, {identifier}, and the credentials it omits.
NAXAI_BODY_LINES = [
    "",
    "{",
    '  "name": "purchase",',
    '  "type": "event",',
    '  "data" : ',  # sic: a trailing space, then a tab-indented brace
    "  \t{",
    '    "items": [',
    "            {",
    '                "product": "keyboard",',
    '                "price": 100',
    "            },",
    "            {",
    '                "product": "mouse",',
    '                "price": 50',
    "            }",
    "        ],",
    '    "total": 150',
    "    }",
    "}",
    "",
]
NAXAI_CURL = (
    "curl --request POST \\\n"
    "     --url https://api.naxai.com/people/contacts/{identifier}/events \\\n"
    "     --header 'accept: application/json' \\\n"
    "     --header 'content-type: application/json' \\\n"
    "     --data '" + "\n".join(NAXAI_BODY_LINES) + "'"
)

PASSCODES = {"ACCOUNT_ID": "PASSCODE", "acme": "acme-pass", "beta": "beta-pass"}
API_KEYS = {"acme": "acme.key", "beta": "beta.key"}
ACME = {"X-CleverTap-Account-Id": "acme", "X-CleverTap-Passcode": "acme-pass"}
BETA = {"X-CleverTap-Account-Id": "beta", "X-CleverTap-Passcode": "beta-pass"}

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl binary")


class LiveServer:
    """The app on uvicorn in a thread of its own (uvloop), for blocking clients."""

    def __init__(self, *, clock: Callable[[], datetime] | None = None, **limits: Any) -> None:
        self.ingest = MemoryIngest()
        settings_ = {"records_per_second": None, **limits}
        self.app = create_app(
            self.ingest,
            StaticAuth(API_KEYS, PASSCODES),
            clock=clock or (lambda: datetime.now(UTC)),
            limits=HttpLimits(**settings_),
        )
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.server: HttpServer | None = None
        self._thread = threading.Thread(target=run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.server = await serve_http(self.app, "127.0.0.1", 0)
        self._ready.set()
        await self._stop.wait()
        await self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    def __enter__(self) -> LiveServer:
        self._thread.start()
        assert self._ready.wait(15), "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        assert not self._thread.is_alive()


@pytest.fixture
def seed_server() -> Iterator[LiveServer]:
    with LiveServer(clock=lambda: SEED_DAY) as server:
        yield server


@pytest.fixture
def server() -> Iterator[LiveServer]:
    with LiveServer() as live:
        yield live


FIXTURE_SEEDS = REPO / "tests" / "fixtures" / "seed_pages"
SEED_COPIES = {"003": "003_naxai.txt", "004": "004_clevertap.txt"}


def seed_text(number: str) -> str:
    """The seed's text as kept under tests/fixtures; checked against ../shared when present."""
    copy = (FIXTURE_SEEDS / SEED_COPIES[number]).read_text(encoding="utf-8")
    found = glob.glob(str(SEEDS / f"{number}_*.txt"))
    if found:
        assert Path(found[0]).read_text(encoding="utf-8") == copy, f"{found[0]} changed"
    return copy


def test_the_embedded_examples_are_the_seeds_own() -> None:
    clevertap = seed_text("004")
    naxai = seed_text("003")
    assert SEED_CURL in clevertap
    assert SEED_REQUESTS in clevertap
    example = clevertap.split("Example Response", 1)[1].split("Debugging", 1)[0]
    assert json.loads(example) == SEED_RESPONSE
    assert NAXAI_CURL in naxai


def test_seed_curl_command_gets_the_seed_response(seed_server: LiveServer) -> None:
    command = SEED_CURL.replace(SEED_HOST, seed_server.url)
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == SEED_RESPONSE
    [record] = seed_server.ingest.records("ACCOUNT_ID")
    assert orjson.loads(record.payload)["evtName"] == "Product viewed"


def test_seed_python_requests_snippet_gets_the_seed_response(seed_server: LiveServer) -> None:
    namespace: dict[str, Any] = {}
    exec(SEED_REQUESTS.replace(SEED_HOST, seed_server.url), namespace)
    response = namespace["response"]
    assert response.status_code == 200
    assert response.json() == SEED_RESPONSE
    assert len(seed_server.ingest.records("ACCOUNT_ID")) == 1


def test_seed_naxai_curl_with_credentials(server: LiveServer) -> None:
    command = NAXAI_CURL.replace("https://api.naxai.com", server.url).replace(
        "{identifier}", "buyer%40example.com"
    )
    command = command.replace(
        "--header 'accept: application/json'",
        "--header 'accept: application/json' --header 'authorization: Bearer acme.key'",
    )
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["status"] == "received"
    [record] = server.ingest.records("acme")
    assert record.path_identifier == "buyer@example.com"


def test_dry_run_over_the_wire_stores_nothing(seed_server: LiveServer) -> None:
    data = SEED_REQUESTS.split("data = '", 1)[1].split("'\n", 1)[0]
    response = requests.post(
        f"{seed_server.url}/1/upload?dryRun=1",
        headers={"X-CleverTap-Account-Id": "ACCOUNT_ID", "X-CleverTap-Passcode": "PASSCODE"},
        data=data,
        timeout=30,
    )
    assert response.json() == SEED_RESPONSE
    assert seed_server.ingest.submissions == 0


def test_1001_records_are_batch_too_large(server: LiveServer) -> None:
    record = {"identity": "u", "type": "event", "evtName": "e", "evtData": {}}
    response = requests.post(
        f"{server.url}/1/upload",
        headers=ACME,
        data=orjson.dumps({"d": [record] * 1001}),
        timeout=30,
    )
    assert response.status_code == 400
    assert response.json()["code"] == "batch_too_large"
    assert server.ingest.submissions == 0


def test_partial_batch_lists_failures_and_stores_the_rest(server: LiveServer) -> None:
    good = {"identity": "u", "type": "event", "evtName": "e", "evtData": {}}
    batch = [good, {"identity": "u", "type": "event"}, good, 5]
    response = requests.post(
        f"{server.url}/1/upload", headers=ACME, data=orjson.dumps({"d": batch}), timeout=30
    )
    body = response.json()
    assert body["status"] == "partial"
    assert body["processed"] == 2
    assert [u["record"] for u in body["unprocessed"]] == [batch[1], 5]
    assert len(server.ingest.records("acme")) == 4
    upload = requests.get(
        f"{server.url}/uploads/{response.headers['X-Tidegate-Upload-Id']}", headers=ACME, timeout=30
    ).json()
    assert upload["counts"]["accepted"] == 2


def test_401_stores_nothing_and_accounts_stay_apart(server: LiveServer) -> None:
    body = orjson.dumps({"d": [{"identity": "u", "type": "event", "evtName": "e", "evtData": {}}]})
    for headers in (
        {},
        {"X-CleverTap-Account-Id": "acme", "X-CleverTap-Passcode": "beta-pass"},
        {"Authorization": "Bearer beta.key", "X-Tidegate-Account": "acme"},
    ):
        response = requests.post(f"{server.url}/1/upload", headers=headers, data=body, timeout=30)
        assert response.status_code == 401
    assert server.ingest.submissions == 0
    acme_upload = requests.post(f"{server.url}/1/upload", headers=ACME, data=body, timeout=30)
    upload_id = acme_upload.headers["X-Tidegate-Upload-Id"]
    assert requests.get(f"{server.url}/uploads", headers=BETA, timeout=30).json() == {"uploads": []}
    assert (
        requests.get(f"{server.url}/uploads/{upload_id}", headers=BETA, timeout=30).status_code
        == 404
    )
    assert (
        requests.get(
            f"{server.url}/uploads/{upload_id}",
            headers={"Authorization": "Bearer beta.key"},
            timeout=30,
        ).status_code
        == 404
    )
    assert requests.get(f"{server.url}/uploads/{upload_id}", headers=ACME, timeout=30).ok


def raw_http(port: int, request: bytes, *, body_chunks: Iterable[bytes] = ()) -> bytes:
    """Sends a request over a plain socket and returns the whole response head + body."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and stopped reading: expected for 413
        received = b""
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            received += data
            if b"\r\n\r\n" in received:
                head, _, rest = received.partition(b"\r\n\r\n")
                length = [
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ]
                if length and len(rest) >= length[0]:
                    break
        return received


def test_413_by_content_length_before_the_body_is_sent(server: LiveServer) -> None:
    head = (
        b"POST /1/upload HTTP/1.1\r\nHost: t\r\nX-CleverTap-Account-Id: acme\r\n"
        b"X-CleverTap-Passcode: acme-pass\r\nContent-Type: application/json\r\n"
        b"Content-Length: 6291456\r\n\r\n"
    )
    response = raw_http(server.port, head)
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert b'"payload_too_large"' in response
    assert server.ingest.submissions == 0


def test_413_counting_streamed_chunked_bytes(server: LiveServer) -> None:
    head = (
        b"POST /1/upload HTTP/1.1\r\nHost: t\r\nX-CleverTap-Account-Id: acme\r\n"
        b"X-CleverTap-Passcode: acme-pass\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    piece = b" " * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    chunks = iter([chunk] * 100 + [b"0\r\n\r\n"])  # 6.25 MiB > 5 MiB
    response = raw_http(server.port, head, body_chunks=chunks)
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert server.ingest.submissions == 0


def test_413_with_curl_and_a_6_mib_file(server: LiveServer, tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b'{"d": [' + b" " * (6 * 1024 * 1024) + b"]}")
    done = subprocess.run(
        [
            "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
            "--data-binary", f"@{big}", f"{server.url}/1/upload",
            "-H", "X-CleverTap-Account-Id: acme", "-H", "X-CleverTap-Passcode: acme-pass",
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.stdout == "413"


def test_429_with_retry_after() -> None:
    with LiveServer(records_per_second=50.0, burst_records=1000) as live:
        record = {"identity": "u", "type": "event", "evtName": "e", "evtData": {}}
        body = orjson.dumps({"d": [record] * 800})
        first = requests.post(f"{live.url}/1/upload", headers=ACME, data=body, timeout=30)
        assert first.status_code == 200
        second = requests.post(f"{live.url}/1/upload", headers=ACME, data=body, timeout=30)
        assert second.status_code == 429
        assert int(second.headers["Retry-After"]) >= 1
        assert second.json()["code"] == "rate_limited"
        assert live.ingest.records_submitted == 800


def test_503_with_retry_after_when_the_ingest_raises(server: LiveServer) -> None:
    server.ingest.fail_with = IngestUnavailable("store is down", retry_after=3)
    body = orjson.dumps({"d": [{"identity": "u", "type": "event", "evtName": "e", "evtData": {}}]})
    response = requests.post(f"{server.url}/1/upload", headers=ACME, data=body, timeout=30)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "3"
    assert response.json()["status"] == "fail"
    server.ingest.fail_with = OSError(5, "I/O error")
    response = requests.post(
        f"{server.url}/people/contacts/u/events",
        headers={"Authorization": "Bearer acme.key"},
        data=b'{"name": "p"}',
        timeout=30,
    )
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    server.ingest.fail_with = None
    assert requests.post(f"{server.url}/1/upload", headers=ACME, data=body, timeout=30).ok


def test_healthz_metrics_openapi(server: LiveServer) -> None:
    assert requests.get(f"{server.url}/healthz", timeout=30).json() == {"status": "ok"}
    assert (
        "tidegate_http_request_duration_seconds"
        in requests.get(f"{server.url}/metrics", timeout=30).text
    )
    assert requests.get(f"{server.url}/openapi.json", timeout=30).json()["openapi"] == "3.1.0"


def test_close_finishes_in_flight_requests() -> None:
    async def main() -> None:
        ingest = MemoryIngest()
        ingest.delay = 0.3
        app = create_app(ingest, StaticAuth(API_KEYS, PASSCODES))
        server = await serve_http(app, "127.0.0.1", 0)
        body = orjson.dumps(
            {"d": [{"identity": "u", "type": "event", "evtName": "e", "evtData": {}}]}
        )

        def post() -> int:
            return requests.post(
                f"{server.url}/1/upload", headers=ACME, data=body, timeout=30
            ).status_code

        pending = asyncio.create_task(asyncio.to_thread(post))
        await asyncio.sleep(0.1)
        await server.close()
        assert await pending == 200
        assert ingest.submissions == 1
        with pytest.raises(requests.ConnectionError):
            await asyncio.to_thread(requests.get, f"{server.url}/healthz", timeout=5)

    run(main())


# -- schemathesis ---------------------------------------------------------------------

SCHEMATHESIS_CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)


def schemathesis_run(url: str, tmp: Path, *args: str, max_examples: int = 50) -> str:
    """The schemathesis CLI against the live server's /openapi.json (bounded examples)."""
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
        "--max-examples", str(max_examples),
        "--phases", "examples,coverage,fuzzing",
        "--generation-database", "none",
        "--generation-with-security-parameters", "false",
        "--request-timeout", "30",
        "--seed", "20160713",
        "--no-color",
        *args,
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=tmp, capture_output=True, text=True, timeout=540, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-8000:]
    return output


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(tmp_path: Path) -> None:
    with LiveServer() as live:
        output = schemathesis_run(
            live.url,
            tmp_path,
            "--checks", SCHEMATHESIS_CHECKS,
            "-H", "X-CleverTap-Account-Id: acme",
            "-H", "X-CleverTap-Passcode: acme-pass",
            "-H", "Authorization: Bearer acme.key",
        )  # fmt: skip
        assert live.ingest.submissions > 0  # the generated data reached the ingest
    assert "No issues found" in output or "passed" in output, output[-3000:]


@pytest.mark.slow
def test_schemathesis_without_credentials_finds_no_server_error(tmp_path: Path) -> None:
    with LiveServer() as live:
        schemathesis_run(live.url, tmp_path, "--checks", "not_a_server_error", max_examples=20)
        assert live.ingest.submissions == 0


def run_bench_small(ingest: str) -> dict[str, Any]:
    """scripts/bench_http.py, 6 requests of 50 records over 2 connections; its JSON result."""
    done = subprocess.run(
        [
            sys.executable, str(REPO / "scripts" / "bench_http.py"), "--ingest", ingest,
            "--client", "python", "--requests", "6", "--batch", "50", "--connections", "2",
            "--duration", "30", "--json",
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_bench_script_runs_small() -> None:
    result = run_bench_small("memory")
    assert result["server_errors"] == 0
    assert result["ok"] == 6
    assert result["records_stored"] == 300
    assert result["events_per_s"] > 0


def test_bench_script_every_acknowledged_record_reaches_the_accepted_output() -> None:
    result = run_bench_small("embedded")
    assert result["ok"] == 6
    assert result["acknowledged"] == (3 + 6) * 50  # the warm-up batches count too
    assert result["accepted_on_output"] == result["acknowledged"]
