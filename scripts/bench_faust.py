#!/usr/bin/env python
"""End-to-end throughput of the Faust workers beside a plain aiokafka relay and a Faust
passthrough, same broker, same records, same run; then produce→triggers latency at a
steady rate.

    .venv/bin/python scripts/bench_faust.py [--records 50000] [--workers 2] [--rate 2000]
        [--latency-seconds 20] [--bootstrap 127.0.0.1:9092] [--ceiling at_least_once ...]
        [--workloads 64x2 1x2 64x1]

Prints events/s of each, their ratios, and p50/p99 latency. `--workloads` lists the
Tidegate runs, each `<accounts>x<workers>`: the records spread over that many accounts,
that many workers (default: 64 accounts on 2 workers, every record in one account on 2
workers, 64 accounts on 1 worker; the latency run is the first one's). The passthrough
runs with `--workers` workers. Uses its own topic prefix and
app ids per run. The workers' figure runs from the start of producing the records (the
workers, idle and assigned, consume while they are produced) to the last outcome read
(read_committed); the relay's from its first fetched record to its last acknowledged send
(its group join is not counted), so both are conservative for the ratio. The ceiling
(`scripts/faust_passthrough.py`) is the same number of Faust workers doing nothing but
forward each record to one topic, timed as the Tidegate workers are: no Faust topology
can do more per second here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streams.kafka import topics as T  # noqa: E402
from streams.kafka.outputs import outcome_records  # noqa: E402
from streams.kafka.routing import arrival_partition  # noqa: E402
from streams.kafka.topics import Topics  # noqa: E402
from streams.kafka.wire import decode_raw  # noqa: E402

PARTITIONS = 8


def raw_doc(i: int, upload: str, now: str, accounts: int = 64) -> bytes:
    account = f"acct{i % accounts}"
    payload = orjson.dumps(
        {"user_id": f"u{i % 5000}", "event_type": "view", "timestamp": now, "n": i}
    ).decode()
    return orjson.dumps(
        {
            "account": account,
            "upload_id": upload,
            "file": "bench",
            "line": i + 1,
            "dialect": "zeta",
            "kind": "kafka",
            "received_at": now,
            "trigger": True,
            "payload": payload,
        }
    )


async def produce(bootstrap: str, topic: str, docs: list[bytes], rate: float = 0) -> list[float]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, enable_idempotence=True
    )
    await producer.start()
    sent_at: list[float] = []
    try:
        start = time.monotonic()
        futs = []
        for i, doc in enumerate(docs):
            if rate:
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            account = orjson.loads(doc)["account"]
            # as the connectors do: a user's records arrive on its stage-2 key's partition
            partition = (
                arrival_partition(decode_raw(doc, topic=topic), PARTITIONS)
                if topic.endswith(".events.raw")  # Tidegate's raw topic, not the passthrough's
                else None
            )
            sent_at.append(time.time())
            futs.append(await producer.send(topic, doc, key=account.encode(), partition=partition))
            if len(futs) >= 5000:
                await asyncio.gather(*futs)
                futs.clear()
        await asyncio.gather(*futs)
    finally:
        await producer.stop()
    return sent_at


async def count_until(
    bootstrap: str,
    topic: str,
    n: int,
    timeout: float = 900,
    from_end: bool = False,
    ready: asyncio.Event | None = None,
    plain: bool = False,
) -> dict[bytes, float]:
    """Arrival time of each record (by event id) read from `topic` (read_committed) until
    `n` have arrived. `from_end`: only records written after the start; `ready` is set
    once the consumer is positioned (the latency run starts producing only then, so the
    reader's start-up is not counted as latency). `plain`: records are identified by their
    value (the passthrough's output)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    await consumer.start()
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(tps)
    if from_end:
        await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)
    if ready is not None:
        ready.set()
    arrived: dict[bytes, float] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(arrived) < n and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            now = time.time()
            for recs in batch.values():
                for r in recs:
                    if plain:
                        arrived.setdefault(r.value, now)
                        continue
                    if r.headers:
                        arrived.setdefault(dict(r.headers).get("event_id", r.value[:80]), now)
                        continue
                    # the outcomes topic: one message per upload and batch, listing records
                    for outcome in outcome_records(orjson.loads(r.value)):
                        arrived.setdefault(outcome["event_id"].encode(), now)
    finally:
        await consumer.stop()
    return arrived


async def relay(bootstrap: str, src: str, dst: str, n: int) -> float:
    """Relays `n` records; returns the seconds from the first record fetched to the last
    one acknowledged (the consumer group join is not counted)."""
    consumer = AIOKafkaConsumer(
        src,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=f"relay-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=True,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await consumer.start()
    await producer.start()
    done = 0
    first: float | None = None
    try:
        while done < n:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            if first is None and batch:
                first = time.monotonic()
            futs = [
                await producer.send(dst, r.value, key=r.key)
                for recs in batch.values()
                for r in recs
            ]
            done += len(futs)
            if futs:
                await asyncio.gather(*futs)
    finally:
        await consumer.stop()
        await producer.stop()
    return time.monotonic() - (first or time.monotonic())


async def create_topics(bootstrap: str, names: list[str]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1) for name in names])
    finally:
        await admin.close()


