"""A worker's Prometheus series (`worker --metrics-port`): messages, outcomes, commits, lag."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# a commit covers every partition with work (a transaction each), usually a few ms to 100 ms
COMMIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class WorkerMetrics:
    """The series of one worker, on a registry of its own (one scrape target per worker)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages = Counter(
            "tidegate_worker_messages",
            "Messages consumed and processed, per input topic",
            ["topic"],
            registry=self.registry,
        )
        self.outcomes = Counter(
            "tidegate_worker_outcomes",
            "Records decided by this worker, per outcome (accepted, duplicate, rejected)",
            ["outcome"],
            registry=self.registry,
        )
        self.commits = Counter(
            "tidegate_worker_transaction_commits",
            "Transactions committed (one per partition and commit)",
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "tidegate_worker_commit_seconds",
            "Duration of one commit of every partition with work",
            buckets=COMMIT_BUCKETS,
            registry=self.registry,
        )
        self.lag = Gauge(
            "tidegate_worker_consumer_lag",
            "Messages of an owned input partition not processed yet (its last stable offset "
            "minus the next offset to process; transaction markers count as messages)",
            ["topic", "partition"],
            registry=self.registry,
        )

    def consumed(self, topic: str, count: int) -> None:
        self.messages.labels(topic).inc(count)

    def decided(self, counts: Mapping[str, int]) -> None:
        for outcome, count in counts.items():
            if count:
                self.outcomes.labels(outcome).inc(count)

    def committed(self, seconds: float, transactions: int) -> None:
        self.commit_seconds.observe(seconds)
        self.commits.inc(transactions)

    def set_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        """The lag of each owned partition; partitions no longer owned disappear."""
        self.lag.clear()
        for (topic, partition), lag in lags.items():
            self.lag.labels(topic, str(partition)).set(lag)

    def serve(self, host: str, port: int) -> int:
        """Serves `/metrics` from a thread; returns the port (0 asks for any free one)."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port)
