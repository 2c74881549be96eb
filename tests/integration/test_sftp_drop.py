"""The SFTP drop server with real clients: paramiko and OpenSSH's ``sftp`` in batch mode.

Every test starts a real asyncssh server on an ephemeral port with a real accounts file
(hashed secrets) and a `RecordingIngest` in place of the runtime; the clients run in
threads or subprocesses, never calling into the server.
"""

from __future__ import annotations

import asyncio
import functools
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import paramiko
import pytest

from connectors.accounts import Accounts, Credentials, add_account, load_accounts
from connectors.sftp import SftpDropServer, start_sftp_server
from streams.core.errors import ErrorCode
from tests.integration.recording_ingest import RecordingIngest

pytestmark = pytest.mark.timeout(120)

SEEDS = Path(__file__).resolve().parents[1] / "fixtures" / "seeds"
SEED_FILES = sorted(p for p in SEEDS.iterdir() if p.is_file() and p.name != "README.md")
SETTLE = 0.5
SFTP_BIN = shutil.which("sftp")


# ---------------------------------------------------------------------------- fixtures


@dataclass
class Env:
    tmp: Path
    accounts_path: Path
    accounts: Accounts
    creds: dict[str, Credentials]
    key_path: Path  # alice's private key (OpenSSH format) for the OpenSSH client
    other_key_path: Path  # a key nobody authorized
    drop_root: Path
    host_key: Path
    ingest: RecordingIngest


def _keypair(path: Path) -> str:
    key = asyncssh.generate_private_key("ssh-ed25519", comment=path.name)
    key.write_private_key(str(path))
    os.chmod(path, 0o600)
    return key.export_public_key("openssh").decode().strip()


@pytest.fixture
def env(tmp_path: Path) -> Env:
    key_path = tmp_path / "alice_ed25519"
    other = tmp_path / "mallory_ed25519"
    alice_pub = _keypair(key_path)
    _keypair(other)
    accounts_path = tmp_path / "config" / "accounts.toml"
    creds = {
        "alice": add_account(accounts_path, "alice", authorized_keys=[alice_pub]),
        "bob": add_account(accounts_path, "bob", username="bob-sftp"),
    }
    return Env(
        tmp=tmp_path,
        accounts_path=accounts_path,
        accounts=load_accounts(accounts_path),
        creds=creds,
        key_path=key_path,
        other_key_path=other,
        drop_root=tmp_path / "drop",
        host_key=tmp_path / "config" / "sftp_host_ed25519",
        ingest=RecordingIngest(),
    )


async def _start(env: Env, settle: float = SETTLE, **kw: Any) -> SftpDropServer:
    return await start_sftp_server(
        "127.0.0.1", 0, env.accounts, env.drop_root, env.ingest, settle, env.host_key, **kw
    )


@pytest.fixture
async def server(env: Env) -> AsyncIterator[SftpDropServer]:
    srv = await _start(env)
    try:
        yield srv
    finally:
        await srv.aclose()


# ---------------------------------------------------------------------------- clients


class Client:
    """A paramiko SFTP session (blocking: use it inside `asyncio.to_thread`)."""

    def __init__(self, port: int, username: str, password: str | None = None, pkey: Any = None):
        self.transport = paramiko.Transport(("127.0.0.1", port))
        self.transport.connect(username=username, password=password, pkey=pkey)
        sftp = paramiko.SFTPClient.from_transport(self.transport)
        assert sftp is not None
        self.sftp: paramiko.SFTPClient = sftp

    def close(self) -> None:
        self.sftp.close()
        self.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _login(env: Env, port: int, who: str = "alice") -> Client:
    c = env.creds[who]
    return Client(port, c.username, c.password)


