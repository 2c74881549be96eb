"""Idle and half-open connections on the SFTP and FTP drops of a real `tidegate run`: closed
after the login or idle timeout, while uploads beside them, and slow uploads themselves,
complete with each record once."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ftplib
import json
import re
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncssh
import pytest

from tests.integration.run_helpers import (
    ftp_port,
    read_welcome,
    sftp_login,
    sftp_port,
    start_run,
    stop_run,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

LOGIN = 2.0  # the login timeout of the short-timeout instance
IDLE = 4.0  # its idle timeout
HALF_OPEN = 150


@dataclass
class Running:
    proc: subprocess.Popen[str]
    data: Path
    log: Path
    sftp_port: int
    ftp_port: int
    user: str
    password: str

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.data / "ftp_tls_cert.pem"))

    def ftp_login(self) -> ftplib.FTP_TLS:
        client = ftplib.FTP_TLS(context=self.tls(), timeout=60)
        client.connect("127.0.0.1", self.ftp_port)
        client.login(self.user, self.password)
        client.prot_p()
        return client

    async def sftp_connect(self) -> asyncssh.SSHClientConnection:
        return await asyncssh.connect(
            "127.0.0.1",
            self.sftp_port,
            username=self.user,
            password=self.password,
            known_hosts=None,
            client_keys=None,
            agent_path=None,
            keepalive_interval=0,
        )


def _start(tmp: Path, login_timeout: float, idle_timeout: float) -> Running:
    data = tmp / "data"
    log = tmp / "run.log"
    with log.open("w") as err:
        proc = start_run(
            data,
            *("--settle", "0.2"),
            *("--login-timeout", str(login_timeout), "--idle-timeout", str(idle_timeout)),
            stderr=err,
        )
    text = read_welcome(proc)
    user, password = sftp_login(text)
    return Running(proc, data, log, sftp_port(text), ftp_port(text), user, password)


def _stop(running: Running) -> None:
    stop_run(running.proc, 60)


@pytest.fixture
def short(tmp_path: Path) -> Iterator[Running]:
    """`tidegate run` with login and idle timeouts of LOGIN and IDLE seconds."""
    running = _start(tmp_path, LOGIN, IDLE)
    try:
        yield running
    finally:
        _stop(running)


@pytest.fixture
def patient(tmp_path: Path) -> Iterator[Running]:
    """`tidegate run` with its default timeouts: half-open connections stay for 60 s."""
    running = _start(tmp_path, 60, 300)
    try:
        yield running
    finally:
        _stop(running)


def _events(n: int, prefix: str) -> list[bytes]:
    ts = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    return [
        json.dumps({"user_id": f"{prefix}-{i}", "event_type": "viewed", "timestamp": ts}).encode()
        + b"\n"
        for i in range(n)
    ]


def _accepted(data: Path) -> list[str]:
    path = data / "out" / "accepted.jsonl"
    if not path.exists():
        return []
    whole = path.read_bytes().rpartition(b"\n")[0]  # only whole lines
    return [json.loads(line)["profile_id"] for line in whole.splitlines() if line]


def _wait_for_outputs(running: Running, prefix: str, n: int) -> Counter[str]:
    """Waits until `n` records of `prefix` were accepted, then a moment more: nothing
    may follow. Returns how often each of them is in the accepted output."""
    deadline = time.monotonic() + 120
    while sum(1 for p in _accepted(running.data) if f":{prefix}-" in p) < n:
        assert running.proc.poll() is None, running.log_text()[-3000:]
        assert time.monotonic() < deadline, running.log_text()[-3000:]
        time.sleep(0.1)
    time.sleep(1.0)
    return Counter(p for p in _accepted(running.data) if f":{prefix}-" in p)


def _closed_by_server(sock: socket.socket) -> bool:
    """Reads until the server closes (True) or 60 s pass without it (False)."""
    sock.settimeout(60)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


def _still_open(sock: socket.socket) -> bool:
    """The server has not closed `sock` (nothing to read now, no end of stream)."""
    sock.setblocking(False)
    try:
        while True:
            if not sock.recv(4096):
                return False
    except BlockingIOError:
        return True
    except OSError as exc:
        return exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK)
    finally:
        sock.setblocking(True)


# ---------------------------------------------------------------------------- SFTP


def test_a_connection_that_never_sends_the_ssh_banner_is_closed_after_the_login_timeout(
    short: Running,
) -> None:
    with socket.create_connection(("127.0.0.1", short.sftp_port), timeout=60) as sock:
        assert sock.recv(256).startswith(b"SSH-2.0-")  # the server's banner; ours never comes
        assert _closed_by_server(sock)
    deadline = time.monotonic() + 30
    while "closed before login: Login timeout expired" not in short.log_text():
        assert time.monotonic() < deadline, short.log_text()[-3000:]
        time.sleep(0.1)


async def test_an_idle_sftp_session_is_closed_after_the_idle_timeout_a_busy_one_is_not(
    short: Running,
) -> None:
    idle = await short.sftp_connect()
    idle_sftp = await idle.start_sftp_client()
    assert sorted(await idle_sftp.listdir("/")) == [".", "..", "events", "events-trigger"]

    # Beside it, a slow upload: a line at a time, for three idle timeouts in all. Every
    # write is a request that restarts the idle timer, so the upload is never cut.
    lines = _events(30, "slow-sftp")
    async with await short.sftp_connect() as busy, busy.start_sftp_client() as sftp:
        async with sftp.open("/events/slow.jsonl", "wb") as handle:
            for line in lines:
                await handle.write(line)
                await asyncio.sleep(3 * IDLE / len(lines))
        # the idle connection was closed by the server meanwhile (or soon)
        await asyncio.wait_for(idle.wait_closed(), 60)
        assert sorted(await sftp.listdir("/events")) == [".", "..", "slow.jsonl"]

    counts = await asyncio.to_thread(_wait_for_outputs, short, "slow-sftp", len(lines))
    assert len(counts) == len(lines) and set(counts.values()) == {1}, counts
    log = short.log_text()
    assert re.search(r"SFTP connection '[^']+' from 127\.0\.0\.1 closed: no SFTP request", log)
    assert short.password not in log


async def test_half_open_connections_do_not_stop_an_upload_and_each_record_arrives_once(
    patient: Running,
) -> None:
    socks: list[socket.socket] = []
    try:
        for i in range(HALF_OPEN):
            sock = socket.create_connection(("127.0.0.1", patient.sftp_port), timeout=60)
            if i % 2:  # half of them start a version line and stop in the middle of it
                sock.sendall(b"SSH-2.0-Half")
            socks.append(sock)
        lines = _events(500, "beside")
        async with (
            await patient.sftp_connect() as conn,
            conn.start_sftp_client() as sftp,
            sftp.open("/events/beside.jsonl", "wb") as handle,
        ):
            await handle.write(b"".join(lines))
        # the premise: the half-open connections were all held while the upload ran
        assert all(_still_open(sock) for sock in socks)
        counts = await asyncio.to_thread(_wait_for_outputs, patient, "beside", len(lines))
        assert len(counts) == len(lines) and set(counts.values()) == {1}, counts
    finally:
        for sock in socks:
            sock.close()


# ---------------------------------------------------------------------------- FTP


def test_an_idle_ftp_control_connection_is_closed_while_a_busy_one_is_served(
    short: Running,
) -> None:
    busy = short.ftp_login()  # older than the idle one: pyftpdlib's timer heap bug
    idle = short.ftp_login()
    never = socket.create_connection(("127.0.0.1", short.ftp_port), timeout=60)
    try:
        assert never.recv(256).startswith(b"220 ")  # and it never logs in
        closed: list[str] = []

        def wait_idle() -> None:
            try:
                idle.getresp()
            except ftplib.error_temp as exc:
                closed.append(str(exc))
            except (EOFError, OSError) as exc:
                closed.append(repr(exc))

        waiter = threading.Thread(target=wait_idle)
        waiter.start()
        while waiter.is_alive():
            assert busy.voidcmd("NOOP").startswith("200")
            waiter.join(IDLE / 10)
        assert closed and closed[0].startswith("421"), closed
        assert busy.voidcmd("NOOP").startswith("200")
        assert _closed_by_server(never)
    finally:
        never.close()
        with contextlib.suppress(Exception):
            busy.quit()
        idle.close()
    log = short.log_text()
    assert "FTP connection from 127.0.0.1 ('demo') closed: no command for 4 s (idle timeout)" in log
    assert "FTP connection from 127.0.0.1 closed: no login within 2 s (login timeout)" in log


def test_an_ftp_upload_in_progress_is_not_cut(short: Running) -> None:
    lines = _events(30, "slow-ftp")
    client = short.ftp_login()
    try:
        conn = client.transfercmd("STOR events/slow.jsonl")
        for line in lines:  # three idle timeouts in all, the control connection silent
            conn.sendall(line)
            time.sleep(3 * IDLE / len(lines))
        assert isinstance(conn, ssl.SSLSocket)
        conn.unwrap()
        conn.close()
        assert client.voidresp().startswith("226")
    finally:
        with contextlib.suppress(Exception):
            client.quit()
    counts = _wait_for_outputs(short, "slow-ftp", len(lines))
    assert len(counts) == len(lines) and set(counts.values()) == {1}, counts
