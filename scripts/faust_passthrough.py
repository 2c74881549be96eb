#!/usr/bin/env python
"""A Faust worker that only forwards records: the ceiling of any Faust topology here.

    .venv/bin/python scripts/faust_passthrough.py BOOTSTRAP SRC DST APP_ID GUARANTEE STATE_DIR [stock]

One agent (concurrency 1) reads SRC and sends each record's key and value to DST, with
Faust's own processing guarantee (`at_least_once`; `exactly_once` is Faust's own
transaction manager, not Tidegate's), the raw serializers, the same producer and commit
settings as `tidegate worker` and, unless `stock` is given, the same patch of Faust's
fetch delivery (`streams.kafka.faust_patches`). No rule, no table, no hop: whatever this does per second
is more than a Faust topology that also decides and re-keys can do on the same machine
and broker. `scripts/bench_faust.py` runs it beside the Tidegate workers in the same run.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any


def main() -> None:
    bootstrap, src, dst, app_id, guarantee, state_dir = sys.argv[1:7]
    import faust

    if "stock" not in sys.argv[7:]:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from streams.kafka.faust_patches import deliver_each_fetch_in_one_task

        deliver_each_fetch_in_one_task()

    # as `tidegate worker`: hand the GIL back to the consumer thread quickly
    sys.setswitchinterval(0.0002)
    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        datadir=state_dir,
        topic_partitions=8,
        topic_replication_factor=1,
        processing_guarantee=guarantee,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        producer_acks=-1,
        producer_linger_ms=5,
        broker_commit_every=20000,
        broker_commit_interval=0.1,
        stream_buffer_maxsize=16384,
        stream_wait_empty=False,
        consumer_auto_offset_reset="earliest",
    )
    source = app.topic(src, key_type=bytes, value_type=bytes)
    sink = app.topic(dst, key_type=bytes, value_type=bytes)

    @app.agent(source, concurrency=1)  # type: ignore[untyped-decorator]
    async def forward(stream: Any) -> None:
        async for event in stream.events():
            await sink.send(key=event.key, value=event.value, headers=event.headers)

    worker = faust.Worker(app, loglevel="WARN", quiet=True, redirect_stdouts=False)
    # as `tidegate worker`: the spinner would set the root logger to DEBUG
    worker.spinner = None
    logging.getLogger().setLevel(logging.WARNING)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
