"""The worker's periodic report: counts, commit percentiles, reset after each report."""

from __future__ import annotations

from streams.kafka.stats import WorkerStats, percentile


def test_percentile_is_the_nearest_rank() -> None:
    ordered = [float(n) for n in range(1, 101)]
    assert percentile(ordered, 0.5) == 50.0
    assert percentile(ordered, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([1.0, 2.0], 0.01) == 1.0


def test_report_gives_rate_and_commit_percentiles_then_starts_over() -> None:
    stats = WorkerStats()
    stats.messages = 1200
    for ms in (40, 10, 30, 20, 200):
        stats.add_commit(ms / 1000, 4)
    text = stats.report(60.0)
    assert text == (
        "1200 messages in 60 s (20.0/s); 5 commits of 4.0 partitions on average,"
        " p50 30 ms, p99 200 ms, max 200 ms"
    )
    assert stats.report(60.0) is None  # nothing since the last report


def test_report_without_commits_counts_messages_only() -> None:
    stats = WorkerStats()
    stats.messages = 5
    assert stats.report(10.0) == "5 messages in 10 s (0.5/s)"
