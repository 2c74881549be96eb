"""A worker's periodic numbers: messages processed and commit durations since the last report."""

from __future__ import annotations

from dataclasses import dataclass, field


def percentile(ordered: list[float], fraction: float) -> float:
    """The nearest-rank percentile of `ordered` (ascending, not empty)."""
    rank = max(1, -(-len(ordered) * fraction // 1))  # ceil(n * fraction), at least 1
    return ordered[int(rank) - 1]


@dataclass(slots=True)
class WorkerStats:
    """What a worker did between two reports; `report` summarizes and starts over."""

    messages: int = 0  # raw records, hops, announcements and outcome messages
    commits: list[float] = field(default_factory=list)  # seconds per commit
    partitions: int = 0  # transactions committed (a commit covers several partitions)

    def add_commit(self, seconds: float, partitions: int) -> None:
        self.commits.append(seconds)
        self.partitions += partitions

    def report(self, elapsed: float) -> str | None:
        """One log line for the last `elapsed` seconds (None when nothing happened)."""
        if not self.messages and not self.commits:
            return None
        rate = self.messages / elapsed if elapsed > 0 else 0.0
        text = f"{self.messages} messages in {elapsed:.0f} s ({rate:,.1f}/s)"
        if self.commits:
            ordered = sorted(self.commits)
            text += (
                f"; {len(ordered)} commits of {self.partitions / len(ordered):.1f} partitions"
                f" on average, p50 {percentile(ordered, 0.5) * 1000:.0f} ms,"
                f" p99 {percentile(ordered, 0.99) * 1000:.0f} ms,"
                f" max {ordered[-1] * 1000:.0f} ms"
            )
        self.messages = 0
        self.commits = []
        self.partitions = 0
        return text
