"""The FTP drop with explicit TLS (FTPS, ``AUTH TLS``), beside the SFTP drop, on pyftpdlib.

It serves the SAME folders as the SFTP drop (``drop_root/<account>/{events,events-trigger}``)
with the same accounts and passwords (`Accounts.verify_sftp`), each user chrooted to their
account's folder. A completed transfer is handed to the SFTP drop server
(`SftpDropServer.receive_complete`), so the settle delay, the unique-filename rule, the
claim into the hand-over area and its restart recovery are the SFTP drop's, written once.

Rules (tested with ``ftplib.FTP_TLS`` and ``curl --ssl-reqd``):

* TLS on the control and data channels is required unless the operator allows plain FTP;
  a plain ``USER`` gets ``550 SSL/TLS required on the control channel``.
* Files can be written only directly inside the two folders, under their final name:
  no ``MKD``, ``RNFR``/``RNTO``, ``APPE``, ``REST`` (resume) or ``STOU``, no temporary
  names (dotfiles, ``*.part``…), which would never be handed over without a rename.
* A name already handed over, being received or settling is refused at ``STOR``, before
  any byte, with ``553 duplicate_filename: …``.
* Bytes go to a staging file outside the user's root; only a transfer that completes
  (``226``) becomes visible in its folder and settles. An aborted or broken transfer is
  deleted; a restart deletes staging files of unfinished transfers.
* Status files (``*.rejected.txt``, ``*.error.txt``) can be listed, read and deleted.
* A control connection that has not logged in within the login timeout, or sends no
  command for the idle timeout while no transfer runs, is closed (``421``); a data
  connection that moves no byte for the idle timeout is closed. A transfer in progress
  holds the control connection's idle timer, so a long upload is never cut.

pyftpdlib runs its own I/O loop in a thread; everything that touches the drop's state is
passed to the asyncio loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import os
import threading
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyftpdlib.authorizers import AuthenticationFailed
from pyftpdlib.filesystems import AbstractedFS
from pyftpdlib.handlers import TLS_DTPHandler, TLS_FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import FTPServer

from connectors.accounts import Accounts
from connectors.ftp_settings import FtpSettings
from connectors.sftp import SftpDropServer
from connectors.staging import FOLDERS, is_status_name, is_temporary_name, name_problem

__all__ = ["FtpDropServer", "FtpSettings", "load_or_create_certificate", "start_ftp_server"]

log = logging.getLogger("tidegate.ftp")


# ---------------------------------------------------------------------------- certificate


def load_or_create_certificate(certfile: Path, keyfile: Path, hostname: str) -> None:
    """Generates a self-signed certificate (EC P-256, 10 years) unless `certfile` exists."""
    if certfile.exists():
        return
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname or "tidegate")])
    alt: list[x509.GeneralName] = [x509.DNSName("localhost")]
    with contextlib.suppress(ValueError):
        alt.append(x509.IPAddress(ipaddress.ip_address(hostname)))
    if hostname and not any(isinstance(a, x509.IPAddress) for a in alt):
        alt.append(x509.DNSName(hostname))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .sign(key, hashes.SHA256())
    )
    keyfile.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fingerprint = cert.fingerprint(hashes.SHA256()).hex(":")
    log.info("generated self-signed FTP TLS certificate %s (SHA-256 %s)", certfile, fingerprint)


# ---------------------------------------------------------------------------- access rules


class _AccountsAuthorizer:
    """pyftpdlib's authorizer interface over `Accounts` (the SFTP passwords)."""

    def __init__(self, server: FtpDropServer) -> None:
        self.server = server

    def validate_authentication(self, username: str, password: str, handler: Any) -> None:
        # The SFTP drop's throttle: the same accounts and passwords, so failures on either
        # door count together. pyftpdlib runs every connection on one thread, so a login
        # due a backoff delay is refused (pyftpdlib's own failed-login pause still applies)
        # rather than slept on.
        throttle = self.server.drop.throttle
        address = str(getattr(handler, "remote_ip", "") or "")
        verdict = throttle.check(address, username)
        if verdict.refused or verdict.delay:
            log.warning(
                "FTP login refused without checking: too many failures (%s) from %s for %r",
                verdict.reason or "backoff",
                address,
                username,
            )
            raise AuthenticationFailed("Too many failed logins; try again later.")
        account = self.server.accounts.verify_sftp(username, password)
        if account is None:
            throttle.failed(address, username)
            log.warning("FTP login refused for %r from %s (password)", username, address)
            raise AuthenticationFailed("Authentication failed.")
        throttle.succeeded(address, username)
        handler.tidegate_account = account.name

    def _root(self, username: str) -> Path:
        account = self.server.accounts.by_username(username)
        if account is None:
            raise AuthenticationFailed("account removed")
        return self.server.drop.account_root(account.name)

    def get_home_dir(self, username: str) -> str:
        return str(self._root(username))

    def has_user(self, username: str) -> bool:
        return self.server.accounts.by_username(username) is not None

    def has_perm(self, username: str, perm: str, path: str | None = None) -> bool:
        if path is None:
            return perm in "el"
        try:
            parts = Path(os.path.realpath(path)).relative_to(self._root(username)).parts
        except (ValueError, AuthenticationFailed):
            return False
        if len(parts) == 0:
            return perm in "el"
        if parts[0] not in FOLDERS:
            return False
        if len(parts) == 1:
            return perm in "el"
        if len(parts) != 2:
            return False
        if perm == "w":
            return not is_status_name(parts[1])
        return perm in "rdl"  # read status files, delete, list one file

    def get_perms(self, username: str) -> str:
        return "elrdw"

    def get_msg_login(self, username: str) -> str:
        return "Welcome to Tidegate. Put files into events/ or events-trigger/."

    def get_msg_quit(self, username: str) -> str:
        return "Goodbye."

    def impersonate_user(self, username: str, password: str) -> None:
        pass

    def terminate_impersonation(self, username: str) -> None:
        pass