async def run_client(fn: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(fn)


def _login_and_put(env: Env, port: int, remote: str, data: bytes) -> float:
    """`put_bytes` as alice, logging in too (in the client's thread, like the put)."""
    return put_bytes(_login(env, port), remote, data)


def put_bytes(client: Client, remote: str, data: bytes) -> float:
    """Uploads `data`; returns time.monotonic() right after the client's close returned."""
    with client.sftp.open(remote, "wb") as handle:
        handle.set_pipelined(True)
        handle.write(data)
    return time.monotonic()


def files_under(root: Path) -> list[str]:
    """Every regular file or link under `root`, relative, sorted."""
    out = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            out.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(out)


def visible_files(env: Env, account: str) -> list[str]:
    return files_under(env.drop_root / account)


def staging_files(env: Env) -> list[str]:
    return files_under(env.drop_root / ".tidegate" / "partial")


async def openssh_batch(
    env: Env, port: int, batch: str, *, key: Path | None = None, user: str = "alice", cwd: Path
) -> subprocess.CompletedProcess[str]:
    assert SFTP_BIN is not None
    batch_file = cwd / "batch.txt"
    batch_file.write_text(textwrap.dedent(batch).strip() + "\n")
    args = [
        SFTP_BIN,
        "-b",
        str(batch_file),
        "-P",
        str(port),
        "-i",
        str(key or env.key_path),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "PreferredAuthentications=publickey",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        f"{env.creds[user].username}@127.0.0.1",
    ]
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return subprocess.CompletedProcess(args, proc.returncode or 0, out.decode(), err.decode())


needs_openssh = pytest.mark.skipif(SFTP_BIN is None, reason="OpenSSH sftp client not installed")


def _archives(workdir: Path) -> tuple[Path, Path]:
    """A zip and a tar.gz holding two seed files and a manifest that orders them."""
    members = [SEEDS / "zeta_sample.jsonl", SEEDS / "naxai_events.jsonl"]
    manifest = (
        b'{"contents": [{"filename": "naxai_events.jsonl"}, {"filename": "zeta_sample.jsonl"}]}'
    )
    zpath = workdir / "bundle.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("manifest.json", manifest)
        for m in members:
            zf.write(m, m.name)
    tpath = workdir / "bundle.tar.gz"
    with tarfile.open(tpath, "w:gz") as tf:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tf.addfile(info, io.BytesIO(manifest))
        for m in members:
            tf.add(m, m.name)
    return zpath, tpath


# ---------------------------------------------------------------------------- uploads


async def test_paramiko_uploads_every_seed_sample_and_archives(
    env: Env, server: SftpDropServer
) -> None:
    work = env.tmp / "client"
    work.mkdir()
    sources = {p.name: p for p in SEED_FILES}
    sources.update({a.name: a for a in _archives(work)})

    def upload() -> dict[str, float]:
        closed = {}
        with _login(env, server.port) as c:
            assert sorted(c.sftp.listdir("/")) == ["events", "events-trigger"]
            for name, path in sources.items():
                c.sftp.put(str(path), f"/events/{name}")  # paramiko confirms with stat
                closed[name] = time.monotonic()
        return closed

    closed = await run_client(upload)
    handed = await env.ingest.wait_for(len(sources))
    assert sorted(h.upload.filename for h in handed) == sorted(sources)
    for h in handed:
        assert h.accepted
        assert h.upload.account == "alice"
        assert h.upload.trigger is None  # events/: the account's default applies
        assert h.content == sources[h.upload.filename].read_bytes()
        assert (env.drop_root / "alice") not in h.upload.path.parents  # out of user's reach
        assert h.upload.received_at.tzinfo is not None
        assert h.at - closed[h.upload.filename] >= SETTLE - 0.05
    # handed over files leave the folder; nothing staged is left behind
    assert visible_files(env, "alice") == []
    assert staging_files(env) == []


async def test_events_trigger_folder_opts_in(env: Env, server: SftpDropServer) -> None:
    def upload() -> None:
        with _login(env, server.port) as c:
            c.sftp.put(str(SEEDS / "zeta_sample.jsonl"), "/events-trigger/zeta_trigger.jsonl")
            c.sftp.put(str(SEEDS / "vero_checkouts.csv"), "events/vero.csv")  # relative path

    await run_client(upload)
    handed = {h.upload.filename: h for h in await env.ingest.wait_for(2)}
    assert handed["zeta_trigger.jsonl"].upload.trigger is True
    assert handed["vero.csv"].upload.trigger is None


@needs_openssh
async def test_openssh_sftp_batch_uploads_seeds_and_archives_with_key(
    env: Env, server: SftpDropServer
) -> None:
    work = env.tmp / "client"
    work.mkdir()
    for p in SEED_FILES:
        shutil.copy(p, work / p.name)
    zpath, tpath = _archives(work)
    batch = "\n".join(
        [
            "cd events",
            *(f"put {p.name}" for p in SEED_FILES),
            f"put {zpath.name}",
            "cd /events-trigger",
            f"put {tpath.name}",
            "ls -l /events",
        ]
    )
    result = await openssh_batch(env, server.port, batch, cwd=work)
    assert result.returncode == 0, result.stderr
    assert "sftp> ls -l /events" in result.stdout  # listing works (rc 0 covers errors)
    expected = len(SEED_FILES) + 2
    handed = {h.upload.filename: h for h in await env.ingest.wait_for(expected)}
    assert len(handed) == expected
    for name in [p.name for p in SEED_FILES] + [zpath.name]:
        assert handed[name].upload.trigger is None
        assert handed[name].content == (work / name).read_bytes()
    assert handed[tpath.name].upload.trigger is True
    assert handed[tpath.name].content == tpath.read_bytes()
    with zipfile.ZipFile(io.BytesIO(handed[zpath.name].content)) as zf:
        assert zf.read("manifest.json").startswith(b'{"contents"')
    assert all(h.upload.account == "alice" for h in handed.values())


async def test_public_key_login_with_paramiko(env: Env, server: SftpDropServer) -> None:
    pkey = paramiko.Ed25519Key.from_private_key_file(str(env.key_path))

    def upload() -> None:
        with Client(server.port, "alice", pkey=pkey) as c:
            put_bytes(c, "/events/by_key.jsonl", (SEEDS / "zeta_sample.jsonl").read_bytes())

    await run_client(upload)
    (h,) = await env.ingest.wait_for(1)
    assert (h.upload.account, h.upload.filename) == ("alice", "by_key.jsonl")


# ---------------------------------------------------------------------------- auth


async def test_wrong_password_and_unknown_user_are_refused(
    env: Env, server: SftpDropServer
) -> None:
    def attempt(username: str, password: str) -> None:
        with pytest.raises(paramiko.AuthenticationException):
            Client(server.port, username, password)

    await run_client(lambda: attempt("alice", env.creds["alice"].password + "x"))
    await run_client(lambda: attempt("alice", env.creds["bob"].password))  # bob's password
    await run_client(lambda: attempt("bob", env.creds["bob"].password))  # name, not username
    await run_client(lambda: attempt("nobody", "whatever"))
    await run_client(lambda: attempt("alice", ""))
    await asyncio.sleep(SETTLE * 2)
    assert env.ingest.handed == []
    assert visible_files(env, "alice") == [] and visible_files(env, "bob") == []
    assert staging_files(env) == []


@needs_openssh
async def test_openssh_with_an_unauthorized_key_is_refused(
    env: Env, server: SftpDropServer
) -> None:
    work = env.tmp / "client"
    work.mkdir()
    shutil.copy(SEEDS / "zeta_sample.jsonl", work / "zeta_sample.jsonl")
    result = await openssh_batch(
        env, server.port, "put zeta_sample.jsonl events/", key=env.other_key_path, cwd=work
    )
    assert result.returncode != 0
    assert "Permission denied" in result.stderr
    # bob has no keys at all
    result = await openssh_batch(
        env, server.port, "put zeta_sample.jsonl events/", user="bob", cwd=work
    )
    assert result.returncode != 0
    await asyncio.sleep(SETTLE * 2)
    assert env.ingest.handed == []
    assert visible_files(env, "alice") == [] and staging_files(env) == []


async def test_no_shell_exec_or_forwarding(env: Env, server: SftpDropServer) -> None:
    def try_exec() -> None:
        with _login(env, server.port) as c:
            chan = c.transport.open_session()
            with pytest.raises(paramiko.SSHException):
                chan.exec_command("id")
            with pytest.raises(paramiko.ChannelException):
                c.transport.open_channel("direct-tcpip", ("127.0.0.1", 22), ("127.0.0.1", 0))

    await run_client(try_exec)


# ---------------------------------------------------------------------------- isolation


async def test_accounts_cannot_list_or_write_each_other(env: Env) -> None:
    srv = await _start(env, settle=60)  # alice's file stays visible in her folder
    try:

        def alice() -> None:
            with _login(env, srv.port, "alice") as c:
                put_bytes(c, "/events/secret.jsonl", b'{"user_id": "1"}\n')
                assert c.sftp.listdir("/events") == ["secret.jsonl"]

        def bob() -> list[str]:
            errors = []
            with _login(env, srv.port, "bob") as c:
                assert sorted(c.sftp.listdir("/")) == ["events", "events-trigger"]
                assert c.sftp.listdir("/events") == []
                for path in (
                    "/alice",
                    "/alice/events",
                    "/../alice/events",
                    "../../alice/events",
                    "/events/../../alice/events",
                    str(env.drop_root / "alice" / "events"),
                ):
                    try:
                        names = c.sftp.listdir(path)
                    except OSError as exc:
                        errors.append(f"list {path}: {exc}")
                    else:
                        pytest.fail(f"bob listed {path}: {names}")
                for path in (
                    "/../alice/events/secret.jsonl",
                    "../alice/events/secret.jsonl",
                    "/events/../../alice/events/secret.jsonl",
                    str(env.drop_root / "alice" / "events" / "secret.jsonl"),
                ):
                    for op in ("stat", "read", "write", "remove"):
                        try:
                            if op == "stat":
                                c.sftp.stat(path)
                            elif op == "read":
                                c.sftp.open(path, "rb").read()
                            elif op == "write":
                                put_bytes(c, path, b"overwritten\n")
                            else:
                                c.sftp.remove(path)
                        except OSError as exc:
                            errors.append(f"{op} {path}: {exc}")
                        else:
                            pytest.fail(f"bob could {op} {path}")
            return errors

        await run_client(alice)
        errors = await run_client(bob)
        assert len(errors) == 6 + 4 * 4
        assert visible_files(env, "alice") == ["events/secret.jsonl"]
        assert (env.drop_root / "alice/events/secret.jsonl").read_bytes() == b'{"user_id": "1"}\n'
        assert visible_files(env, "bob") == []
        assert staging_files(env) == []
    finally:
        await srv.aclose()


async def test_dotdot_absolute_paths_and_links_cannot_leave_the_root(
    env: Env, server: SftpDropServer
) -> None:
    outside = env.tmp / "outside.txt"
    outside.write_text("outside the drop\n")
    # a link planted on the server (not creatable over SFTP) is never followed
    os.symlink(outside, env.drop_root / "alice" / "events" / "planted.jsonl")

    def probe() -> list[str]:
        refused = []
        with _login(env, server.port) as c:
            for path in (
                "../../escape.jsonl",
                "/../../../escape.jsonl",
                "/events/../../escape.jsonl",
                str(env.tmp / "escape.jsonl"),  # absolute server path: still inside chroot
                "/escape.jsonl",  # the root itself is not writable
                "/events/sub/escape.jsonl",
            ):
                try:
                    put_bytes(c, path, b'{"x": 1}\n')
                except OSError as exc:
                    refused.append(f"{path}: {exc}")
            for op, call in (
                ("symlink", lambda: c.sftp.symlink(str(outside), "/events/link.jsonl")),
                ("symlink-rel", lambda: c.sftp.symlink("../../../outside.txt", "/events/l2")),
                ("mkdir", lambda: c.sftp.mkdir("/events/sub")),
                ("read-planted", lambda: c.sftp.open("/events/planted.jsonl").read()),
                ("stat-planted", lambda: c.sftp.stat("/events/planted.jsonl")),
                ("readlink", lambda: c.sftp.readlink("/events/planted.jsonl")),
                ("rename-out", lambda: c.sftp.rename("/events/x", "/../x")),
            ):
                try:
                    call()
                except OSError as exc:
                    refused.append(f"{op}: {exc}")
                else:
                    pytest.fail(f"{op} succeeded")
            assert c.sftp.listdir("/events") == []  # the planted link is not listed
            assert c.sftp.normalize("../../..") == "/"
            assert c.sftp.normalize("/events/../..") == "/"
            # a path that normalises to a place inside the root is fine
            put_bytes(c, "/events/../events/inside.jsonl", b'{"x": 1}\n')
        return refused

    refused = await run_client(probe)
    assert len(refused) == 6 + 7, refused
    (h,) = await env.ingest.wait_for(1)
    assert h.upload.filename == "inside.jsonl"
    assert outside.read_text() == "outside the drop\n"
    assert not (env.tmp / "escape.jsonl").exists()
    leftovers = [f for f in files_under(env.drop_root) if not f.startswith(".tidegate/processing/")]
    assert leftovers == ["alice/events/planted.jsonl"]


# ---------------------------------------------------------------------------- partial uploads


async def test_transport_closed_mid_transfer_is_never_handed_over(
    env: Env, server: SftpDropServer
) -> None:
    def interrupted() -> None:
        c = _login(env, server.port)
        handle = c.sftp.open("/events/partial.jsonl", "wb")
        handle.write(b'{"user_id": "1", "event_type": "x"}\n' * 20000)
        handle.flush()
        c.sftp.stat("/events/partial.jsonl")  # the server has the bytes by now
        c.transport.close()  # no close of the file

    await run_client(interrupted)
    await asyncio.sleep(SETTLE * 3)
    assert env.ingest.handed == []
    assert visible_files(env, "alice") == []
    assert staging_files(env) == []


async def test_sftp_channel_closed_with_open_file_is_never_handed_over(
    env: Env, server: SftpDropServer
) -> None:
    def interrupted() -> None:
        c = _login(env, server.port)
        handle = c.sftp.open("/events/halfway.jsonl", "wb")
        handle.write(b"x" * 100_000)
        handle.flush()
        c.sftp.sock.close()  # the SFTP channel ends; the SSH connection stays up
        time.sleep(SETTLE * 3)
        c.transport.close()

    await run_client(interrupted)
    await asyncio.sleep(SETTLE * 2)
    assert env.ingest.handed == []
    assert visible_files(env, "alice") == [] and staging_files(env) == []


_KILLED_CLIENT = """
import sys, time, paramiko
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
t = paramiko.Transport(("127.0.0.1", port)); t.connect(username=user, password=password)
s = paramiko.SFTPClient.from_transport(t)
f = s.open("/events/killed.jsonl", "wb")
f.write(b'{"user_id": "1", "event_type": "x"}\\n' * 10000); f.flush()
print("HALF", flush=True)
time.sleep(600)
"""


async def test_killed_paramiko_client_is_never_handed_over(
    env: Env, server: SftpDropServer
) -> None:
    c = env.creds["alice"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _KILLED_CLIENT,
        str(server.port),
        c.username,
        c.password,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.strip() == b"HALF"
    assert staging_files(env)  # the transfer is under way
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    await asyncio.sleep(SETTLE * 3)
    assert env.ingest.handed == []
    assert visible_files(env, "alice") == [] and staging_files(env) == []


@needs_openssh
async def test_killed_openssh_client_mid_transfer_is_never_handed_over(
    env: Env, server: SftpDropServer
) -> None:
    work = env.tmp / "client"
    work.mkdir()
    big = work / "big.jsonl"
    big.write_bytes(b'{"user_id": "1", "event_type": "x"}\n' * 300_000)  # ~10 MB
    batch = work / "batch.txt"
    batch.write_text("put big.jsonl events/\n")
    proc = await asyncio.create_subprocess_exec(
        SFTP_BIN or "sftp",
        "-b",
        str(batch),
        "-l",
        "8000",  # Kbit/s: ~10 s for the file, so it can be killed midway
        "-P",
        str(server.port),
        "-i",
        str(env.key_path),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        "alice@127.0.0.1",
        cwd=work,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    staged = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        parts = list((env.drop_root / ".tidegate" / "partial" / "alice").iterdir())
        staged = parts[0].stat().st_size if parts else 0
        if staged > 1_000_000:
            break
        await asyncio.sleep(0.05)
    assert 0 < staged < big.stat().st_size
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    await asyncio.sleep(SETTLE * 3)
    assert env.ingest.handed == []
    assert visible_files(env, "alice") == [] and staging_files(env) == []


# ---------------------------------------------------------------------------- duplicates


async def test_reupload_of_a_handed_over_name_is_refused_at_open(
    env: Env, server: SftpDropServer
) -> None:
    data = (SEEDS / "zeta_sample.jsonl").read_bytes()
    await run_client(lambda: put_bytes(_login(env, server.port), "/events/once.jsonl", data))
    await env.ingest.wait_for(1)

    def again() -> str:
        with _login(env, server.port) as c:
            with pytest.raises(OSError) as info:
                put_bytes(c, "/events/once.jsonl", data)
            with pytest.raises(OSError):  # nor through the other folder
                put_bytes(c, "/events-trigger/once.jsonl", data)
            return str(info.value)

    message = await run_client(again)
    assert "duplicate_filename" in message
    await asyncio.sleep(SETTLE * 2)
    assert len(env.ingest.handed) == 1
    assert staging_files(env) == []


@needs_openssh
async def test_openssh_reupload_fails_the_batch(env: Env, server: SftpDropServer) -> None:
    work = env.tmp / "client"
    work.mkdir()
    shutil.copy(SEEDS / "zeta_sample.jsonl", work / "zeta_sample.jsonl")
    first = await openssh_batch(env, server.port, "put zeta_sample.jsonl events/", cwd=work)
    assert first.returncode == 0, first.stderr
    await env.ingest.wait_for(1)
    second = await openssh_batch(env, server.port, "put zeta_sample.jsonl events/", cwd=work)
    assert second.returncode != 0
    assert "zeta_sample.jsonl" in second.stderr
    assert len(env.ingest.handed) == 1


async def test_name_known_to_the_runtime_is_refused_with_a_visible_status_file(
    env: Env, server: SftpDropServer
) -> None:
    env.ingest.mark_used("alice", "march.jsonl")  # e.g. uploaded before a restart
    data = (SEEDS / "zeta_sample.jsonl").read_bytes()
    await run_client(lambda: put_bytes(_login(env, server.port), "/events/march.jsonl", data))
    (h,) = await env.ingest.wait_for(1)
    assert h.receipt.refused is not None
    assert h.receipt.refused.code is ErrorCode.DUPLICATE_FILENAME
    await asyncio.sleep(0.1)

    def look() -> tuple[list[str], str]:
        with _login(env, server.port) as c:
            names = c.sftp.listdir("/events")
            with c.sftp.open("/events/march.jsonl.rejected.txt") as f:
                text = f.read().decode()
            with pytest.raises(OSError):  # status files are read-only
                put_bytes(c, "/events/march.jsonl.rejected.txt", b"x")
            c.sftp.remove("/events/march.jsonl.rejected.txt")  # the user may clean up
            return names, text

    names, text = await run_client(look)
    assert names == ["march.jsonl.rejected.txt"]
    assert "code: duplicate_filename" in text
    assert "File march.jsonl was already uploaded" in text
    assert visible_files(env, "alice") == []
    assert files_under(env.drop_root / ".tidegate" / "processing") == []  # refused: deleted


# ---------------------------------------------------------------------------- settle delay


async def test_hand_over_follows_the_close_after_the_settle_delay(env: Env) -> None:
    settle = 1.0
    srv = await _start(env, settle=settle)
    try:
        data = (SEEDS / "zeta_sample.jsonl").read_bytes()
        delays = []
        for i in range(5):
            closed = await run_client(
                functools.partial(_login_and_put, env, srv.port, f"/events/t{i}.jsonl", data)
            )
            (h, *_) = (await env.ingest.wait_for(i + 1))[i:]
            delays.append(h.at - closed)
        server_side = [s.delay for s in srv.handovers]
        print(
            f"\nsettle={settle}s close->hand-over (client clock): "
            + ", ".join(f"{d:.3f}" for d in delays)
        )
        print("close->hand-over (server clock): " + ", ".join(f"{d:.3f}" for d in server_side))
        for d in delays:
            assert settle - 0.05 <= d < settle + 0.5
        for d in server_side:
            assert settle <= d < settle + 0.5
    finally:
        await srv.aclose()


async def test_reopen_during_settle_restarts_the_delay(env: Env, server: SftpDropServer) -> None:
    def upload() -> tuple[float, float]:
        with _login(env, server.port) as c:
            first = put_bytes(c, "/events/grow.jsonl", b'{"a": 1}\n')
            time.sleep(SETTLE * 0.6)
            assert c.sftp.listdir("/events") == ["grow.jsonl"]  # settling, visible
            with c.sftp.open("/events/grow.jsonl", "ab") as f:  # append (resume)
                assert c.sftp.listdir("/events") == []  # open again: hidden
                f.write(b'{"a": 2}\n')
            second = time.monotonic()
            return first, second

    first, second = await run_client(upload)
    (h,) = await env.ingest.wait_for(1)
    await asyncio.sleep(SETTLE)
    assert len(env.ingest.handed) == 1
    assert h.content == b'{"a": 1}\n{"a": 2}\n'
    assert h.at - second >= SETTLE - 0.05
    assert h.at - first >= SETTLE * 1.6 - 0.05


async def test_delete_during_settle_cancels_the_upload(env: Env) -> None:
    srv = await _start(env, settle=2.0)
    try:

        def upload_and_delete() -> None:
            with _login(env, srv.port) as c:
                put_bytes(c, "/events/oops.jsonl", b"{}\n")
                c.sftp.remove("/events/oops.jsonl")
                assert c.sftp.listdir("/events") == []

        await run_client(upload_and_delete)
        await asyncio.sleep(2.5)
        assert env.ingest.handed == []
        assert visible_files(env, "alice") == []
    finally:
        await srv.aclose()


async def test_temporary_name_is_handed_over_after_rename(env: Env, server: SftpDropServer) -> None:
    data = (SEEDS / "vero_checkouts.csv").read_bytes()

    def winscp_style() -> None:
        with _login(env, server.port) as c:
            put_bytes(c, "/events/checkouts.csv.filepart", data)
            time.sleep(SETTLE * 2)  # a temporary name never settles
            c.sftp.posix_rename("/events/checkouts.csv.filepart", "/events/checkouts.csv")
            put_bytes(c, "/events/.rsync-tmp.XyZ123", data)
            c.sftp.rename("/events/.rsync-tmp.XyZ123", "/events-trigger/synced.csv")
            put_bytes(c, "/events/never-renamed.tmp", data)  # discarded with the session

    await run_client(winscp_style)
    handed = {h.upload.filename: h for h in await env.ingest.wait_for(2)}
    await asyncio.sleep(SETTLE * 2)
    assert set(handed) == {"checkouts.csv", "synced.csv"}
    assert len(env.ingest.handed) == 2
    assert handed["synced.csv"].upload.trigger is True
    assert handed["checkouts.csv"].content == data
    assert visible_files(env, "alice") == []


# ---------------------------------------------------------------------------- restarts


async def test_restart_hands_over_settling_files_and_keeps_the_host_key(env: Env) -> None:
    srv = await _start(env, settle=60)
    first_key = srv.host_key_fingerprint
    await run_client(lambda: put_bytes(_login(env, srv.port), "/events/late.jsonl", b"{}\n"))
    await asyncio.sleep(0.1)
    await srv.aclose()
    assert env.ingest.handed == []
    assert visible_files(env, "alice") == ["events/late.jsonl"]
    assert oct(env.host_key.stat().st_mode & 0o777) == "0o600"

    srv2 = await _start(env, settle=0.2)
    try:
        assert srv2.host_key_fingerprint == first_key
        (h,) = await env.ingest.wait_for(1)
        assert h.upload.filename == "late.jsonl" and h.content == b"{}\n"
    finally:
        await srv2.aclose()


async def test_runtime_failure_is_retried_and_reported_meanwhile(
    env: Env, server: SftpDropServer
) -> None:
    server.handover.retry_delays = (1.0,)
    env.ingest.fail_next = 1
    await run_client(lambda: put_bytes(_login(env, server.port), "/events/retry.jsonl", b"{}\n"))
    await asyncio.sleep(SETTLE + 0.4)
    assert visible_files(env, "alice") == ["events/retry.jsonl.error.txt"]
    (h,) = await env.ingest.wait_for(1)
    assert h.accepted and h.upload.filename == "retry.jsonl"
    await asyncio.sleep(0.1)
    assert visible_files(env, "alice") == []


# ---------------------------------------------------------------------------- close origin


@pytest.fixture
def origins(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records what `_close_origin` decides (pins asyncssh's internals it reads)."""
    import connectors.sftp as sftp_module

    seen: list[str] = []
    real = sftp_module._close_origin

    def spy(depth: int = 2) -> str:
        result = real(depth + 1)  # the spy adds one frame
        seen.append(result)
        return result

    monkeypatch.setattr(sftp_module, "_close_origin", spy)
    return seen


async def test_close_origin_is_detected_with_the_installed_asyncssh(
    env: Env, server: SftpDropServer, origins: list[str]
) -> None:
    await run_client(lambda: put_bytes(_login(env, server.port), "/events/ok.jsonl", b"{}\n"))
    await env.ingest.wait_for(1)
    assert origins == ["client"]

    def interrupted() -> None:
        c = _login(env, server.port)
        handle = c.sftp.open("/events/cut.jsonl", "wb")
        handle.write(b"x" * 10_000)
        handle.flush()
        c.sftp.stat("/events/cut.jsonl")
        c.sftp.sock.close()
        time.sleep(0.3)
        c.transport.close()

    await run_client(interrupted)
    await asyncio.sleep(SETTLE * 2)
    assert origins == ["client", "session_end"]
    assert len(env.ingest.handed) == 1


@pytest.mark.parametrize("how", ["transport", "channel"])
async def test_fallback_without_origin_still_discards_interrupted_uploads(
    env: Env, server: SftpDropServer, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Should asyncssh change its internals, the deferred decision still holds."""
    import connectors.sftp as sftp_module

    monkeypatch.setattr(sftp_module, "_close_origin", lambda: "unknown")
    await run_client(lambda: put_bytes(_login(env, server.port), "/events/ok.jsonl", b"{}\n"))

    def interrupted() -> None:
        c = _login(env, server.port)
        handle = c.sftp.open("/events/cut.jsonl", "wb")
        handle.write(b"x" * 100_000)
        handle.flush()
        c.sftp.stat("/events/cut.jsonl")
        if how == "channel":
            c.sftp.sock.close()
            time.sleep(0.3)
        c.transport.close()

    await run_client(interrupted)
    await asyncio.sleep(SETTLE * 3)
    assert [h.upload.filename for h in env.ingest.handed] == ["ok.jsonl"]
    assert visible_files(env, "alice") == [] and staging_files(env) == []


async def test_open_handles_per_session_are_limited(env: Env, server: SftpDropServer) -> None:
    from connectors.sftp import MAX_OPEN_HANDLES

    def many() -> None:
        with _login(env, server.port) as c:
            handles = [c.sftp.open(f"/events/f{i}.jsonl", "wb") for i in range(MAX_OPEN_HANDLES)]
            with pytest.raises(OSError, match="too many open files"):
                c.sftp.open("/events/one-too-many.jsonl", "wb")
            for h in handles[:10]:
                h.write(b"{}\n")
                h.close()
            c.sftp.open("/events/now-fine.jsonl", "wb").close()
            for h in handles[10:]:
                h.close()

    await run_client(many)
    handed = await env.ingest.wait_for(MAX_OPEN_HANDLES + 1)
    assert "one-too-many.jsonl" not in {h.upload.filename for h in handed}
