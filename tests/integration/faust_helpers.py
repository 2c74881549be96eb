"""Shared parts of the Faust runtime tests: the upload mix, the embedded reference, the
`tidegate worker` subprocesses under a supervisor, and readers of the output topics."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from connectors.files.reader import read_upload
from connectors.ports import FileUpload
from streams.core.identity import IDENTITY_TABLE, identity_key, ordered_identifiers
from streams.core.normalize import normalize
from streams.core.records import Dialect, SourceKind, make_event_id
from streams.core.settings import SettingsRegistry
from streams.core.upload import UploadRow
from streams.embedded.runtime import EmbeddedRuntime
from streams.embedded.schema import connect
from streams.embedded.store import SqliteStateStore
from streams.kafka.outputs import outcome_records
from streams.kafka.producer import new_producer, produce_upload, wait_statuses
from streams.kafka.topics import Topics

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO / "tests" / "fixtures" / "seeds"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
NOW_ISO = "2024-06-01T12:00:00Z"
ACCOUNTS = ("acme", "globex", "initech", "umbrella", "hooli")
PARTITIONS = 8

Outcome = tuple[str, str | None, str, str | None, bool]  # event_id, profile, outcome, code, trig


# --------------------------------------------------------------------------- data


@dataclass(slots=True)
class Upload:
    account: str
    filename: str
    path: Path
    dialect: Dialect | None
    trigger: bool
    upload_id: str = ""
    # uploads of one wave do not rely on each other's links: the equality test submits a
    # wave once the previous one is complete (within one upload or wave, which link a
    # record sees depends on cross-partition timing: docs/decisions/keyed-topology.md)
    wave: int = 0


def _ts(minutes: int) -> str:
    return (NOW - timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _lines(path: Path, rows: list[Any]) -> None:
    with path.open("wb") as handle:
        for row in rows:
            handle.write((row if isinstance(row, bytes) else orjson.dumps(row)) + b"\n")


def make_uploads(directory: Path, total: int, accounts: tuple[str, ...] = ACCOUNTS) -> list[Upload]:
    """Rounds of uploads per account: Zeta (user_id+email, duplicate idempotency keys, bad
    lines) and Kissmetrics events and aliases; then, in a later wave, email-only Zeta records
    and Kissmetrics records of the aliases (they follow the links), Naxai with idempotency
    keys and Vero CSV; before all, the seed files. In wave order."""
    directory.mkdir(parents=True, exist_ok=True)
    uploads: list[Upload] = []
    rounds = 3
    per = max(10, total // (rounds * len(accounts) * 5))
    seq = 0

    def add(
        account: str, name: str, rows: list[Any] | bytes, dialect: Dialect | None, wave: int = 0
    ) -> None:
        nonlocal seq
        seq += 1
        path = directory / f"{seq:04d}-{account}-{name}"
        if isinstance(rows, bytes):
            path.write_bytes(rows)
        else:
            _lines(path, rows)
        uploads.append(Upload(account, path.name, path, dialect, seq % 2 == 0, wave=wave))

    for account in accounts:
        for seed in ("zeta_sample.jsonl", "vero_checkouts.csv", "kissmetrics_valid.json"):
            add(account, seed, (SEEDS / seed).read_bytes(), None)
    for r in range(rounds):
        for account in accounts:
            zeta: list[Any] = []
            for i in range(per):
                u = r * per + i
                row: dict[str, Any] = {
                    "user_id": f"u{u % (per * 2)}",
                    "event_type": f"view_{i % 7}",
                    "timestamp": _ts(i % 2000),
                    "page": f"/p/{i}",
                }
                if i % 3 == 0:
                    row["email"] = f"e{u % (per * 2)}@{account}.com"
                if i % 5 == 0:
                    row["idempotencyKey"] = f"k{u % 40}"  # repeats: duplicates
                zeta.append(row)
                if i % 97 == 0:
                    zeta.append(b"{not json")
                if i % 89 == 0:
                    zeta.append({"event_type": "x", "timestamp": _ts(1)})  # no identity
                if i % 83 == 0:
                    zeta.append(
                        {"user_id": "u1", "event_type": "x", "timestamp": _ts(1), "site_id": 1}
                    )
            add(account, f"zeta-{r}.jsonl", zeta, Dialect.ZETA, 1 + 2 * r)
            # email-only records in a later upload follow the links made above
            later = [
                {
                    "email": f"e{(r * per + i) % (per * 2)}@{account}.com",
                    "event_type": "open",
                    "timestamp": _ts(i % 500),
                    "idempotencyKey": f"m{i % 50}",
                }
                for i in range(0, per * 3, 3)
            ]
            add(account, f"zeta-email-{r}.jsonl", later, Dialect.ZETA, 2 + 2 * r)
            km: list[Any] = []
            km_after: list[Any] = []
            for i in range(per):
                t = int((NOW - timedelta(minutes=i % 900)).timestamp())
                if i % 10 == 0:
                    km.append({"_p": f"u{i}", "_p2": f"alias{i}@{account}.com", "_t": t})
                elif i % 10 == 1:
                    km_after.append(
                        {"_p": f"alias{i - 1}@{account}.com", "_n": "after_alias", "_t": t}
                    )
                else:
                    km.append({"_p": f"u{i}", "_n": "visited", "_t": t, "plan": "pro"})
            add(account, f"km-{r}.json", km, Dialect.KISSMETRICS, 1 + 2 * r)
            add(account, f"km-after-{r}.json", km_after, Dialect.KISSMETRICS, 2 + 2 * r)
            naxai = [
                {
                    "identifier": f"e{i % (per * 2)}@{account}.com",
                    "name": "purchase",
                    "data": {"total": i},
                    "idempotencyKey": f"n{i % 60}",
                    "timestamp": int((NOW - timedelta(minutes=i % 600)).timestamp()),
                }
                for i in range(per)
            ]
            add(account, f"naxai-{r}.jsonl", naxai, Dialect.NAXAI, 2 + 2 * r)
            csv = ["email, event_name, time, item"]
            for i in range(per):
                moment = (NOW - timedelta(minutes=i % 3000)).strftime("%Y-%m-%d %H:%M+00")
                csv.append(f"v{i % (per * 2)}@{account}.com, Completes checkout, {moment}, i{i}")
            add(account, f"vero-{r}.csv", ("\n".join(csv) + "\n").encode(), Dialect.VERO, 2 + 2 * r)
    uploads.sort(key=lambda u: u.wave)  # stable: in each wave, the order they were made in
    return uploads


def row_of(upload: Upload) -> UploadRow:
    return UploadRow(
        upload.upload_id,
        upload.account,
        upload.filename,
        SourceKind.FILE,
        upload.dialect,
        str(upload.path),
        upload.trigger or None,
        NOW,
    )


# --------------------------------------------------------------------------- embedded side


def embedded_reference(uploads: list[Upload], data: Path) -> tuple[set[Outcome], dict[str, str]]:
    """Runs every upload through the embedded runtime (in order, fixed clock) and returns
    the outcome of every record, plus each upload's final status. Sets upload ids."""

    async def run() -> dict[str, str]:
        runtime = EmbeddedRuntime(data, SettingsRegistry(), read_upload, clock=lambda: NOW)
        await runtime.start()
        statuses: dict[str, str] = {}
        try:
            for upload in uploads:
                copy = data / "in" / upload.filename
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(upload.path, copy)
                receipt = await runtime.submit_file(
                    FileUpload(
                        upload.account,
                        upload.filename,
                        copy,
                        NOW,
                        upload.dialect,
                        upload.trigger or None,
                    )
                )
                assert receipt.upload_id is not None
                upload.upload_id = receipt.upload_id
                view = await runtime.wait(receipt.upload_id, timeout=600)
                statuses[upload.upload_id] = view.status
        finally:
            await runtime.stop()
        return statuses

    statuses = asyncio.run(run())
    accepted: dict[str, tuple[str | None, bool]] = {}
    for line in (data / "out" / "accepted.jsonl").read_bytes().splitlines():
        doc = orjson.loads(line)
        accepted[doc["event_id"]] = (doc["profile_id"], bool(doc["triggered"]))
    rejected: dict[str, tuple[str | None, str]] = {}
    for line in (data / "out" / "deadletter.jsonl").read_bytes().splitlines():
        doc = orjson.loads(line)
        record = doc.get("record") or {}
        rejected[doc["event_id"]] = (record.get("profile_id"), doc["code"])
    store = SqliteStateStore(connect(str(data / "tidegate.db")))
    outcomes: set[Outcome] = set()
    for upload in uploads:
        for item in read_upload(row_of(upload)):
            if not isinstance(item, tuple):
                continue
            raw = item[1]
            event_id = make_event_id(raw.source)
            if event_id in accepted:
                profile, trig = accepted[event_id]
                outcomes.add((event_id, profile, "accepted", None, trig))
            elif event_id in rejected:
                profile, code = rejected[event_id]
                outcomes.add((event_id, profile, "rejected", code, False))
            else:  # duplicates go to no output: their profile is the top identifier's link
                event = normalize(raw)
                assert not isinstance(event, Exception) and hasattr(event, "identifiers")
                ns, value = ordered_identifiers(event)[0]  # type: ignore[arg-type]
                profile = store.get(IDENTITY_TABLE, identity_key(event.account, ns, value))  # type: ignore[union-attr]
                outcomes.add((event_id, profile, "duplicate", None, False))
    return outcomes, statuses