class _DropFS(AbstractedFS):  # type: ignore[misc]
    """Writes go to a staging file outside the user's root; reads are the real file."""

    def open(self, filename: str, mode: str) -> Any:
        if "w" not in mode:
            return super().open(filename, mode)
        handler: _DropHandler = self.cmd_channel
        staging = handler.server_ref.drop.new_staging(handler.tidegate_account)
        staging.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        # pyftpdlib reports the transfer by the file object's name: the staging path
        handler.staging[str(staging)] = filename
        return open(staging, mode)  # pyftpdlib closes it


class _DropHandler(TLS_FTPHandler):  # type: ignore[misc]
    """One control connection. Class attributes are set per server by `start_ftp_server`."""

    server_ref: FtpDropServer
    tidegate_account: str = ""

    login_timeout: float = 0.0

    def __init__(self, conn: Any, server: Any, ioloop: Any = None) -> None:
        self.staging: dict[str, str] = {}  # staging path -> the path the user wrote
        self._login_timer: Any = None
        super().__init__(conn, server, ioloop)
        if self.login_timeout > 0 and self.connected:
            self._login_timer = self.ioloop.call_later(
                self.login_timeout, self._login_timed_out, _errback=self.handle_error
            )

    def _login_timed_out(self) -> None:
        self._login_timer = None
        if self.authenticated or not self.connected:
            return
        log.info(
            "FTP connection from %s closed: no login within %.0f s (login timeout)",
            self.remote_ip,
            self.login_timeout,
        )
        if self._ssl_accepting:  # mid TLS handshake: nothing can be answered
            self.close()
            return
        self.respond("421 Login timed out.")
        self.close_when_done()

    def found_terminator(self) -> None:
        # pyftpdlib (2.2.0) restarts the idle timer with `_CallLater.reset()`, which moves
        # the timer's deadline in place inside the scheduler's heap: the heap's order
        # breaks, and the idle timers below a busy connection's never fire (measured: an
        # idle connection stayed open as long as an older one sent NOOPs). A new timer in
        # place of the old one keeps the heap sound; the `reset()` pyftpdlib still calls on
        # it moves its deadline by microseconds only.
        idler: Any = getattr(self, "_idler", None)
        if idler is not None and not idler.cancelled:
            idler.cancel()
            self._idler = self.ioloop.call_later(
                self.timeout, self.handle_timeout, _errback=self.handle_error
            )
        super().found_terminator()

    def handle_timeout(self) -> None:
        log.info(
            "FTP connection from %s (%r) closed: no command for %.0f s (idle timeout)",
            self.remote_ip,
            self.username or "",
            self.timeout,
        )
        super().handle_timeout()

    def _target(self, file: str) -> tuple[str, str] | None:
        root = self.server_ref.drop.account_root(self.tidegate_account)
        try:
            parts = Path(file).relative_to(root).parts
        except ValueError:
            return None
        if len(parts) != 2 or parts[0] not in FOLDERS:
            return None
        return parts[0], parts[1]

    def ftp_STOR(self, file: str, mode: str = "w") -> Any:
        if "a" in mode or getattr(self, "_restart_position", False):
            self._restart_position = 0
            self.respond("550 Appending and resuming are not supported; upload the whole file.")
            return None
        target = self._target(file)
        if target is None:
            self.respond("553 Files go directly into /events or /events-trigger.")
            return None
        name = target[1]
        problem = name_problem(name)
        if problem is None and is_temporary_name(name):
            problem = "temporary names (dotfiles, *.part, *.tmp...) are never processed"
        if problem is not None:
            self.respond(f"553 invalid file name: {problem}.")
            return None
        if self.server_ref.name_taken(self.tidegate_account, name):
            self.respond(
                f"553 duplicate_filename: {name} was already uploaded; every file needs a "
                "new, unique name."
            )
            return None
        return super().ftp_STOR(file, mode)

    def ftp_STOU(self, line: str) -> None:
        self.respond("502 STOU is not supported; upload files under their own unique name.")

    def on_file_received(self, file: str) -> None:
        dest = self.staging.pop(file, None)
        target = self._target(dest) if dest is not None else None
        if target is None:
            return
        folder, name = target
        self.server_ref.hand_to_drop(self.tidegate_account, folder, name, Path(file))

    def on_incomplete_file_received(self, file: str) -> None:
        dest = self.staging.pop(file, None)
        with contextlib.suppress(OSError):
            os.unlink(file)
        log.warning("discarded incomplete FTP transfer %s/%s", self.tidegate_account, dest)

    def on_disconnect(self) -> None:
        if self._login_timer is not None and not self._login_timer.cancelled:
            self._login_timer.cancel()
        self._login_timer = None
        for staging in self.staging:
            with contextlib.suppress(OSError):
                os.unlink(staging)
        self.staging.clear()


