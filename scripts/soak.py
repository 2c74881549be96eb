#!/usr/bin/env python3
"""A soak: API and SFTP load at a steady rate on one `tidegate run` (embedded runtime) for a
given duration; RSS, p99 latency and decision lag sampled every interval, plotted to a PNG.

    .venv/bin/python scripts/soak.py --minutes 60 --out /work/soak-out/soak

Decision lag: records acknowledged (HTTP 200, or an SFTP file closed) and not yet in the
outputs, at the sample. At the end the load stops, the backlog drains, and the script checks
that the acknowledged records equal the outputs (exit 1 otherwise). Writes OUT.json (the
samples and the summary) and OUT.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import paramiko

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_crowd import RssSampler, _start


class Load:
    """Counts what was acknowledged; keeps the latencies of the current interval."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acked = 0
        self.errors: Counter[str] = Counter()  # by kind: an HTTP status or an exception
        self.latencies: list[float] = []
        self.stop = threading.Event()

    def take_latencies(self) -> list[float]:
        with self.lock:
            taken, self.latencies = self.latencies, []
        return taken


def _api_worker(load: Load, creds: dict[str, Any], rate: float, records: int, wid: int) -> None:
    headers = {"X-CleverTap-Account-Id": "demo", "X-CleverTap-Passcode": creds["passcode"]}
    period = 1.0 / rate
    n = 0
    with httpx.Client(base_url=f"http://127.0.0.1:{creds['http_port']}", timeout=60) as client:
        next_at = time.monotonic()
        while not load.stop.is_set():
            ts = int(time.time()) - 30
            body = {
                "d": [
                    {
                        "identity": f"a{wid}-{n}-{i}@example.com",
                        "ts": ts,
                        "type": "event",
                        "evtName": "Viewed",
                        "evtData": {},
                    }
                    for i in range(records)
                ]
            }
            n += 1
            started = time.perf_counter()
            try:
                response = client.post("/1/upload", json=body, headers=headers)
                failure = None if response.status_code == 200 else f"http {response.status_code}"
            except httpx.HTTPError as exc:
                failure = f"http {type(exc).__name__}"
            elapsed = time.perf_counter() - started
            with load.lock:
                load.latencies.append(elapsed)
                if failure is None:
                    load.acked += records
                else:
                    load.errors[failure] += 1
            next_at += period
            time.sleep(max(0.0, next_at - time.monotonic()))


def _sftp_worker(load: Load, creds: dict[str, Any], every: float, lines: int) -> None:
    n = 0
    while not load.stop.is_set():
        ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
        body = "".join(
            json.dumps({"user_id": f"f{n}-{i}", "event_type": "viewed", "timestamp": ts}) + "\n"
            for i in range(lines)
        ).encode()
        try:
            transport = paramiko.Transport(("127.0.0.1", creds["sftp_port"]))
            transport.connect(username=creds["user"], password=creds["password"])
            sftp = paramiko.SFTPClient.from_transport(transport)
            assert sftp is not None
            with sftp.open(f"/events/soak-{n}.jsonl", "wb") as remote:
                remote.write(body)
            sftp.close()
            transport.close()
            with load.lock:
                load.acked += lines
        except (paramiko.SSHException, OSError) as exc:
            with load.lock:
                load.errors[f"sftp {type(exc).__name__}: {exc}"[:120]] += 1
        n += 1
        load.stop.wait(every)


def _outputs(data: Path) -> int:
    total = 0
    for name in ("accepted", "deadletter"):
        path = data / "out" / f"{name}.jsonl"
        if path.exists():
            with path.open("rb") as handle:
                total += sum(
                    chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b"")
                )
    return total


def _plot(samples: list[dict[str, float]], png: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s["minute"] for s in samples]
    fig, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    series = (
        ("server_rss_mib", "RSS (MiB)"),
        ("p99_ms", "API p99 (ms)"),
        ("lag_records", "decision lag (records)"),
    )
    for ax, (key, label) in zip(axes, series, strict=True):
        ax.plot(minutes, [s[key] for s in samples], marker="o")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel("minutes")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--sample-seconds", type=float, default=60.0)
    parser.add_argument("--api-workers", type=int, default=4)
    parser.add_argument("--api-rate", type=float, default=5.0, help="requests/s per worker")
    parser.add_argument("--api-records", type=int, default=50, help="records per request")
    parser.add_argument("--sftp-every", type=float, default=10.0, help="seconds between files")
    parser.add_argument("--sftp-lines", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=Path("soak"))
    parser.add_argument("--server-log", type=Path, help="where the server's log goes")
    args = parser.parse_args()

    load = Load()
    samples: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        data = Path(tmp) / "data"
        proc, creds = _start(data, args.server_log)
        rss = RssSampler(proc.pid)
        rss.start()
        threads = [
            threading.Thread(
                target=_api_worker,
                args=(load, creds, args.api_rate, args.api_records, w),
                daemon=True,
            )
            for w in range(args.api_workers)
        ]
        threads.append(
            threading.Thread(
                target=_sftp_worker,
                args=(load, creds, args.sftp_every, args.sftp_lines),
                daemon=True,
            )
        )
        started = time.monotonic()
        try:
            for thread in threads:
                thread.start()
            end = started + args.minutes * 60
            while time.monotonic() < end:
                time.sleep(min(args.sample_seconds, max(0.0, end - time.monotonic())))
                latencies = sorted(load.take_latencies())
                with load.lock:
                    acked = load.acked
                current = Path(f"/proc/{proc.pid}/status").read_text()
                rss_kib = int(current.split("VmRSS:")[1].split()[0])
                sample = {
                    "minute": round((time.monotonic() - started) / 60, 2),
                    "server_rss_mib": round(rss_kib / 1024, 1),
                    "p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000, 1)
                    if latencies
                    else 0.0,
                    "requests": len(latencies),
                    "acked": acked,
                    "lag_records": max(0, acked - _outputs(data)),
                }
                samples.append(sample)
                print(json.dumps(sample), flush=True)
            load.stop.set()
            for thread in threads:
                thread.join(120)
            deadline = time.monotonic() + 600
            while _outputs(data) < load.acked and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(3.0)  # (a late SFTP file settles; nothing more may come)
            outputs = _outputs(data)
        finally:
            rss.stop.set()
            proc.terminate()
            proc.wait(60)

    summary = {
        "minutes": args.minutes,
        "api_requests_per_s": args.api_workers * args.api_rate,
        "api_records_per_request": args.api_records,
        "sftp_lines_per_file": args.sftp_lines,
        "sftp_every_s": args.sftp_every,
        "acknowledged": load.acked,
        "outputs": outputs,
        "errors": sum(load.errors.values()),
        "errors_by_kind": dict(load.errors),
        "rss_mib_median": statistics.median(s["server_rss_mib"] for s in samples),
        "rss_mib_peak_sampled": round(rss.peak_kib / 1024, 1),
        "p99_ms_median": statistics.median(s["p99_ms"] for s in samples),
        "lag_records_median": statistics.median(s["lag_records"] for s in samples),
        "ok": outputs == load.acked and not load.errors,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(
        json.dumps({"summary": summary, "samples": samples}, indent=2)
    )
    _plot(
        samples,
        args.out.with_suffix(".png"),
        f"tidegate run soak: {summary['api_requests_per_s']:g} API req/s x "
        f"{args.api_records} + {args.sftp_lines} lines/{args.sftp_every:g} s SFTP",
    )
    print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