# --------------------------------------------------------------------------- Kafka side


class Workers:
    """`tidegate worker` subprocesses on their own topics (prefix) and app id, under a
    supervisor as in production (compose `restart: unless-stopped`): a worker that exits
    by itself (exit 70 after a failed commit, see streams/kafka/transactions.py `fatal`) is started
    again; `exits` records each such exit."""

    def __init__(
        self, bootstrap: str, root: Path, prefix: str, env: dict[str, str] | None = None
    ) -> None:
        self.bootstrap = bootstrap
        self.extra_env = env or {}
        self.root = root
        self.prefix = prefix
        self.app_id = prefix.replace(".", "-")
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.exits: list[tuple[int, int]] = []  # (worker, exit code) of exits on their own
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.supervisor = threading.Thread(target=self._supervise, daemon=True)
        self.supervisor.start()

    def _supervise(self) -> None:
        while not self.stopping.wait(0.5):
            with self.lock:
                for n, proc in list(self.procs.items()):
                    code = proc.poll()
                    if code is not None:
                        self.exits.append((n, code))
                        self._start(n)

    def report(self) -> str:
        """What the workers did: self-exits, and the last lines and errors of each log."""
        parts = [f"exits on their own: {self.exits}"]
        for log in sorted(self.root.glob("worker-*.log")):
            lines = log.read_text(errors="replace").splitlines()
            errors = [x for x in lines if "CRITICAL" in x or "[ERROR]" in x]
            parts.append(f"--- {log.name}: {len(lines)} lines, errors:")
            parts.extend(x[:300] for x in errors[-20:])
            parts.append(f"--- {log.name}: last lines:")
            parts.extend(x[:300] for x in lines[-40:])
        return "\n".join(parts)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TIDEGATE_TOPIC_PREFIX": self.prefix,
            "TIDEGATE_APP_ID": self.app_id,
            "TIDEGATE_NOW": NOW_ISO,
            "TIDEGATE_LOG_LEVEL": "INFO",
            **self.extra_env,
        }

    def start(self, n: int) -> None:
        with self.lock:
            self._start(n)

    def _start(self, n: int) -> None:
        log = (self.root / f"worker-{n}.log").open("ab")
        self.procs[n] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tidegate.cli",
                "worker",
                "--broker",
                f"kafka://{self.bootstrap}",
                "--partitions",
                str(PARTITIONS),
                "--state-dir",
                str(self.root / f"state-{n}"),
            ],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
        )

    def kill(self, n: int) -> None:
        with self.lock:
            proc = self.procs.pop(n)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        self.stopping.set()
        self.supervisor.join()
        for n in list(self.procs):
            proc = self.procs.pop(n)
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def log(self, n: int) -> str:
        return (self.root / f"worker-{n}.log").read_text(errors="replace")


