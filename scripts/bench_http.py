#!/usr/bin/env python3
"""Throughput and latency of the HTTP upload API under 1000-record CleverTap batches.

This process serves the app (uvicorn on uvloop) over the chosen ingest; the load comes from
a separate process: `wrk` with a generated Lua script when `wrk` is on PATH (and
`--client` is `auto` or `wrk`), else a multi-connection httpx client (this script with
`--client-mode`). Bounded in count (`--requests`) and time (`--duration`). Reports
events/s, p50/p99 request latency and the number of 5xx answers, which must be 0 (the exit
status is 1 otherwise).

    scripts/bench_http.py --ingest memory              # the in-memory test double
    scripts/bench_http.py --ingest embedded            # the embedded runtime (SQLite)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ACCOUNT = "bench"
PASSCODE = "bench-passcode"
API_KEY = "bench.api-key"
HEADERS = {
    "X-CleverTap-Account-Id": ACCOUNT,
    "X-CleverTap-Passcode": PASSCODE,
    "Content-Type": "application/json; charset=utf-8",
}


def make_payload(batch: int, now: datetime) -> bytes:
    """One `{"d": [...]}` body of ``batch`` valid events, a minute old, distinct users."""
    ts = int(now.timestamp()) - 60
    records = [
        {
            "identity": f"user-{i}@example.com" if i % 2 else f"user-{i}",
            "ts": ts,
            "type": "event",
            "evtName": "Product viewed",
            "evtData": {
                "Product name": "Casio Chronograph Watch",
                "Category": "Mens Watch",
                "Price": 59.99,
                "Currency": "USD",
                "position": i,
            },
        }
        for i in range(batch)
    ]
    return orjson.dumps({"d": records})


# -- the ingest under the app -------------------------------------------------------------


@contextlib.asynccontextmanager
async def make_ingest(kind: str, workdir: Path) -> AsyncIterator[Any]:
    if kind == "memory":
        from tests.integration.memory_ingest import MemoryIngest

        yield MemoryIngest(keep_records=False)
        return
    if kind == "embedded":
        # Best effort against the embedded runtime as it stands (tidegate.commands); the
        # runtime's owner wires this for good.
        from tidegate.account_settings import load_settings
        from tidegate.commands import make_runtime

        data = workdir / "data"
        runtime = make_runtime(data, load_settings(None, data), None)
        await runtime.start()
        try:
            yield runtime
        finally:
            try:
                await runtime.stop()
            except Exception as error:  # the figures stand; say what broke, don't hang
                print(f"warning: the embedded runtime failed: {error!r}", file=sys.stderr)
                with contextlib.suppress(Exception):
                    await runtime.close_ledger()
        return
    raise SystemExit(f"unknown --ingest {kind!r}")


FINAL = frozenset({"success", "partial", "warning", "fail"})


async def drain(ingest: Any, timeout: float) -> float | None:
    """Waits until the runtime has decided every upload; the time that took (None: not
    done in time). The memory ingest decides nothing, so it is drained at once."""
    if not hasattr(ingest, "engine"):
        return 0.0
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        views = await ingest.list_uploads(ACCOUNT, limit=100_000)
        if all(v.status in FINAL for v in views):
            return time.perf_counter() - start
        await asyncio.sleep(0.25)
    return None


async def submitted_records(ingest: Any, kind: str) -> int | None:
    """Records the ingest holds (memory only: a runtime counts an upload once decided)."""
    if kind == "memory":
        return int(ingest.records_submitted)
    return None


class TimedApp:
    """Wraps the ASGI app: the server-side window from the first request's first byte to
    the last response's last byte, for throughput that does not depend on the client."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.reset()

    def reset(self) -> None:
        self.first: float | None = None
        self.last: float | None = None
        self.responses = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.first is None:
            self.first = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http":
                self.last = time.perf_counter()
                self.responses += 1

    @property
    def window(self) -> float | None:
        if self.first is None or self.last is None:
            return None
        return self.last - self.first


# -- load generators (separate processes) -------------------------------------------------

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["X-CleverTap-Account-Id"] = "{account}"
wrk.headers["X-CleverTap-Passcode"] = "{passcode}"
wrk.headers["Content-Type"] = "application/json; charset=utf-8"
local f = assert(io.open("{payload}", "rb"))
wrk.body = f:read("*a")
f:close()

local threads = {{}}
function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  n2xx, n5xx, nother, count = 0, 0, 0, 0
end

