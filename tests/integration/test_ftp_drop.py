"""The FTP drop with explicit TLS, with real clients: Python's ``ftplib.FTP_TLS`` and curl.

A real pyftpdlib server (over a real SFTP drop server, whose folders, settle delay and
hand-over it shares) on ephemeral ports, a real accounts file with hashed passwords, and
either a `RecordingIngest` or the real embedded runtime. Clients verify the server's
generated certificate (no ``-k``), so the TLS is real too.
"""

from __future__ import annotations

import asyncio
import ftplib
import io
import shutil
import ssl
import subprocess
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paramiko
import pytest

from connectors.accounts import Accounts, Credentials, add_account, load_accounts
from connectors.ftp import FtpDropServer, FtpSettings, start_ftp_server
from connectors.sftp import SftpDropServer, start_sftp_server
from tests.integration.recording_ingest import RecordingIngest

pytestmark = pytest.mark.timeout(120)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SEEDS = FIXTURES / "seeds"
SEED_FILES = sorted(p for p in SEEDS.iterdir() if p.is_file() and p.name != "README.md")
ARCHIVES = [FIXTURES / "archives" / "bundle.zip", FIXTURES / "archives" / "bundle.tar.gz"]
SETTLE = 0.3
CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl not installed (scripts/setup)")


@dataclass
class Env:
    tmp: Path
    accounts: Accounts
    creds: dict[str, Credentials]
    ingest: Any
    sftp: SftpDropServer
    ftp: FtpDropServer

    @property
    def cert(self) -> Path:
        return self.tmp / "data" / "ftp_tls_cert.pem"

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))

    def login(self, account: str = "alice", password: str | None = None) -> ftplib.FTP_TLS:
        creds = self.creds[account]
        client = ftplib.FTP_TLS(context=self.tls(), timeout=20)
        client.connect("127.0.0.1", self.ftp.port)
        client.login(creds.username, password if password is not None else creds.password)
        client.prot_p()
        return client


async def _env(tmp: Path, ingest: Any, **ftp: Any) -> Env:
    path = tmp / "config" / "accounts.toml"
    creds = {
        "alice": add_account(path, "alice"),
        "bob": add_account(path, "bob", username="bob-ftp"),
    }
    accounts = load_accounts(path)
    sftp = await start_sftp_server(
        "127.0.0.1", 0, accounts, tmp / "drop", ingest, SETTLE, tmp / "config" / "host_key"
    )
    settings = FtpSettings(host="127.0.0.1", port=0, **ftp)
    server = await start_ftp_server(accounts, sftp, settings, tmp / "data")
    return Env(tmp, accounts, creds, ingest, sftp, server)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    e = await _env(tmp_path, RecordingIngest())
    try:
        yield e
    finally:
        await e.ftp.aclose()
        await e.sftp.aclose()


def _visible(env: Env, account: str) -> list[str]:
    root = env.sftp.account_root(account)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _partials(env: Env) -> list[Path]:
    return [p for p in (env.tmp / "drop" / ".tidegate" / "partial").rglob("*") if p.is_file()]


# ---------------------------------------------------------------------------- uploads


async def test_ftp_tls_uploads_every_seed_file_and_archives(env: Env) -> None:
    sources = {p.name: p for p in [*SEED_FILES, *ARCHIVES]}

    def upload() -> list[str]:
        with env.login() as client:
            listing = sorted(client.nlst())
            for name, path in sources.items():
                with path.open("rb") as handle:
                    assert client.storbinary(f"STOR events/{name}", handle).startswith("226")
            with io.BytesIO(b'{"user_id":"u1","event_type":"x","timestamp":1}\n') as handle:
                client.storbinary("STOR /events-trigger/now.jsonl", handle)
        return listing

    assert await asyncio.to_thread(upload) == ["events", "events-trigger"]
    handed = await env.ingest.wait_for(len(sources) + 1)
    by_name = {h.upload.filename: h for h in handed}
    assert sorted(by_name) == sorted([*sources, "now.jsonl"])
    for name, path in sources.items():
        h = by_name[name]
        assert h.accepted and h.upload.account == "alice" and h.upload.trigger is None
        assert h.content == path.read_bytes()
    assert by_name["now.jsonl"].upload.trigger is True  # events-trigger/ opts in
    # hand-over went through the SFTP drop's area: out of the user's reach, nothing left
    assert all(
        (env.tmp / "drop" / ".tidegate" / "processing") in h.upload.path.parents for h in handed
    )
    assert _visible(env, "alice") == []
    assert _partials(env) == []


