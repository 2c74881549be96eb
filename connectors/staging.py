"""The hand-over area shared by the SFTP drop and the watched folder.

A completely received file is *claimed* before it is submitted: it is renamed (same
file system, atomic) out of the user's folder into ``<area>/<account>/<claim id>/<name>``
next to a ``.claim.json`` that records who sent it, when, and whether the submission
happened. From then on the drop folder no longer shows it, so it can never be handed
over twice, and a restart resubmits exactly the claims that were not submitted:

* ``.claim.json`` is written first (state ``claiming``), then the file is moved in:
  a crash in between leaves the file in the user's folder, where it is found again;
* after `Ingest.submit_file` answers, the state becomes ``submitted`` (or the claim is
  deleted when the upload was refused);
* a crash between the submission and that update makes the restart submit the claim
  again; the runtime answers ``duplicate_filename`` for the filename it already
  registered, which for a *recovered* claim means "it was ours": the claim is marked
  submitted and nothing is reported to the user.

The runtime owns the claimed file once a receipt has an upload id (it reads it from
`FileUpload.path`, later); this module never deletes an accepted file.

What the user sees, next to where the file was dropped (``<folder>/``):

* refused by the runtime → ``<name>.rejected.txt`` (code, message, what to do); the
  file itself is deleted (nothing of it was processed; the sender still has it);
* the runtime could not be reached (an exception, not a refusal) → ``<name>.error.txt``
  while the hand-over is retried with back-off; it disappears once the file is handed
  over. The claim survives restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from connectors.atomic_file import replace_file
from connectors.ports import FileUpload, Ingest, Receipt
from streams.core.errors import ErrorCode
from streams.core.records import Dialect

log = logging.getLogger("tidegate.uploads")

#: The drop folders of an account and the trigger opt-in each one means.
EVENTS = "events"  # the passive folder (S3 imports land here too)
FOLDERS: dict[str, bool | None] = {EVENTS: None, "events-trigger": True}

REJECTED_SUFFIX = ".rejected.txt"
ERROR_SUFFIX = ".error.txt"
STATUS_SUFFIXES = (REJECTED_SUFFIX, ERROR_SUFFIX)
#: Names uploaders use while a transfer is running (WinSCP, browsers, sync tools, rsync's
#: ``.name.XXXXXX``); such a file is never processed under that name.
TEMP_SUFFIXES = (".filepart", ".part", ".partial", ".tmp", ".temp", ".crdownload", ".download", "~")
CLAIM_FILE = ".claim.json"
MAX_NAME_BYTES = 255

RETRY_DELAYS = (1.0, 5.0, 30.0, 120.0, 300.0)


def is_status_name(name: str) -> bool:
    return name.endswith(STATUS_SUFFIXES)


def is_temporary_name(name: str) -> bool:
    """Dotfiles and in-progress names: never handed over under this name."""
    return name.startswith(".") or name.lower().endswith(TEMP_SUFFIXES)


def name_problem(name: str) -> str | None:
    """Why `name` cannot be an upload's filename, or None when it can."""
    if not name or name in (".", ".."):
        return "empty file name"
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        return f"file name longer than {MAX_NAME_BYTES} bytes"
    if "/" in name or "\\" in name:
        return "file names cannot contain / or \\"
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in name):
        return "file names cannot contain control characters"
    if is_status_name(name):
        return f"names ending in {' or '.join(STATUS_SUFFIXES)} are reserved for status files"
    return None


class ClaimState(StrEnum):
    CLAIMING = "claiming"
    CLAIMED = "claimed"
    SUBMITTED = "submitted"


@dataclass(slots=True)
class Claim:
    """A file taken out of a drop folder, on its way to (or already at) the runtime."""

    dir: Path
    account: str
    folder: str
    filename: str
    received_at: datetime
    trigger: bool | None
    dialect: str | None
    source: str
    state: ClaimState = ClaimState.CLAIMING
    upload_id: str | None = None
    recovered: bool = False

    @property
    def path(self) -> Path:
        return self.dir / self.filename

    def to_json(self) -> dict[str, object]:
        return {
            "account": self.account,
            "folder": self.folder,
            "filename": self.filename,
            "received_at": self.received_at.isoformat(),
            "trigger": self.trigger,
            "dialect": self.dialect,
            "source": self.source,
            "state": self.state.value,
            "upload_id": self.upload_id,
        }

    @classmethod
    def from_json(cls, directory: Path, data: dict[str, object]) -> Claim:
        trigger = data.get("trigger")
        dialect = data.get("dialect")
        upload_id = data.get("upload_id")
        return cls(
            dir=directory,
            account=str(data["account"]),
            folder=str(data["folder"]),
            filename=str(data["filename"]),
            received_at=datetime.fromisoformat(str(data["received_at"])),
            trigger=trigger if isinstance(trigger, bool) else None,
            dialect=dialect if isinstance(dialect, str) else None,
            source=str(data.get("source", "")),
            state=ClaimState(str(data["state"])),
            upload_id=upload_id if isinstance(upload_id, str) else None,
        )


