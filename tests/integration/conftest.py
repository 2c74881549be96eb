"""Fixtures for integration tests against a real Apache Kafka broker.

``kafka_bootstrap`` returns ``$KAFKA_BOOTSTRAP`` when it is set (a broker someone else
runs, e.g. scripts/test or CI). Otherwise it leases the local broker of ``scripts/kafka``:
the lease starts the broker when none is running, and the end of the session releases it,
which stops the broker only when this lease started it and no other live test session
still holds one (a broker started by hand with ``scripts/kafka start`` is left running).

Under ``CI=true`` a broker that cannot be reached or started fails the run; elsewhere the
broker tests are skipped with the reason.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from tests.integration.kafka_helpers import SESSION_TOPICS, broker_answers, delete_session_topics

REPO = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = REPO / "scripts" / "kafka"
# cold start resolves ~100 jars with Maven before the broker starts
LEASE_TIMEOUT = float(os.environ.get("KAFKA_FIXTURE_TIMEOUT", "600"))


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def broker_unavailable(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"CI=true and no Kafka broker: {reason}", pytrace=False)
    pytest.skip(f"no Kafka broker: {reason} (set KAFKA_BOOTSTRAP or run scripts/kafka start)")


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    env = os.environ.get("KAFKA_BOOTSTRAP", "").strip()
    if env:
        if not asyncio.run(broker_answers(env, timeout=30.0)):
            broker_unavailable(f"KAFKA_BOOTSTRAP={env} does not answer a metadata request")
        try:
            yield env
        finally:
            _delete_session_topics(env)
        return

    if not os.access(KAFKA_SCRIPT, os.X_OK):
        broker_unavailable(f"{KAFKA_SCRIPT} is missing and KAFKA_BOOTSTRAP is unset")
    holder = str(os.getpid())
    try:
        proc = subprocess.run(
            [str(KAFKA_SCRIPT), "lease", holder],
            capture_output=True,
            text=True,
            timeout=LEASE_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        broker_unavailable(f"scripts/kafka lease did not finish: {exc!r}")
    if proc.returncode != 0 or not proc.stdout.strip():
        broker_unavailable(f"scripts/kafka lease exited {proc.returncode}:\n{_tail(proc.stderr)}")
    bootstrap = proc.stdout.strip().splitlines()[-1]
    try:
        yield bootstrap
    finally:
        _delete_session_topics(bootstrap)
        subprocess.run(
            [str(KAFKA_SCRIPT), "release", holder],
            capture_output=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            check=False,
        )


def _delete_session_topics(bootstrap: str) -> None:
    try:
        asyncio.run(asyncio.wait_for(delete_session_topics(bootstrap), 120))
    except Exception as error:  # the topics are disposable: never fail the run for them
        print(f"warning: could not delete this session's test topics: {error!r}")


_topic_counter = itertools.count()


def _slug(text: str, limit: int = 60) -> str:
    # Kafka allows [a-zA-Z0-9._-]; keep to one separator style so no two names collide in
    # metric names (Kafka treats '.' and '_' as equal there).
    return re.sub(r"[^a-zA-Z0-9-]+", "-", text).strip("-")[:limit] or "t"


@pytest.fixture
def new_topic_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Factory: ``new_topic_name("suffix")`` → a topic name no other test or run uses."""
    base = f"test.{_slug(request.node.name)}.{uuid.uuid4().hex[:10]}"

    def make(suffix: str = "") -> str:
        n = next(_topic_counter)
        name = f"{base}.{n}" + (f".{_slug(suffix, 40)}" if suffix else "")
        SESSION_TOPICS.add(name)
        return name

    return make


@pytest.fixture
def topic_name(new_topic_name: Callable[[str], str]) -> str:
    """A fresh, unique topic name for this test."""
    return new_topic_name("")


@pytest.fixture
def prefix() -> str:
    """Topic names of their own for one Faust test (`Topics.of(prefix)`, and
    TIDEGATE_TOPIC_PREFIX for the workers), deleted at the end of the session with the
    app's changelog and internal topics (app id: dots as dashes)."""
    from tests.integration.kafka_helpers import SESSION_PREFIXES

    name = f"tgtest.{uuid.uuid4().hex[:8]}"
    SESSION_PREFIXES.update({f"{name}.", f"{name.replace('.', '-')}-"})
    return name