# ---------------------------------------------------------------------------- server


class FtpDropServer:
    """A running FTP drop. Create it with `start_ftp_server`; stop it with `aclose`."""

    def __init__(
        self,
        accounts: Accounts,
        drop: SftpDropServer,
        settings: FtpSettings,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.accounts = accounts
        self.drop = drop
        self.settings = settings
        self.loop = loop
        self.host = settings.host
        self.port = 0
        self._server: FTPServer | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def update_accounts(self, accounts: Accounts) -> None:
        """Serves a new set of accounts from the next login on (a swap of one reference:
        the FTP thread reads it whole)."""
        self.accounts = accounts

    def name_taken(self, account: str, name: str) -> bool:
        """Asked from the FTP thread; answered on the event loop."""
        future = asyncio.run_coroutine_threadsafe(self._name_taken(account, name), self.loop)
        return future.result(timeout=10)

    async def _name_taken(self, account: str, name: str) -> bool:
        return self.drop.name_taken(account, name)

    def hand_to_drop(self, account: str, folder: str, name: str, staging: Path) -> None:
        self.loop.call_soon_threadsafe(self.drop.receive_complete, account, folder, name, staging)

    def _serve(self) -> None:
        assert self._server is not None
        try:
            while not self._stop.is_set():
                self._server.ioloop.loop(timeout=0.2, blocking=False)
        finally:
            self._server.close_all()

    def close(self) -> None:
        self._stop.set()

    async def wait_closed(self) -> None:
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    async def aclose(self) -> None:
        self.close()
        await self.wait_closed()

    async def __aenter__(self) -> FtpDropServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def start_ftp_server(
    accounts: Accounts, drop: SftpDropServer, settings: FtpSettings, data: Path
) -> FtpDropServer:
    """Starts the FTP drop over `drop`'s folders; `settings.port=0` picks a free port.

    Without a configured certificate, one is generated once into
    ``data/ftp_tls_cert.pem`` and ``data/ftp_tls_key.pem`` (mode 0600).
    """
    certfile = settings.certfile or data / "ftp_tls_cert.pem"
    keyfile = settings.keyfile or (settings.certfile or data / "ftp_tls_key.pem")
    if settings.certfile is None:
        load_or_create_certificate(certfile, keyfile, settings.host)
    server = FtpDropServer(accounts, drop, settings, asyncio.get_running_loop())
    idle = max(0.0, settings.idle_timeout)  # pyftpdlib: 0 turns a timer off
    # a data connection that moves no byte for `idle` is closed (pyftpdlib checks every
    # `idle` seconds, so a stalled one goes after one to two periods)
    dtp: Any = type("TidegateDtpHandler", (TLS_DTPHandler,), {"timeout": idle})
    handler: Any = type(
        "TidegateFtpHandler",
        (_DropHandler,),
        {
            "server_ref": server,
            "authorizer": _AccountsAuthorizer(server),
            "abstracted_fs": _DropFS,
            "certfile": str(certfile),
            "keyfile": str(keyfile),
            "ssl_context": None,
            "tls_control_required": not settings.allow_plain,
            "tls_data_required": not settings.allow_plain,
            "passive_ports": (
                list(range(settings.passive_ports[0], settings.passive_ports[1] + 1))
                if settings.passive_ports
                else None
            ),
            "masquerade_address": settings.masquerade_address,
            "permit_foreign_addresses": False,
            "banner": "Tidegate FTP drop ready (AUTH TLS).",
            "timeout": idle,
            "login_timeout": max(0.0, settings.login_timeout),
            "dtp_handler": dtp,
        },
    )
    handler.get_ssl_context()  # fails now, not at the first client, on a bad certificate
    ftp = FTPServer((settings.host, settings.port), handler, ioloop=IOLoop())
    ftp.max_cons = settings.max_connections
    ftp.max_cons_per_ip = settings.max_connections_per_ip
    server._server = ftp
    server.port = ftp.address[1]
    server._thread = threading.Thread(target=server._serve, name="tidegate-ftp", daemon=True)
    server._thread.start()
    log.info(
        "FTP drop listening on %s:%d (TLS %s, passive ports %s, login timeout %.0fs, "
        "idle timeout %.0fs)",
        settings.host,
        server.port,
        "optional" if settings.allow_plain else "required",
        "{}-{}".format(*settings.passive_ports) if settings.passive_ports else "any",
        settings.login_timeout,
        settings.idle_timeout,
    )
    return server