@dataclass(frozen=True, slots=True)
class HandOverResult:
    """What became of a claim: accepted (an upload id) or refused (the receipt says why)."""

    claim: Claim
    receipt: Receipt
    handed_at: float  # time.monotonic() when the receipt arrived

    @property
    def accepted(self) -> bool:
        return self.receipt.refused is None


def _write_json(path: Path, data: dict[str, object]) -> None:
    replace_file(path, json.dumps(data, indent=1))


def _utc(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


class HandOver:
    """Claims files into `area`, submits them to `ingest`, and reports refusals.

    `visible_root` is where the users' folders are (``<visible_root>/<account>/<folder>``):
    status files are written there. `area` must be on the same file system as the drop
    folders (it is always a hidden directory under the same root here).
    """

    def __init__(
        self,
        area: Path,
        visible_root: Path,
        ingest: Ingest,
        *,
        source: str,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        on_result: Callable[[HandOverResult], None] | None = None,
    ) -> None:
        self.area = area
        self.visible_root = visible_root
        self.ingest = ingest
        self.source = source
        self.retry_delays = retry_delays
        self.on_result = on_result
        area.mkdir(parents=True, exist_ok=True, mode=0o700)

    # -- claiming

    def claim(
        self,
        src: Path,
        *,
        account: str,
        folder: str,
        filename: str,
        received_at: datetime,
        trigger: bool | None,
        dialect: str | None = None,
    ) -> Claim:
        """Moves `src` into a new claim directory. Raises OSError if `src` is gone."""
        account_dir = self.area / account
        account_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        directory = account_dir / f"{stamp}-{secrets.token_hex(6)}"
        directory.mkdir(mode=0o700)
        claim = Claim(
            dir=directory,
            account=account,
            folder=folder,
            filename=filename,
            received_at=received_at,
            trigger=trigger,
            dialect=dialect,
            source=self.source,
        )
        try:
            _write_json(directory / CLAIM_FILE, claim.to_json())
            os.rename(src, claim.path)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        claim.state = ClaimState.CLAIMED
        _write_json(directory / CLAIM_FILE, claim.to_json())
        return claim

    def recover(self) -> list[Claim]:
        """Claims left unsubmitted by an earlier run (oldest first); cleans up debris."""
        found: list[Claim] = []
        if not self.area.is_dir():
            return found
        for account_dir in sorted(self.area.iterdir()):
            if not account_dir.is_dir() or account_dir.is_symlink():
                continue
            for directory in sorted(account_dir.iterdir()):
                if not directory.is_dir() or directory.is_symlink():
                    continue
                meta = directory / CLAIM_FILE
                try:
                    claim = Claim.from_json(directory, json.loads(meta.read_text("utf-8")))
                except (OSError, ValueError, KeyError) as exc:
                    log.warning("hand-over area: ignoring %s (%s)", directory, exc)
                    continue
                if claim.state is ClaimState.SUBMITTED:
                    if not claim.path.exists():
                        # the runtime moved or deleted its file: nothing left to keep
                        shutil.rmtree(directory, ignore_errors=True)
                    continue
                if not claim.path.is_file():
                    # crashed between writing .claim.json and moving the file in
                    shutil.rmtree(directory, ignore_errors=True)
                    continue
                claim.state = ClaimState.CLAIMED
                claim.recovered = True
                found.append(claim)
        return found

    # -- submitting

    def _upload_of(self, claim: Claim) -> FileUpload:
        return FileUpload(
            account=claim.account,
            filename=claim.filename,
            path=claim.path,
            received_at=claim.received_at,
            dialect=Dialect(claim.dialect) if claim.dialect else None,
            trigger=claim.trigger,
        )

    async def submit(self, claim: Claim) -> HandOverResult:
        """Submits until the runtime answers (retrying with back-off on exceptions).

        Cancelling leaves the claim on disk for the next start.
        """
        attempt = 0
        while True:
            try:
                receipt = await self.ingest.submit_file(self._upload_of(claim))
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = self.retry_delays[min(attempt, len(self.retry_delays) - 1)]
                attempt += 1
                log.exception(
                    "%s: hand-over of %s/%s/%s failed (attempt %d); retrying in %.0fs",
                    self.source,
                    claim.account,
                    claim.folder,
                    claim.filename,
                    attempt,
                    delay,
                )
                self._write_status(
                    claim,
                    ERROR_SUFFIX,
                    [
                        f"Tidegate received {claim.folder}/{claim.filename} but could not "
                        "start processing it yet:",
                        f"  {type(exc).__name__}: {exc}",
                        "",
                        "The file is kept and the hand-over is retried automatically "
                        f"(attempt {attempt}); this note disappears when it succeeds.",
                        "You do not need to upload the file again.",
                        "",
                        f"received_at: {_utc(claim.received_at)}",
                    ],
                )
                await asyncio.sleep(delay)
        result = HandOverResult(claim, receipt, time.monotonic())
        self._settle_result(result)
        if self.on_result is not None:
            self.on_result(result)
        return result

    def _settle_result(self, result: HandOverResult) -> None:
        claim, receipt = result.claim, result.receipt
        self._remove_status(claim, ERROR_SUFFIX)
        refused = receipt.refused
        if refused is None:
            claim.state = ClaimState.SUBMITTED
            claim.upload_id = receipt.upload_id
            _write_json(claim.dir / CLAIM_FILE, claim.to_json())
            self._remove_status(claim, REJECTED_SUFFIX)  # a stale one from an earlier try
            log.info(
                "%s: handed over %s/%s/%s as upload %s (trigger=%s)",
                self.source,
                claim.account,
                claim.folder,
                claim.filename,
                receipt.upload_id,
                claim.trigger,
            )
            return
        if claim.recovered and refused.code is ErrorCode.DUPLICATE_FILENAME:
            # Submitted before a crash, receipt not recorded: the runtime has it.
            claim.state = ClaimState.SUBMITTED
            _write_json(claim.dir / CLAIM_FILE, claim.to_json())
            log.info(
                "%s: recovered claim %s/%s was already handed over before the restart",
                self.source,
                claim.account,
                claim.filename,
            )
            return
        log.warning(
            "%s: upload %s/%s/%s refused: %s: %s",
            self.source,
            claim.account,
            claim.folder,
            claim.filename,
            refused.code.value,
            refused.message,
        )
        advice = (
            "Each file must have a unique name. If this is new data, upload it again "
            "under a new name; if it is the same file, it was already processed and "
            "nothing needs to be done."
            if refused.code is ErrorCode.DUPLICATE_FILENAME
            else "Nothing of this file was processed. Fix it and upload it again under a new name."
        )
        self._write_status(
            claim,
            REJECTED_SUFFIX,
            [
                f"Tidegate refused {claim.folder}/{claim.filename}.",
                "",
                f"code: {refused.code.value}",
                f"message: {refused.message}",
                f"received_at: {_utc(claim.received_at)}",
                f"refused_at: {_utc(datetime.now(UTC))}",
                "",
                advice,
                "The refused file was deleted from the server. You may delete this note.",
            ],
        )
        shutil.rmtree(claim.dir, ignore_errors=True)

    # -- status files

    def status_path(self, account: str, folder: str, filename: str, suffix: str) -> Path:
        return self.visible_root / account / folder / (filename + suffix)

    def _write_status(self, claim: Claim, suffix: str, lines: list[str]) -> None:
        target = self.status_path(claim.account, claim.folder, claim.filename, suffix)
        try:
            if target.is_symlink() or target.is_dir():
                raise OSError(f"{target} is not a regular file")
            # written in the (hidden) area, then renamed into the user's folder
            replace_file(target, "\n".join(lines) + "\n", staging_dir=self.area)
        except OSError:
            log.exception("%s: could not write status file %s", self.source, target)

    def _remove_status(self, claim: Claim, suffix: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.status_path(claim.account, claim.folder, claim.filename, suffix).unlink()
