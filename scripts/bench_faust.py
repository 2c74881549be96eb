#!/usr/bin/env python
"""End-to-end throughput of the Faust workers beside a plain aiokafka relay and a Faust
passthrough, same broker, same records, same run; then produce→triggers latency at a
steady rate.

    .venv/bin/python scripts/bench_faust.py [--records 50000] [--workers 2] [--rate 2000]
        [--latency-seconds 20] [--bootstrap 127.0.0.1:9092] [--ceiling at_least_once ...]
        [--workloads 64x2 1x2 64x1] [--broker-pid PID] [--profile DIR] [--json FILE]

Prints events/s of each, their ratios (Tidegate / the passthrough, one account / 64
accounts, 2 workers / 1 worker), p50/p99 latency, and for each timed run the CPU it got:
the workers' process CPU time over the wall time (cores), this script's and (with
`--broker-pid`) the broker's, the whole machine's busy and stolen cores (/proc/stat) and
the load average at its start and end; the machine is shared, so a figure means little
without them. `--workloads` lists the Tidegate runs, each `<accounts>x<workers>`: the
records spread over that many accounts, that many workers (default: 64 accounts on 2
workers, every record in one account on 2 workers, 64 accounts on 1 worker; the latency
run is the first one's). The passthrough runs with `--workers` workers. Uses its own
topic prefix and app ids per run, stops its workers and deletes its topics at the end.
The workers' figure runs from the start of producing the records (the
workers, idle and assigned, consume while they are produced) to the last outcome read
(read_committed); the relay's from its first fetched record to its last acknowledged send
(its group join is not counted), so both are conservative for the ratio. The ceiling
(`scripts/faust_passthrough.py`) is the same number of Faust workers doing nothing but
forward each record to one topic, timed as the Tidegate workers are: no Faust topology
can do more per second here. `--profile DIR`: py-spy samples the first workload's
workers during its throughput run (collapsed stacks in DIR).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
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


@dataclass
class Usage:
    """What a timed window got from the machine: the CPU of the measured workers (cores:
    process CPU time over wall time, threads included), of the whole machine (busy and
    stolen by the hypervisor), and the 1-minute load average at its start and end."""

    seconds: float
    worker_cores: list[float]
    bench_cores: float
    broker_cores: float | None
    machine_busy_cores: float
    steal_cores: float
    load_start: float
    load_end: float

    def per_core(self, eps: float) -> float:
        """Events per CPU-second of the workers: the figure a shared machine disturbs least."""
        return eps / sum(self.worker_cores) if sum(self.worker_cores) else float("nan")

    def text(self) -> str:
        per = " + ".join(f"{c:.2f}" for c in self.worker_cores)
        return (
            f"workers used {sum(self.worker_cores):.2f} cores ({per}) over {self.seconds:.1f} s; "
            f"this script (producing, reading) {self.bench_cores:.2f}"
            + (f", the broker {self.broker_cores:.2f}; " if self.broker_cores is not None else "; ")
            + f"machine busy {self.machine_busy_cores:.2f} of {os.cpu_count()} cores, "
            f"steal {self.steal_cores:.2f}; load {self.load_start:.2f} -> {self.load_end:.2f}"
        )


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` (all its threads) from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return float("nan")
    fields = stat.rsplit(")", 1)[1].split()  # the name may hold spaces; fields 3.. follow
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int, int]:
    """(total, idle + iowait, steal) jiffies of all CPUs since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    # user nice system idle iowait irq softirq steal (guest time is inside user)
    return sum(values), values[3] + values[4], values[7]


