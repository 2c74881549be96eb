"""Dedup (idempotency key / content fingerprint) and redelivery suppression, with bounded state.

Dedup (DESIGN.md "Dedup"; Naxai: "If two events share the same identification key, we
won't process the event multiple times for a period of 24 hours"):

* The dedup key of a record is its idempotency key; a record without one uses a content
  fingerprint when the account enables `dedup_fingerprint`; otherwise it has none and is
  never a duplicate. An idempotency key always wins over the fingerprint. This holds for
  every kind of record (event, profile update, alias): a repeated key is a repeat.
* The scope is account + profile + key: the same key for two profiles is two events.
* The window is **processing time** (`now`), not the record's timestamp, and counts from
  the *acceptance* that recorded the key: a duplicate does not extend it. With the default
  24 h: 1 h later → duplicate; 25 h later → accepted again, and that acceptance starts a
  new window. The window is half-open: a record exactly 24 h after the acceptance is
  accepted. Times are kept in whole seconds; the expiry is rounded *up* to the second, so
  the window is never shorter than configured.
* Only accepted records record their key (a record rejected by a catalog limit, fixed
  and re-sent with the same key, is not a duplicate).

State (per key ≤ 200 bytes serialized, measured in the tests):

* table `dedup`: key = urlsafe-base64 (no padding, 22 chars) of a 16-byte blake2b digest
  of `account \\x1f profile_id \\x1f k:<idempotency key> | f:<fingerprint>`, value = the
  expiry as integer epoch seconds. A lookup treats an entry whose expiry is ≤ now as
  absent, whether or not it has been reclaimed yet.
* table `dedup_expiry`: the expiry index, see `ExpiryIndex`. `expire(store, now)` deletes
  every entry whose expiry has passed by walking minute buckets from a stored cursor: no
  full scan, and no in-process timers — it depends only on stored values, so it works the
  same on state restored from a changelog.

Redelivery (same `event_id` = same source line): table `seen`, key = event_id, value =
`[expiry epoch seconds, summary]` where summary is `accepted`, `triggered`, `duplicate` or
`rejected:<code>`; index table `seen_expiry`. Entries are kept for `SEEN_RETENTION`
(7 days of processing time by default): Kafka redeliveries and restarts replay minutes to
hours, and re-uploads of a file are refused earlier by `duplicate_filename`. A record
re-sent after the retention is decided again (its idempotency key still protects it
within the dedup window).

Sharding: the expiry index keeps shared per-bucket lists, so it must not be written from
two partitions. The embedded runtime uses the default shard `""`; the Faust runtime
passes its partition number as `shard` to every write and to `expire`, so each partition
keeps (and, from its changelog, restores) its own index.
"""

from __future__ import annotations

import binascii
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from streams.core.records import Event
from streams.core.settings import AccountSettings
from streams.core.state import StateStore

DEDUP_TABLE = "dedup"
DEDUP_EXPIRY_TABLE = "dedup_expiry"
SEEN_TABLE = "seen"
SEEN_EXPIRY_TABLE = "seen_expiry"

SEEN_RETENTION = timedelta(days=7)
BUCKET_SECONDS = 60
CHUNK_SIZE = 64

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# The last answers of `epoch_seconds`, and of `expiry_of` per window, by the identity of
# `now`: a runtime decides a whole batch with one `now`, so the datetime arithmetic runs
# once per batch, not per record. Each memo entry is one tuple, replaced whole (safe across
# threads); datetimes are immutable, so an identical object always has the same answer.
_epoch_memo: tuple[object, int] = (None, 0)
_expiry_memo: dict[timedelta, tuple[datetime, int]] = {}


def epoch_seconds(moment: datetime) -> int:
    """Whole epoch seconds, rounded down (a naive datetime is taken as UTC)."""
    global _epoch_memo
    memo = _epoch_memo
    if memo[0] is moment:
        return memo[1]
    seconds = math.floor((_aware(moment) - _EPOCH).total_seconds())
    _epoch_memo = (moment, seconds)
    return seconds