def tidegate_event_id(i: int, doc: bytes) -> bytes:
    """The event id the workers give `doc` (the i-th latency record): a Kafka record's
    source is its account, upload, file and line."""
    from streams.core.records import Dialect, Source, SourceKind, make_event_id

    n = 10_000_000 + i
    source = Source(SourceKind.KAFKA, Dialect.ZETA, f"acct{n % 64}", "lat", "bench", None, n + 1)
    return make_event_id(source).encode()


async def latency(
    bootstrap: str,
    src: str,
    dst: str,
    docs: list[bytes],
    rate: float,
    arrival_key: Callable[[int, bytes], bytes],
    plain: bool = False,
) -> list[float]:
    """Seconds from producing each of `docs` to `src` at `rate` to reading it on `dst`
    (read_committed), sorted; `arrival_key(i, doc)` names the i-th record on `dst`."""
    ready = asyncio.Event()
    reader = asyncio.create_task(
        count_until(bootstrap, dst, len(docs), from_end=True, ready=ready, plain=plain)
    )
    await ready.wait()
    sent = await produce(bootstrap, src, docs, rate=rate)
    arrived = await reader
    out = []
    for i, doc in enumerate(docs):
        key = arrival_key(i, doc)
        if key in arrived:
            out.append(arrived[key] - sent[i])
    return sorted(out)


def percentiles(lats: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    if not lats:
        return float("nan"), float("nan")
    return lats[len(lats) // 2] * 1000, lats[int(len(lats) * 0.99)] * 1000


def run_passthrough(
    args: argparse.Namespace, prefix: str, guarantee: str, docs: list[bytes], tmp: Path
) -> tuple[float, list[float]]:
    """Events/s and latencies of Faust workers that only forward the records (no
    rule, no table, no hop), measured as the Tidegate workers are."""
    name = guarantee
    guarantee, _, stock = name.partition("-")
    src, dst = f"{prefix}.pass-{name}.in", f"{prefix}.pass-{name}.out"
    asyncio.run(create_topics(args.bootstrap, [src, dst]))
    app_id = f"{prefix.replace('.', '-')}-pass-{name}"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(REPO / "scripts" / "faust_passthrough.py"),
                args.bootstrap,
                src,
                dst,
                app_id,
                guarantee,
                str(tmp / f"pass-{name}-{n}"),
                *([stock] if stock else []),
            ],
            cwd=REPO,
            stdout=(tmp / f"pass-{name}-{n}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for n in range(args.workers)
    ]
    try:
        time.sleep(15)  # group formed
        t0 = time.monotonic()
        asyncio.run(produce(args.bootstrap, src, docs))
        got = asyncio.run(count_until(args.bootstrap, dst, len(docs), plain=True))
        eps = len(got) / (time.monotonic() - t0)
        lat_docs = [raw_doc(10_000_000 + i, "lat", "x") for i in range(latency_count(args))]
        lats = asyncio.run(
            latency(args.bootstrap, src, dst, lat_docs, args.rate, lambda i, d: d, plain=True)
        )
        return eps, lats
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)


def latency_count(args: argparse.Namespace) -> int:
    return int(args.rate * args.latency_seconds)


def run_tidegate(
    args: argparse.Namespace,
    prefix: str,
    docs: list[bytes],
    now: str,
    tmp: Path,
    workers: int,
    with_latency: bool,
) -> tuple[float, float, list[float]]:
    """Events/s (and the producer's own rate) and latencies of `workers` `tidegate
    worker`s, on the topics of `prefix` (created here)."""
    topics = Topics.of(prefix)
    asyncio.run(T.ensure_topics(args.bootstrap, topics, PARTITIONS, prefix.replace(".", "-")))
    env = {
        **os.environ,
        "TIDEGATE_TOPIC_PREFIX": prefix,
        "TIDEGATE_APP_ID": prefix.replace(".", "-"),
    }
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tidegate.cli",
                "worker",
                "--broker",
                f"kafka://{args.bootstrap}",
                "--partitions",
                str(PARTITIONS),
                "--state-dir",
                str(tmp / f"{prefix}-s{n}"),
            ],
            env=env,
            cwd=REPO,
            stdout=(tmp / f"{prefix}-w{n}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for n in range(workers)
    ]
    try:
        time.sleep(15)  # group formed, recovery done
        # the workers consume while the records are produced: timed from the start of the
        # produce to the last outcome (end to end; bounded by the producer's rate too)
        t0 = time.monotonic()
        asyncio.run(produce(args.bootstrap, topics.raw, docs))
        produce_eps = len(docs) / (time.monotonic() - t0)
        got = asyncio.run(count_until(args.bootstrap, topics.outcomes, len(docs)))
        eps = len(got) / (time.monotonic() - t0)
        lats: list[float] = []
        if with_latency:
            lat_docs = [raw_doc(10_000_000 + i, "lat", now) for i in range(latency_count(args))]
            lats = asyncio.run(
                latency(
                    args.bootstrap,
                    topics.raw,
                    topics.triggers,
                    lat_docs,
                    args.rate,
                    tidegate_event_id,
                )
            )
        return eps, produce_eps, lats
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)


