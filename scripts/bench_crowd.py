#!/usr/bin/env python3
"""A crowd against one `tidegate run`: SFTP clients uploading at once and concurrent HTTP
connections; checks every record's outcome once and reports drain time, peak RSS and p99.

    .venv/bin/python scripts/bench_crowd.py [--sftp-clients 100] [--http-connections 200]

The server runs as its own process on a fresh data directory (the embedded runtime); its
RSS is sampled from /proc every 0.1 s (VmRSS, not the high-water mark a child inherits).
Exit status 1 when a count is wrong (a record lost or decided twice).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import paramiko


def _start(data: Path, log: Path | None = None) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    stderr = log.open("w") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "tidegate.cli", "run", "--data", str(data)),
            *("--sftp-port", "0", "--ftp-port", "-1", "--http-port", "0", "--settle", "0.5"),
        ],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "tidegate uploads" in line:
            break
    text = "".join(lines)
    found = {
        "user": re.search(r"SFTP user (\S+)\s+password (\S+)", text),
        "passcode": re.search(r"X-CleverTap-Passcode (\S+)", text),
        "sftp": re.search(r"sftp -P (\d+)", text),
        "http": re.search(r"http://127\.0\.0\.1:(\d+)/", text),
    }
    if not all(found.values()):
        proc.kill()
        raise SystemExit(f"tidegate run did not start:\n{text}")
    user, passcode, sftp, http = (found[k] for k in ("user", "passcode", "sftp", "http"))
    assert user and passcode and sftp and http
    return proc, {
        "user": user[1],
        "password": user[2],
        "passcode": passcode[1],
        "sftp_port": int(sftp[1]),
        "http_port": int(http[1]),
    }


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kib = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                status = Path(f"/proc/{self.pid}/status").read_text()
            except OSError:
                return
            match = re.search(r"VmRSS:\s+(\d+)", status)
            if match:
                self.peak_kib = max(self.peak_kib, int(match[1]))
            time.sleep(0.1)


def _sftp_upload(creds: dict[str, Any], index: int, lines: int) -> float:
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 300))
    body = "".join(
        json.dumps({"user_id": f"s{index}-{i}", "event_type": "viewed", "timestamp": ts}) + "\n"
        for i in range(lines)
    ).encode()
    started = time.perf_counter()
    transport = paramiko.Transport(("127.0.0.1", creds["sftp_port"]))
    try:
        transport.connect(username=creds["user"], password=creds["password"])
        sftp = paramiko.SFTPClient.from_transport(transport)
        assert sftp is not None
        with sftp.open(f"/events/crowd-{index}.jsonl", "wb") as remote:
            remote.write(body)
        sftp.close()
    finally:
        transport.close()
    return time.perf_counter() - started


async def _http_crowd(
    creds: dict[str, Any], connections: int, requests: int, records: int
) -> tuple[list[float], dict[int, int]]:
    headers = {"X-CleverTap-Account-Id": "demo", "X-CleverTap-Passcode": creds["passcode"]}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{creds['http_port']}", limits=limits, timeout=120
    ) as client:

        async def one(worker: int) -> None:
            ts = int(time.time()) - 60
            for n in range(requests):
                body = {
                    "d": [
                        {
                            "identity": f"h{worker}-{n}-{i}@example.com",
                            "ts": ts,
                            "type": "event",
                            "evtName": "Viewed",
                            "evtData": {},
                        }
                        for i in range(records)
                    ]
                }
                started = time.perf_counter()
                try:
                    response = await client.post("/1/upload", json=body, headers=headers)
                    status = response.status_code
                except httpx.HTTPError as error:  # no answer: counted, never retried
                    status = -1
                    print(f"HTTP error: {error!r}", file=sys.stderr)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1

        await asyncio.gather(*(one(w) for w in range(connections)))
    return latencies, statuses


def _accepted(data: Path) -> list[str]:
    path = data / "out" / "accepted.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["event_id"] for line in path.read_bytes().splitlines() if line]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sftp-clients", type=int, default=100)
    parser.add_argument("--sftp-lines", type=int, default=2000)
    parser.add_argument("--http-connections", type=int, default=200)
    parser.add_argument("--http-requests", type=int, default=10, help="per connection")
    parser.add_argument("--http-records", type=int, default=50, help="per request")
    parser.add_argument("--server-log", type=Path, help="where the server's log goes")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-crowd-") as tmp:
        data = Path(tmp) / "data"
        proc, creds = _start(data, args.server_log)
        sampler = RssSampler(proc.pid)
        sampler.start()
        try:
            started = time.perf_counter()
            with ThreadPoolExecutor(args.sftp_clients) as pool:
                sftp_futures = [
                    pool.submit(_sftp_upload, creds, i, args.sftp_lines)
                    for i in range(args.sftp_clients)
                ]
                latencies, statuses = asyncio.run(
                    _http_crowd(creds, args.http_connections, args.http_requests, args.http_records)
                )
                sftp_times = [f.result() for f in sftp_futures]
            sent = time.perf_counter() - started
            expected = (
                args.sftp_clients * args.sftp_lines + statuses.get(200, 0) * args.http_records
            )
            deadline = time.monotonic() + 900
            while len(accepted := _accepted(data)) < expected and time.monotonic() < deadline:
                time.sleep(0.2)
            drained = time.perf_counter() - started
            time.sleep(2.0)
            accepted = _accepted(data)
        finally:
            sampler.stop.set()
            proc.terminate()
            proc.wait(60)

    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan")
    ok = len(accepted) == expected == len(set(accepted)) and set(statuses) == {200}
    report = {
        "sftp_clients": args.sftp_clients,
        "sftp_lines_each": args.sftp_lines,
        "http_connections": args.http_connections,
        "http_requests": len(latencies),
        "http_statuses": statuses,
        "records_expected": expected,
        "records_accepted": len(accepted),
        "records_twice": len(accepted) - len(set(accepted)),
        "seconds_to_send": round(sent, 2),
        "seconds_to_drain": round(drained, 2),
        "sftp_upload_seconds_median": round(statistics.median(sftp_times), 3),
        "http_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "http_p99_ms": round(p99 * 1000, 1),
        "server_peak_rss_mib": round(sampler.peak_kib / 1024, 1),
        "ok": ok,
    }
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
