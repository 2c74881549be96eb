"""The SFTP drop server: accounts upload files over SFTP; complete files go to the runtime.

What a user sees after logging in (password or public key, see `connectors.accounts`)::

    /                   their own root (drop_root/<account>/ on the server; chrooted)
    /events/            drop files here: file imports, the account's trigger default
    /events-trigger/    drop files here: this upload opts in to campaign triggers

Rules (all enforced by `_DropSftp`, tested with paramiko and OpenSSH clients):

* Only files directly inside the two folders can be written; no sub-directories, no
  symlinks or hard links, no ``mkdir``. Paths are resolved by asyncssh's chroot
  mapping, so ``..`` and absolute paths never leave the account's root, and another
  account's folders cannot be named at all.
* Writes go to a staging file outside the user's root
  (``drop_root/.tidegate/partial/<account>/``), hidden from listings. A file becomes
  *complete* only when the client CLOSES its handle while the session is alive; then it
  appears in its folder and a settle delay starts. Reopening it (overwrite, append,
  resume) during the delay hides it again and restarts the delay on the next close.
* A transfer that ends any other way — the client is killed, the connection drops, the
  channel is closed with the handle still open, a write fails — is discarded: never
  handed over, nothing left behind.
* After the settle delay the file is claimed into the hand-over area (see
  `connectors.staging`) — it leaves the folder — and submitted to the runtime with
  ``received_at`` = the time of the (last) close and ``trigger`` = True for
  ``events-trigger/`` (None, i.e. the account default, for ``events/``).
* Temporary names (dotfiles, ``*.filepart``, ``*.part``, ``*.tmp`` …) are never
  handed over under that name: clients that upload to a temporary name and rename it
  (WinSCP, rsync over sshfs) are handed over after the rename. A temporary file still
  unrenamed when its session ends is discarded.
* A filename this server already handed over for the account (or that the runtime
  refused as ``duplicate_filename``) is refused when the client opens it, before any
  byte is accepted. The runtime stays the source of truth: a name it knows from
  elsewhere (an earlier run, the HTTP API, the watched folder) is refused at hand-over,
  and the user finds ``<name>.rejected.txt`` in the folder.
* Deleting a file during its settle delay cancels the upload. Status files
  (``*.rejected.txt``, ``*.error.txt``) can be read and deleted.

Settling files are ordinary files in the user's folder, so a restart hands them over
(after a fresh settle delay); staging files of unfinished transfers are deleted at start.

Abusive or forgotten connections: one that has not logged in within the login timeout is
closed (asyncssh's ``login_timeout``); a logged-in connection that makes no SFTP request
for the idle timeout is disconnected (`_IdleWatch`). Every request resets the idle timer,
so an upload in progress (a stream of writes) is never cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import posixpath
import secrets
import stat
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any, cast

import asyncssh
from asyncssh import (
    SFTPAttrs,
    SFTPFailure,
    SFTPFileAlreadyExists,
    SFTPName,
    SFTPNoSuchFile,
    SFTPOpUnsupported,
    SFTPPermissionDenied,
)

from connectors.accounts import Account, Accounts
from connectors.ports import Ingest
from connectors.staging import (
    FOLDERS,
    Claim,
    HandOver,
    HandOverResult,
    is_status_name,
    is_temporary_name,
    name_problem,
)
from connectors.throttle import LoginThrottle
from streams.core.errors import ErrorCode

__all__ = ["HandOverStat", "SftpDropServer", "load_or_create_host_key", "start_sftp_server"]

log = logging.getLogger("tidegate.sftp")

# SFTP v3 open flags (draft-ietf-secsh-filexfer-02); the server speaks v3 only.
_FXF_READ = 0x01
_FXF_WRITE = 0x02
_FXF_APPEND = 0x04
_FXF_CREAT = 0x08
_FXF_TRUNC = 0x10
_FXF_EXCL = 0x20

_INTERNAL = ".tidegate"  # drop_root/.tidegate: staging and hand-over (never an account)
_CONNECTION_GRACE = 1.0  # seconds after a lost connection before its sessions are reaped
_USED_NAMES_CACHE = 100_000  # per account
MAX_OPEN_HANDLES = 64  # per SFTP session
DEFAULT_LOGIN_TIMEOUT = 60.0  # seconds from connect to a completed login
DEFAULT_IDLE_TIMEOUT = 300.0  # seconds without an SFTP request on a logged-in connection


# ---------------------------------------------------------------------------- host key


def load_or_create_host_key(path: Path) -> asyncssh.SSHKey:
    """The server's host key: read from `path`, or generated once (ed25519, mode 0600)."""
    if path.exists():
        return asyncssh.read_private_key(str(path))
    key = asyncssh.generate_private_key("ssh-ed25519", comment="tidegate-sftp")
    data = key.export_private_key("openssh")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # created concurrently: use that one
        return asyncssh.read_private_key(str(path))
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    with contextlib.suppress(OSError):
        path.with_name(path.name + ".pub").write_bytes(key.export_public_key("openssh"))
    log.info("generated SFTP host key %s (%s)", path, key.get_fingerprint())
    return key