@needs_curl
async def test_curl_ssl_reqd_uploads_seed_files_and_an_archive(env: Env) -> None:
    creds = env.creds["alice"]
    sources = [SEEDS / "zeta_sample.jsonl", SEEDS / "vero_checkouts.csv", ARCHIVES[0]]

    def curl(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(CURL),
                "--silent",
                "--show-error",
                "--ssl-reqd",
                "--cacert",
                str(env.cert),
                "--user",
                f"{creds.username}:{creds.password}",
                "-T",
                str(path),
                f"ftp://127.0.0.1:{env.ftp.port}/events/",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    for path in sources:
        done = await asyncio.to_thread(curl, path)
        assert done.returncode == 0, done.stderr
    handed = await env.ingest.wait_for(len(sources))
    assert {h.upload.filename: h.content for h in handed} == {
        p.name: p.read_bytes() for p in sources
    }
    # the same name again: curl fails with the server's refusal
    again = await asyncio.to_thread(curl, sources[0])
    assert again.returncode != 0
    assert "553" in again.stderr


# ---------------------------------------------------------------------------- refusals


async def test_plain_ftp_login_is_refused_by_default(env: Env) -> None:
    def plain() -> str:
        client = ftplib.FTP(timeout=20)
        client.connect("127.0.0.1", env.ftp.port)
        try:
            client.login(env.creds["alice"].username, env.creds["alice"].password)
        except ftplib.error_perm as exc:
            return str(exc)
        finally:
            client.close()
        return "logged in"

    answer = await asyncio.to_thread(plain)
    assert answer.startswith("550") and "SSL/TLS required" in answer


async def test_plain_ftp_is_accepted_when_the_operator_allows_it(tmp_path: Path) -> None:
    e = await _env(tmp_path, RecordingIngest(), allow_plain=True)
    try:

        def plain() -> None:
            with ftplib.FTP(timeout=20) as client:
                client.connect("127.0.0.1", e.ftp.port)
                client.login(e.creds["alice"].username, e.creds["alice"].password)
                client.storbinary("STOR events/plain.jsonl", io.BytesIO(b"{}\n"))

        await asyncio.to_thread(plain)
        handed = await e.ingest.wait_for(1)
        assert handed[0].upload.filename == "plain.jsonl"
    finally:
        await e.ftp.aclose()
        await e.sftp.aclose()


async def test_wrong_password_and_unknown_user_are_refused(env: Env) -> None:
    def attempt(user: str, password: str) -> str:
        client = ftplib.FTP_TLS(context=env.tls(), timeout=20)
        client.connect("127.0.0.1", env.ftp.port)
        try:
            client.login(user, password)
        except ftplib.error_perm as exc:
            return str(exc)
        finally:
            client.close()
        return "logged in"

    alice = env.creds["alice"]
    assert (await asyncio.to_thread(attempt, alice.username, "wrong")).startswith("530")
    assert (await asyncio.to_thread(attempt, "nobody", alice.password)).startswith("530")
    # bob's password does not open alice's account
    assert (await asyncio.to_thread(attempt, alice.username, env.creds["bob"].password)).startswith(
        "530"
    )


async def test_another_accounts_folder_cannot_be_listed_or_written(env: Env) -> None:
    def probe() -> dict[str, str]:
        seen: dict[str, str] = {}
        with env.login("alice") as client:
            calls: dict[str, Callable[[], object]] = {
                "cwd": lambda: client.cwd("../bob/events"),
                "cwd_abs": lambda: client.cwd("/bob"),
                "stor": lambda: client.storbinary("STOR ../bob/events/x.jsonl", io.BytesIO(b"{}")),
                "stor_root": lambda: client.storbinary("STOR /x.jsonl", io.BytesIO(b"{}")),
                "mkd": lambda: client.mkd("events/sub"),
            }
            for label, call in calls.items():
                try:
                    seen[label] = str(call())
                except ftplib.error_perm as exc:
                    seen[label] = str(exc)
            seen["pwd"] = client.pwd()
        return seen

    seen = await asyncio.to_thread(probe)
    for label in ("cwd", "cwd_abs", "stor", "stor_root", "mkd"):
        assert seen[label][:1] == "5", (label, seen[label])
    assert seen["pwd"] == "/"
    assert _visible(env, "bob") == []
    assert env.ingest.handed == []


async def test_duplicate_filename_is_refused_with_its_code_in_the_reply(env: Env) -> None:
    env.ingest.mark_used("alice", "known.jsonl")  # e.g. uploaded earlier over the HTTP API

    def upload_twice() -> list[str]:
        replies = []
        with env.login() as client:
            client.storbinary("STOR events/once.jsonl", io.BytesIO(b"{}\n"))
            for name in ("events/once.jsonl", "events-trigger/once.jsonl"):
                try:  # settling (not yet handed over): refused as well
                    client.storbinary(f"STOR {name}", io.BytesIO(b"{}\n"))
                except ftplib.error_perm as exc:
                    replies.append(str(exc))
            client.storbinary("STOR events/known.jsonl", io.BytesIO(b"{}\n"))
        return replies

    replies = await asyncio.to_thread(upload_twice)
    assert len(replies) == 2
    assert all(r.startswith("553 duplicate_filename") for r in replies), replies
    handed = await env.ingest.wait_for(2)
    by_name = {h.upload.filename: h for h in handed}
    assert by_name["once.jsonl"].accepted
    # a name only the runtime knew: refused at hand-over, with a status file in the folder
    assert not by_name["known.jsonl"].accepted

    def after_handover() -> tuple[str, str]:
        with env.login() as client:
            try:
                client.storbinary("STOR events/once.jsonl", io.BytesIO(b"{}\n"))
                reply = "stored"
            except ftplib.error_perm as exc:
                reply = str(exc)
            note = io.BytesIO()
            client.retrbinary("RETR events/known.jsonl.rejected.txt", note.write)
        return reply, note.getvalue().decode()

    await asyncio.sleep(0.2)
    reply, note = await asyncio.to_thread(after_handover)
    assert reply.startswith("553 duplicate_filename")
    assert "code: duplicate_filename" in note


async def test_append_resume_rename_and_temporary_names_are_refused(env: Env) -> None:
    def probe() -> list[str]:
        replies = []
        with env.login() as client:
            calls: list[Callable[[], object]] = [
                lambda: client.storbinary("APPE events/a.jsonl", io.BytesIO(b"{}")),
                lambda: client.storbinary("STOR events/b.jsonl", io.BytesIO(b"{}"), rest=1),
                lambda: client.storbinary("STOR events/c.jsonl.part", io.BytesIO(b"{}")),
                lambda: client.storbinary("STOR events/x.rejected.txt", io.BytesIO(b"{}")),
                lambda: client.rename("events", "other"),
            ]
            for call in calls:
                try:
                    replies.append(str(call()))
                except ftplib.error_perm as exc:
                    replies.append(str(exc))
        return replies

    replies = await asyncio.to_thread(probe)
    assert all(r[:1] == "5" for r in replies), replies
    await asyncio.sleep(SETTLE + 0.3)
    assert env.ingest.handed == []
    assert _visible(env, "alice") == []
    assert _partials(env) == []


async def test_aborted_transfer_is_never_handed_over(env: Env) -> None:
    def abort() -> None:
        client = env.login()
        conn = client.transfercmd("STOR events/cut.jsonl")
        conn.sendall(b'{"user_id": "1"}\n' * 1000)
        conn.close()  # data channel closed before TLS shutdown: an incomplete transfer
        assert client.sock is not None
        client.sock.close()  # the control connection drops too

    await asyncio.to_thread(abort)
    await asyncio.sleep(SETTLE + 0.5)
    assert env.ingest.handed == []
    assert _visible(env, "alice") == []
    assert _partials(env) == []


async def test_self_signed_certificate_is_generated_once_and_kept(tmp_path: Path) -> None:
    e = await _env(tmp_path, RecordingIngest())
    first = e.cert.read_bytes()
    key = tmp_path / "data" / "ftp_tls_key.pem"
    assert key.stat().st_mode & 0o077 == 0
    await e.ftp.aclose()
    again = await start_ftp_server(e.accounts, e.sftp, FtpSettings(port=0), tmp_path / "data")
    try:
        assert e.cert.read_bytes() == first
    finally:
        await again.aclose()
        await e.sftp.aclose()


async def test_passive_ports_come_from_the_configured_range(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        low = s.getsockname()[1]
    e = await _env(tmp_path, RecordingIngest(), passive_ports=(low, low))
    try:

        def passive_port() -> int:
            with e.login() as client:
                return int(client.makepasv()[1])

        assert await asyncio.to_thread(passive_port) == low
    finally:
        await e.ftp.aclose()
        await e.sftp.aclose()


# ---------------------------------------------------------------------------- with the runtime


async def test_ftp_and_sftp_uploads_reach_the_same_outcomes_in_the_runtime(tmp_path: Path) -> None:
    from connectors.files.reader import read_upload
    from streams.core.settings import SettingsRegistry
    from streams.embedded.runtime import EmbeddedRuntime

    now = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    runtime = EmbeddedRuntime(tmp_path / "rt", SettingsRegistry(), read_upload, clock=lambda: now)
    await runtime.start()
    e = await _env(tmp_path, runtime)
    sources = [*SEED_FILES, ARCHIVES[0]]
    try:

        def over_ftp() -> None:
            with e.login("alice") as client:
                for path in sources:
                    with path.open("rb") as handle:
                        client.storbinary(f"STOR events/{path.name}", handle)

        def over_sftp() -> None:
            transport = paramiko.Transport(("127.0.0.1", e.sftp.port))
            transport.connect(username="bob-ftp", password=e.creds["bob"].password)
            client = paramiko.SFTPClient.from_transport(transport)
            assert client is not None
            for path in sources:
                client.put(str(path), f"/events/{path.name}")
            transport.close()

        await asyncio.gather(asyncio.to_thread(over_ftp), asyncio.to_thread(over_sftp))

        async def outcomes(account: str) -> dict[str, tuple[str, dict[str, Any]]]:
            for _ in range(600):
                views = await runtime.list_uploads(account)
                if len(views) == len(sources) and all(v.finished_at for v in views):
                    return {v.filename: (v.status, v.counts) for v in views}
                await asyncio.sleep(0.1)
            raise AssertionError(f"{account}: uploads did not finish: {views}")

        alice, bob = await outcomes("alice"), await outcomes("bob")
        assert alice == bob
        assert sum(c.get("accepted", 0) for _, c in alice.values()) > 0
        assert sum(c.get("rejected", 0) for _, c in alice.values()) > 0  # the invalid seed
    finally:
        await e.ftp.aclose()
        await e.sftp.aclose()
        await runtime.stop()


async def test_password_guessing_is_throttled_per_address_without_locking_out_another(
    tmp_path: Path,
) -> None:
    from connectors.throttle import LoginThrottle, ThrottleSettings

    e = await _env(tmp_path, RecordingIngest())
    # the FTP door counts on the SFTP drop's throttle (same accounts, same passwords)
    e.sftp.throttle = LoginThrottle(ThrottleSettings(address_free=1, address_limit=3))
    server = e.ftp._server
    assert server is not None
    server.handler.auth_failed_timeout = 0.05  # pyftpdlib's own pause per failure
    alice = e.creds["alice"]

    def attempt(password: str, source: str) -> str:
        client = ftplib.FTP_TLS(context=e.tls(), timeout=20, source_address=(source, 0))
        client.connect("127.0.0.1", e.ftp.port)
        try:
            client.login(alice.username, password)
        except ftplib.error_perm as exc:
            return str(exc)
        finally:
            client.close()
        return "logged in"

    try:
        for _ in range(3):
            assert (await asyncio.to_thread(attempt, "guess", "127.0.0.1")).startswith("530")
        # the guessing address is now refused even with the right password...
        refused = await asyncio.to_thread(attempt, alice.password, "127.0.0.1")
        assert refused.startswith("530") and "try again later" in refused
        # ...while the rightful user on another address gets in
        assert await asyncio.to_thread(attempt, alice.password, "127.0.0.2") == "logged in"
    finally:
        await e.ftp.aclose()
        await e.sftp.aclose()


async def test_an_idle_connection_is_closed_while_an_older_one_keeps_sending_commands(
    tmp_path: Path,
) -> None:
    # pyftpdlib 2.2.0 alone never closes the idle connection here: the busy one's timer,
    # moved in place on every command, stays on top of the scheduler's heap and hides the
    # idle one's (no login timer pops in between to reorder the heap).
    e = await _env(tmp_path, RecordingIngest(), login_timeout=0, idle_timeout=1.5)

    def run() -> str:
        busy = e.login()
        idle = e.login()
        answer: list[str] = []

        def wait_idle() -> None:
            try:
                idle.getresp()
            except ftplib.error_temp as exc:
                answer.append(str(exc))

        waiter = threading.Thread(target=wait_idle)
        waiter.start()
        # bounded: pytest's timeout; without the fix the loop would not end
        while waiter.is_alive():
            busy.voidcmd("NOOP")
            waiter.join(0.2)
        busy.quit()
        idle.close()
        return answer[0] if answer else ""

    try:
        assert (await asyncio.to_thread(run)).startswith("421 Control connection timed out")
    finally:
        await e.ftp.aclose()
        await e.sftp.aclose()