function response(status, headers, body)
  count = count + 1
  if status >= 500 then
    n5xx = n5xx + 1
  elseif status >= 200 and status < 300 then
    n2xx = n2xx + 1
  else
    nother = nother + 1
  end
  if count >= {per_thread} then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local ok, server_errors, other = 0, 0, 0
  for _, t in ipairs(threads) do
    ok = ok + t:get("n2xx")
    server_errors = server_errors + t:get("n5xx")
    other = other + t:get("nother")
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {{"client": "wrk", "requests": %d, "ok": %d, "server_errors": %d, "other": %d, '
    .. '"socket_errors": %d, "elapsed": %.6f, "p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}}\\n',
    summary.requests, ok, server_errors, other,
    e.connect + e.read + e.write + e.timeout + e.status - server_errors - other,
    summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
"""


def wrk_command(url: str, payload: Path, workdir: Path, args: argparse.Namespace) -> list[str]:
    threads = max(1, min(args.threads, args.connections))
    per_thread = max(1, args.requests // threads)
    script = workdir / "bench.lua"
    script.write_text(
        WRK_SCRIPT.format(
            account=ACCOUNT, passcode=PASSCODE, payload=str(payload), per_thread=per_thread
        )
    )
    return [
        "wrk",
        f"-t{threads}",
        f"-c{args.connections}",
        f"-d{int(args.duration)}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        f"{url}/1/upload",
    ]


async def python_client(
    url: str, payload: Path, requests: int, connections: int, duration: float
) -> dict[str, Any]:
    """Runs in the client process: ``connections`` workers share a request budget."""
    import httpx

    body = payload.read_bytes()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    budget = requests
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as client:
        start = time.perf_counter()
        deadline = start + duration

        async def worker() -> None:
            nonlocal budget, errors
            while budget > 0 and time.perf_counter() < deadline:
                budget -= 1
                sent = time.perf_counter()
                try:
                    response = await client.post("/1/upload", headers=HEADERS, content=body)
                except httpx.HTTPError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - sent)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - start
    ordered = sorted(latencies) or [0.0]

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000

    return {
        "client": "python-httpx",
        "requests": len(latencies),
        "ok": sum(n for s, n in statuses.items() if 200 <= s < 300),
        "server_errors": sum(n for s, n in statuses.items() if s >= 500),
        "other": sum(n for s, n in statuses.items() if s < 200 or 300 <= s < 500),
        "socket_errors": errors,
        "elapsed": elapsed,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "max_ms": ordered[-1] * 1000,
        "mean_ms": statistics.fmean(ordered) * 1000,
    }


def client_main(args: argparse.Namespace) -> int:
    from connectors.http.server import run

    result = run(
        python_client(args.url, Path(args.payload), args.requests, args.connections, args.duration)
    )
    print("RESULT " + orjson.dumps(result).decode(), flush=True)
    return 0


# -- the benchmark ------------------------------------------------------------------------


async def interrupt_when(proc: asyncio.subprocess.Process, app: TimedApp, requests: int) -> None:
    while proc.returncode is None:
        if app.responses >= requests:
            await asyncio.sleep(0.2)  # let wrk read the last answers
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            return
        await asyncio.sleep(0.05)


async def warm_up(url: str, body: bytes, requests: int = 3) -> int:
    """Sends `requests` batches before the measured window; how many were acknowledged."""
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=60.0) as client:
        for _ in range(requests):
            response = await client.post("/1/upload", headers=HEADERS, content=body)
            response.raise_for_status()
    return requests


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    from connectors.http import HttpLimits, create_app, serve_http
    from tests.integration.memory_ingest import StaticAuth

    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk"))
    if args.client == "wrk" and not shutil.which("wrk"):
        raise SystemExit("--client wrk: wrk is not on PATH")
    with tempfile.TemporaryDirectory(prefix="tidegate-bench-http-") as tmp:
        workdir = Path(tmp)
        payload = workdir / "batch.json"
        payload.write_bytes(make_payload(args.batch, datetime.now(UTC)))
        async with make_ingest(args.ingest, workdir) as ingest:
            auth = StaticAuth({ACCOUNT: API_KEY}, {ACCOUNT: PASSCODE})
            limits = HttpLimits(records_per_second=None, max_batch=max(1000, args.batch))
            app = TimedApp(create_app(ingest, auth, limits=limits))
            server = await serve_http(app, "127.0.0.1", 0, backlog=4096)
            try:
                warmed = await warm_up(server.url, payload.read_bytes())
                app.reset()
                if use_wrk:
                    command = wrk_command(server.url, payload, workdir, args)
                else:
                    command = [
                        sys.executable, __file__, "--client-mode", "--url", server.url,
                        "--payload", str(payload), "--requests", str(args.requests),
                        "--connections", str(args.connections), "--duration", str(args.duration),
                    ]  # fmt: skip
                before = await submitted_records(ingest, args.ingest) or 0
                proc = await asyncio.create_subprocess_exec(
                    *command,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env={**os.environ, "PYTHONPATH": str(REPO)},
                )
                if use_wrk:
                    # wrk runs its whole -d even after every thread stopped: SIGINT (wrk
                    # then reports as usual) once the server has answered the budget.
                    watcher = asyncio.create_task(interrupt_when(proc, app, args.requests))
                try:
                    out, err = await asyncio.wait_for(
                        proc.communicate(), timeout=args.duration + 120
                    )
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
                    raise SystemExit("the load generator did not finish in time") from None
                if use_wrk:
                    watcher.cancel()
                after = await submitted_records(ingest, args.ingest)
                # Stopping the embedded runtime mid-upload is not safe: let it decide all.
                drained = await drain(ingest, args.drain_timeout)
            finally:
                await server.close()
        # Every acknowledged record must be on the accepted output once the runtime has
        # decided them all (all records are valid and distinct events).
        on_output = count_lines(workdir / "data" / "out" / "accepted.jsonl")
    lines = [ln for ln in out.decode().splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(
            f"load generator failed ({proc.returncode}):\n{out.decode()}\n{err.decode()}"
        )
    result: dict[str, Any] = orjson.loads(lines[-1][len("RESULT ") :])
    acknowledged = (warmed + result["ok"]) * args.batch
    # wrk always runs its full -d even when every thread stopped early: the server's window
    # (first byte in to last byte out) is the elapsed time for both clients.
    elapsed = app.window or result["elapsed"] or 1e-9
    stored = (after - before) if after is not None else result["ok"] * args.batch
    result.update(
        ingest=args.ingest,
        batch=args.batch,
        connections=args.connections,
        elapsed=elapsed,
        events_per_s=stored / elapsed,
        requests_per_s=result["requests"] / elapsed,
        records_stored=stored,
        drain_s=drained,
        decided_per_s=stored / (elapsed + drained) if drained is not None else None,
        loop=type(asyncio.get_running_loop()).__module__,
        acknowledged=acknowledged,
        accepted_on_output=on_output,
    )
    return result


def count_lines(path: Path) -> int | None:
    """Lines of an output file (None when the ingest writes none: the memory double)."""
    if not path.exists():
        return None
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ingest", choices=["memory", "embedded"], default="memory")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--requests", type=int, default=300, help="at most this many requests")
    parser.add_argument("--duration", type=float, default=30.0, help="at most this many seconds")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--batch", type=int, default=1000, help="records per request")
    parser.add_argument(
        "--drain-timeout", type=float, default=120.0, help="wait this long for the runtime"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--client-mode", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--payload", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client_mode:
        return client_main(args)

    from connectors.http.server import run

    # A hard bound whatever hangs (an ingest thread included): dump every stack and exit.
    faulthandler.dump_traceback_later(args.duration + args.drain_timeout + 240, exit=True)
    result = run(bench(args))
    faulthandler.cancel_dump_traceback_later()
    if args.json:
        print(orjson.dumps(result).decode())
    else:
        print(
            f"ingest={result['ingest']} client={result['client']} loop={result['loop']} "
            f"batch={result['batch']} connections={result['connections']}\n"
            f"requests={result['requests']} ok={result['ok']} 5xx={result['server_errors']} "
            f"other={result['other']} socket_errors={result['socket_errors']} "
            f"in {result['elapsed']:.2f}s\n"
            f"events/s={result['events_per_s']:,.0f} requests/s={result['requests_per_s']:.1f} "
            f"p50={result['p50_ms']:.1f}ms p99={result['p99_ms']:.1f}ms max={result['max_ms']:.1f}ms"
            f" records_stored={result['records_stored']}"
        )
        if args.ingest != "memory":
            decided = result["decided_per_s"]
            print(
                f"decided by the runtime {result['drain_s']}s after the last answer: "
                + (f"{decided:,.0f} events/s end to end" if decided else "not in time")
            )
            print(
                f"acknowledged records {result['acknowledged']:,}, "
                f"on the accepted output {result['accepted_on_output']:,}"
            )
    lost = result["accepted_on_output"] is not None and (
        result["accepted_on_output"] != result["acknowledged"]
    )
    failed = result["server_errors"] > 0 or result["socket_errors"] > 0 or result["ok"] == 0 or lost
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
