"""The Kafka runtime's start-up settings, read once from the `TIDEGATE_*` values and passed down."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from streams.core.config_values import (
    SettingError,
    read_bool,
    read_choice,
    read_float,
    read_int,
    read_str,
)
from streams.kafka.topics import Topics

GUARANTEES = ("exactly_once", "at_least_once")
LOG_LEVELS = ("DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Every setting of `tidegate worker` and of the Kafka producers of `run`/`import --broker`
    (docs/CONFIGURATION.md); the defaults are the ones measured in docs/OPERATING_KAFKA.md."""

    broker: str = "kafka://127.0.0.1:9092"  # TIDEGATE_BROKER
    partitions: int = 8  # TIDEGATE_PARTITIONS: of every topic (co-partitioned)
    state_dir: Path = Path("data/faust")  # TIDEGATE_STATE: the workers' RocksDB tables
    topic_prefix: str = "tidegate"  # TIDEGATE_TOPIC_PREFIX
    app_id: str = "tidegate"  # TIDEGATE_APP_ID: the Faust app (consumer group, changelogs)
    guarantee: str = "exactly_once"  # TIDEGATE_GUARANTEE
    # Commits end the partitions' transactions: outputs become visible to read_committed
    # consumers at a commit, so the interval bounds the latency.
    commit_every: int = 20_000  # TIDEGATE_COMMIT_EVERY: messages
    commit_interval: float = 0.1  # TIDEGATE_COMMIT_INTERVAL: seconds
    session_timeout: float = 10.0  # TIDEGATE_SESSION_TIMEOUT: a dead worker's partitions move
    stream_buffer: int = 16_384  # TIDEGATE_STREAM_BUFFER: Faust's stream buffer
    standby_replicas: int = 0  # TIDEGATE_STANDBY_REPLICAS
    batch: int = 1000  # TIDEGATE_BATCH: records a decide agent works on together
    producer_linger_ms: int = 5  # TIDEGATE_PRODUCER_LINGER_MS
    producer_batch_bytes: int = 512 * 1024  # TIDEGATE_PRODUCER_BATCH_BYTES
    # The transactional producers retry after 10 ms, not aiokafka's 100: a transaction begun
    # right after a commit is refused with CONCURRENT_TRANSACTIONS until the broker has
    # written the previous one's markers (a few ms), and aiokafka waits the full backoff
    # before asking again when the new transaction's first request adds the consumer offsets
    # (a partition with nothing to send). Measured at 2,000 events/s: one commit in ten took
    # 112 ms instead of 18, and the p99 from produce to the triggers topic went from 460 ms
    # to 299 ms.
    txn_retry_backoff_ms: int = 10  # TIDEGATE_TXN_RETRY_BACKOFF_MS
    stats_seconds: float = 60.0  # TIDEGATE_STATS_SECONDS: the stats line (0: none)
    debug_eos: bool = False  # TIDEGATE_DEBUG_EOS: log admissions and commits
    switch_interval: float = 0.0002  # TIDEGATE_SWITCH_INTERVAL: sys.setswitchinterval
    log_level: str = "WARN"  # TIDEGATE_LOG_LEVEL
    metrics_port: int | None = None  # TIDEGATE_METRICS_PORT: Prometheus series (0: any port)
    metrics_host: str = "127.0.0.1"  # TIDEGATE_METRICS_HOST: the address they are served on

    NAMES: ClassVar[tuple[str, ...]] = (
        "TIDEGATE_METRICS_PORT",
        "TIDEGATE_BROKER",
        "TIDEGATE_PARTITIONS",
        "TIDEGATE_STATE",
        "TIDEGATE_TOPIC_PREFIX",
        "TIDEGATE_APP_ID",
        "TIDEGATE_GUARANTEE",
        "TIDEGATE_COMMIT_EVERY",
        "TIDEGATE_COMMIT_INTERVAL",
        "TIDEGATE_SESSION_TIMEOUT",
        "TIDEGATE_STREAM_BUFFER",
        "TIDEGATE_STANDBY_REPLICAS",
        "TIDEGATE_BATCH",
        "TIDEGATE_PRODUCER_LINGER_MS",
        "TIDEGATE_PRODUCER_BATCH_BYTES",
        "TIDEGATE_TXN_RETRY_BACKOFF_MS",
        "TIDEGATE_STATS_SECONDS",
        "TIDEGATE_DEBUG_EOS",
        "TIDEGATE_SWITCH_INTERVAL",
        "TIDEGATE_LOG_LEVEL",
        "TIDEGATE_METRICS_HOST",
    )

    @classmethod
    def from_values(cls, values: Mapping[str, str]) -> KafkaSettings:
        """The settings from `values` (environment variable names → text, flags merged over
        the environment by the command line); a bad value raises `SettingError`."""
        d = cls()
        metrics_port = None
        if values.get("TIDEGATE_METRICS_PORT", "").strip():
            metrics_port = read_int(values, "TIDEGATE_METRICS_PORT", 0, minimum=0)
            if metrics_port > 65535:
                raise SettingError(
                    "TIDEGATE_METRICS_PORT", values["TIDEGATE_METRICS_PORT"], "not a port"
                )
        return cls(
            broker=read_str(values, "TIDEGATE_BROKER", d.broker),
            partitions=read_int(values, "TIDEGATE_PARTITIONS", d.partitions, minimum=1),
            state_dir=Path(read_str(values, "TIDEGATE_STATE", str(d.state_dir))),
            topic_prefix=read_str(values, "TIDEGATE_TOPIC_PREFIX", d.topic_prefix),
            app_id=read_str(values, "TIDEGATE_APP_ID", d.app_id),
            guarantee=read_choice(values, "TIDEGATE_GUARANTEE", d.guarantee, GUARANTEES),
            commit_every=read_int(values, "TIDEGATE_COMMIT_EVERY", d.commit_every, minimum=1),
            commit_interval=read_float(
                values, "TIDEGATE_COMMIT_INTERVAL", d.commit_interval, minimum=0.001
            ),
            session_timeout=read_float(
                values, "TIDEGATE_SESSION_TIMEOUT", d.session_timeout, minimum=1.0
            ),
            stream_buffer=read_int(values, "TIDEGATE_STREAM_BUFFER", d.stream_buffer, minimum=1),
            standby_replicas=read_int(
                values, "TIDEGATE_STANDBY_REPLICAS", d.standby_replicas, minimum=0
            ),
            batch=read_int(values, "TIDEGATE_BATCH", d.batch, minimum=1),
            producer_linger_ms=read_int(
                values, "TIDEGATE_PRODUCER_LINGER_MS", d.producer_linger_ms, minimum=0
            ),
            producer_batch_bytes=read_int(
                values, "TIDEGATE_PRODUCER_BATCH_BYTES", d.producer_batch_bytes, minimum=1024
            ),
            txn_retry_backoff_ms=read_int(
                values, "TIDEGATE_TXN_RETRY_BACKOFF_MS", d.txn_retry_backoff_ms, minimum=0
            ),
            stats_seconds=read_float(values, "TIDEGATE_STATS_SECONDS", d.stats_seconds, minimum=0),
            debug_eos=read_bool(values, "TIDEGATE_DEBUG_EOS", d.debug_eos),
            switch_interval=read_float(
                values, "TIDEGATE_SWITCH_INTERVAL", d.switch_interval, minimum=1e-6
            ),
            log_level=_log_level(values, d.log_level),
            metrics_port=metrics_port,
            metrics_host=read_str(values, "TIDEGATE_METRICS_HOST", d.metrics_host),
        )

    @property
    def topics(self) -> Topics:
        return Topics.of(self.topic_prefix)

    @property
    def exactly_once(self) -> bool:
        return self.guarantee == "exactly_once"


def _log_level(values: Mapping[str, str], default: str) -> str:
    """TIDEGATE_LOG_LEVEL in any case, one of LOG_LEVELS."""
    level = read_str(values, "TIDEGATE_LOG_LEVEL", default).upper()
    if level not in LOG_LEVELS:
        raise SettingError(
            "TIDEGATE_LOG_LEVEL",
            values["TIDEGATE_LOG_LEVEL"],
            "expected one of " + ", ".join(LOG_LEVELS),
        )
    return level
