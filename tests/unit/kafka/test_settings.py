"""The Kafka runtime's settings: read once from `TIDEGATE_*` values, a bad one named."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from streams.core.config_values import SettingError
from streams.kafka.settings import KafkaSettings
from streams.kafka.topics import Topics


def test_no_values_give_the_defaults() -> None:
    assert KafkaSettings.from_values({}) == KafkaSettings()


def test_every_setting_is_read_from_its_variable() -> None:
    values = {
        "TIDEGATE_BROKER": "kafka://kafka-1:9093",
        "TIDEGATE_PARTITIONS": "16",
        "TIDEGATE_STATE": "/var/lib/tidegate/faust",
        "TIDEGATE_TOPIC_PREFIX": "acme",
        "TIDEGATE_APP_ID": "acme-workers",
        "TIDEGATE_GUARANTEE": "at_least_once",
        "TIDEGATE_COMMIT_EVERY": "5000",
        "TIDEGATE_COMMIT_INTERVAL": "0.5",
        "TIDEGATE_SESSION_TIMEOUT": "30",
        "TIDEGATE_STREAM_BUFFER": "4096",
        "TIDEGATE_STANDBY_REPLICAS": "1",
        "TIDEGATE_BATCH": "250",
        "TIDEGATE_PRODUCER_LINGER_MS": "20",
        "TIDEGATE_PRODUCER_BATCH_BYTES": "65536",
        "TIDEGATE_TXN_RETRY_BACKOFF_MS": "50",
        "TIDEGATE_STATS_SECONDS": "0",
        "TIDEGATE_DEBUG_EOS": "yes",
        "TIDEGATE_SWITCH_INTERVAL": "0.005",
        "TIDEGATE_LOG_LEVEL": "info",
        "TIDEGATE_METRICS_PORT": "9464",
        "TIDEGATE_METRICS_HOST": "0.0.0.0",
    }
    read = KafkaSettings.from_values(values)
    defaults = KafkaSettings()
    # every field differs from its default: none of them is left unread
    assert [
        f.name for f in fields(KafkaSettings) if getattr(read, f.name) == getattr(defaults, f.name)
    ] == []
    assert read.state_dir == Path("/var/lib/tidegate/faust")
    assert read.log_level == "INFO"
    assert not read.exactly_once
    assert read.topics == Topics.of("acme")
    assert read.topics.raw == "acme.events.raw"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("TIDEGATE_BATCH", "ten"),
        ("TIDEGATE_PARTITIONS", "0"),
        ("TIDEGATE_GUARANTEE", "exactly-once"),
        ("TIDEGATE_COMMIT_INTERVAL", "soon"),
        ("TIDEGATE_DEBUG_EOS", "maybe"),
        ("TIDEGATE_LOG_LEVEL", "LOUD"),
        ("TIDEGATE_METRICS_PORT", "x"),
        ("TIDEGATE_METRICS_PORT", "70000"),
    ],
)
def test_a_bad_value_names_its_variable(name: str, text: str) -> None:
    with pytest.raises(SettingError) as raised:
        KafkaSettings.from_values({name: text})
    assert raised.value.name == name
    assert str(raised.value).startswith(f"{name}={text!r}")


def test_metrics_are_off_unless_a_port_is_given() -> None:
    assert KafkaSettings.from_values({}).metrics_port is None
    assert KafkaSettings.from_values({"TIDEGATE_METRICS_PORT": ""}).metrics_port is None
    assert KafkaSettings.from_values({"TIDEGATE_METRICS_PORT": "0"}).metrics_port == 0


def test_topics_of_a_prefix_are_all_under_it() -> None:
    topics = Topics.of("t1")
    assert len(set(topics.all)) == 10
    assert all(name.startswith("t1.") for name in topics.all)
    assert topics.configs[topics.status] == {"cleanup.policy": "compact"}
    assert topics.configs[topics.raw]["cleanup.policy"] == "delete"


def test_worker_with_a_bad_value_exits_2_with_one_line() -> None:
    env = {**os.environ, "TIDEGATE_BATCH": "ten", "TIDEGATE_BROKER": "kafka://127.0.0.1:1"}
    done = subprocess.run(
        [sys.executable, "-m", "tidegate.cli", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "tidegate: TIDEGATE_BATCH='ten': not a whole number"
        " (from the environment variable TIDEGATE_BATCH)"
    ]


def test_a_bad_flag_is_named_by_its_variable() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tidegate.cli", "worker", "--partitions", "x"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "tidegate: TIDEGATE_PARTITIONS='x': not a whole number (from the flag --partitions)"
    ]
