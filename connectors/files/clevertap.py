"""A CleverTap upload payload stored as a file: one JSON document `{"d": [...]}`.

Unlike the JSON-lines dialects the member is a single document (usually pretty-printed),
so it is parsed whole — with a size cap, `MAX_PAYLOAD_BYTES` = 64 MiB — and framed into
one item per element of `d`: `number` is the element's 1-based position in `d` (what
feedback files and `tidegate validate` report as its "line"), `raw` its compact JSON
(`orjson.dumps`). Whether an element is a valid record is the core's decision; an element
that is not an object is still framed.

The document must be strict JSON: the `// ...` comment in CleverTap's documented example
is an annotation, not something their API accepts. A member that is larger than the cap,
is not UTF-8 JSON, or is not an object with a list `d` fails as a whole:
`MemberFailed(Rejection(INVALID_PAYLOAD, ...))` — the member fails, the upload continues.
The 1000-records-per-call limit belongs to the HTTP API, not to files.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson

from connectors.files.errors import MemberFailed
from streams.core.errors import ErrorCode, Rejection, Stage

MAX_PAYLOAD_BYTES = 64 << 20  # 64 MiB
_READ_BYTES = 1 << 20


@dataclass(slots=True)
class PayloadItem:
    number: int  # 1-based position in `d`
    raw: bytes  # orjson.dumps(element)


def _failed(message: str, member: str | None) -> MemberFailed:
    return MemberFailed(Rejection(ErrorCode.INVALID_PAYLOAD, message, Stage.UPLOAD), member)


def read_capped(stream: BinaryIO, max_bytes: int) -> bytes | None:
    """The whole stream, or None as soon as it is longer than `max_bytes`."""
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(min(_READ_BYTES, max_bytes + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            return None
    return b"".join(chunks)


def iter_clevertap_items(
    stream: BinaryIO,
    *,
    name: str | None = None,
    max_bytes: int = MAX_PAYLOAD_BYTES,
) -> Iterator[PayloadItem]:
    """Yields the elements of a `{"d": [...]}` document; `name` is used in messages."""
    label = name or "the payload"
    data = read_capped(stream, max_bytes)
    if data is None:
        raise _failed(f"{label} is larger than {max_bytes} bytes", name)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        document: Any = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise _failed(f"{label} is not a JSON document: {error}", name) from None
    del data
    if not isinstance(document, dict) or not isinstance(document.get("d"), list):
        raise _failed(f'{label} is not a CleverTap payload: expected {{"d": [...]}}', name)
    records: list[Any] = document["d"]
    del document
    dumps = orjson.dumps
    for position in range(len(records)):
        element = records[position]
        records[position] = None  # let each element go once it is framed
        yield PayloadItem(position + 1, dumps(element))