async def produce_all(bootstrap: str, topics: Topics, uploads: list[Upload]) -> None:
    producer = new_producer(bootstrap)
    await producer.start()
    try:
        for upload in uploads:
            row = row_of(upload)
            await produce_upload(producer, topics, row, read_upload(row))
    finally:
        await producer.stop()


def produce_in_waves(
    bootstrap: str, topics: Topics, uploads: list[Upload], timeout: float
) -> dict[str, Any]:
    """Produces the uploads wave by wave, each wave once the previous one has its final
    statuses; returns every upload's final status."""
    statuses: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    for wave in sorted({u.wave for u in uploads}):
        batch = [u for u in uploads if u.wave == wave]
        asyncio.run(produce_all(bootstrap, topics, batch))
        left = max(10.0, deadline - time.monotonic())
        statuses.update(
            asyncio.run(
                wait_statuses(bootstrap, topics, [u.upload_id for u in batch], timeout=left)
            )
        )
    return statuses


async def read_topic(bootstrap: str, topic: str, quiet: float = 3.0) -> list[Any]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    records: list[Any] = []
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        await consumer.seek_to_beginning()
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                if recs:
                    records.extend(recs)
                    last = time.monotonic()
    finally:
        await consumer.stop()
    return records


def outcome_set(records: list[Any]) -> tuple[set[Outcome], Counter[str]]:
    found: set[Outcome] = set()
    per_id: Counter[str] = Counter()
    for record in records:
        for doc in outcome_records(orjson.loads(record.value)):
            per_id[doc["event_id"]] += 1
            found.add(
                (
                    doc["event_id"],
                    doc["profile_id"],
                    doc["outcome"],
                    doc["code"],
                    bool(doc["triggered"]),
                )
            )
    return found, per_id


def header_ids(records: list[Any]) -> Counter[str]:
    return Counter(dict(r.headers)["event_id"].decode() for r in records)


# --------------------------------------------------------------------------- topics


def ensure_topics(bootstrap: str, topics: Topics) -> None:
    """Creates the runtime's topics (PARTITIONS each) before anything is produced."""
    from streams.kafka import topics as T

    asyncio.run(T.ensure_topics(bootstrap, topics, PARTITIONS))


def outcomes_of(value: bytes) -> int:
    """How many records' outcomes one message of the outcomes topic carries."""
    return len(outcome_records(orjson.loads(value)))