# ---------------------------------------------------------------------------- uploads


class _State(Enum):
    OPEN = "open"  # a client holds a write handle; bytes are in the staging file
    SETTLING = "settling"  # closed; visible in its folder; waiting for the settle delay
    HANDING_OVER = "handing_over"  # claimed; waiting for the runtime's receipt


@dataclass(eq=False)
class _Upload:
    account: str
    folder: str
    name: str
    state: _State
    staging: Path
    session: _DropSftp | None = None
    handle: object | None = None
    bytes_written: int = 0
    failed: str | None = None
    closed_at: datetime | None = None
    closed_mono: float = 0.0
    timer: asyncio.Task[None] | None = None
    generation: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return (self.account, self.name)


@dataclass(slots=True)
class HandOverStat:
    """One hand-over as the server saw it (for logs, metrics and tests)."""

    account: str
    filename: str
    closed_mono: float
    handed_mono: float
    accepted: bool

    @property
    def delay(self) -> float:
        return self.handed_mono - self.closed_mono


@dataclass(slots=True)
class _Target:
    kind: str  # "root" | "folder" | "file" | "none"
    folder: str | None = None
    name: str | None = None


class _IdleWatch:
    """Disconnects a logged-in connection that made no SFTP request for `seconds`.

    `touch` only stores the time (it runs on every request, writes included); the one timer
    per connection re-arms itself for the remaining time when it finds a later request."""

    __slots__ = ("_conn", "_handle", "_label", "_last", "_loop", "seconds")

    def __init__(self, conn: asyncssh.SSHServerConnection, seconds: float, label: str) -> None:
        self._conn = conn
        self._label = label
        self._loop = asyncio.get_running_loop()
        self.seconds = seconds
        self._last = self._loop.time()
        self._handle: asyncio.TimerHandle | None = self._loop.call_later(seconds, self._check)

    def touch(self) -> None:
        self._last = self._loop.time()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _check(self) -> None:
        idle = self._loop.time() - self._last
        if idle < self.seconds:
            self._handle = self._loop.call_later(self.seconds - idle, self._check)
            return
        self._handle = None
        log.info(
            "SFTP connection %s closed: no SFTP request for %.0f s (idle timeout)",
            self._label,
            idle,
        )
        self._conn.disconnect(
            asyncssh.DISC_BY_APPLICATION, f"idle for {self.seconds:.0f} s: closed by the server"
        )