class Window:
    """Samples the CPU of `pids` and of the machine from now until `end()`."""

    def __init__(self, pids: list[int], broker: int | None) -> None:
        self.pids = pids
        self.broker = broker
        self.broker0 = proc_cpu_seconds(broker) if broker else 0.0
        self.bench0 = time.process_time()
        self.t0 = time.monotonic()
        self.cpu0 = [proc_cpu_seconds(p) for p in pids]
        self.ticks0 = machine_ticks()
        self.load0 = os.getloadavg()[0]

    def end(self) -> Usage:
        seconds = time.monotonic() - self.t0
        cpu = [proc_cpu_seconds(p) - c for p, c in zip(self.pids, self.cpu0, strict=True)]
        total, idle, steal = (b - a for a, b in zip(self.ticks0, machine_ticks(), strict=True))
        hz = os.sysconf("SC_CLK_TCK")
        return Usage(
            seconds=seconds,
            worker_cores=[c / seconds for c in cpu],
            bench_cores=(time.process_time() - self.bench0) / seconds,
            broker_cores=(proc_cpu_seconds(self.broker) - self.broker0) / seconds
            if self.broker
            else None,
            machine_busy_cores=(total - idle - steal) / hz / seconds,
            steal_cores=steal / hz / seconds,
            load_start=self.load0,
            load_end=os.getloadavg()[0],
        )


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to every worker first (they drain together), then wait; SIGKILL after 30 s."""
    for p in procs:
        p.terminate()
    deadline = time.monotonic() + 30
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def start_profiles(
    out: Path | None, prefix: str, procs: list[subprocess.Popen[bytes]]
) -> list[subprocess.Popen[bytes]]:
    """py-spy (`pip install py-spy`) sampling each worker, without pausing it, into
    `out`/<prefix>-w<n>.txt as collapsed stacks (one `frame;frame;... count` a line)."""
    if out is None:
        return []
    out.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    return [
        subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(p.pid),
                "--rate",
                "100",
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(out / f"{prefix}-w{n}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(out / f"{prefix}-w{n}.py-spy.log").open("wb"),
        )
        for n, p in enumerate(procs)
    ]


def stop_profiles(profilers: list[subprocess.Popen[bytes]]) -> None:
    """SIGINT: py-spy writes its samples and exits."""
    for p in profilers:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p in profilers:
        p.wait(60)
    profilers.clear()


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
) -> tuple[float, list[float], Usage]:
    """Events/s, latencies and CPU use of Faust workers that only forward the records (no
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
        window = Window([p.pid for p in procs], args.broker_pid)
        asyncio.run(produce(args.bootstrap, src, docs))
        got = asyncio.run(count_until(args.bootstrap, dst, len(docs), plain=True))
        eps = len(got) / (time.monotonic() - t0)
        usage = window.end()
        lat_docs = [raw_doc(10_000_000 + i, "lat", "x") for i in range(latency_count(args))]
        lats = asyncio.run(
            latency(args.bootstrap, src, dst, lat_docs, args.rate, lambda i, d: d, plain=True)
        )
        return eps, lats, usage
    finally:
        stop(procs)


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
) -> tuple[float, float, list[float], Usage]:
    """Events/s (and the producer's own rate), latencies and CPU use of `workers` `tidegate
    worker`s, on the topics of `prefix` (created here)."""
    topics = Topics.of(prefix)
    profilers: list[subprocess.Popen[bytes]] = []
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
        profilers = start_profiles(args.profile, prefix, procs) if with_latency else []
        t0 = time.monotonic()
        window = Window([p.pid for p in procs], args.broker_pid)
        asyncio.run(produce(args.bootstrap, topics.raw, docs))
        produce_eps = len(docs) / (time.monotonic() - t0)
        got = asyncio.run(count_until(args.bootstrap, topics.outcomes, len(docs)))
        eps = len(got) / (time.monotonic() - t0)
        usage = window.end()
        stop_profiles(profilers)
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
        return eps, produce_eps, lats, usage
    finally:
        stop_profiles(profilers)
        stop(procs)


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
    ap.add_argument(
        "--profile",
        type=Path,
        help="directory: py-spy samples the first workload's workers during its throughput run",
    )
    ap.add_argument("--broker-pid", type=int, help="also report the CPU the broker (this pid) used")
    ap.add_argument("--json", type=Path, help="also write every figure to this file")
    args = ap.parse_args()
    prefix = f"bench.{uuid.uuid4().hex[:8]}"
    load_before = os.getloadavg()
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
    faust_eps, _, lats, _ = runs[first]
    p50, p99 = percentiles(lats)
    n_lat = latency_count(args)
    print(f"load before the run (1/5/15 min): {' / '.join(f'{x:.2f}' for x in load_before)}")
    for (accounts, workers), (eps, produce_eps, _, usage) in runs.items():
        print(
            f"faust workers ({workers}x, {PARTITIONS} partitions, {accounts} accounts): "
            f"{eps:,.0f} ev/s ({args.records} outcomes; producing them alone: "
            f"{produce_eps:,.0f} ev/s); {eps / faust_eps:.1%} of {first[0]}x{first[1]}; "
            f"{usage.text()}; {usage.per_core(eps):,.0f} ev per worker CPU-second"
        )
    print(f"aiokafka relay: {relay_eps:,.0f} ev/s; ratio {faust_eps / relay_eps:.1%}")
    print(
        f"latency produce→triggers at {args.rate:.0f} ev/s ({first[0]}x{first[1]}): "
        f"p50 {p50:.0f} ms, p99 {p99:.0f} ms ({len(lats)}/{n_lat} measured)"
    )
    for guarantee, (eps, pass_lats, usage) in ceiling.items():
        q50, q99 = percentiles(pass_lats)
        print(
            f"Faust passthrough ({guarantee}, {args.workers}x): {eps:,.0f} ev/s "
            f"({eps / relay_eps:.1%} of the relay); Tidegate {first[0]}x{first[1]} at "
            f"{faust_eps / eps:.2f}x of it; latency p50 {q50:.0f} ms, p99 {q99:.0f} ms "
            f"({len(pass_lats)}/{n_lat}); {usage.text()}; "
            f"{usage.per_core(eps):,.0f} ev per worker CPU-second"
        )
    ratios: dict[str, float] = {}
    one = next((eps for (a, w), (eps, *_) in runs.items() if a == 1 and w == first[1]), None)
    if one is not None:
        ratios[f"1x{first[1]} / {first[0]}x{first[1]}"] = one / faust_eps
    solo = next((eps for (a, w), (eps, *_) in runs.items() if a == first[0] and w == 1), None)
    if solo is not None and first[1] != 1:
        ratios[f"{first[0]}x{first[1]} / {first[0]}x1"] = faust_eps / solo
    for name, ratio in ratios.items():
        print(f"ratio {name}: {ratio:.2f}")
    if args.json:
        args.json.write_bytes(
            orjson.dumps(
                {
                    "records": args.records,
                    "rate": args.rate,
                    "load_before": load_before,
                    "relay_eps": relay_eps,
                    "workloads": [
                        {
                            "accounts": a,
                            "workers": w,
                            "eps": eps,
                            "produce_eps": produce_eps,
                            "usage": asdict(usage),
                        }
                        for (a, w), (eps, produce_eps, _, usage) in runs.items()
                    ],
                    "latency_ms": {"p50": p50, "p99": p99, "measured": len(lats), "sent": n_lat},
                    "passthrough": {
                        g: {
                            "eps": eps,
                            "tidegate_ratio": faust_eps / eps,
                            "latency_ms": dict(zip(("p50", "p99"), percentiles(pl), strict=True)),
                            "usage": asdict(usage),
                        }
                        for g, (eps, pl, usage) in ceiling.items()
                    },
                    "ratios": ratios,
                },
                option=orjson.OPT_INDENT_2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
