"""`tidegate worker`: runs one Faust worker of the Kafka runtime until stopped."""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import shutil
import signal
import sys

from streams.kafka import faust_patches
from streams.kafka import topics as T
from streams.kafka.app import WorkerConfig, create_app
from streams.kafka.metrics import WorkerMetrics


def run_worker(config: WorkerConfig) -> int:
    """Creates the topics when missing, then runs the Faust worker (blocks)."""
    from faust import Worker

    # `kill -USR1 <pid>` prints every thread's stack (diagnosing a stalled worker)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    # Faust runs the Kafka consumer in a second thread. With the default GIL switch
    # interval (5 ms) the event loop, back from every socket send (which releases the GIL),
    # waits up to 5 ms for that thread to give the GIL back: a third of a worker's wall
    # time went there. A short interval hands the GIL back quickly.
    kafka = config.kafka
    sys.setswitchinterval(kafka.switch_interval)
    kafka.state_dir.mkdir(parents=True, exist_ok=True)
    bootstrap = T.bootstrap_of(kafka.broker)
    asyncio.run(T.ensure_topics(bootstrap, kafka.topics, kafka.partitions, kafka.app_id))
    metrics = None
    if kafka.metrics_port is not None:
        metrics = WorkerMetrics()
        port = metrics.serve(kafka.metrics_host, kafka.metrics_port)
        print(
            f"tidegate worker: metrics on http://{kafka.metrics_host}:{port}/metrics",
            file=sys.stderr,
            flush=True,
        )
    app = create_app(config, metrics)
    level = kafka.log_level
    worker = Worker(app, loglevel=level, quiet=True, redirect_stdouts=False)
    faust_patches.prepare_worker(app, worker)
    logging.getLogger("tidegate").setLevel(level)
    # The periodic stats line (TIDEGATE_STATS_SECONDS) shows at the default level too: Faust's
    # handlers drop records under the worker's level (WARN), so it has a handler of its own.
    stats = logging.getLogger("tidegate.stats")
    stats.setLevel(logging.INFO)
    stats.propagate = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("[%(asctime)s] [%(process)s] [%(levelname)s] %(name)s: %(message)s")
    )
    stats.addHandler(handler)
    if kafka.exactly_once:
        if not app.in_transaction:
            raise SystemExit("exactly_once requested but the Faust app is not transactional")
        # Under exactly_once the local RocksDB state is only a cache of the changelogs: it
        # may hold writes of a transaction that never committed (a kill -9 between the
        # RocksDB write and the commit), so it is rebuilt from the changelogs at start.
        shutil.rmtree(app.conf.tabledir, ignore_errors=True)
        app.tidegate_agents["install"]()
    worker.execute_from_commandline()
    return 0
