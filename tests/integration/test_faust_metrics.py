"""`tidegate worker --metrics-port`: the series two workers serve, scraped after a run."""

from __future__ import annotations

import asyncio
import re
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.kafka import topics as T
from streams.kafka.outputs import outcome_records
from streams.kafka.topics import Topics
from tests.integration.faust_helpers import (
    PARTITIONS,
    Workers,
    header_ids,
    make_uploads,
    produce_in_waves,
    read_topic,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SERVING = re.compile(r"metrics on http://([\d.]+):(\d+)/metrics")


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of the page: name → [(labels, value)]."""
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def test_worker_metrics_count_what_the_workers_published(
    kafka_bootstrap: str, tmp_path: Path, prefix: str
) -> None:
    topics = Topics.of(prefix)
    uploads = make_uploads(tmp_path / "files", 5000)
    for upload in uploads:
        upload.upload_id = str(uuid.uuid4())
    asyncio.run(T.ensure_topics(kafka_bootstrap, topics, PARTITIONS))
    workers = Workers(kafka_bootstrap, tmp_path, prefix, env={"TIDEGATE_METRICS_PORT": "0"})
    try:
        workers.start(1)
        workers.start(2)
        statuses = produce_in_waves(kafka_bootstrap, topics, uploads, timeout=420)
        records = asyncio.run(read_topic(kafka_bootstrap, topics.outcomes))
        accepted = asyncio.run(read_topic(kafka_bootstrap, topics.accepted, quiet=1.0))
        deadletters = asyncio.run(read_topic(kafka_bootstrap, topics.deadletter, quiet=1.0))
        urls = []
        for n in (1, 2):
            found = SERVING.findall(workers.log(n))
            assert found, f"worker {n} does not say where its metrics are"
            host, port = found[-1]
            urls.append(f"http://{host}:{port}/metrics")
        pages = [scrape(url) for url in urls]
        # a worker restarted by the supervisor would have started its counters over
        assert workers.exits == []
    except BaseException:
        print(workers.report())
        raise
    finally:
        workers.stop()

    ledger = Counter(
        doc["outcome"] for record in records for doc in outcome_records(orjson.loads(record.value))
    )
    decided: Counter[str] = Counter()
    consumed: Counter[str] = Counter()
    commits = 0.0
    commit_count = 0.0
    lag_series = 0
    for page in pages:
        for labels, value in page.get("tidegate_worker_outcomes_total", []):
            decided[labels["outcome"]] += int(value)
        for labels, value in page.get("tidegate_worker_messages_total", []):
            consumed[labels["topic"]] += int(value)
        commits += sum(
            value for _, value in page.get("tidegate_worker_transaction_commits_total", [])
        )
        commit_count += sum(
            value for _, value in page.get("tidegate_worker_commit_seconds_count", [])
        )
        for _, value in page.get("tidegate_worker_consumer_lag", []):
            assert value >= 0
            lag_series += 1

    total = sum(int(s["counts"]["records"]) for s in statuses.values())
    assert ledger["accepted"] and ledger["duplicate"] and ledger["rejected"], ledger
    assert dict(decided) == dict(ledger)
    assert sum(decided.values()) == total
    assert decided["accepted"] == len(header_ids(accepted))
    assert decided["rejected"] == len(deadletters)
    assert consumed[topics.raw] == total
    assert consumed[topics.announce] == len(uploads)
    assert commits >= commit_count > 0
    assert lag_series > 0
