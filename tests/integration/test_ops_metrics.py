"""`/metrics` of a running instance after a mixed upload holds the counts the outputs hold."""

from __future__ import annotations

import json
import time
from collections import Counter

import httpx
import paramiko
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_run_end_to_end import Running, _events, running  # noqa: F401


def scrape(r: Running) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{r.http_port}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_after_a_mixed_upload_match_the_outputs(running: Running) -> None:  # noqa: F811
    body = _events(6, "m") + _events(2, "m") + b"{broken\n" + b'{"event_type": "x"}\n'
    transport = paramiko.Transport(("127.0.0.1", running.sftp_port))
    transport.connect(username=running.user, password=running.password)
    client = paramiko.SFTPClient.from_transport(transport)
    assert client is not None
    with client.open("events/mixed.jsonl", "wb") as handle:
        handle.write(body)
    during = scrape(running)
    client.close()
    transport.close()
    assert during[("tidegate_sftp_sessions", ())] >= 1

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        samples = scrape(running)
        if samples.get(("tidegate_uploads_total", (("status", "partial"),))):
            break
        time.sleep(0.1)
    out = running.data / "out"
    accepted = out.joinpath("accepted.jsonl").read_bytes().splitlines()
    dead = [json.loads(line) for line in out.joinpath("deadletter.jsonl").read_bytes().splitlines()]
    codes = Counter(d.get("error_code") or d.get("code") for d in dead)
    acct = ("account", "demo")
    assert samples[("tidegate_records_total", (acct, ("code", ""), ("outcome", "accepted")))] == (
        len(accepted)
    )
    [upload] = httpx.get(
        f"http://127.0.0.1:{running.http_port}/uploads",
        headers={"Authorization": f"Bearer {running.api_key}"},
        timeout=10,
    ).json()["uploads"]
    duplicate = samples[("tidegate_records_total", (acct, ("code", ""), ("outcome", "duplicate")))]
    assert duplicate == upload["counts"]["duplicate"]
    assert len(accepted) == upload["counts"]["accepted"] == 8
    for code, n in codes.items():
        key = ("tidegate_records_total", (acct, ("code", code), ("outcome", "rejected")))
        assert samples[key] == n
    assert sum(codes.values()) == 2
    assert samples[("tidegate_upload_duration_seconds_count", (("status", "partial"),))] == 1
    assert samples[("tidegate_handovers_total", (("result", "accepted"), ("source", "sftp")))] == 1
    assert samples[("tidegate_handover_bytes_total", (("source", "sftp"),))] == len(body)
    time.sleep(1.2)
    assert scrape(running)[("tidegate_decision_lag_seconds", ())] == 0