def expiry_of(now: datetime, window: timedelta) -> int:
    """Epoch seconds when something recorded at `now` for `window` expires (rounded up)."""
    memo = _expiry_memo.get(window)
    if memo is not None and memo[0] is now:
        return memo[1]
    expires_at = math.ceil((_aware(now) + window - _EPOCH).total_seconds())
    if len(_expiry_memo) >= 64:
        _expiry_memo.clear()
    _expiry_memo[window] = (now, expires_at)
    return expires_at


# --------------------------------------------------------------------------- expiry index


_CURSOR_KEYS: dict[str, str] = {}

# Per (store, index table, shard): the last add's (store, bucket, chunk count, last chunk
# key, the list stored there). It holds the store, so the store's id is not reused while
# the entry exists.
_LAST_ADDS: dict[tuple[int, str, str], tuple[Any, int, int, str, list[str]]] = {}
_LAST_ADDS_MAX = 256


def _cursor_key(shard: str) -> str:
    key = f"{shard}/cursor"
    if len(_CURSOR_KEYS) < 1024:
        _CURSOR_KEYS[shard] = key
    return key


@dataclass(slots=True, frozen=True)
class ExpiryIndex:
    """Reclaims expired entries of `data_table` without a full scan.

    Index layout in `index_table` (per shard):

    * `"<shard>/cursor"` → int: the lowest minute bucket that may still hold entries;
    * `"<shard>/<bucket>"` → int: how many chunks the bucket has;
    * `"<shard>/<bucket>/<i>"` → list of data keys (at most `chunk_size`), whose expiry
      falls in `((bucket - 1) * bucket_seconds, bucket * bucket_seconds]`.

    A bucket is reclaimed once its end has passed, so an entry is deleted at most
    `bucket_seconds` after its expiry (lookups treat it as absent from the expiry on).

    Chunks keep every write small (a changelog message per write stays ≤ ~1.6 KB). An
    entry re-recorded later appears in two buckets; reclaiming the older bucket checks the
    stored expiry first, so the live entry is kept.
    """

    data_table: str
    index_table: str
    expires_of: Callable[[Any], int | None]
    bucket_seconds: int = BUCKET_SECONDS
    chunk_size: int = CHUNK_SIZE

    def add(self, store: StateStore, key: str, expires_at: int, shard: str = "") -> None:
        bucket = -(-expires_at // self.bucket_seconds)  # rounded up: expiries in (b-1, b]
        index_table = self.index_table
        slot = (id(store), index_table, shard)
        last_add = _LAST_ADDS.get(slot)
        if last_add is not None and last_add[0] is store and last_add[1] == bucket:
            # The same bucket as this index's last add in this store. If its last chunk is
            # still the very list that add stored, nothing touched the bucket since (an
            # expiry pass that reclaims it deletes the chunk; a rolled-back or restored
            # store returns another object): its chunk count is as that add left it, and
            # the cursor is at most this bucket.
            _, _, count, chunk_key, stored = last_add
            if store.get(index_table, chunk_key) is stored:
                if len(stored) < self.chunk_size:
                    members = [*stored, key]  # a new list: stored values never change in place
                else:
                    count += 1
                    members = [key]
                    store.put(index_table, f"{shard}/{bucket}", count)
                    chunk_key = f"{shard}/{bucket}/{count - 1}"
                store.put(index_table, chunk_key, members)
                _LAST_ADDS[slot] = (store, bucket, count, chunk_key, members)
                return
        head = f"{shard}/{bucket}"
        chunks = store.get(index_table, head)
        if isinstance(chunks, int) and chunks > 0:
            last = store.get(index_table, f"{head}/{chunks - 1}")
            # A new list: stored values are never changed in place.
            members = list(last) if isinstance(last, list) else []
            if len(members) >= self.chunk_size:
                chunks += 1
                members = []
                store.put(index_table, head, chunks)
        else:
            chunks = 1
            members = []
            store.put(index_table, head, chunks)
        members.append(key)
        chunk_key = f"{head}/{chunks - 1}"
        store.put(index_table, chunk_key, members)
        cursor_key = _CURSOR_KEYS.get(shard) or _cursor_key(shard)
        cursor = store.get(index_table, cursor_key)
        if not isinstance(cursor, int) or bucket < cursor:
            store.put(index_table, cursor_key, bucket)
        if type(chunks) is int:
            if len(_LAST_ADDS) >= _LAST_ADDS_MAX:
                _LAST_ADDS.clear()
            _LAST_ADDS[slot] = (store, bucket, chunks, chunk_key, members)

    def expire(
        self, store: StateStore, now: datetime, shard: str = "", max_buckets: int | None = None
    ) -> int:
        """Deletes entries whose expiry is ≤ now; returns how many data entries went.

        Walks whole buckets from the cursor up to the last bucket entirely in the past
        (at most `max_buckets` of them per call, to bound the work after a long pause).
        """
        cursor_key = f"{shard}/cursor"
        cursor = store.get(self.index_table, cursor_key)
        if not isinstance(cursor, int):
            return 0
        now_s = epoch_seconds(now)
        stop = now_s // self.bucket_seconds + 1  # buckets below stop end at or before now
        if max_buckets is not None:
            stop = min(stop, cursor + max_buckets)
        removed = 0
        for bucket in range(cursor, stop):
            head = f"{shard}/{bucket}"
            chunks = store.get(self.index_table, head)
            if not isinstance(chunks, int):
                continue
            for index in range(chunks):
                chunk_key = f"{head}/{index}"
                for key in store.get(self.index_table, chunk_key) or ():
                    value = store.get(self.data_table, key)
                    expires_at = self.expires_of(value) if value is not None else None
                    if expires_at is not None and expires_at <= now_s:
                        store.delete(self.data_table, key)
                        removed += 1
                store.delete(self.index_table, chunk_key)
            store.delete(self.index_table, head)
        if stop > cursor:
            store.put(self.index_table, cursor_key, stop)
        return removed


def _int_expiry(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _seen_expiry(value: Any) -> int | None:
    if isinstance(value, list) and value:
        return _int_expiry(value[0])
    return None


DEDUP_INDEX = ExpiryIndex(DEDUP_TABLE, DEDUP_EXPIRY_TABLE, _int_expiry)
SEEN_INDEX = ExpiryIndex(SEEN_TABLE, SEEN_EXPIRY_TABLE, _seen_expiry)


# --------------------------------------------------------------------------- dedup keys


def _default(value: Any) -> Any:
    # Properties are JSON-derived; anything else is hashed by a stable text form.
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return str(value)


_FINGERPRINT_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def fingerprint(event: Event) -> str:
    """A stable content hash: 32 hex chars of blake2b-16 over sorted-key orjson of the
    record's kind, name, identifiers, alias, timestamp (epoch microseconds), properties and
    Zeta's url/resource fields. Not included: event_id, source, received_at, idempotency
    key — two uploads of the same fact have the same fingerprint."""
    timestamp = (_aware(event.timestamp) - _EPOCH) // timedelta(microseconds=1)
    content = {
        "kind": str(event.kind),
        "name": event.name,
        "identifiers": event.identifiers,
        "alias": event.alias,
        "timestamp": timestamp,
        "properties": event.properties,
        "url": event.url,
        "resource_id": event.resource_id,
        "resource_type": event.resource_type,
    }
    data = orjson.dumps(content, default=_default, option=_FINGERPRINT_OPTIONS)
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def dedup_key(event: Event, settings: AccountSettings) -> str | None:
    """`k:<idempotency key>`, else `f:<fingerprint>` when enabled, else None."""
    if event.idempotency_key is not None:
        return f"k:{event.idempotency_key}"
    if settings.dedup_fingerprint:
        return f"f:{fingerprint(event)}"
    return None


_blake2b = hashlib.blake2b
_b2a_base64 = binascii.b2a_base64
_URLSAFE = bytes.maketrans(b"+/", b"-_")


# Recent digests by their input: a runtime that prefetches the dedup keys of a batch
# computes each digest twice (to prefetch, then to decide).
_DIGESTS: dict[str, str] = {}
_DIGESTS_MAX = 16_384


def dedup_digest(account: str, profile_id: str, key: str) -> str:
    """The `dedup` table key: 22 chars of urlsafe base64 of blake2b-16."""
    text = f"{account}\x1f{profile_id}\x1f{key}"
    found = _DIGESTS.get(text)
    if found is not None:
        return found
    digest = _blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    # = base64.urlsafe_b64encode(digest).rstrip(b"=") (16 bytes: 22 chars and "==").
    found = _b2a_base64(digest, newline=False).translate(_URLSAFE)[:22].decode("ascii")
    if len(_DIGESTS) >= _DIGESTS_MAX:
        _DIGESTS.clear()
    _DIGESTS[text] = found
    return found


def event_digest(event: Event, profile_id: str, settings: AccountSettings) -> str | None:
    """The dedup digest of a record in its profile, or None when it has no dedup key."""
    key = dedup_key(event, settings)
    return None if key is None else dedup_digest(event.account, profile_id, key)


def is_duplicate(store: StateStore, digest: str, now: datetime) -> bool:
    """True when `digest` was recorded by an acceptance less than a window ago."""
    expires_at = _int_expiry(store.get(DEDUP_TABLE, digest))
    return expires_at is not None and epoch_seconds(now) < expires_at


def remember(
    store: StateStore, digest: str, now: datetime, window: timedelta, shard: str = ""
) -> int:
    """Records an acceptance of `digest` at `now`; returns its expiry (epoch seconds)."""
    expires_at = expiry_of(now, window)
    store.put(DEDUP_TABLE, digest, expires_at)
    DEDUP_INDEX.add(store, digest, expires_at, shard)
    return expires_at


def expire(
    store: StateStore, now: datetime, shard: str = "", max_buckets: int | None = None
) -> int:
    """Reclaims expired `dedup` entries; returns how many were deleted."""
    return DEDUP_INDEX.expire(store, now, shard, max_buckets)


# --------------------------------------------------------------------------- redelivery


def previous_outcome(event_id: str, store: StateStore, now: datetime) -> str | None:
    """The summary stored for an already-decided `event_id`, or None (never seen, or the
    entry is past its retention even if not yet reclaimed)."""
    value = store.get(SEEN_TABLE, event_id)
    if value is None:
        return None  # the common case: never seen
    expires_at = _seen_expiry(value)
    if expires_at is None or epoch_seconds(now) >= expires_at:
        return None
    summary = value[1] if isinstance(value, list) and len(value) > 1 else ""
    return summary if isinstance(summary, str) else ""


def remember_outcome(
    event_id: str,
    store: StateStore,
    now: datetime,
    summary: str,
    retention: timedelta = SEEN_RETENTION,
    shard: str = "",
) -> None:
    """Marks `event_id` as decided (summary: accepted / triggered / duplicate /
    rejected:<code>) for `retention` of processing time."""
    expires_at = expiry_of(now, retention)
    store.put(SEEN_TABLE, event_id, [expires_at, summary])
    SEEN_INDEX.add(store, event_id, expires_at, shard)


def expire_seen(
    store: StateStore, now: datetime, shard: str = "", max_buckets: int | None = None
) -> int:
    """Reclaims `seen` entries past their retention; returns how many were deleted."""
    return SEEN_INDEX.expire(store, now, shard, max_buckets)
