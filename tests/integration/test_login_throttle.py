"""Password guessing on the SFTP drop and the HTTP API: backoff, then refusal, per address;
the rightful user on another address still logs in; nothing secret is logged."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import paramiko
import pytest

from connectors.accounts import Credentials, add_account, load_accounts
from connectors.http import create_app, serve_http
from connectors.sftp import SftpDropServer, start_sftp_server
from connectors.throttle import LoginThrottle, ThrottleSettings
from tests.integration.memory_ingest import MemoryIngest, StaticAuth
from tests.integration.recording_ingest import RecordingIngest

pytestmark = pytest.mark.timeout(120)

SETTINGS = ThrottleSettings(
    address_free=2, address_limit=5, account_free=50, account_limit=100, base_delay=0.05
)
ATTACKER = "127.0.0.1"
RIGHTFUL = "127.0.0.2"  # another loopback address: the rightful user elsewhere


def _sftp_login(port: int, username: str, password: str, source: str) -> bool:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
    transport = paramiko.Transport(sock)
    try:
        transport.connect(username=username, password=password)
        return transport.is_authenticated()
    except paramiko.AuthenticationException:
        return False
    finally:
        transport.close()


@pytest.fixture
async def sftp(tmp_path: Path) -> AsyncIterator[tuple[SftpDropServer, Credentials]]:
    accounts_path = tmp_path / "accounts.toml"
    creds = add_account(accounts_path, "acme")
    server = await start_sftp_server(
        "127.0.0.1",
        0,
        load_accounts(accounts_path),
        tmp_path / "drop",
        RecordingIngest(),
        0.1,
        tmp_path / "host_key",
        throttle=LoginThrottle(SETTINGS),
    )
    try:
        yield server, creds
    finally:
        await server.aclose()


async def test_sftp_guessing_is_refused_per_address_and_the_rightful_user_gets_in(
    sftp: tuple[SftpDropServer, Credentials], caplog: pytest.LogCaptureFixture
) -> None:
    server, creds = sftp
    caplog.set_level(logging.INFO)
    guesses = [f"guess-{i}" for i in range(SETTINGS.address_limit)]
    for guess in guesses:
        assert not await asyncio.to_thread(
            _sftp_login, server.port, creds.username, guess, ATTACKER
        )
    # The attacker's address is now refused even with the right password.
    assert not await asyncio.to_thread(
        _sftp_login, server.port, creds.username, creds.password, ATTACKER
    )
    assert "too many failures (address) from 127.0.0.1" in caplog.text
    # The rightful user, on another address, logs in.
    assert await asyncio.to_thread(
        _sftp_login, server.port, creds.username, creds.password, RIGHTFUL
    )
    assert not any(secret in caplog.text for secret in [creds.password, *guesses])


@pytest.fixture
async def api() -> AsyncIterator[str]:
    app = create_app(
        MemoryIngest(),
        StaticAuth(api_keys={"acme": "acme.key"}, passcodes={"acme": "acme-pass"}),
        throttle=LoginThrottle(SETTINGS),
    )
    server = await serve_http(app, "127.0.0.1", 0)
    try:
        yield server.url
    finally:
        await server.close()


async def _get_uploads(url: str, key: str, source: str) -> httpx.Response:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(transport=transport, base_url=url) as client:
        return await client.get("/uploads", headers={"Authorization": f"Bearer {key}"})


async def test_api_guessing_backs_off_then_gets_429_and_the_rightful_user_gets_in(
    api: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    loop = asyncio.get_running_loop()
    times = []
    for i in range(SETTINGS.address_limit):
        started = loop.time()
        response = await _get_uploads(api, f"acme.guess-{i}", ATTACKER)
        times.append(loop.time() - started)
        assert response.status_code == 401
    # The 3rd..5th guesses waited the backoff (0.05, 0.1, 0.2 s) before their answer.
    assert times[4] >= 0.2
    refused = await _get_uploads(api, "acme.key", ATTACKER)
    assert refused.status_code == 429
    assert refused.json()["code"] == "login_throttled"
    assert int(refused.headers["Retry-After"]) > 0
    rightful = await _get_uploads(api, "acme.key", RIGHTFUL)
    assert rightful.status_code == 200
    assert "guess-" not in caplog.text and "acme.key" not in caplog.text
    assert "HTTP login failed (api_key) from 127.0.0.1 for 'acme'" in caplog.text
