"""Reads tidegate.events.triggers and acts on each trigger once.

Run: python examples/trigger_consumer.py [--bootstrap 127.0.0.1:9092] [--group campaigns]

* `isolation_level="read_committed"`: only records of committed Tidegate transactions.
* Drops any event_id it has already handled (Tidegate never emits an event_id twice, but a
  consumer that crashes before committing its own offsets re-reads records): the ids of the
  last 7 days are kept here in memory; a real consumer keeps them next to its own effects.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import OrderedDict

from aiokafka import AIOKafkaConsumer

TOPIC = "tidegate.events.triggers"


class SeenIds:
    def __init__(self, limit: int = 1_000_000) -> None:
        self.ids: OrderedDict[str, None] = OrderedDict()
        self.limit = limit

    def first_time(self, event_id: str) -> bool:
        if event_id in self.ids:
            return False
        self.ids[event_id] = None
        if len(self.ids) > self.limit:
            self.ids.popitem(last=False)
        return True


async def main(bootstrap: str, group: str) -> None:
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id=group,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    seen = SeenIds()
    await consumer.start()
    try:
        async for record in consumer:
            headers = dict(record.headers)
            event_id = headers.get("event_id", b"").decode()
            if not seen.first_time(event_id):
                continue  # redelivered: already handled
            event = json.loads(record.value)
            print(f"trigger {event['name']!r} for {event['profile_id']} ({event_id})")
            await consumer.commit()
    finally:
        await consumer.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--group", default="campaigns")
    ns = parser.parse_args()
    asyncio.run(main(ns.bootstrap, ns.group))
