"""The watched drop folder with real writers: slow appends, rsync, renames, restarts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from connectors.accounts import Accounts, add_account, load_accounts
from connectors.staging import CLAIM_FILE
from connectors.watch import WatchFolder, start_watch_folder
from streams.core.errors import ErrorCode
from tests.integration.recording_ingest import RecordingIngest

pytestmark = pytest.mark.timeout(120)

SEEDS = Path(__file__).resolve().parents[1] / "fixtures" / "seeds"
SEED_FILES = sorted(p for p in SEEDS.iterdir() if p.is_file() and p.name != "README.md")
SETTLE = 0.6
POLL = 0.1
RSYNC = shutil.which("rsync")


@pytest.fixture
def accounts(tmp_path: Path) -> Accounts:
    path = tmp_path / "accounts.toml"
    add_account(path, "alice")
    add_account(path, "bob")
    return load_accounts(path)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "watch"


@pytest.fixture
def ingest() -> RecordingIngest:
    return RecordingIngest()


async def _start(
    root: Path, accounts: Accounts, ingest: RecordingIngest, **kw: float
) -> WatchFolder:
    kw.setdefault("poll_interval", POLL)
    settle = kw.pop("settle", SETTLE)
    return await start_watch_folder(root, accounts, ingest, settle, **kw)


@pytest.fixture
async def watcher(
    root: Path, accounts: Accounts, ingest: RecordingIngest
) -> AsyncIterator[WatchFolder]:
    w = await _start(root, accounts, ingest)
    try:
        yield w
    finally:
        await w.aclose()


def files_under(path: Path) -> list[str]:
    out = []
    for dirpath, _dirs, names in os.walk(path):
        out += [os.path.relpath(os.path.join(dirpath, n), path) for n in names]
    return sorted(out)


def visible(root: Path) -> list[str]:
    return [f for f in files_under(root) if not f.startswith(".tidegate")]


async def test_folders_are_created_per_account(watcher: WatchFolder, root: Path) -> None:
    for account in ("alice", "bob"):
        for folder in ("events", "events-trigger"):
            assert (root / account / folder).is_dir()


async def test_seed_files_are_handed_over_once_each(
    watcher: WatchFolder, root: Path, ingest: RecordingIngest
) -> None:
    for p in SEED_FILES:
        shutil.copy(p, root / "alice" / "events" / p.name)
    shutil.copy(SEEDS / "zeta_sample.jsonl", root / "bob" / "events-trigger" / "bob.jsonl")
    handed = await ingest.wait_for(len(SEED_FILES) + 1)
    await asyncio.sleep(SETTLE * 2)
    assert len(ingest.handed) == len(SEED_FILES) + 1
    by_name = {h.upload.filename: h for h in handed}
    for p in SEED_FILES:
        h = by_name[p.name]
        assert (h.upload.account, h.upload.trigger) == ("alice", None)
        assert h.content == p.read_bytes()
    assert (by_name["bob.jsonl"].upload.account, by_name["bob.jsonl"].upload.trigger) == (
        "bob",
        True,
    )
    assert visible(root) == []  # claimed out of the users' folders


async def test_a_file_still_being_written_waits_until_it_is_stable(
    watcher: WatchFolder, root: Path, ingest: RecordingIngest
) -> None:
    target = root / "alice" / "events" / "slow.jsonl"
    line = b'{"user_id": "1", "event_type": "x", "timestamp": 1}\n'
    with target.open("wb") as f:
        for _ in range(8):  # 8 writes, SETTLE/3 apart: never stable for SETTLE
            f.write(line)
            f.flush()
            last_write = time.monotonic()
            await asyncio.sleep(SETTLE / 3)
            assert ingest.handed == []
    (h,) = await ingest.wait_for(1)
    delay = h.at - last_write
    print(f"\nwatch folder: last write -> hand-over {delay:.3f}s (settle {SETTLE}s, poll {POLL}s)")
    assert SETTLE - 0.05 <= delay <= SETTLE + POLL + 0.6
    assert h.content == line * 8


async def test_dotfiles_temp_names_and_status_files_are_ignored_until_renamed(
    watcher: WatchFolder, root: Path, ingest: RecordingIngest
) -> None:
    events = root / "alice" / "events"
    data = (SEEDS / "vero_checkouts.csv").read_bytes()
    for name in (".checkouts.csv.Ab12Cd", "dl.csv.part", "x.tmp", "y.csv.crdownload", ".hidden"):
        (events / name).write_bytes(data)
    (events / "old.jsonl.rejected.txt").write_text("a status file\n")
    await asyncio.sleep(SETTLE * 2.5)
    assert ingest.handed == []
    os.rename(events / ".checkouts.csv.Ab12Cd", events / "checkouts.csv")  # rsync's last step
    (h,) = await ingest.wait_for(1)
    assert h.upload.filename == "checkouts.csv" and h.content == data
    await asyncio.sleep(SETTLE * 1.5)
    assert len(ingest.handed) == 1


async def test_subdirectories_symlinks_and_unknown_accounts_are_ignored(
    watcher: WatchFolder, root: Path, ingest: RecordingIngest, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.jsonl"
    outside.write_text('{"x": 1}\n')
    events = root / "alice" / "events"
    (events / "nested").mkdir()
    (events / "nested" / "inner.jsonl").write_text('{"x": 1}\n')
    os.symlink(outside, events / "link.jsonl")
    (root / "mallory" / "events").mkdir(parents=True)
    (root / "mallory" / "events" / "m.jsonl").write_text('{"x": 1}\n')
    await asyncio.sleep(SETTLE * 2.5)
    assert ingest.handed == []
    assert outside.exists() and (events / "link.jsonl").is_symlink()


@pytest.mark.skipif(RSYNC is None, reason="rsync is not installed")
async def test_rsync_into_the_folder(
    watcher: WatchFolder, root: Path, ingest: RecordingIngest, tmp_path: Path
) -> None:
    src = tmp_path / "outbox"
    src.mkdir()
    for p in SEED_FILES:
        shutil.copy(p, src / p.name)
    big = src / "big.jsonl"
    big.write_bytes(b'{"user_id": "1", "event_type": "x", "timestamp": 1}\n' * 200_000)
    proc = await asyncio.create_subprocess_exec(
        RSYNC or "rsync",
        "-a",
        "--bwlimit=4000",  # KB/s: ~3 s for big.jsonl, so the poller sees rsync's temp file
        f"{src}/",
        f"{root}/alice/events/",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    saw_temp = False
    while proc.returncode is None:
        names = os.listdir(root / "alice" / "events")
        saw_temp = saw_temp or any(n.startswith(".big.jsonl.") for n in names)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 0.05)
    assert proc.returncode == 0
    assert saw_temp
    expected = len(SEED_FILES) + 1
    handed = await ingest.wait_for(expected, timeout=30)
    await asyncio.sleep(SETTLE * 2)
    assert len(ingest.handed) == expected
    names = sorted(h.upload.filename for h in handed)
    assert names == sorted([p.name for p in SEED_FILES] + ["big.jsonl"])
    for h in handed:
        assert h.content == (src / h.upload.filename).read_bytes()


async def test_refusal_leaves_a_status_file_and_is_not_retried(
    watcher: WatchFolder, root: Path, ingest: RecordingIngest
) -> None:
    ingest.mark_used("alice", "dup.jsonl")
    shutil.copy(SEEDS / "zeta_sample.jsonl", root / "alice" / "events" / "dup.jsonl")
    (h,) = await ingest.wait_for(1)
    assert h.receipt.refused is not None
    assert h.receipt.refused.code is ErrorCode.DUPLICATE_FILENAME
    await asyncio.sleep(SETTLE * 2)
    assert len(ingest.handed) == 1
    assert visible(root) == ["alice/events/dup.jsonl.rejected.txt"]
    text = (root / "alice/events/dup.jsonl.rejected.txt").read_text()
    assert "code: duplicate_filename" in text
    assert files_under(root / ".tidegate" / "processing") == []


async def test_restart_resubmits_unsubmitted_claims_and_never_repeats(
    root: Path, accounts: Accounts, ingest: RecordingIngest
) -> None:
    ingest.fail_next = 1_000  # the runtime is down: claims stay unsubmitted
    w = await _start(root, accounts, ingest)
    w.handover.retry_delays = (60.0,)
    shutil.copy(SEEDS / "zeta_sample.jsonl", root / "alice" / "events" / "a.jsonl")
    shutil.copy(SEEDS / "naxai_events.jsonl", root / "alice" / "events" / "b.jsonl")
    deadline = time.monotonic() + 10
    while len(visible(root)) != 2 or not all(f.endswith(".error.txt") for f in visible(root)):
        assert time.monotonic() < deadline, visible(root)
        await asyncio.sleep(0.05)
    await w.aclose()
    assert ingest.handed == []

    ingest.fail_next = 0
    w2 = await _start(root, accounts, ingest)
    try:
        handed = await ingest.wait_for(2)
        assert sorted(h.upload.filename for h in handed) == ["a.jsonl", "b.jsonl"]
        await asyncio.sleep(0.2)
        assert visible(root) == []  # the error notes are gone
    finally:
        await w2.aclose()

    w3 = await _start(root, accounts, ingest)  # a third start hands nothing over again
    try:
        await asyncio.sleep(SETTLE * 2)
        assert len(ingest.handed) == 2
    finally:
        await w3.aclose()


async def test_crash_after_submission_is_not_reported_as_a_duplicate(
    root: Path, accounts: Accounts, ingest: RecordingIngest
) -> None:
    w = await _start(root, accounts, ingest)
    shutil.copy(SEEDS / "zeta_sample.jsonl", root / "alice" / "events" / "c.jsonl")
    await ingest.wait_for(1)
    await asyncio.sleep(0.1)
    await w.aclose()
    # as if the process died between submit_file returning and recording it
    (meta,) = (root / ".tidegate" / "processing" / "alice").glob(f"*/{CLAIM_FILE}")
    data = json.loads(meta.read_text())
    assert data["state"] == "submitted"
    data["state"] = "claimed"
    meta.write_text(json.dumps(data))

    w2 = await _start(root, accounts, ingest)
    try:
        handed = await ingest.wait_for(2)
        assert handed[1].receipt.refused is not None  # the runtime knows the name…
        await asyncio.sleep(0.1)
        assert visible(root) == []  # …and no refusal is shown for our own upload
        assert json.loads(meta.read_text())["state"] == "submitted"
        assert (meta.parent / "c.jsonl").exists()  # the runtime's copy is kept
    finally:
        await w2.aclose()
