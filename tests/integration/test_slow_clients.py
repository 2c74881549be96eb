"""Abusive HTTP clients: trickled headers and bodies, half-open connections time out (408 or a
close) while the other clients are served."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from connectors.http import HttpLimits, create_app, serve_http
from tests.integration.memory_ingest import MemoryIngest, StaticAuth

pytestmark = pytest.mark.timeout(120)

DEADLINE = 1.0
ACME = {"X-CleverTap-Account-Id": "acme", "X-CleverTap-Passcode": "acme-pass"}


@pytest.fixture
async def url() -> AsyncIterator[tuple[str, int]]:
    app = create_app(
        MemoryIngest(),
        StaticAuth(api_keys={"acme": "acme.key"}, passcodes={"acme": "acme-pass"}),
        limits=HttpLimits(body_read_seconds=DEADLINE, records_per_second=None),
    )
    server = await serve_http(app, "127.0.0.1", 0, header_timeout=DEADLINE)
    try:
        yield server.url, server.port
    finally:
        await server.close()


async def _trickle(
    port: int, prefix: bytes, slow: bytes, pause: float = 0.05
) -> tuple[bytes, bool]:
    """Sends `prefix` at once, then `slow` one byte at a time until the server closes.

    Returns the server's answer (b"" when a reset discarded it: the server closed with our
    bytes unread) and whether every byte could be sent (False: the server cut it short).
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = 0
    try:
        writer.write(prefix)
        for byte in slow:
            if reader.at_eof():
                break
            writer.write(bytes([byte]))
            await writer.drain()
            sent += 1
            await asyncio.sleep(pause)
    except ConnectionError:
        pass
    try:
        answer = await asyncio.wait_for(reader.read(), 10)
    except ConnectionError:
        answer = b""
    finally:
        writer.close()
    return answer, sent == len(slow)


async def _half_open(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await asyncio.wait_for(reader.read(), 10)  # closed by the server
    finally:
        writer.close()


HEADERS = (
    b"POST /1/upload HTTP/1.1\r\nHost: x\r\nX-CleverTap-Account-Id: acme\r\n"
    b"X-CleverTap-Passcode: acme-pass\r\nContent-Type: application/json\r\n"
)
BODY = b'{"d": [{"identity": "u1", "type": "event", "evtName": "viewed", "ts": 1717236000}]}'


async def test_trickled_headers_bodies_and_half_open_connections_time_out_while_others_are_served(
    url: tuple[str, int],
) -> None:
    base, port = url
    header_tricklers = [
        asyncio.create_task(_trickle(port, b"", HEADERS + b"X-Pad: " + b"a" * 200))
        for _ in range(20)
    ]
    headers = HEADERS + b"Content-Length: %d\r\n\r\n" % len(BODY)
    body_tricklers = [asyncio.create_task(_trickle(port, headers, BODY)) for _ in range(20)]
    half_open = [asyncio.create_task(_half_open(port)) for _ in range(50)]

    # Meanwhile, a well-behaved client is answered, request after request.
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        for _ in range(20):
            response = await client.post("/1/upload", headers=ACME, content=BODY)
            assert response.status_code == 200, response.text
            await asyncio.sleep(0.05)

    # Each trickle would take 4 to 15 s; the server cut every one after its 1 s deadline,
    # with a 408 when the client could still read it.
    headers_cut = await asyncio.gather(*header_tricklers)
    bodies_cut = await asyncio.gather(*body_tricklers)
    assert not any(sent_all for _, sent_all in headers_cut + bodies_cut)
    answers = [answer for answer, _ in headers_cut if answer]
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), answers
    answers = [answer for answer, _ in bodies_cut if answer]
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), answers
    assert all(b"the request body did not arrive within 1 s" in a for a in answers)
    # A connection that sent nothing is answered 408 and closed (no unread bytes: no reset).
    for answer in await asyncio.gather(*half_open):
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"request_timeout" in answer


async def test_a_request_in_time_on_a_kept_alive_connection_is_not_cut(
    url: tuple[str, int],
) -> None:
    base, _ = url
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        for _ in range(3):
            response = await client.post("/1/upload", headers=ACME, content=BODY)
            assert response.status_code == 200
            await asyncio.sleep(DEADLINE * 0.6)  # idle, within keep-alive and the deadline