def workload(text: str) -> tuple[int, int]:
    """`<accounts>x<workers>` → (accounts, workers)."""
    accounts, _, workers = text.partition("x")
    return int(accounts), int(workers)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rate", type=float, default=2000)
    ap.add_argument("--latency-seconds", type=float, default=20)
    ap.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    ap.add_argument(
        "--ceiling",
        nargs="*",
        default=["at_least_once"],
        help="Faust passthroughs to measure as the ceiling: at_least_once, exactly_once (Faust's "
        "own transactions), each with Tidegate's fetch patch or, with a `-stock` suffix, "
        "without it (none: skip)",
    )
    ap.add_argument(
        "--workloads",
        nargs="+",
        type=workload,
        default=[(64, 2), (1, 2), (64, 1)],
        help="Tidegate runs as <accounts>x<workers> (the first one also measures latency)",
    )
    args = ap.parse_args()
    prefix = f"bench.{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    docs = [raw_doc(i, "tput", now) for i in range(args.records)]
    tmp = Path(tempfile.mkdtemp(prefix="bench-faust-"))
    try:
        # relay baseline: raw → relay topic
        relay_src, relay_dst = f"{prefix}.relay.in", f"{prefix}.relay.out"
        asyncio.run(produce(args.bootstrap, relay_src, docs))
        relay_s = asyncio.run(relay(args.bootstrap, relay_src, relay_dst, len(docs)))
        relay_eps = len(docs) / relay_s
        ceiling = {
            g: run_passthrough(args, prefix, g, docs, tmp) for g in args.ceiling if g != "none"
        }
        runs = {
            (accounts, workers): run_tidegate(
                args,
                f"{prefix}.a{accounts}w{workers}",
                [raw_doc(i, "tput", now, accounts) for i in range(args.records)],
                now,
                tmp,
                workers,
                with_latency=n == 0,
            )
            for n, (accounts, workers) in enumerate(args.workloads)
        }
    except BaseException:
        print(f"workers' state and logs kept in {tmp}", file=sys.stderr)
        raise
    else:
        shutil.rmtree(tmp, ignore_errors=True)  # the workers' state and logs
    finally:
        # this run's topics and the apps' internal ones: they would only slow the next start
        from tests.integration.kafka_helpers import delete_topics_matching

        app_prefixes = (f"{prefix}.", f"{prefix.replace('.', '-')}-")
        asyncio.run(delete_topics_matching(args.bootstrap, prefixes=app_prefixes))
    first = args.workloads[0]
    faust_eps, _, lats = runs[first]
    p50, p99 = percentiles(lats)
    n_lat = latency_count(args)
    for (accounts, workers), (eps, produce_eps, _) in runs.items():
        print(
            f"faust workers ({workers}x, {PARTITIONS} partitions, {accounts} accounts): "
            f"{eps:,.0f} ev/s ({args.records} outcomes; producing them alone: "
            f"{produce_eps:,.0f} ev/s); {eps / faust_eps:.1%} of {first[0]}x{first[1]}"
        )
    print(f"aiokafka relay: {relay_eps:,.0f} ev/s; ratio {faust_eps / relay_eps:.1%}")
    print(
        f"latency produce→triggers at {args.rate:.0f} ev/s: p50 {p50:.0f} ms, p99 {p99:.0f} ms "
        f"({len(lats)}/{n_lat} measured)"
    )
    for guarantee, (eps, pass_lats) in ceiling.items():
        q50, q99 = percentiles(pass_lats)
        print(
            f"Faust passthrough ({guarantee}, {args.workers}x): {eps:,.0f} ev/s "
            f"({eps / relay_eps:.1%} of the relay; Tidegate {faust_eps / eps:.1%} of it); "
            f"latency p50 {q50:.0f} ms, p99 {q99:.0f} ms ({len(pass_lats)}/{n_lat})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