class SftpDropServer:
    """A running SFTP drop server. Create it with `start_sftp_server`."""

    def __init__(
        self,
        accounts: Accounts,
        drop_root: Path,
        ingest: Ingest,
        settle_seconds: float,
        host_key: asyncssh.SSHKey,
        *,
        max_file_bytes: int | None = None,
        throttle: LoginThrottle | None = None,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        self.throttle = throttle or LoginThrottle()
        self.idle_timeout = idle_timeout  # <= 0: never
        self.accounts = accounts
        self.drop_root = drop_root.resolve()
        self.ingest = ingest
        self.settle_seconds = max(0.0, settle_seconds)
        self.host_key = host_key
        self.host_key_fingerprint: str = host_key.get_fingerprint()
        self.max_file_bytes = max_file_bytes
        self.host = ""
        self.port = 0
        self.handovers: list[HandOverStat] = []
        self._uploads: dict[tuple[str, str], _Upload] = {}
        # names handed over (or known to the runtime), newest last, per account: a cache
        # for refusing a re-upload at open; the runtime remains the source of truth
        self._used: dict[str, dict[str, None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connections: set[asyncssh.SSHServerConnection] = set()
        self._idle: dict[asyncssh.SSHServerConnection, _IdleWatch] = {}
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._closing = False
        internal = self.drop_root / _INTERNAL
        self._partial_root = internal / "partial"
        self.handover = HandOver(internal / "processing", self.drop_root, ingest, source="sftp")

    # -- layout

    def account_root(self, account: str) -> Path:
        return self.drop_root / account

    def folder_dir(self, account: str, folder: str) -> Path:
        return self.drop_root / account / folder

    def _prepare_account(self, account: Account) -> None:
        root = self.account_root(account.name)
        for directory in (root, *(root / f for f in FOLDERS)):
            if directory.is_symlink():
                raise RuntimeError(f"{directory} is a symlink; refusing to serve it")
            directory.mkdir(mode=0o700, exist_ok=True)
        partial = self._partial_root / account.name
        partial.mkdir(parents=True, mode=0o700, exist_ok=True)

    def update_accounts(self, accounts: Accounts) -> None:
        """Serves a new set of accounts (existing sessions keep theirs)."""
        for account in accounts:
            self._prepare_account(account)
        self.accounts = accounts

    def _recover(self) -> None:
        """At start: drop unfinished transfers, resume settling files and claims."""
        if self._partial_root.is_dir():
            for account_dir in self._partial_root.iterdir():
                for leftover in account_dir.iterdir() if account_dir.is_dir() else ():
                    log.warning("discarding unfinished transfer %s", leftover)
                    with contextlib.suppress(OSError):
                        leftover.unlink()
        for account in self.accounts:
            for folder in FOLDERS:
                directory = self.folder_dir(account.name, folder)
                for entry in sorted(os.scandir(directory), key=lambda e: e.name):
                    if not entry.is_file(follow_symlinks=False) or is_status_name(entry.name):
                        continue
                    if is_temporary_name(entry.name) or (account.name, entry.name) in self._uploads:
                        log.warning("discarding %s left from an earlier run", entry.path)
                        with contextlib.suppress(OSError):
                            os.unlink(entry.path)
                        continue
                    st = entry.stat(follow_symlinks=False)
                    upload = _Upload(
                        account.name,
                        folder,
                        entry.name,
                        _State.SETTLING,
                        self._new_staging(account.name),
                        closed_at=datetime.fromtimestamp(st.st_ctime, UTC),
                        closed_mono=time.monotonic(),
                    )
                    self._uploads[upload.key] = upload
                    self._start_settle(upload)
        for claim in self.handover.recover():
            log.info("resubmitting claim %s/%s from an earlier run", claim.account, claim.filename)
            self._spawn(self._submit_recovered(claim))

    async def _submit_recovered(self, claim: Claim) -> None:
        result = await self.handover.submit(claim)
        self._note_result(result)

    # -- lifecycle

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def close(self) -> None:
        """Stops listening, drops the connections (their open transfers are discarded)
        and stops pending hand-overs (settling files and claims resume at the next start)."""
        if self._closing:
            return
        self._closing = True
        if self._acceptor is not None:
            self._acceptor.close()
        for conn in list(self._connections):
            conn.close()
        for upload in list(self._uploads.values()):
            if upload.state is _State.OPEN:
                self._discard(upload, "server shutting down")
        for task in list(self._tasks):
            task.cancel()

    async def wait_closed(self) -> None:
        if self._acceptor is not None:
            await self._acceptor.wait_closed()
        for conn in list(self._connections):
            with contextlib.suppress(Exception):
                await conn.wait_closed()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        self.close()
        await self.wait_closed()

    async def __aenter__(self) -> SftpDropServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- connections (called by _SshServer)

    def _connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._connections.add(conn)

    def _logged_in(self, conn: asyncssh.SSHServerConnection, label: str) -> None:
        if self.idle_timeout > 0 and not self._closing:
            self._idle[conn] = _IdleWatch(conn, self.idle_timeout, label)

    def _request(self, conn: asyncssh.SSHServerConnection) -> None:
        """An SFTP request arrived on `conn`: its idle timer starts again."""
        watch = self._idle.get(conn)
        if watch is not None:
            watch.touch()

    def _connection_lost(self, conn: asyncssh.SSHServerConnection) -> None:
        self._connections.discard(conn)
        watch = self._idle.pop(conn, None)
        if watch is not None:
            watch.cancel()
        # Safety net: asyncssh ends each SFTP session (closing its handles, then exit())
        # when the connection goes; anything still open after that is discarded.
        loop = asyncio.get_running_loop()
        loop.call_later(_CONNECTION_GRACE, self._reap_connection, conn)

    def _reap_connection(self, conn: asyncssh.SSHServerConnection) -> None:
        for upload in list(self._uploads.values()):
            session = upload.session
            if upload.state is _State.OPEN and session is not None and session.conn is conn:
                self._discard(upload, "connection lost")

    # -- upload state machine

    def _new_staging(self, account: str) -> Path:
        return self._partial_root / account / f"{secrets.token_hex(12)}.partial"

    def _discard(self, upload: _Upload, reason: str) -> None:
        if self._uploads.get(upload.key) is upload:
            del self._uploads[upload.key]
        if upload.timer is not None:
            upload.timer.cancel()
            upload.timer = None
        handle = upload.handle
        upload.handle = None
        if handle is not None:
            with contextlib.suppress(Exception):
                cast(Any, handle).close()
        if upload.state is _State.OPEN:
            path = upload.staging
        else:
            path = self.folder_dir(upload.account, upload.folder) / upload.name
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        log.warning(
            "discarded %s/%s/%s after %d bytes: %s",
            upload.account,
            upload.folder,
            upload.name,
            upload.bytes_written,
            reason,
        )

    def _complete(self, upload: _Upload) -> None:
        """The client closed the file in a live session: it settles in its folder."""
        target = self.folder_dir(upload.account, upload.folder) / upload.name
        if os.path.lexists(target):
            self._discard(upload, f"{target} appeared meanwhile")
            return
        os.rename(upload.staging, target)
        upload.state = _State.SETTLING
        log.info(
            "received %s/%s/%s (%d bytes); hand-over in %.1fs",
            upload.account,
            upload.folder,
            upload.name,
            target.stat().st_size,
            self.settle_seconds,
        )
        self._start_settle(upload)

    def _reopen(self, upload: _Upload, session: _DropSftp) -> None:
        """A settling file is opened for writing again: back to staging, delay stops."""
        if upload.timer is not None:
            upload.timer.cancel()
            upload.timer = None
        upload.generation += 1
        upload.staging = self._new_staging(upload.account)
        os.rename(self.folder_dir(upload.account, upload.folder) / upload.name, upload.staging)
        upload.state = _State.OPEN
        upload.session = session
        upload.failed = None

    def _start_settle(self, upload: _Upload) -> None:
        if upload.timer is not None:
            upload.timer.cancel()
            upload.timer = None
        upload.generation += 1
        if is_temporary_name(upload.name):
            return  # waits for a rename to its final name
        upload.timer = self._spawn(self._settle_then_hand_over(upload, upload.generation))

    async def _settle_then_hand_over(self, upload: _Upload, generation: int) -> None:
        await asyncio.sleep(self.settle_seconds)
        if (
            upload.generation != generation
            or upload.state is not _State.SETTLING
            or self._uploads.get(upload.key) is not upload
        ):
            return
        upload.state = _State.HANDING_OVER
        upload.timer = None
        account = self.accounts.get(upload.account)
        try:
            claim = self.handover.claim(
                self.folder_dir(upload.account, upload.folder) / upload.name,
                account=upload.account,
                folder=upload.folder,
                filename=upload.name,
                received_at=upload.closed_at or datetime.now(UTC),
                trigger=FOLDERS[upload.folder],
                dialect=account.dialect if account is not None else None,
            )
        except OSError as exc:
            self._uploads.pop(upload.key, None)
            log.error("could not claim %s/%s: %s", upload.account, upload.name, exc)
            return
        try:
            result = await self.handover.submit(claim)
        finally:
            if self._uploads.get(upload.key) is upload:
                del self._uploads[upload.key]
        self._note_result(result, upload.closed_mono)

    def _note_result(self, result: HandOverResult, closed_mono: float | None = None) -> None:
        claim = result.claim
        refused = result.receipt.refused
        if refused is None or refused.code is ErrorCode.DUPLICATE_FILENAME:
            used = self._used.setdefault(claim.account, {})
            used.pop(claim.filename, None)
            used[claim.filename] = None
            if len(used) > _USED_NAMES_CACHE:
                del used[next(iter(used))]
        if closed_mono is not None:
            stat_ = HandOverStat(
                claim.account, claim.filename, closed_mono, result.handed_at, result.accepted
            )
            self.handovers.append(stat_)
            del self.handovers[:-1000]
            log.info(
                "hand-over of %s/%s %.3fs after close",
                claim.account,
                claim.filename,
                stat_.delay,
            )

    def name_used(self, account: str, name: str) -> bool:
        return name in self._used.get(account, ())

    # -- other drop protocols (connectors.ftp) share the folders, settle and hand-over

    def new_staging(self, account: str) -> Path:
        """A fresh staging path for a transfer in progress (discarded at the next start)."""
        return self._new_staging(account)

    def name_taken(self, account: str, name: str) -> bool:
        """True if `name` was handed over, is being received or settles in a folder."""
        if self.name_used(account, name) or (account, name) in self._uploads:
            return True
        return any(os.path.lexists(self.folder_dir(account, f) / name) for f in FOLDERS)

    def receive_complete(self, account: str, folder: str, name: str, staging: Path) -> bool:
        """A transfer by another protocol ended well: it settles like an SFTP close.

        Runs on the event loop. False (and the staging file deleted) when the name was
        taken meanwhile."""
        upload = _Upload(account, folder, name, _State.OPEN, staging)
        if self._closing or (account, name) in self._uploads:
            self._discard(upload, "the name was taken meanwhile")
            return False
        upload.closed_at = datetime.now(UTC)
        upload.closed_mono = time.monotonic()
        self._uploads[upload.key] = upload
        self._complete(upload)
        return self._uploads.get(upload.key) is upload

    # -- asyncssh factories

    def _sftp_factory(self, chan: asyncssh.SSHServerChannel[bytes]) -> _DropSftp:
        username = chan.get_extra_info("username")
        account = self.accounts.by_username(username) if isinstance(username, str) else None
        if account is None:
            # authenticated a moment ago but no longer configured
            chan.close()
            raise asyncssh.DisconnectError(
                asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, "account removed"
            )
        return _DropSftp(chan, self, account.name)


class _SshServer(asyncssh.SSHServer):
    """Authentication against `Accounts`; one instance per connection."""

    def __init__(self, drop: SftpDropServer) -> None:
        self._drop = drop
        self._conn: asyncssh.SSHServerConnection | None = None
        self._username = ""
        self._logged_in = False

    def _address(self) -> str:
        peer = self._conn.get_extra_info("peername") if self._conn is not None else None
        return str(peer[0]) if peer else ""

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._drop._connection_made(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is None:
            return
        if not self._logged_in and exc is not None:
            # asyncssh's login timer ends a connection that never logged in with
            # "Login timeout expired"; half-open and abandoned connections end here
            log.info("SFTP connection from %s closed before login: %s", self._address(), exc)
        self._drop._connection_lost(self._conn)

    def auth_completed(self) -> None:
        self._logged_in = True
        if self._conn is not None:
            self._drop._logged_in(self._conn, f"{self._username!r} from {self._address()}")

    def begin_auth(self, username: str) -> bool:
        self._username = username
        return True  # always require authentication (unknown users fail it)

    def password_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        throttle = self._drop.throttle
        address = self._address()
        verdict = throttle.check(address, username)
        if verdict.refused:
            log.warning(
                "SFTP login refused without checking: too many failures (%s) from %s for %r",
                verdict.reason,
                address,
                username,
            )
            return False
        if verdict.delay:
            await asyncio.sleep(verdict.delay)
        account = await asyncio.to_thread(self._drop.accounts.verify_sftp, username, password)
        if account is None:
            throttle.failed(address, username)
            log.warning("SFTP login refused for %r from %s (password)", username, address)
            return False
        throttle.succeeded(address, username)
        log.info("SFTP login %r (account %s, password)", username, account.name)
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        account = self._drop.accounts.by_username(username)
        if account is None:
            return False
        offered = key.public_data
        for line in account.authorized_keys:
            try:
                allowed = asyncssh.import_public_key(line)
            except (asyncssh.KeyImportError, ValueError):
                continue
            if allowed.public_data == offered:
                # asyncssh verifies the signature before completing the login
                log.info("SFTP key offered by %r matches (account %s)", username, account.name)
                return True
        return False


# ---------------------------------------------------------------------------- SFTP


def _close_origin(depth: int = 2) -> str:
    """Who asked asyncssh to close a handle: the client ("client", an SFTP CLOSE request),
    the end of the session ("session_end": asyncssh closes the handles a client left
    open when the channel or connection goes), or "unknown".

    asyncssh calls `SFTPServer.close` from exactly two places, both in
    `SFTPServerHandler`: `_process_close` and `_cleanup`. Only the first is a completed
    upload. The caller is the frame above `close`; the tests for killed clients and
    normal closes pin this against the installed asyncssh.
    """
    frame = sys._getframe(depth)  # 0: _close_origin, 1: _DropSftp.close, 2: asyncssh
    name = frame.f_code.co_name
    if name == "_process_close":
        return "client"
    if name == "_cleanup":
        return "session_end"
    return "unknown"


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SFTPNoSuchFile("file names must be UTF-8") from None


class _DropSftp(asyncssh.SFTPServer):
    """One SFTP session of one account, chrooted to ``drop_root/<account>``."""

    def __init__(
        self, chan: asyncssh.SSHServerChannel[bytes], drop: SftpDropServer, account: str
    ) -> None:
        root = drop.account_root(account)
        super().__init__(chan, chroot=os.fsencode(root))
        self.drop = drop
        self.account = account
        self.root = os.path.realpath(root)
        self.conn = cast(asyncssh.SSHServerConnection, chan.get_connection())
        self._handles: dict[object, _Upload] = {}
        self._open_handles = 0
        self._exited = False

    # -- paths

    def _target(self, path: bytes) -> _Target:
        """What a client path names. asyncssh's chroot mapping does the confinement
        (``..`` and absolute paths stay inside the root); this only classifies."""
        local = os.fsdecode(self.map_path(path))
        rel = os.path.relpath(local, self.root)
        if rel == ".":
            return _Target("root")
        if rel.startswith(".."):  # cannot happen with the chroot mapping; never trust it
            return _Target("none")
        parts = rel.split(os.sep)
        if parts[0] not in FOLDERS:
            return _Target("none")
        if len(parts) == 1:
            return _Target("folder", parts[0])
        if len(parts) == 2:
            return _Target("file", parts[0], parts[1])
        return _Target("none")

    def _file(self, path: bytes) -> tuple[str, str]:
        _utf8(path)
        target = self._target(path)
        if target.kind == "file":
            assert target.folder is not None and target.name is not None
            return target.folder, target.name
        if target.kind in ("root", "folder"):
            raise asyncssh.SFTPFileIsADirectory("is a directory")
        raise SFTPNoSuchFile("no such file (files go directly into /events or /events-trigger)")

    def _local(self, folder: str, name: str) -> str:
        return os.path.join(self.root, folder, name)

    def _upload(self, name: str) -> _Upload | None:
        return self.drop._uploads.get((self.account, name))

    def _touch(self) -> None:
        self.drop._request(self.conn)

    # -- open / write / close

    def open(self, path: bytes, pflags: int, attrs: SFTPAttrs) -> object:
        write = bool(pflags & (_FXF_WRITE | _FXF_APPEND))
        if not write:
            return self._open_read(path)
        return self._open_write(
            path,
            read=bool(pflags & _FXF_READ),
            append=bool(pflags & _FXF_APPEND),
            create=bool(pflags & _FXF_CREAT),
            trunc=bool(pflags & _FXF_TRUNC),
            excl=bool(pflags & _FXF_EXCL),
        )

    def open56(self, path: bytes, desired_access: int, flags: int, attrs: SFTPAttrs) -> object:
        raise SFTPOpUnsupported("this server speaks SFTP version 3")

    def _check_handle_limit(self) -> None:
        if self._open_handles >= MAX_OPEN_HANDLES:
            raise SFTPFailure(f"too many open files (at most {MAX_OPEN_HANDLES} per session)")

    def _open_read(self, path: bytes) -> object:
        self._check_handle_limit()
        folder, name = self._file(path)
        try:
            fd = os.open(self._local(folder, name), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            raise SFTPNoSuchFile("no such file") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise SFTPNoSuchFile("no such file")
        self._open_handles += 1
        return open(fd, "rb", buffering=0)

    def _open_write(
        self, path: bytes, *, read: bool, append: bool, create: bool, trunc: bool, excl: bool
    ) -> object:
        if self._exited or self.drop._closing:
            raise SFTPFailure("session is closing")
        self._check_handle_limit()
        folder, name = self._file(path)
        problem = name_problem(name)
        if problem:
            raise SFTPPermissionDenied(problem)
        if not is_temporary_name(name) and self.drop.name_used(self.account, name):
            raise SFTPFileAlreadyExists(
                f"duplicate_filename: {name} was already uploaded; every file needs a new, "
                "unique name"
            )
        upload = self._upload(name)
        if upload is not None:
            if upload.folder != folder:
                raise SFTPFileAlreadyExists(
                    f"{name} is already being uploaded to /{upload.folder}; names are unique "
                    "per account"
                )
            if upload.state is _State.OPEN:
                raise SFTPFailure(f"{name} is being uploaded in another session")
            if upload.state is _State.HANDING_OVER:
                raise SFTPFileAlreadyExists(f"duplicate_filename: {name} is being processed")
            if excl:
                raise SFTPFileAlreadyExists(f"{name} exists")
            self.drop._reopen(upload, self)
        else:
            if os.path.lexists(self._local(folder, name)):
                # a status file or anything not ours: read-only
                raise SFTPPermissionDenied(f"{name} cannot be written")
            if not create:
                raise SFTPNoSuchFile("no such file")
            upload = _Upload(
                self.account, folder, name, _State.OPEN, self.drop._new_staging(self.account)
            )
            upload.session = self
            self.drop._uploads[upload.key] = upload
        flags = (os.O_RDWR if read else os.O_WRONLY) | os.O_CREAT | os.O_NOFOLLOW
        if append:
            flags |= os.O_APPEND
        if trunc:
            flags |= os.O_TRUNC
        try:
            fd = os.open(upload.staging, flags, 0o600)
        except OSError as exc:
            self.drop._discard(upload, f"cannot open staging file: {exc}")
            raise SFTPFailure("cannot store the file") from None
        mode = ("ab" if append else "r+b" if read else "wb") if not (read and append) else "a+b"
        handle = open(fd, mode, buffering=0)  # noqa: SIM115 (asyncssh owns the handle)
        upload.handle = handle
        upload.bytes_written = 0 if trunc else os.fstat(fd).st_size
        self._handles[handle] = upload
        self._open_handles += 1
        return handle

    def write(self, file_obj: object, offset: int, data: bytes) -> int:
        upload = self._handles.get(file_obj)
        if upload is None:
            raise SFTPPermissionDenied("file not opened for writing")
        if upload.failed:
            raise SFTPFailure(upload.failed)
        limit = self.drop.max_file_bytes
        if limit is not None and offset + len(data) > limit:
            upload.failed = f"file larger than the limit of {limit} bytes"
            raise SFTPFailure(upload.failed)
        try:
            written = cast(int, super().write(file_obj, offset, data))
        except OSError as exc:
            upload.failed = f"write failed: {os.strerror(exc.errno or errno.EIO)}"
            raise SFTPFailure(upload.failed) from None
        upload.bytes_written += written
        return written

    def close(self, file_obj: object) -> None:
        origin = _close_origin()
        if origin != "session_end":
            self._touch()
        self._open_handles = max(0, self._open_handles - 1)
        upload = self._handles.pop(file_obj, None)
        try:
            cast(Any, file_obj).close()
        except OSError as exc:
            if upload is not None:
                upload.failed = f"close failed: {exc}"
        if upload is None or upload.handle is not file_obj:
            return
        upload.handle = None
        if origin == "session_end" or self._exited or self.channel.is_closing():
            # asyncssh closes the handles of a session that ended (client killed,
            # connection lost, channel closed): that is not the client closing the file.
            self.drop._discard(upload, "session ended with the file still open")
            return
        if upload.failed:
            self.drop._discard(upload, upload.failed)
            raise SFTPFailure(f"upload failed and was discarded: {upload.failed}")
        upload.closed_at = datetime.now(UTC)
        upload.closed_mono = time.monotonic()
        if origin == "client":
            self._commit_close(upload, upload.generation)
            return
        # Unknown caller (a future asyncssh): decide on the next loop turn. When a session
        # ends, asyncssh closes its handles and calls exit() in one go, so a close from
        # that cleanup finds the session exited and is discarded.
        asyncio.get_running_loop().call_soon(self._commit_close, upload, upload.generation)

    def _commit_close(self, upload: _Upload, generation: int) -> None:
        if (
            upload.generation != generation
            or upload.state is not _State.OPEN
            or self.drop._uploads.get(upload.key) is not upload
            or upload.handle is not None
        ):
            return
        if self._exited:
            self.drop._discard(upload, "session ended before the close was confirmed")
            return
        try:
            self.drop._complete(upload)
        except OSError as exc:
            self.drop._discard(upload, f"cannot move into the folder: {exc}")

    def exit(self) -> None:
        self._exited = True
        for upload in list(self.drop._uploads.values()):
            if upload.session is not self:
                continue
            if upload.state is _State.OPEN:
                self.drop._discard(upload, "SFTP session ended with the file still open")
            elif upload.state is _State.SETTLING and is_temporary_name(upload.name):
                self.drop._discard(upload, "temporary name never renamed")
        self._handles.clear()

    # -- attributes

    def _stat(self, path: bytes) -> os.stat_result:
        _utf8(path)
        target = self._target(path)
        if target.kind == "root":
            return os.stat(self.root)
        if target.kind == "folder":
            assert target.folder is not None
            return os.stat(os.path.join(self.root, target.folder))
        if target.kind == "file":
            assert target.folder is not None and target.name is not None
            upload = self._upload(target.name)
            if (
                upload is not None
                and upload.folder == target.folder
                and upload.state is _State.OPEN
            ):
                return os.lstat(upload.staging)
            try:
                st = os.lstat(self._local(target.folder, target.name))
            except OSError:
                raise SFTPNoSuchFile("no such file") from None
            if stat.S_ISREG(st.st_mode):
                return st
        raise SFTPNoSuchFile("no such file")

    def stat(self, path: bytes) -> os.stat_result:
        return self._stat(path)

    def lstat(self, path: bytes) -> os.stat_result:
        return self._stat(path)

    def _times_only(self, attrs: SFTPAttrs, *, size: bool) -> SFTPAttrs:
        return SFTPAttrs(
            size=attrs.size if size else None,
            atime=attrs.atime,
            atime_ns=attrs.atime_ns,
            mtime=attrs.mtime,
            mtime_ns=attrs.mtime_ns,
        )

    def setstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        # Times can be set on files (``put -p``); modes and owners are ignored, so a
        # client cannot make a file unreadable for the runtime.
        st = self._stat(path)
        if stat.S_ISREG(st.st_mode):
            folder, name = self._file(path)
            upload = self._upload(name)
            if upload is not None and upload.state is _State.OPEN:
                local = str(upload.staging)
            else:
                local = self._local(folder, name)
            if attrs.atime is not None or attrs.mtime is not None:
                with contextlib.suppress(OSError):
                    times = self._times_only(attrs, size=False)
                    atime = times.atime if times.atime is not None else int(st.st_atime)
                    mtime = times.mtime if times.mtime is not None else int(st.st_mtime)
                    os.utime(local, (atime, mtime), follow_symlinks=False)

    def lsetstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        self.setstat(path, attrs)

    def fsetstat(self, file_obj: object, attrs: SFTPAttrs) -> None:
        writable = file_obj in self._handles
        super().fsetstat(file_obj, self._times_only(attrs, size=writable))

    # -- directories

    async def scandir(self, path: bytes) -> AsyncIterator[SFTPName]:
        _utf8(path)
        target = self._target(path)
        if target.kind not in ("root", "folder"):
            if target.kind == "file":
                raise asyncssh.SFTPNotADirectory("not a directory")
            raise SFTPNoSuchFile("no such directory")
        directory = self.root if target.folder is None else os.path.join(self.root, target.folder)
        for dot in (b".", b".."):
            yield SFTPName(dot, attrs=SFTPAttrs.from_local(os.stat(directory)))
        if target.kind == "root":
            for folder in FOLDERS:
                st = os.stat(os.path.join(self.root, folder))
                yield SFTPName(folder.encode(), attrs=SFTPAttrs.from_local(st))
            return
        with os.scandir(directory) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if not entry.is_file(follow_symlinks=False):
                    continue
                yield SFTPName(
                    os.fsencode(entry.name),
                    attrs=SFTPAttrs.from_local(entry.stat(follow_symlinks=False)),
                )

    def realpath(self, path: bytes) -> bytes:
        # Pure path arithmetic inside the chroot: never follows anything on disk.
        norm = posixpath.normpath(posixpath.join(b"/", path)).lstrip(b"/")
        return b"/" + norm if norm != b"." else b"/"

    def mkdir(self, path: bytes, attrs: SFTPAttrs) -> None:
        raise SFTPPermissionDenied("folders cannot be created; use /events or /events-trigger")

    def rmdir(self, path: bytes) -> None:
        raise SFTPPermissionDenied("folders cannot be removed")

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise SFTPPermissionDenied("links are not allowed")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise SFTPPermissionDenied("links are not allowed")

    def readlink(self, path: bytes) -> bytes:
        self._stat(path)
        raise SFTPFailure("not a symbolic link")

    # -- remove / rename

    def remove(self, path: bytes) -> None:
        folder, name = self._file(path)
        upload = self._upload(name)
        if upload is not None and upload.folder == folder:
            if upload.state is _State.SETTLING:
                self.drop._discard(upload, "deleted by the user during the settle delay")
                return
            if upload.state is _State.OPEN:
                raise SFTPFailure(f"{name} is still being uploaded")
            raise SFTPPermissionDenied(f"{name} is already being processed")
        local = self._local(folder, name)
        if is_status_name(name):
            try:
                st = os.lstat(local)
            except OSError:
                raise SFTPNoSuchFile("no such file") from None
            if stat.S_ISREG(st.st_mode):
                os.unlink(local)
                return
        raise SFTPNoSuchFile("no such file")

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._rename(oldpath, newpath)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._rename(oldpath, newpath)

    def _rename(self, oldpath: bytes, newpath: bytes) -> None:
        old_folder, old_name = self._file(oldpath)
        new_folder, new_name = self._file(newpath)
        upload = self._upload(old_name)
        if upload is None or upload.folder != old_folder:
            if os.path.lexists(self._local(old_folder, old_name)):
                raise SFTPPermissionDenied(f"{old_name} cannot be renamed")
            raise SFTPNoSuchFile("no such file")
        if upload.state is not _State.SETTLING:
            raise SFTPFailure(f"{old_name} cannot be renamed now ({upload.state.value})")
        if (old_folder, old_name) == (new_folder, new_name):
            return
        problem = name_problem(new_name)
        if problem:
            raise SFTPPermissionDenied(problem)
        if not is_temporary_name(new_name) and self.drop.name_used(self.account, new_name):
            raise SFTPFileAlreadyExists(f"duplicate_filename: {new_name} was already uploaded")
        other = self._upload(new_name)
        if (other is not None and other is not upload) or os.path.lexists(
            self._local(new_folder, new_name)
        ):
            raise SFTPFileAlreadyExists(f"{new_name} exists")
        os.rename(self._local(old_folder, old_name), self._local(new_folder, new_name))
        del self.drop._uploads[upload.key]
        upload.folder, upload.name = new_folder, new_name
        upload.session = self
        self.drop._uploads[upload.key] = upload
        log.info(
            "renamed %s/%s/%s to %s/%s", self.account, old_folder, old_name, new_folder, new_name
        )
        self.drop._start_settle(upload)


# Every request asyncssh passes to the server object restarts the connection's idle timer.
# `close` touches it itself: a wrapper would hide its caller from `_close_origin`.
_REQUESTS = (
    "open", "open56", "read", "write", "stat", "lstat", "fstat", "setstat", "lsetstat",
    "fsetstat", "scandir", "realpath", "remove", "rename", "posix_rename", "mkdir", "rmdir",
    "readlink", "symlink", "link", "lock", "unlock", "statvfs", "fstatvfs", "fsync",
)  # fmt: skip


def _touching(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def request(self: _DropSftp, *args: Any) -> Any:
        self._touch()
        return method(self, *args)

    return request


for _name in _REQUESTS:
    setattr(_DropSftp, _name, _touching(getattr(_DropSftp, _name)))


# ---------------------------------------------------------------------------- start


async def start_sftp_server(
    host: str,
    port: int,
    accounts: Accounts,
    drop_root: Path,
    ingest: Ingest,
    settle_seconds: float,
    host_key_path: Path,
    *,
    max_file_bytes: int | None = None,
    login_timeout: float = DEFAULT_LOGIN_TIMEOUT,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    throttle: LoginThrottle | None = None,
) -> SftpDropServer:
    """Starts the SFTP drop server; `port=0` picks a free port (see `.port`).

    Creates ``drop_root/<account>/{events,events-trigger}`` for every account, discards
    unfinished transfers of an earlier run, resumes its settling files and unsubmitted
    claims, and generates the host key at `host_key_path` on first use. A connection is
    closed when it has not logged in within `login_timeout` seconds, or made no SFTP
    request for `idle_timeout` seconds once logged in (0 or less: never).
    """
    drop_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = load_or_create_host_key(host_key_path)
    server = SftpDropServer(
        accounts,
        drop_root,
        ingest,
        settle_seconds,
        key,
        max_file_bytes=max_file_bytes,
        throttle=throttle,
        idle_timeout=idle_timeout,
    )
    for account in accounts:
        server._prepare_account(account)
    acceptor = await asyncssh.create_server(
        lambda: _SshServer(server),
        host,
        port,
        server_host_keys=[key],
        sftp_factory=server._sftp_factory,
        sftp_version=3,
        allow_scp=False,
        agent_forwarding=False,
        x11_forwarding=False,
        kbdint_auth=False,
        login_timeout=max(0.0, login_timeout),
        keepalive_interval=30,
        keepalive_count_max=4,
    )
    server._acceptor = acceptor
    server.host = host
    server.port = acceptor.get_port()
    server._recover()
    log.info(
        "SFTP drop listening on %s:%d (host key %s, settle %.1fs, login timeout %.0fs, "
        "idle timeout %.0fs)",
        host,
        server.port,
        server.host_key_fingerprint,
        server.settle_seconds,
        login_timeout,
        idle_timeout,
    )
    return server
