"""Recurring S3 bucket imports: each new object under an account's prefix becomes one upload.

Contract (docs/S3.md): every `poll_interval` seconds the prefix is listed; an object
directly under it (no further ``/``) whose name is a valid upload filename is streamed
to disk (never held in memory), claimed into the hand-over area (`connectors.staging`)
and submitted like any drop. The object's name after the prefix is the upload's filename,
so the unique-filename rule applies. What was seen is recorded per (account, key) with
its ETag in ``DATA/s3/state.sqlite``:

* ``fetching`` is written before the download starts; a restart that finds it looks for
  the claim in the hand-over area (the file was claimed: the claim is resubmitted by
  `HandOver.recover`, once) or else starts the download again;
* ``claimed`` / ``submitted`` / ``refused`` after the hand-over: the object is never
  fetched again while its ETag is unchanged;
* the same key with a new ETag after an import is a rewritten object: it is refused once
  as ``duplicate_filename`` (recorded, shown on the source status and logged), never
  imported twice.

Credentials: the access key id is in accounts.toml; the secret access key is in
``DATA/secrets/s3/<account>`` (mode 0600), read at each poll, so fixing it takes effect at
the next retry without a restart. It is never logged or shown. A failing listing
(unreachable endpoint, bad credentials, missing bucket) is shown on the account's source
status and in the log and retried with exponential back-off; each account polls in its
own task, so other accounts are unaffected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from connectors.accounts import Account, Accounts
from connectors.atomic_file import replace_file
from connectors.ports import Ingest
from connectors.staging import (
    CLAIM_FILE,
    EVENTS,
    Claim,
    ClaimState,
    HandOver,
    HandOverResult,
    is_temporary_name,
    name_problem,
)
from streams.core.errors import ErrorCode

__all__ = [
    "S3Imports",
    "S3Source",
    "read_s3_secret",
    "s3_source_of",
    "start_s3_imports",
    "write_s3_secret",
]

log = logging.getLogger("tidegate.s3")

CHUNK = 1 << 20  # bytes per read of an object's body
MAX_BACKOFF = 300.0
STATE_DB = "state.sqlite"
_CREDENTIAL_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden", "403"}
)


@dataclass(frozen=True, slots=True)
class S3Source:
    """Where an account's objects come from (no secret: that stays in its own file)."""

    account: str
    bucket: str
    prefix: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: str = ""
    dialect: str | None = None


def s3_source_of(account: Account) -> S3Source | None:
    """The account's S3 source, from its ``s3_*`` keys in accounts.toml, or None."""
    s3 = account.s3
    if not s3:
        return None
    prefix = s3.get("prefix", "")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return S3Source(
        account=account.name,
        bucket=s3["bucket"],
        prefix=prefix,
        region=s3.get("region"),
        endpoint_url=s3.get("endpoint_url"),
        access_key_id=s3.get("access_key_id", ""),
        dialect=account.dialect,
    )


# ---------------------------------------------------------------------------- secrets


def secret_path(data_dir: Path, account: str) -> Path:
    return data_dir / "secrets" / "s3" / account


def write_s3_secret(data_dir: Path, account: str, secret: str) -> Path:
    """Stores the account's secret access key (0600, directory 0700), replacing any old one.

    Not hashed: it signs every request, so it must be usable in plain form.
    """
    path = secret_path(data_dir, account)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.parent.chmod(0o700)
    replace_file(path, secret.strip() + "\n")
    return path


def read_s3_secret(data_dir: Path, account: str) -> str | None:
    """The secret access key, or None when the file is missing or empty."""
    try:
        text = secret_path(data_dir, account).read_text("utf-8").strip()
    except FileNotFoundError:
        return None
    return text or None


# ---------------------------------------------------------------------------- state


class _State:
    """What was seen of each object, refusals and source statuses (SQLite, one writer)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS objects (
                account TEXT NOT NULL, key TEXT NOT NULL, etag TEXT NOT NULL,
                filename TEXT NOT NULL, state TEXT NOT NULL, upload_id TEXT,
                PRIMARY KEY (account, key));
            CREATE TABLE IF NOT EXISTS refusals (
                account TEXT NOT NULL, key TEXT NOT NULL, etag TEXT NOT NULL,
                code TEXT NOT NULL, message TEXT NOT NULL, at TEXT NOT NULL,
                PRIMARY KEY (account, key, etag));
            CREATE TABLE IF NOT EXISTS status (account TEXT PRIMARY KEY, doc TEXT NOT NULL);
            """
        )

    def get(self, account: str, key: str) -> tuple[str, str] | None:
        row = self.db.execute(
            "SELECT etag, state FROM objects WHERE account = ? AND key = ?", (account, key)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def put(
        self, account: str, key: str, etag: str, filename: str, state: str, upload_id: str | None
    ) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?, ?)",
            (account, key, etag, filename, state, upload_id),
        )

    def set_state(self, account: str, filename: str, state: str, upload_id: str | None) -> None:
        self.db.execute(
            "UPDATE objects SET state = ?, upload_id = ? WHERE account = ? AND filename = ?",
            (state, upload_id, account, filename),
        )

    def delete(self, account: str, key: str) -> None:
        self.db.execute("DELETE FROM objects WHERE account = ? AND key = ?", (account, key))

    def fetching(self) -> list[tuple[str, str, str]]:
        return list(
            self.db.execute(
                "SELECT account, key, filename FROM objects WHERE state = 'fetching'"
            ).fetchall()
        )

    def refused(self, account: str, key: str, etag: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM refusals WHERE account = ? AND key = ? AND etag = ?",
            (account, key, etag),
        ).fetchone()
        return row is not None

    def refuse(self, account: str, key: str, etag: str, code: str, message: str) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO refusals VALUES (?, ?, ?, ?, ?, ?)",
            (account, key, etag, code, message, _now()),
        )

    def refusals(self, account: str, limit: int = 100) -> list[dict[str, str]]:
        rows = self.db.execute(
            "SELECT key, etag, code, message, at FROM refusals WHERE account = ? "
            "ORDER BY at DESC LIMIT ?",
            (account, limit),
        ).fetchall()
        return [dict(zip(("key", "etag", "code", "message", "at"), r, strict=True)) for r in rows]

    def save_status(self, account: str, doc: Mapping[str, Any]) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO status VALUES (?, ?)", (account, json.dumps(dict(doc)))
        )

    def load_status(self, account: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT doc FROM status WHERE account = ?", (account,)).fetchone()
        return dict(json.loads(row[0])) if row else None

    def close(self) -> None:
        self.db.close()


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _error_of(exc: Exception) -> tuple[str, str]:
    """(kind, message) of a failed S3 call; never includes credentials."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "unknown"))
        kind = "bad_credentials" if code in _CREDENTIAL_CODES else "bucket_error"
        if code == "NoSuchBucket":
            kind = "no_such_bucket"
        return kind, f"{code}: {err.get('Message', '')}".strip()
    if isinstance(exc, BotoCoreError):
        return "unreachable", f"{type(exc).__name__}: {exc}"
    return "unreachable", f"{type(exc).__name__}: {exc}"


class _MissingSecret(Exception):
    pass


# ---------------------------------------------------------------------------- poller


class S3Imports:
    """Polls every configured account's prefix. Create it with `start_s3_imports`."""

    def __init__(
        self,
        data_dir: Path,
        sources: Iterable[S3Source],
        ingest: Ingest,
        *,
        poll_interval: float = 30.0,
        max_backoff: float = MAX_BACKOFF,
    ) -> None:
        self.data_dir = data_dir
        self.root = data_dir / "s3"
        self.sources = {source.account: source for source in sources}
        self.poll_interval = max(0.05, poll_interval)
        self.max_backoff = max(self.poll_interval, max_backoff)
        self.state = _State(self.root / STATE_DB)
        self.incoming = self.root / "incoming"
        self.handover = HandOver(self.root / "processing", self.root / "notes", ingest, source="s3")
        self.status: dict[str, dict[str, Any]] = {}
        self._warned: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- status

    def source_status(self, account: str) -> dict[str, Any] | None:
        """The account's S3 source as the API shows it (None: no S3 source)."""
        source = self.sources.get(account)
        if source is None:
            return None
        doc = dict(self.status.get(account) or self.state.load_status(account) or {})
        doc.update(
            bucket=source.bucket,
            prefix=source.prefix,
            endpoint_url=source.endpoint_url,
            region=source.region,
            refused=self.state.refusals(account),
        )
        doc.setdefault("state", "starting")
        return doc

    def _set_status(self, account: str, **fields: Any) -> None:
        doc = self.status.setdefault(account, {})
        doc.update(fields)
        self.state.save_status(account, doc)

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    # -- S3 calls (in worker threads)

    def _client(self, source: S3Source) -> Any:
        secret = read_s3_secret(self.data_dir, source.account)
        if secret is None:
            raise _MissingSecret(
                f"no secret access key in {secret_path(self.data_dir, source.account)}"
            )
        config = Config(
            connect_timeout=5,
            read_timeout=60,
            retries={"max_attempts": 2, "mode": "standard"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path"} if source.endpoint_url else {},
        )
        return boto3.session.Session().client(
            "s3",
            region_name=source.region or "us-east-1",
            endpoint_url=source.endpoint_url,
            aws_access_key_id=source.access_key_id,
            aws_secret_access_key=secret,
            config=config,
        )

    @staticmethod
    def _list(client: Any, source: S3Source) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=source.bucket, Prefix=source.prefix):
            for item in page.get("Contents", ()):
                found.append((str(item["Key"]), str(item.get("ETag", "")).strip('"')))
        return found

    @staticmethod
    def _download(client: Any, source: S3Source, key: str, target: Path) -> str:
        """Streams the object's body to `target` in chunks; returns the ETag it had."""
        response = client.get_object(Bucket=source.bucket, Key=key)
        body = response["Body"]
        try:
            with target.open("wb") as handle:
                for chunk in body.iter_chunks(CHUNK):
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            body.close()
        return str(response.get("ETag", "")).strip('"')

    # -- one poll

    async def poll_once(self, source: S3Source) -> None:
        """Lists the prefix and hands over every new object (raises on S3 failures)."""
        client = await asyncio.to_thread(self._client, source)
        listing = await asyncio.to_thread(self._list, client, source)
        self._set_status(
            source.account,
            state="ok",
            error=None,
            failures=0,
            retry_in_seconds=None,
            last_listed_at=_now(),
        )
        for key, etag in listing:
            filename = key[len(source.prefix) :]
            if not filename or "/" in filename:
                if filename and not filename.endswith("/"):
                    self._warn_once(
                        f"{source.account}:{key}",
                        "s3: %s/%s ignored: only objects directly under the prefix are imported",
                        source.account,
                        key,
                    )
                continue
            if is_temporary_name(filename):
                continue
            problem = name_problem(filename)
            if problem:
                self._warn_once(
                    f"{source.account}:{key}", "s3: %s/%s ignored: %s", source.account, key, problem
                )
                continue
            seen = self.state.get(source.account, key)
            if seen is not None:
                seen_etag, state = seen
                if seen_etag == etag or (state == "fetching"):
                    continue
                if state != "refused":
                    self._refuse_rewrite(source, key, etag)
                    continue
            await self._fetch(client, source, key, filename, etag)

    def _refuse_rewrite(self, source: S3Source, key: str, etag: str) -> None:
        if self.state.refused(source.account, key, etag):
            return
        message = (
            f"{key} was rewritten (ETag {etag}) after it was imported; each file must have a "
            "unique name: put new data under a new key"
        )
        self.state.refuse(source.account, key, etag, ErrorCode.DUPLICATE_FILENAME.value, message)
        log.warning(
            "s3: upload %s/%s refused: %s: %s",
            source.account,
            key,
            ErrorCode.DUPLICATE_FILENAME.value,
            message,
        )

    async def _fetch(
        self, client: Any, source: S3Source, key: str, filename: str, etag: str
    ) -> None:
        account = source.account
        self.state.put(account, key, etag, filename, "fetching", None)
        directory = self.incoming / account
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = directory / f"{secrets.token_hex(8)}.part"
        received_at = datetime.now(UTC)
        try:
            fetched_etag = await asyncio.to_thread(self._download, client, source, key, target)
            claim = self.handover.claim(
                target,
                account=account,
                folder=EVENTS,
                filename=filename,
                received_at=received_at,
                trigger=None,
                dialect=source.dialect,
            )
        except BaseException:
            # nothing was handed over (a failed claim leaves no claim directory)
            target.unlink(missing_ok=True)
            self.state.delete(account, key)  # fetched again at the next poll
            raise
        self.state.put(account, key, fetched_etag or etag, filename, "claimed", None)
        log.info("s3: %s/%s fetched (%d bytes)", account, key, claim.path.stat().st_size)
        self._spawn(self._submit(claim))

    async def _submit(self, claim: Claim) -> None:
        result = await self.handover.submit(claim)
        self._record(result)

    def _record(self, result: HandOverResult) -> None:
        claim, refused = result.claim, result.receipt.refused
        if refused is None or (claim.recovered and refused.code is ErrorCode.DUPLICATE_FILENAME):
            self.state.set_state(claim.account, claim.filename, "submitted", claim.upload_id)
            return
        self.state.set_state(claim.account, claim.filename, "refused", None)
        source = self.sources.get(claim.account)
        key = (source.prefix if source else "") + claim.filename
        seen = self.state.get(claim.account, key)
        self.state.refuse(
            claim.account, key, seen[0] if seen else "", refused.code.value, refused.message
        )

    # -- lifecycle

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def recover(self) -> None:
        """Settles what an earlier run left: downloads restart, claims are resubmitted once."""
        claimed = self._claims_on_disk()
        for account, key, filename in self.state.fetching():
            if (account, filename) in claimed:
                self.state.set_state(account, filename, "claimed", None)
            else:
                self.state.delete(account, key)
        if self.incoming.is_dir():
            for part in self.incoming.glob("*/*.part"):
                part.unlink(missing_ok=True)
        for claim in self.handover.recover():
            log.info("s3: resubmitting %s/%s from an earlier run", claim.account, claim.filename)
            self._spawn(self._submit(claim))

    def _claims_on_disk(self) -> set[tuple[str, str]]:
        found: set[tuple[str, str]] = set()
        for meta in self.handover.area.glob(f"*/*/{CLAIM_FILE}"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                claim = Claim.from_json(meta.parent, json.loads(meta.read_text("utf-8")))
                if claim.state is not ClaimState.CLAIMING or claim.path.is_file():
                    found.add((claim.account, claim.filename))
        return found

    async def _run_source(self, source: S3Source) -> None:
        failures = 0
        while True:
            try:
                await self.poll_once(source)
                failures = 0
                delay = self.poll_interval
            except asyncio.CancelledError:
                raise
            except (BotoCoreError, ClientError, _MissingSecret, OSError) as exc:
                failures += 1
                delay = min(self.poll_interval * 2**failures, self.max_backoff)
                if isinstance(exc, _MissingSecret):
                    kind, message = "missing_secret", str(exc)
                else:
                    kind, message = _error_of(exc)
                self._set_status(
                    source.account,
                    state="error",
                    error={"kind": kind, "message": message, "at": _now()},
                    failures=failures,
                    retry_in_seconds=delay,
                )
                log.warning(
                    "s3: %s: bucket %s prefix %r: %s (%s); retry %d in %.1fs",
                    source.account,
                    source.bucket,
                    source.prefix,
                    kind,
                    message,
                    failures,
                    delay,
                )
            except Exception:
                failures += 1
                delay = min(self.poll_interval * 2**failures, self.max_backoff)
                log.exception("s3: %s: poll failed; retry in %.1fs", source.account, delay)
            await asyncio.sleep(delay)

    def start(self) -> None:
        self.recover()
        for source in self.sources.values():
            self._set_status(source.account, state="starting", failures=0)
            self._spawn(self._run_source(source))
            log.info(
                "s3: importing s3://%s/%s for %s every %.1fs",
                source.bucket,
                source.prefix,
                source.account,
                self.poll_interval,
            )

    async def aclose(self) -> None:
        """Stops polling; downloads restart and claims resume at the next start."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.state.close()


async def start_s3_imports(
    data_dir: Path,
    accounts: Accounts,
    ingest: Ingest,
    *,
    poll_interval: float = 30.0,
    max_backoff: float = MAX_BACKOFF,
) -> S3Imports:
    """Starts polling the S3 source of every account that has one."""
    sources = [s for s in (s3_source_of(a) for a in accounts) if s is not None]
    imports = S3Imports(
        data_dir, sources, ingest, poll_interval=poll_interval, max_backoff=max_backoff
    )
    imports.start()
    return imports
